package onnx

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/fish-classifier/fish-classifier/gateway"
)

// SpanRun is the span of one inference on ONNX Runtime: from the wait for a
// run slot (Config.MaxConcurrentRuns) to the scores.
const SpanRun = "onnxruntime run"

// attrThreads is SpanRun's intra-op thread count.
const attrThreads = attribute.Key("fish.onnx.intra_op_threads")

// Option changes a Backend made by New.
type Option func(*options)

type options struct {
	tracer trace.Tracer
}

// WithTracerProvider records each Infer as a span of tp's tracer (SpanRun), a
// child of the span in the call's context; a context without a recording span
// records nothing.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracer = tp.Tracer(gateway.TracerName) }
}
