package fallback

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/fish-classifier/fish-classifier/gateway"
)

// backend is the state of one of the Fallback's two backends in a test;
// inferencer is the backend itself.
type backend struct {
	name     string
	err      error // returned by Infer and Ready
	modelErr error
	calls    int
}

func (b *backend) inferencer() gateway.Inferencer {
	return gateway.InferencerFuncs{
		ModelFunc: func(context.Context) (gateway.ModelInfo, error) {
			return gateway.ModelInfo{Name: "fish", Backend: b.name}, b.modelErr
		},
		InferFunc: func(_ context.Context, in gateway.Batch) (gateway.Scores, error) {
			b.calls++
			if b.err != nil {
				return gateway.Scores{}, b.err
			}
			return gateway.Scores{Size: in.Size, Classes: 1, Values: make([]float32, in.Size)}, nil
		},
		ReadyFunc: func(context.Context) error { return b.err },
	}
}

func TestInferFallsBackOnlyWhenUnavailable(t *testing.T) {
	tests := []struct {
		name        string
		primaryErr  error
		wantBackend string // "" = the primary answered
		wantKind    gateway.Kind
		wantErr     bool
	}{
		{"primary fine", nil, "", 0, false},
		{"breaker open", &gateway.Error{Kind: gateway.KindUnavailable, Message: "circuit breaker open"}, "onnxruntime", 0, false},
		{"deadline is the primary's answer", gateway.Errorf(gateway.KindDeadline, "slow"), "", gateway.KindDeadline, true},
		{"malformed answer is the primary's", gateway.Errorf(gateway.KindBadGateway, "shape"), "", gateway.KindBadGateway, true},
		{"caller fault is the primary's", gateway.Errorf(gateway.KindInvalid, "rejected"), "", gateway.KindInvalid, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, s := &backend{name: "triton", err: tt.primaryErr}, &backend{name: "onnxruntime"}
			reg := prometheus.NewRegistry()
			f, err := New(p.inferencer(), s.inferencer(), reg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Infer(context.Background(), gateway.Batch{Size: 2, Data: make([]byte, 8)})
			if tt.wantErr {
				if gateway.KindOf(err) != tt.wantKind || s.calls != 0 {
					t.Fatalf("err %v (secondary called %d times), want kind %v and no fallback", err, s.calls, tt.wantKind)
				}
				return
			}
			if err != nil || got.Backend != tt.wantBackend || got.Size != 2 {
				t.Fatalf("Infer = %+v, %v; want backend %q", got, err, tt.wantBackend)
			}
			wantOK := 0.0
			if tt.wantBackend != "" {
				wantOK = 1
			}
			if v := testutil.ToFloat64(f.served.WithLabelValues("ok")); v != wantOK {
				t.Errorf("inference_fallback_total{outcome=ok} = %v, want %v", v, wantOK)
			}
		})
	}
}

func TestSecondaryFailureAndCancel(t *testing.T) {
	p := &backend{name: "triton", err: gateway.Errorf(gateway.KindUnavailable, "down")}
	s := &backend{name: "onnxruntime", err: gateway.Errorf(gateway.KindInternal, "ort broke")}
	f, _ := New(p.inferencer(), s.inferencer(), nil)
	if _, err := f.Infer(context.Background(), gateway.Batch{Size: 1}); !strings.Contains(err.Error(), "ort broke") {
		t.Errorf("both failing: %v, want the secondary's error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.calls = 0
	if _, err := f.Infer(ctx, gateway.Batch{Size: 1}); err == nil || s.calls != 0 {
		t.Errorf("canceled request fell back (%d calls), err %v", s.calls, err)
	}
}

func TestModelAndReady(t *testing.T) {
	down := gateway.Errorf(gateway.KindUnavailable, "down")
	p, s := &backend{name: "triton", err: down, modelErr: down}, &backend{name: "onnxruntime"}
	f, _ := New(p.inferencer(), s.inferencer(), nil)
	if m, err := f.Model(context.Background()); err != nil || m.Backend != "onnxruntime" {
		t.Errorf("Model with the primary down = %+v, %v; want the secondary's", m, err)
	}
	if err := f.Ready(context.Background()); err != nil {
		t.Errorf("Ready with the secondary up = %v", err)
	}
	s.err = errors.New("also down")
	if err := f.Ready(context.Background()); gateway.KindOf(err) != gateway.KindUnavailable {
		t.Errorf("Ready with both down = %v, want the primary's unavailable", err)
	}
	p.modelErr = gateway.Errorf(gateway.KindBadGateway, "bad config")
	if _, err := f.Model(context.Background()); gateway.KindOf(err) != gateway.KindBadGateway {
		t.Errorf("Model error other than unavailable must not fall back: %v", err)
	}
}

func TestFallbackIsAnEventOfTheCallersSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	p := &backend{name: "triton", err: &gateway.Error{Kind: gateway.KindUnavailable, Message: "circuit breaker open"}}
	f, _ := New(p.inferencer(), (&backend{name: "onnxruntime"}).inferencer(), nil)
	ctx, span := tp.Tracer("test").Start(context.Background(), "infer")
	if _, err := f.Infer(ctx, gateway.Batch{Size: 1}); err != nil {
		t.Fatal(err)
	}
	p.err = nil
	if _, err := f.Infer(ctx, gateway.Batch{Size: 1}); err != nil { // the primary answers: no event
		t.Fatal(err)
	}
	span.End()
	events := rec.Ended()[0].Events()
	if len(events) != 1 || events[0].Name != EventFallback ||
		len(events[0].Attributes) != 1 || events[0].Attributes[0].Value.AsString() != "circuit breaker open" {
		t.Errorf("events %+v, want one %q giving the primary's error", events, EventFallback)
	}
}
