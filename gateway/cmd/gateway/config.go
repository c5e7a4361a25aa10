package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/fish-classifier/fish-classifier/gateway/breaker"
	"github.com/fish-classifier/fish-classifier/gateway/httpapi"
	"github.com/fish-classifier/fish-classifier/gateway/modelconfig"
	"github.com/fish-classifier/fish-classifier/gateway/onnx"
	"github.com/fish-classifier/fish-classifier/gateway/triton"
	"github.com/fish-classifier/fish-classifier/preprocess"
)

// defaultONNXRuntimeLib is where `make onnxruntime` (scripts/fetch-onnxruntime.sh)
// puts ONNX Runtime's library, relative to the repository root.
const defaultONNXRuntimeLib = ".onnxruntime/1.30.0/libonnxruntime.so.1"

// config is everything the gateway reads from its environment. Every variable is
// documented, with its default, in the README's Configuration section.
type config struct {
	ListenAddr      string
	LogLevel        string
	Backend         string
	Fallback        string
	ModelRepository string
	ModelRefresh    time.Duration
	ShutdownTimeout time.Duration
	// MaxConcurrentInferences bounds the requests holding tensors at once
	// (gateway.WithMaxConcurrentInferences); 0: no bound.
	MaxConcurrentInferences int
	// PprofAddr is where net/http/pprof is served, on a listener of its own;
	// "": nowhere (see pprof.go).
	PprofAddr string
	// Tracing is the OpenTelemetry export (tracing.go); off without an endpoint.
	Tracing tracingConfig

	HTTP    httpapi.Config
	Limits  preprocess.Limits
	Triton  triton.Config
	Breaker breaker.Settings
	ONNX    onnx.Config

	settings []setting // what was read, for the start-up log
}

