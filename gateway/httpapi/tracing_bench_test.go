package httpapi_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/fish-classifier/fish-classifier/gateway/httpapi"
)

// BenchmarkPredictTracing is the cost of tracing per /predict request through
// the whole HTTP layer (routing, admission, body, metrics, access log, the
// server span) over a classifier that answers at once: off (no
// OTEL_EXPORTER_OTLP_ENDPOINT), on but the request not sampled, and on and
// sampled (spans handed to a batch processor whose exporter drops them).
func BenchmarkPredictTracing(b *testing.B) {
	sampled := func(s sdktrace.Sampler) []httpapi.Option {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(s), sdktrace.WithBatcher(tracetest.NewNoopExporter()))
		b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		return []httpapi.Option{httpapi.WithTracing(tp, propagation.TraceContext{})}
	}
	for _, bc := range []struct {
		name string
		opts []httpapi.Option
	}{
		{"off", nil},
		{"unsampled", sampled(sdktrace.NeverSample())},
		{"sampled", sampled(sdktrace.AlwaysSample())},
	} {
		b.Run(bc.name, func(b *testing.B) {
			benchPredict(b, bc.opts...)
		})
	}
}

// benchPredict serves b.N /predict requests straight through the server's
// fasthttp handler, no network.
func benchPredict(b *testing.B, opts ...httpapi.Option) {
	s := newTestServer(&testing.T{}, testConfig(), nil, opts...)
	s.log.buf.Grow(1 << 20)
	handler := s.App().Handler()
	body := []byte("fish bytes")
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.Header.SetMethod(fasthttp.MethodPost)
		ctx.Request.SetRequestURI("/predict")
		ctx.Request.Header.SetContentType("image/png")
		ctx.Request.SetBodyStream(bytes.NewReader(body), len(body))
		handler(&ctx)
		if ctx.Response.StatusCode() != fasthttp.StatusOK {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
		// The fake's record of calls and the log would grow with b.N.
		s.log.mu.Lock()
		s.log.buf.Reset()
		s.log.mu.Unlock()
		s.fake.mu.Lock()
		s.fake.calls = s.fake.calls[:0]
		s.fake.mu.Unlock()
	}
}
