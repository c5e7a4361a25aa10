package triton

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/fish-classifier/fish-classifier/gateway/triton/tritontest"
	"github.com/fish-classifier/fish-classifier/internal/poll"
)

// TestScaleOutIsDiscovered starts with one Triton replica behind a name; a
// second one appears in the name's records later, with no connection failing.
// The client must start sending to it once its resolver is polled, and never
// without polling (grpc's own DNS resolver resolves only on failures).
func TestScaleOutIsDiscovered(t *testing.T) {
	for _, tc := range []struct {
		name  string
		every time.Duration
		want  bool
	}{
		{"polled", 20 * time.Millisecond, true},
		{"never polled", time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := smallModel()
			a, b := tritontest.Start(t, m), tritontest.Start(t, m)
			// The name's records: a at first, a and b from the first resolution on.
			dns := manual.NewBuilderWithScheme("dns")
			dns.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: a.Addr()}}})
			dns.ResolveNowCallback = func(resolver.ResolveNowOptions) {
				go dns.UpdateState(resolver.State{Addresses: []resolver.Address{{Addr: a.Addr()}, {Addr: b.Addr()}}})
			}
			cfg := testConfig("dns:///triton.test:8001", m.Name)
			cfg.resolver = pollingBuilder{Builder: dns, every: tc.every}
			c, _ := newTestClient(t, cfg)
			info, err := c.Model(callCtx(t))
			if err != nil {
				t.Fatalf("Model: %v", err)
			}
			item := bytes.Repeat([]byte{0, 0, 128, 63}, 3*4*4) // 1.0 in FP32
			infer := func() {
				if _, err := c.Infer(callCtx(t), batchOf(&info, item)); err != nil {
					t.Fatalf("Infer: %v", err)
				}
			}
			if tc.want {
				poll.Until(t, 5*time.Second, 5*time.Millisecond, "an inference on the replica that appeared", func() bool {
					infer()
					return b.InferCount() > 0
				})
				// Round robin: both replicas take calls from then on.
				before := a.InferCount()
				for range 20 {
					infer()
				}
				if a.InferCount() == before || b.InferCount() < 5 {
					t.Errorf("after discovery: %d calls on a, %d on b; want both serving", a.InferCount()-before, b.InferCount())
				}
				return
			}
			before := a.InferCount() // Model asked for the labels with one
			for i := range 100 {
				infer()
				if i%10 == 0 {
					time.Sleep(5 * time.Millisecond)
				}
			}
			if n := b.InferCount(); n != 0 {
				t.Errorf("%d calls reached the replica without a resolution: the test cannot tell polling from other resolutions", n)
			}
			if n := a.InferCount() - before; n != 100 {
				t.Errorf("%d of 100 calls on a", n)
			}
		})
	}
}

// TestDefaultResolverIsPolledDNS: production clients resolve "dns" targets
// with grpc's DNS resolver, polled every resolveEvery.
func TestDefaultResolverIsPolledDNS(t *testing.T) {
	s := DefaultConfig().dialSettings()
	p, ok := s.Resolver.(pollingBuilder)
	if !ok {
		t.Fatalf("resolver %T, want pollingBuilder", s.Resolver)
	}
	if p.Scheme() != "dns" || p.Builder != resolver.Get("dns") || p.every != resolveEvery {
		t.Errorf("resolver: scheme %q, builder %s, every %v; want grpc's dns every %v", p.Scheme(), fmt.Sprintf("%T", p.Builder), p.every, resolveEvery)
	}
}
