package main

// Linux only: the gateway assembled here uses Triton's system shared memory.

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fish-classifier/fish-classifier/gateway/triton/tritontest"
	"github.com/fish-classifier/fish-classifier/internal/poll"
	"github.com/fish-classifier/fish-classifier/internal/testenv"
)

// countingRegistry is a registry that counts the collectors registered with it.
type countingRegistry struct {
	*prometheus.Registry
	registered atomic.Int64
}

func (r *countingRegistry) Register(c prometheus.Collector) error {
	r.registered.Add(1)
	return r.Registry.Register(c)
}

// MustRegister is promauto's way in; it must count too.
func (r *countingRegistry) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// fullGateway starts tritontest with the repository's model and returns the
// configuration that registers the most metrics: Triton with shared memory,
// its breaker, and the embedded ONNX backend as the fallback.
func fullGateway(t *testing.T) (*tritontest.Server, config) {
	t.Helper()
	srv := tritontest.Start(t, testenv.RepositoryModel(t))
	cfg, err := loadConfig(lookupFrom(map[string]string{
		"BACKEND":                    "triton",
		"FALLBACK":                   "onnx",
		"TRITON_URL":                 srv.Addr(),
		"TRITON_SHARED_MEMORY":       "system",
		"TRITON_SHARED_MEMORY_BYTES": "1048576",
		"TRITON_CONNECT_BACKOFF_MAX": "100ms",
		"MODEL_REPOSITORY":           filepath.Join(repoRoot(t), "triton-models"),
		"ONNXRUNTIME_LIB":            onnxRuntimeLib(t),
		"ONNX_INTRA_OP_THREADS":      "1",
	}))
	if err != nil {
		t.Fatal(err)
	}
	return srv, cfg
}

func familyNames(t *testing.T, g prometheus.Gatherer) []string {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	return names
}

// TestAssembleTwice: the whole gateway builds twice in one process, each on a
// registry of its own holding the same metrics; a registry that already holds
// one gateway's metrics makes assemble panic before it builds anything.
func TestAssembleTwice(t *testing.T) {
	_, cfg := fullGateway(t)
	log := slog.New(slog.DiscardHandler)
	var names [2][]string
	var first *prometheus.Registry
	for i := range names {
		reg := prometheus.NewRegistry()
		_, _, closeBackend, err := assemble(cfg, reg, log, nil)
		if err != nil {
			t.Fatalf("gateway %d: %v", i+1, err)
		}
		defer closeBackend()
		names[i] = familyNames(t, reg)
		if first == nil {
			first = reg
		}
	}
	if !slices.Equal(names[0], names[1]) {
		t.Errorf("the two gateways' registries differ:\n%v\n%v", names[0], names[1])
	}
	for _, want := range []string{"go_goroutines", "process_open_fds", "triton_retries_total", "triton_shared_memory_bytes",
		"circuit_breaker_state", "onnxruntime_info", "inference_fallback_total", "http_connections_open"} {
		if !slices.Contains(names[0], want) {
			t.Errorf("%s missing from the gateway's registry %v", want, names[0])
		}
	}
	panicked := func() (panicked bool) {
		defer func() { panicked = recover() != nil }()
		_, _, closeBackend, err := assemble(cfg, first, log, nil)
		if err == nil {
			closeBackend()
		}
		return false
	}()
	if !panicked {
		t.Error("a second gateway on the first one's registry did not panic")
	}
}

// TestRefreshRegistersNothing: the Classifier's loads, through a Triton
// restart that loses the shared-memory regions and makes the client register
// them again, reuse the backend built at start and register no metric: the
// path on which a re-created client would have registered its metrics again.
func TestRefreshRegistersNothing(t *testing.T) {
	srv, cfg := fullGateway(t)
	reg := &countingRegistry{Registry: prometheus.NewRegistry()}
	_, classifier, closeBackend, err := assemble(cfg, reg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeBackend()
	registered := reg.registered.Load()

	// Loaded from Triton: while Triton restarts, a load can succeed with the
	// fallback's description (FALLBACK=onnx), which registers nothing.
	loaded := func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		return classifier.Load(ctx) == nil && classifier.Model().Backend == "triton"
	}
	poll.Until(t, 10*time.Second, 50*time.Millisecond, "the model to load", loaded)
	srv.Stop()
	srv.Restart()
	poll.Until(t, 10*time.Second, 50*time.Millisecond, "the model to load again after Triton's restart", loaded)

	if n := reg.registered.Load(); n != registered {
		t.Errorf("the refreshes registered %d collectors", n-registered)
	}
	// The restart did make the client register its regions again.
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP triton_shared_memory_registrations_total Registrations of the gateway's system shared-memory regions with Triton, by result; more than one ok means Triton lost them (a restart) and they were registered again.
# TYPE triton_shared_memory_registrations_total counter
triton_shared_memory_registrations_total{result="error"} 0
triton_shared_memory_registrations_total{result="ok"} 2
`), "triton_shared_memory_registrations_total"); err != nil {
		t.Error(err)
	}
}
