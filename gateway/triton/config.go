package triton

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
)

// maxSendMsgBytes is the most a request may carry: Triton accepts messages up
// to 2 GiB.
const maxSendMsgBytes = math.MaxInt32

// maxRetryBackoff caps one wait between attempts, whatever Retries is.
const maxRetryBackoff = time.Second

// Config says which Triton to reach, which model to serve and how patiently.
// Start from DefaultConfig: New takes every field as it is, and Validate
// refuses a zero where the field needs a value.
type Config struct {
	// Address is Triton's gRPC endpoint: "host:port", or any gRPC target;
	// "dns:///triton:8001" resolves every replica and balances calls across
	// them (round robin).
	Address string
	// Model is the model's name in Triton's repository; Version pins a version
	// ("1"), "" lets Triton pick (the latest ready version).
	Model, Version string
	// Labels name the classes, index = class, when the gateway has the model
	// repository's label file; their number must equal the model's classes.
	// Empty: the client asks Triton through the classification extension.
	Labels []string
	// MaxRecvMsgBytes is the largest answer accepted.
	MaxRecvMsgBytes int
	// Retries is the number of extra attempts of a call that failed with
	// UNAVAILABLE, 0 to 10; 0: never retry. Other failures are never retried.
	Retries int
	// RetryBackoff is the wait before the first retry; each next wait
	// doubles, with ±20% jitter, and no attempt starts that could not finish
	// before the context's deadline.
	RetryBackoff time.Duration
	// CallTimeout bounds a call (all its attempts) whose context has no
	// deadline. A context's deadline always wins.
	CallTimeout time.Duration
	// ConnectBackoffMax caps gRPC's reconnection backoff (tests use ~100ms to
	// see a restarted server at once).
	ConnectBackoffMax time.Duration

	// SharedMemory is how input tensors reach Triton: SharedMemoryNone
	// inside the gRPC message; SharedMemorySystem through POSIX
	// shared-memory regions that the client creates in /dev/shm and registers
	// with Triton, which then reads each tensor where preprocessing wrote it
	// (see AllocTensor). Triton must run on the same host and see the same
	// /dev/shm (Linux only).
	SharedMemory string
	// SharedMemoryBytes is the size of all regions together, reserved in
	// /dev/shm at New; at least a page (4 KiB) per region, at most 1 TiB.
	// Only SharedMemorySystem reads it.
	SharedMemoryBytes int64
	// SharedMemoryRegions is the number of regions sharing SharedMemoryBytes,
	// 1 to 64; each holds whole tensors, so a batch larger than one region
	// travels in the message. Only SharedMemorySystem reads it.
	SharedMemoryRegions int

	// resolver replaces the resolver of "dns" targets (tests); nil: grpc's DNS
	// resolver, polled (defaultResolver).
	resolver resolver.Builder
}

// DefaultConfig is the configuration of a client of Triton's gRPC port on this
// host, with every setting at its default; Model has none: it names the
// caller's model.
func DefaultConfig() Config {
	return Config{
		Address: "localhost:8001",
		// Fits the scores of large batches with room to spare; grpc-go's own
		// default of 4 MiB is less than some KServe answers (BYTES outputs,
		// many classes).
		MaxRecvMsgBytes:   64 << 20,
		Retries:           2,
		RetryBackoff:      25 * time.Millisecond,
		CallTimeout:       10 * time.Second,
		ConnectBackoffMax: 5 * time.Second, // a restarted Triton is found within seconds
		SharedMemory:      SharedMemoryNone,
		// 100 images of 224×224 FP32 at once, more than the default
		// MAX_CONCURRENT_INFERENCES (32) single-image requests.
		SharedMemoryBytes: 64 << 20,
		// One region; more spread the allocator's lock.
		SharedMemoryRegions: 1,
	}
}

