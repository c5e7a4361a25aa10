// Command gateway serves the fish classifier over HTTP: uploads are decoded and
// normalised in Go, inferred by NVIDIA Triton over gRPC behind a circuit breaker,
// and answered with labelled predictions. Configuration comes from environment
// variables (see the README); SIGTERM or SIGINT drains it gracefully.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/breaker"
	"github.com/fish-classifier/fish-classifier/gateway/fallback"
	"github.com/fish-classifier/fish-classifier/gateway/httpapi"
	"github.com/fish-classifier/fish-classifier/gateway/onnx"
	"github.com/fish-classifier/fish-classifier/gateway/prom"
	"github.com/fish-classifier/fish-classifier/gateway/triton"
)

func main() {
	if err := run(context.Background(), os.LookupEnv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

// run starts the gateway and blocks until ctx ends or a termination signal
// arrives, then drains it.
func run(ctx context.Context, lookup func(string) (string, bool), logOut *os.File) error {
	cfg, err := loadConfig(lookup)
	if err != nil {
		return err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: level}))
	attrs := make([]any, 0, len(cfg.settings))
	for _, s := range cfg.settings {
		attrs = append(attrs, slog.String(s.Name, s.Value))
	}
	log.Info("configuration", attrs...)
	setMemoryLimit(log)

	tr, err := startTracing(ctx, cfg.Tracing)
	if err != nil {
		return err
	}
	log.Info("tracing: " + cfg.Tracing.String())
	// Spans still buffered are exported after the drain, before exit.
	defer func() {
		if err := tr.shutdown(); err != nil {
			log.Warn("tracing: export at exit", "err", err)
		}
	}()

	srv, classifier, closeBackend, err := assemble(cfg, prometheus.NewRegistry(), log, tr)
	if err != nil {
		return err
	}
	defer closeBackend()

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go classifier.Run(ctx, cfg.ModelRefresh)

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen on GATEWAY_LISTEN_ADDR %s: %w", cfg.ListenAddr, err)
	}
	var profiling *pprofServer
	if cfg.PprofAddr != "" {
		if profiling, err = listenPprof(cfg.PprofAddr, log); err != nil {
			_ = ln.Close()
			return err
		}
		defer profiling.close()
		go profiling.serve()
	}
	log.Info("serving", "addr", ln.Addr().String(), "backend", cfg.Backend, "model", cfg.Triton.Model,
		"try", fmt.Sprintf("curl -F file=@fish.jpg http://%s/predict", ln.Addr()))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: refusing new connections, finishing accepted requests", "timeout", cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	// The profiling listener stops alongside the drain, never delaying it.
	profilingStopped := make(chan struct{})
	go func() { profiling.shutdown(shutdownCtx); close(profilingStopped) }()
	defer func() { <-profilingStopped }()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	// A signal that arrives before Serve has registered the listener makes
	// Shutdown a no-op; closing the listener ends Serve in that case too.
	_ = ln.Close()
	if err := <-served; err != nil && !errors.Is(err, net.ErrClosed) {
		log.Warn("serve returned", "err", err)
	}
	<-profilingStopped
	log.Info("stopped")
	return nil
}

// registry is where the gateway registers its metrics and what /metrics
// gathers: a *prometheus.Registry.
type registry interface {
	prometheus.Registerer
	prometheus.Gatherer
}

