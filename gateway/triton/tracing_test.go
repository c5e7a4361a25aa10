package triton

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"

	"github.com/fish-classifier/fish-classifier/gateway/triton/tritontest"
)

// tracedEnv is startEnv with a client that records its spans.
func tracedEnv(t *testing.T) (*env, *sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	srv := tritontest.Start(t, smallModel())
	c, err := New(testConfig(srv.Addr(), srv.Model().Name), prometheus.NewPedanticRegistry(), WithTracing(tp, propagation.TraceContext{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	info, err := c.Model(callCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	srv.ResetRequests()
	return &env{srv: srv, model: srv.Model(), client: c, info: info}, tp, rec
}

func TestModelInferIsAClientSpanWhoseContextReachesTriton(t *testing.T) {
	e, tp, rec := tracedEnv(t)
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("the model read recorded %d spans, want none: only ModelInfer is traced", n)
	}
	ctx, parent := tp.Tracer("test").Start(callCtx(t), "infer")
	if _, err := e.client.Infer(ctx, batchOf(&e.info, tritontest.ItemForClass(e.model, 1))); err != nil {
		t.Fatal(err)
	}
	parent.End()

	var call sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "inference.GRPCInferenceService/ModelInfer" {
			call = s
		}
	}
	if call == nil {
		t.Fatalf("no ModelInfer client span among %d spans", len(rec.Ended()))
	}
	if call.Parent().SpanID() != parent.SpanContext().SpanID() || call.SpanKind().String() != "client" {
		t.Errorf("ModelInfer span: parent %s kind %s, want a client span under the caller's", call.Parent().SpanID(), call.SpanKind())
	}
	r, ok := e.srv.LastRequest()
	if !ok {
		t.Fatal("the server saw no request")
	}
	want := "00-" + call.SpanContext().TraceID().String() + "-" + call.SpanContext().SpanID().String() + "-01"
	if got := r.Metadata.Get("traceparent"); len(got) != 1 || got[0] != want {
		t.Errorf("traceparent metadata %q, want %q: Triton's spans must hang under the client span", got, want)
	}
}

func TestRetriesAreEventsOfTheCallersSpan(t *testing.T) {
	e, tp, rec := tracedEnv(t)
	e.srv.SetFault(tritontest.Fault{Code: codes.Unavailable, FailCount: 2})
	ctx, parent := tp.Tracer("test").Start(callCtx(t), "infer")
	if _, err := e.client.Infer(ctx, batchOf(&e.info, tritontest.ItemForClass(e.model, 1))); err != nil {
		t.Fatal(err)
	}
	parent.End()

	var attempts int
	var events []sdktrace.Event
	for _, s := range rec.Ended() {
		switch s.Name() {
		case "inference.GRPCInferenceService/ModelInfer":
			attempts++
		case "infer":
			events = s.Events()
		}
	}
	if attempts != 3 {
		t.Errorf("%d ModelInfer spans, want one per attempt (3)", attempts)
	}
	if len(events) != 2 {
		t.Fatalf("%d events on the caller's span, want one per retry (2): %+v", len(events), events)
	}
	for i, ev := range events {
		got := map[string]string{}
		for _, kv := range ev.Attributes {
			got[string(kv.Key)] = kv.Value.Emit()
		}
		if ev.Name != "retry" || got["fish.rpc"] != "ModelInfer" || got["fish.rpc.code"] != "Unavailable" || got["fish.rpc.attempt"] != []string{"2", "3"}[i] {
			t.Errorf("event %d: %s %v", i, ev.Name, got)
		}
	}
}

func TestUnsampledRequestsSendNoTraceContext(t *testing.T) {
	e, _, rec := tracedEnv(t)
	// The gateway's span of a request its sampler dropped: valid, not sampled.
	ctx := trace.ContextWithSpanContext(callCtx(t), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2},
	}))
	if _, err := e.client.Infer(ctx, batchOf(&e.info, tritontest.ItemForClass(e.model, 1))); err != nil {
		t.Fatal(err)
	}
	r, _ := e.srv.LastRequest()
	if got := r.Metadata.Get("traceparent"); len(got) != 0 {
		t.Errorf("traceparent %q sent for an unsampled request: Triton would trace it", got)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans recorded for an unsampled request", n)
	}
}
