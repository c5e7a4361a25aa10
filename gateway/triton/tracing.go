package triton

import (
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/fish-classifier/fish-classifier/gateway/kserve"
)

// Option changes a Client made by New.
type Option func(*options)

type options struct {
	dial []grpc.DialOption
}

// WithTracing records each ModelInfer call as a gRPC client span (otelgrpc),
// a child of the span in the call's context, and sends that span's W3C trace
// context (traceparent) to Triton as gRPC metadata: Triton started with
// OpenTelemetry tracing continues the trace with its own spans (InferRequest,
// the model, compute). The other RPCs (health, metadata, configuration, shared
// memory) are the model refresh's and the probes': they are not recorded, but
// carry the context too. otelgrpc's metrics are not collected: the client's
// own Prometheus metrics measure every RPC.
func WithTracing(tp trace.TracerProvider, propagator propagation.TextMapPropagator) Option {
	return func(o *options) {
		o.dial = append(o.dial, grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(tp),
			otelgrpc.WithPropagators(propagator),
			otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
			otelgrpc.WithFilter(func(info *stats.RPCTagInfo) bool {
				return info.FullMethodName == kserve.GRPCInferenceService_ModelInfer_FullMethodName
			}),
		)))
	}
}

// The attributes of the "retry" event the client adds to the caller's span
// before it tries an RPC again.
const (
	attrRPC     = attribute.Key("fish.rpc")
	attrAttempt = attribute.Key("fish.rpc.attempt")
	attrCode    = attribute.Key("fish.rpc.code")
	attrWait    = attribute.Key("fish.retry.wait")
)