// assemble builds the gateway cfg describes, every metric registered with reg:
// the Go runtime's and the process's, then the backend's (openBackend), the
// classifier's observer and the HTTP API's. With tr (nil: tracing off), the
// HTTP server, the Classifier and the backends record spans. Each part registers its metrics
// once, at construction; nothing registers later (the Classifier's refreshes
// reuse the backend), and a second gateway needs a registry of its own. The
// Classifier has no model yet: Run loads it.
func assemble(cfg config, reg registry, log *slog.Logger, tr *tracing) (srv *httpapi.Server, classifier *gateway.Classifier, closeBackend func(), err error) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	backend, probe, closeBackend, err := openBackend(cfg, reg, tr)
	if err != nil {
		return nil, nil, nil, err
	}
	// The Classifier serves through the breaker but asks the client itself
	// whether the model is ready: an open breaker is not a lost model.
	opts := []gateway.ClassifierOption{
		gateway.WithMaxConcurrentInferences(cfg.MaxConcurrentInferences),
		gateway.WithReadyProbe(probe.Ready),
	}
	var apiOpts []httpapi.Option
	if tr != nil {
		opts = append(opts, gateway.WithTracerProvider(tr.tracerProvider()))
		apiOpts = append(apiOpts, httpapi.WithTracing(tr.tracerProvider(), tr.propagator))
	}
	if mem, ok := probe.(gateway.TensorMemory); ok && cfg.Triton.SharedMemory == triton.SharedMemorySystem {
		// Images are preprocessed straight into Triton's shared memory.
		opts = append(opts, gateway.WithTensorMemory(mem))
	}
	obs := &modelLog{Observer: prom.NewObserver(reg), log: log}
	classifier = gateway.NewClassifier(backend, cfg.Limits, obs, opts...)
	if srv, err = httpapi.New(classifier, cfg.HTTP, reg, reg, log, apiOpts...); err != nil {
		closeBackend()
		return nil, nil, nil, err
	}
	return srv, classifier, closeBackend, nil
}

// setMemoryLimit sets the Go runtime's soft memory limit to 90% of the
// container's (cgroup) memory limit, so the collector works harder before the
// kernel's OOM killer would. GOMEMLIMIT, when set, wins; AUTOMEMLIMIT sets
// another ratio, or "off". Without a cgroup limit nothing is set.
func setMemoryLimit(log *slog.Logger) {
	limit, err := memlimit.Set(memlimit.WithRatio(0.9), memlimit.WithLogger(log))
	switch {
	case err != nil:
		log.Warn("soft memory limit: not set", "err", err)
	case limit == math.MaxInt64:
		log.Info("soft memory limit: none (no GOMEMLIMIT and no container memory limit)")
	default:
		log.Info("soft memory limit", "GOMEMLIMIT", limit)
	}
}

// openBackend builds the inference backend cfg.Backend names. probe answers
// whether the model itself is ready, bypassing the breaker (an open breaker is not
// a lost model).
func openBackend(cfg config, reg prometheus.Registerer, tr *tracing) (backend gateway.Inferencer, probe interface{ Ready(context.Context) error }, closeFn func(), err error) {
	var onnxOpts []onnx.Option
	var tritonOpts []triton.Option
	if tr != nil {
		onnxOpts = append(onnxOpts, onnx.WithTracerProvider(tr.tracerProvider()))
		tritonOpts = append(tritonOpts, triton.WithTracing(tr.tracerProvider(), tr.propagator))
	}
	switch cfg.Backend {
	case "onnx":
		b, err := onnx.New(cfg.ONNX, reg, onnxOpts...)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("BACKEND=onnx: %w", err)
		}
		return b, b, func() { _ = b.Close() }, nil
	default:
		tcfg := cfg.Triton
		labels, err := readLabels(cfg.ModelRepository, tcfg.Model)
		if err != nil {
			return nil, nil, nil, err
		}
		tcfg.Labels = labels
		client, err := triton.New(tcfg, reg, tritonOpts...)
		if err != nil {
			return nil, nil, nil, err
		}
		b, err := breaker.New(client, cfg.Breaker, reg)
		if err != nil {
			_ = client.Close()
			return nil, nil, nil, err
		}
		if cfg.Fallback != "onnx" {
			return b, client, func() { _ = client.Close() }, nil
		}
		embedded, err := onnx.New(cfg.ONNX, reg, onnxOpts...)
		if err != nil {
			_ = client.Close()
			return nil, nil, nil, fmt.Errorf("FALLBACK=onnx: %w", err)
		}
		f, err := fallback.New(b, embedded, reg)
		if err != nil {
			_ = client.Close()
			_ = embedded.Close()
			return nil, nil, nil, err
		}
		return f, client, func() { _ = client.Close(); _ = embedded.Close() }, nil
	}
}

// Compile-time checks of the wiring.
var (
	_ gateway.Inferencer = (*triton.Client)(nil)
	_ gateway.Inferencer = (*breaker.Breaker)(nil)
	_ httpapi.Classifier = (*gateway.Classifier)(nil)
)
