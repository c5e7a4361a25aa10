package triton

import (
	"context"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/fish-classifier/fish-classifier/gateway"
)

// Option changes a Client made by New.
type Option func(*options)

type options struct {
	dial []grpc.DialOption
}

// WithTracing records each RPC made under a recording span (a request's:
// ModelInfer, and the shared-memory registrations a request may redo) as a
// gRPC client span (otelgrpc), a child of that span, and sends the client
// span's W3C trace context (traceparent) to Triton as gRPC metadata: Triton
// started with OpenTelemetry tracing continues the trace with its own spans
// (InferRequest, the model, compute). RPCs made outside a request (the model
// refresh, readiness) record nothing, so they never start traces of their
// own. otelgrpc's metrics are not collected: the client's own Prometheus
// metrics measure every RPC.
//
// Only a sampled context is sent: Triton traces every request that carries a
// traceparent, whatever its sampled flag says, so an unsampled one would start
// Triton traces whose parent no backend holds.
func WithTracing(tp trace.TracerProvider, propagator propagation.TextMapPropagator) Option {
	return func(o *options) {
		o.dial = append(o.dial, grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(childSpans{tp}),
			otelgrpc.WithPropagators(sampledOnly{propagator}),
			otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
		)))
	}
}

// childSpans is a TracerProvider whose tracers start a span only as the child
// of a recording span (gateway.StartSpan); elsewhere they record nothing.
type childSpans struct{ trace.TracerProvider }

func (p childSpans) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return childTracer{p.TracerProvider.Tracer(name, opts...)}
}

type childTracer struct{ trace.Tracer }

func (t childTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	return gateway.StartSpan(ctx, t.Tracer, name, opts...)
}

// The attributes of the "retry" event the client adds to the caller's span
// before it tries an RPC again.
const (
	attrRPC     = attribute.Key("fish.rpc")
	attrAttempt = attribute.Key("fish.rpc.attempt")
	attrCode    = attribute.Key("fish.rpc.code")
	attrWait    = attribute.Key("fish.retry.wait")
)

// sampledOnly injects the context of sampled spans only.
type sampledOnly struct{ propagation.TextMapPropagator }

func (p sampledOnly) Inject(ctx context.Context, carrier propagation.TextMapCarrier) {
	if trace.SpanContextFromContext(ctx).IsSampled() {
		p.TextMapPropagator.Inject(ctx, carrier)
	}
}
