package httpapi

import (
	"errors"
	"fmt"
	"runtime"
	"time"
)

// Config bounds what one client, and all of them together, can make the API do.
type Config struct {
	// BodyLimit is the largest request body accepted, in bytes, multipart
	// envelope included; beyond it the answer is 413 before the handler runs.
	BodyLimit int
	// ReadTimeout, WriteTimeout and IdleTimeout bound reading a request, writing
	// a response and waiting for the next request on a keep-alive connection, so
	// a slow or silent client cannot hold a connection forever.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// RequestTimeout is the time budget of one predict or readiness request; the
	// context given to the classifier carries a deadline this far from the
	// start of the handler, and running out of it answers 504.
	RequestTimeout time.Duration
	// MaxInFlight is how many predict requests (single or batch) may run at once;
	// one more is shed at once with 429 and Retry-After.
	MaxInFlight int
	// MaxUploadBytesInFlight bounds the bytes that the bodies of admitted
	// uploads hold at once: an upload waits (up to RequestTimeout, then 429)
	// for its declared size to be free before its body is read. At least
	// BodyLimit, or the largest upload could never be admitted.
	MaxUploadBytesInFlight int
	// MaxConnections bounds the open client connections; one more is answered
	// 503 and closed as soon as it is accepted.
	MaxConnections int
	// MaxBatchItems is the most images one /predict/batch request may carry.
	MaxBatchItems int
	// DefaultTopK is the number of predictions returned when top_k is absent.
	DefaultTopK int
}

// DefaultConfig returns the gateway's defaults (the README's configuration table
// lists them, and a test holds the two together): 32 MiB bodies (twice the
// preprocessing's default image limit, room for a multipart envelope), 30 s to
// read or write, 60 s idle, 10 s per request, 4 concurrent predictions per core
// whose bodies hold at most 64 MiB together (two of the largest, or about twenty
// phone photos), 1024 connections, 32 images per batch, top 5.
func DefaultConfig() Config {
	return Config{
		BodyLimit:              32 << 20,
		ReadTimeout:            30 * time.Second,
		WriteTimeout:           30 * time.Second,
		IdleTimeout:            60 * time.Second,
		RequestTimeout:         10 * time.Second,
		MaxInFlight:            4 * runtime.GOMAXPROCS(0),
		MaxUploadBytesInFlight: 64 << 20,
		MaxConnections:         1024,
		MaxBatchItems:          32,
		DefaultTopK:            5,
	}
}

// Validate reports every problem of the configuration at once, each naming its
// field.
func (c Config) Validate() error {
	var errs []error
	positive := func(name string, v int) {
		if v < 1 {
			errs = append(errs, fmt.Errorf("httpapi: %s is %d, want at least 1", name, v))
		}
	}
	positiveDuration := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("httpapi: %s is %v, want a positive duration", name, d))
		}
	}
	positive("BodyLimit", c.BodyLimit)
	positiveDuration("ReadTimeout", c.ReadTimeout)
	positiveDuration("WriteTimeout", c.WriteTimeout)
	positiveDuration("IdleTimeout", c.IdleTimeout)
	positiveDuration("RequestTimeout", c.RequestTimeout)
	positive("MaxInFlight", c.MaxInFlight)
	positive("MaxConnections", c.MaxConnections)
	if c.MaxUploadBytesInFlight < c.BodyLimit {
		errs = append(errs, fmt.Errorf("httpapi: MaxUploadBytesInFlight is %d, want at least BodyLimit (%d)", c.MaxUploadBytesInFlight, c.BodyLimit))
	}
	positive("MaxBatchItems", c.MaxBatchItems)
	positive("DefaultTopK", c.DefaultTopK)
	return errors.Join(errs...)
}