// loadConfig reads and validates the configuration; the error lists every problem.
func loadConfig(lookup func(string) (string, bool)) (config, error) {
	e := newEnv(lookup)
	var c config
	c.ListenAddr = e.String("GATEWAY_LISTEN_ADDR", ":8000")
	c.LogLevel = e.Enum("GATEWAY_LOG_LEVEL", "info", "debug", "info", "warn", "error")
	c.Backend = e.Enum("BACKEND", "onnx", "onnx", "triton")
	c.Fallback = e.Enum("FALLBACK", "none", "none", "onnx")
	c.ModelRepository = e.String("MODEL_REPOSITORY", "triton-models")
	c.ModelRefresh = e.Duration("MODEL_REFRESH_INTERVAL", 30*time.Second, time.Second, 24*time.Hour)
	c.ShutdownTimeout = e.Duration("SHUTDOWN_TIMEOUT", 30*time.Second, time.Second, 10*time.Minute)
	c.MaxConcurrentInferences = e.Int("MAX_CONCURRENT_INFERENCES", 32, 0, 100000)
	c.PprofAddr = e.String("PPROF_ADDR", "")
	c.Tracing = readTracing(e)
	if c.PprofAddr != "" {
		if err := checkPprofAddr(c.PprofAddr, c.ListenAddr); err != nil {
			e.fail("PPROF_ADDR", "%v", err)
		}
	}

	// Every default is the package's own (DefaultConfig, DefaultLimits,
	// DefaultSettings); this file only names the variables and their bounds, and
	// what only the gateway knows (its model, the breaker's name, the library's
	// place in this repository).
	hc := httpapi.DefaultConfig()
	hc.BodyLimit = e.Int("HTTP_BODY_LIMIT_BYTES", hc.BodyLimit, 1<<10, 1<<30)
	hc.ReadTimeout = e.Duration("HTTP_READ_TIMEOUT", hc.ReadTimeout, 100*time.Millisecond, time.Hour)
	hc.WriteTimeout = e.Duration("HTTP_WRITE_TIMEOUT", hc.WriteTimeout, 100*time.Millisecond, time.Hour)
	hc.IdleTimeout = e.Duration("HTTP_IDLE_TIMEOUT", hc.IdleTimeout, time.Second, time.Hour)
	hc.RequestTimeout = e.Duration("REQUEST_TIMEOUT", hc.RequestTimeout, 10*time.Millisecond, 10*time.Minute)
	hc.MaxInFlight = e.Int("MAX_IN_FLIGHT", hc.MaxInFlight, 1, 100000)
	hc.MaxUploadBytesInFlight = e.Int("MAX_UPLOAD_BYTES_IN_FLIGHT", hc.MaxUploadBytesInFlight, 1<<10, 1<<40)
	hc.MaxConnections = e.Int("HTTP_MAX_CONNECTIONS", hc.MaxConnections, 1, 1<<20)
	hc.MaxBatchItems = e.Int("MAX_BATCH_ITEMS", hc.MaxBatchItems, 1, 4096)
	hc.DefaultTopK = e.Int("DEFAULT_TOP_K", hc.DefaultTopK, 1, 1000)
	c.HTTP = hc

	lc := preprocess.DefaultLimits()
	lc.MaxBytes = e.Int64("IMAGE_MAX_BYTES", lc.MaxBytes, 1, 1<<30)
	lc.MaxPixels = e.Int64("IMAGE_MAX_PIXELS", lc.MaxPixels, 1, 1<<32)
	lc.MaxSide = e.Int("IMAGE_MAX_SIDE", lc.MaxSide, 1, 65535)
	lc.MinSide = e.Int("IMAGE_MIN_SIDE", lc.MinSide, 1, 65535)
	c.Limits = lc

	tc := triton.DefaultConfig()
	tc.Address = e.String("TRITON_URL", tc.Address)
	tc.Model = e.String("MODEL_NAME", "fish_classifier")
	tc.Version = e.String("MODEL_VERSION", tc.Version)
	tc.MaxRecvMsgBytes = e.Int("TRITON_MAX_RECV_BYTES", tc.MaxRecvMsgBytes, 4<<20, 2<<30-1)
	tc.Retries = e.Int("TRITON_RETRIES", tc.Retries, 0, 10) // 0: none
	tc.RetryBackoff = e.Duration("TRITON_RETRY_BACKOFF", tc.RetryBackoff, time.Millisecond, 10*time.Second)
	tc.CallTimeout = e.Duration("TRITON_CALL_TIMEOUT", tc.CallTimeout, 10*time.Millisecond, 10*time.Minute)
	// How soon a restarted Triton is noticed: gRPC's reconnect backoff grows to
	// this cap.
	tc.ConnectBackoffMax = e.Duration("TRITON_CONNECT_BACKOFF_MAX", tc.ConnectBackoffMax, 10*time.Millisecond, 5*time.Minute)
	// Tensors through Triton's system shared memory: opt-in, same host only.
	tc.SharedMemory = e.Enum("TRITON_SHARED_MEMORY", tc.SharedMemory, triton.SharedMemoryNone, triton.SharedMemorySystem)
	tc.SharedMemoryBytes = e.Int64("TRITON_SHARED_MEMORY_BYTES", tc.SharedMemoryBytes, 4<<10, 1<<40)
	tc.SharedMemoryRegions = e.Int("TRITON_SHARED_MEMORY_REGIONS", tc.SharedMemoryRegions, 1, triton.MaxSharedMemoryRegions)
	c.Triton = tc

	oc := onnx.DefaultConfig()
	oc.LibraryPath = e.String("ONNXRUNTIME_LIB", defaultONNXRuntimeLib)
	oc.ModelRepository, oc.Model, oc.Version = c.ModelRepository, c.Triton.Model, c.Triton.Version
	oc.IntraOpThreads = e.Int("ONNX_INTRA_OP_THREADS", oc.IntraOpThreads, 1, 1024)
	// The default bound depends on the threads: max(2, cores / intra-op threads).
	oc.MaxConcurrentRuns = e.Int("ONNX_MAX_CONCURRENT_RUNS", onnx.DefaultMaxConcurrentRuns(oc.IntraOpThreads), 1, 1024)
	c.ONNX = oc

	bs := breaker.DefaultSettings()
	bs.Name = "triton"
	bs.ConsecutiveFailures = e.Int("BREAKER_CONSECUTIVE_FAILURES", bs.ConsecutiveFailures, 1, 1000)
	bs.FailureRatio = e.Float("BREAKER_FAILURE_RATIO", bs.FailureRatio, 0, 1) // 0: off
	bs.MinRequests = e.Int("BREAKER_MIN_REQUESTS", bs.MinRequests, 0, 1000000)
	bs.OpenTimeout = e.Duration("BREAKER_OPEN_TIMEOUT", bs.OpenTimeout, 10*time.Millisecond, time.Hour)
	bs.HalfOpenMaxRequests = e.Int("BREAKER_HALF_OPEN_REQUESTS", bs.HalfOpenMaxRequests, 1, 1000)
	bs.Interval = e.Duration("BREAKER_INTERVAL", bs.Interval, 0, 24*time.Hour) // 0: never reset
	c.Breaker = bs

	if c.Limits.MinSide > c.Limits.MaxSide {
		e.fail("IMAGE_MIN_SIDE", "%d is larger than IMAGE_MAX_SIDE (%d)", c.Limits.MinSide, c.Limits.MaxSide)
	}
	if c.Limits.MaxBytes > int64(c.HTTP.BodyLimit) {
		e.fail("IMAGE_MAX_BYTES", "%d is larger than HTTP_BODY_LIMIT_BYTES (%d): the body limit would refuse such images first", c.Limits.MaxBytes, c.HTTP.BodyLimit)
	}
	c.settings = e.seen
	errs := e.errs
	// The cross-field checks of each package, named by the package's own words.
	for _, v := range []interface{ Validate() error }{c.HTTP, c.Limits, c.Breaker} {
		if err := v.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Triton.SharedMemory == triton.SharedMemorySystem {
		if c.Backend != "triton" {
			errs = append(errs, errors.New("TRITON_SHARED_MEMORY: system is Triton's shared memory; it needs BACKEND=triton"))
		}
		if runtime.GOOS != "linux" {
			errs = append(errs, fmt.Errorf("TRITON_SHARED_MEMORY: system needs Linux (POSIX shared memory in /dev/shm), not %s", runtime.GOOS))
		}
		if per := c.Triton.SharedMemoryBytes / int64(c.Triton.SharedMemoryRegions); per < 4<<10 {
			errs = append(errs, fmt.Errorf("TRITON_SHARED_MEMORY_BYTES: %d bytes leave less than a 4096-byte page to each of the %d TRITON_SHARED_MEMORY_REGIONS",
				c.Triton.SharedMemoryBytes, c.Triton.SharedMemoryRegions))
		}
	}
	if c.Fallback == "onnx" && c.Backend != "triton" {
		errs = append(errs, errors.New("FALLBACK: onnx stands in for Triton; it needs BACKEND=triton"))
	}
	if c.Triton.Model == "" {
		errs = append(errs, errors.New("MODEL_NAME: must not be empty"))
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("invalid configuration:\n%w", errors.Join(errs...))
	}
	return c, nil
}

// readLabels reads <repository>/<model>/labels.txt when it exists; a missing file
// is not an error (Triton is asked instead).
func readLabels(repository, model string) ([]string, error) {
	labels, err := modelconfig.ReadLabels(filepath.Join(repository, model, "labels.txt"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read labels: %w", err)
	}
	return labels, nil
}
