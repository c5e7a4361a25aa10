// Package triton is the gateway's adapter to NVIDIA Triton Inference Server:
// a gateway.Inferencer over the KServe v2 (Open Inference Protocol) gRPC API.
//
// Client reads the model's description from ModelMetadata and ModelConfig
// (tensors, batching, and the preprocessing contract in the configuration's
// parameters), labels from the configuration or from Triton's classification
// extension, sends batches as raw little-endian tensors, and checks every
// answer before trusting it. gRPC status codes become gateway error kinds (see
// mapError); UNAVAILABLE is retried with backoff inside the caller's deadline.
// Readiness is asked explicitly (ServerReady, ModelReady): Triton's health
// service cannot be watched, so grpc-go's client-side health checking stays
// off.
package triton

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/kserve"
)

// Client is a gateway.Inferencer backed by Triton. It is safe for concurrent
// use. It keeps no model: each Infer carries the description Model returned
// (gateway.Batch.Model).
type Client struct {
	cfg     Config
	conn    *grpc.ClientConn
	api     kserve.GRPCInferenceServiceClient
	codec   inferCodec // of ModelInfer calls
	metrics *metrics
	shm     *shmPool // nil unless Config.SharedMemory is "system"

	latency map[string]*latencyEstimate
	closed  atomic.Bool
	close   sync.Once
}

var _ gateway.Inferencer = (*Client)(nil)

// New validates cfg and prepares a connection to Triton; it does no network
// I/O: the connection is made by the first call, and remade after failures, in
// the background. With Config.SharedMemory "system" it creates and maps the
// shared-memory regions (after removing those that killed gateways left in
// /dev/shm); Model registers them with Triton. Metrics are registered with reg
// (none when nil), which must not hold another Client's: the gateway builds one
// Client per registry, and a second registration of the same metrics panics.
func New(cfg Config, reg prometheus.Registerer, opts ...Option) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Labels = slices.Clone(cfg.Labels)
	rpcs := rpcNames
	if cfg.SharedMemory == SharedMemorySystem {
		rpcs = append(slices.Clone(rpcNames), shmRPCNames...)
	}
	m := newMetrics(reg, rpcs)
	var shm *shmPool
	if cfg.SharedMemory == SharedMemorySystem {
		var err error
		if shm, err = newShmPool(cfg, newShmMetrics(reg)); err != nil {
			return nil, err
		}
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	conn, err := grpc.NewClient(cfg.Address, append(cfg.dialSettings().options(), o.dial...)...)
	if err != nil {
		if shm != nil {
			_ = shm.close()
		}
		return nil, fmt.Errorf("triton: Address %q: %w", cfg.Address, err)
	}
	c := &Client{
		cfg:     cfg,
		conn:    conn,
		api:     kserve.NewGRPCInferenceServiceClient(conn),
		codec:   newInferCodec(),
		metrics: m,
		shm:     shm,
		latency: make(map[string]*latencyEstimate, len(rpcNames)+len(shmRPCNames)),
	}
	for _, rpc := range append(slices.Clone(rpcNames), shmRPCNames...) {
		c.latency[rpc] = new(latencyEstimate)
	}
	return c, nil
}

// shmCloseTimeout bounds the unregistration of the shared-memory regions at
// Close.
const shmCloseTimeout = 2 * time.Second

// Close closes the connection; calls in progress fail and later calls answer
// KindUnavailable. With shared memory, it first unregisters the regions from
// Triton (for at most 2s: a Triton that is down has lost them anyway), then
// unmaps them and removes them from /dev/shm; the error says what failed.
// Closing twice does nothing.
func (c *Client) Close() error {
	var err error
	c.close.Do(func() {
		var shmErr error
		if c.shm != nil {
			if shmErr = c.closeShm(shmCloseTimeout); shmErr != nil {
				shmErr = fmt.Errorf("triton: close system shared memory: %w", shmErr)
			}
		}
		c.closed.Store(true)
		err = errors.Join(shmErr, c.conn.Close())
	})
	return err
}