// Validate reports every problem of the configuration at once, each naming its
// field.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("triton: "+format, args...)) }
	if strings.TrimSpace(c.Address) == "" {
		bad("Address is empty: want host:port or a gRPC target such as dns:///triton:8001")
	} else if strings.ContainsAny(c.Address, " \t\r\n") {
		bad("Address %q contains white space", c.Address)
	}
	if strings.TrimSpace(c.Model) == "" {
		bad("Model is empty: want the model's name in Triton's repository")
	}
	if c.Version != "" {
		if v, err := strconv.ParseInt(c.Version, 10, 64); err != nil || v < 1 {
			bad("Version %q is not a positive integer (or empty for the latest)", c.Version)
		}
	}
	if len(c.Labels) > 0 {
		seen := make(map[string]int, len(c.Labels))
		for i, l := range c.Labels {
			if j, dup := seen[l]; dup && l != "" {
				bad("Labels: %q is both label %d and label %d", l, j, i)
			}
			seen[l] = i
		}
	}
	if c.MaxRecvMsgBytes <= 0 {
		bad("MaxRecvMsgBytes %d is not positive", c.MaxRecvMsgBytes)
	}
	if c.Retries < 0 || c.Retries > 10 {
		bad("Retries %d is not in [0, 10] (0: no retries; more multiply the load on a failing server)", c.Retries)
	}
	switch c.SharedMemory {
	case SharedMemoryNone:
	case SharedMemorySystem:
		if !shmSupported {
			bad("SharedMemory %q needs Linux (POSIX shared memory in /dev/shm); use %q", c.SharedMemory, SharedMemoryNone)
		}
		if c.SharedMemoryRegions < 1 || c.SharedMemoryRegions > MaxSharedMemoryRegions {
			bad("SharedMemoryRegions %d is not in [1, %d]", c.SharedMemoryRegions, MaxSharedMemoryRegions)
		} else if c.SharedMemoryBytes/int64(c.SharedMemoryRegions) < minRegionBytes {
			bad("SharedMemoryBytes %d is less than %d bytes (a page) for each of %d regions", c.SharedMemoryBytes, minRegionBytes, c.SharedMemoryRegions)
		}
		if c.SharedMemoryBytes > maxSharedMemoryBytes {
			bad("SharedMemoryBytes %d is more than %d (1 TiB)", c.SharedMemoryBytes, int64(maxSharedMemoryBytes))
		}
	default:
		bad("SharedMemory %q is not one of %q, %q", c.SharedMemory, SharedMemoryNone, SharedMemorySystem)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"RetryBackoff", c.RetryBackoff},
		{"CallTimeout", c.CallTimeout},
		{"ConnectBackoffMax", c.ConnectBackoffMax},
	} {
		if d.v <= 0 {
			bad("%s %v is not positive", d.name, d.v)
		}
	}
	return errors.Join(errs...)
}

// serviceConfig balances calls over every address the target resolves to.
// It names no healthCheckConfig: grpc-go's client-side health checking needs
// grpc.health.v1.Health/Watch, which Triton lacks, and would then silently
// count every backend as healthy. Readiness comes from ServerReady and
// ModelReady instead.
const serviceConfig = `{"loadBalancingConfig": [{"round_robin": {}}]}`

// dialSettings are the connection's settings in plain values, so that tests
// can check them; options turns them into grpc.DialOptions.
type dialSettings struct {
	Keepalive       keepalive.ClientParameters
	Connect         grpc.ConnectParams
	ServiceConfig   string
	MaxRecvMsgBytes int
	MaxSendMsgBytes int
	// Resolver resolves the address's "dns" targets (and those without a
	// scheme), again every resolveEvery.
	Resolver resolver.Builder
}

// dialSettings derives the connection settings of a configuration.
func (c Config) dialSettings() dialSettings {
	bo := backoff.DefaultConfig
	bo.MaxDelay = c.ConnectBackoffMax
	bo.BaseDelay = min(bo.BaseDelay, c.ConnectBackoffMax)
	return dialSettings{
		// Triton's gRPC server (C-core) allows a client one keepalive ping per
		// 5 minutes while no call is active and answers more eager clients
		// with GOAWAY too_many_pings, closing the connection. So: ping only
		// while calls are active (PermitWithoutStream false), at most every 5
		// minutes, and give up on the connection when a ping goes unanswered
		// for 20s.
		Keepalive: keepalive.ClientParameters{
			Time:                5 * time.Minute,
			Timeout:             20 * time.Second,
			PermitWithoutStream: false,
		},
		Connect: grpc.ConnectParams{
			Backoff:           bo,
			MinConnectTimeout: 20 * time.Second, // grpc-go's default, stated
		},
		ServiceConfig:   serviceConfig,
		MaxRecvMsgBytes: c.MaxRecvMsgBytes,
		MaxSendMsgBytes: maxSendMsgBytes,
		Resolver:        cmp.Or(c.resolver, defaultResolver()),
	}
}

// options are the grpc.NewClient options that apply s.
func (s dialSettings) options() []grpc.DialOption {
	return []grpc.DialOption{
		// Triton serves plain gRPC inside the deployment's network.
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithKeepaliveParams(s.Keepalive),
		grpc.WithConnectParams(s.Connect),
		grpc.WithDefaultServiceConfig(s.ServiceConfig),
		grpc.WithResolvers(s.Resolver),
		// Even if a resolver's service config asked for health checking,
		// Triton could not answer it (no Watch): keep it off.
		grpc.WithDisableHealthCheck(),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(s.MaxRecvMsgBytes),
			grpc.MaxCallSendMsgSize(s.MaxSendMsgBytes),
		),
	}
}