// Ready returns nil when Triton is ready and has a ready version of the model
// (Config.Version, or any version when it is ""); otherwise a KindUnavailable
// error saying which of the two is not ready, or the call's error.
func (c *Client) Ready(ctx context.Context) error {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	server, err := call(ctx, c, rpcServerReady, func(ctx context.Context) (*kserve.ServerReadyResponse, error) {
		return c.api.ServerReady(ctx, &kserve.ServerReadyRequest{})
	})
	if err != nil {
		return err
	}
	if !server.GetReady() {
		return &gateway.Error{Kind: gateway.KindUnavailable, Message: "inference server is not ready", RetryAfter: unavailableRetryAfter}
	}
	model, err := call(ctx, c, rpcModelReady, func(ctx context.Context) (*kserve.ModelReadyResponse, error) {
		return c.api.ModelReady(ctx, &kserve.ModelReadyRequest{Name: c.cfg.Model, Version: c.cfg.Version})
	})
	if err != nil {
		return err
	}
	if !model.GetReady() {
		return &gateway.Error{Kind: gateway.KindUnavailable, Message: "inference server: " + c.modelName() + " is not ready", RetryAfter: unavailableRetryAfter}
	}
	return nil
}

// modelName names the configured model in messages.
func (c *Client) modelName() string {
	if c.cfg.Version == "" {
		return fmt.Sprintf("model %q", c.cfg.Model)
	}
	return fmt.Sprintf("model %q version %s", c.cfg.Model, c.cfg.Version)
}

// callContext gives ctx the default CallTimeout when it has no deadline.
func (c *Client) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.cfg.CallTimeout)
}

// call runs one RPC (rpc names it) with the retry policy: an attempt that
// fails with UNAVAILABLE is tried again up to Config.Retries times, after an
// exponential backoff with jitter, unless the wait and a typical attempt would
// not fit before ctx's deadline. ctx must have a deadline (callContext). Every
// attempt is measured. The error is a *gateway.Error (mapError).
func call[T any](ctx context.Context, c *Client, rpc string, attempt func(context.Context) (T, error)) (T, error) {
	var zero T
	if c.closed.Load() {
		return zero, &gateway.Error{Kind: gateway.KindUnavailable, Message: "inference server unavailable: the client is closed"}
	}
	backoff := c.cfg.RetryBackoff
	for try := 0; ; try++ {
		start := time.Now()
		resp, err := attempt(ctx)
		elapsed := time.Since(start)
		code := status.Code(err)
		c.metrics.observe(rpc, code, elapsed)
		if err == nil {
			c.latency[rpc].add(elapsed)
			return resp, nil
		}
		if code != codes.Unavailable || try >= c.cfg.Retries || ctx.Err() != nil {
			return zero, mapError(ctx, rpc, err)
		}
		wait := jitter(min(backoff, maxRetryBackoff))
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait+c.latency[rpc].get() {
			return zero, mapError(ctx, rpc, err) // the next attempt could not finish in time
		}
		c.metrics.retried(rpc)
		gateway.AddSpanEvent(ctx, "retry", attrRPC.String(rpc), attrAttempt.Int(try+2),
			attrCode.String(code.String()), attrWait.String(wait.String()))
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return zero, mapError(ctx, rpc, ctx.Err())
		}
		backoff *= 2
	}
}

// jitter spreads d by ±20%, so that clients that failed together do not retry
// together.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// latencyEstimate is a moving average of an RPC's successful durations: what
// the next attempt is expected to take.
type latencyEstimate struct{ nanos atomic.Int64 }

func (l *latencyEstimate) get() time.Duration { return time.Duration(l.nanos.Load()) }

// add folds d into the average with weight 1/4; the race between concurrent
// updates only loses a sample.
func (l *latencyEstimate) add(d time.Duration) {
	old := l.nanos.Load()
	if old == 0 {
		l.nanos.Store(int64(d))
		return
	}
	l.nanos.Store(old + (int64(d)-old)/4)
}
