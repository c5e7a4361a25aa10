package gateway

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/fish-classifier/fish-classifier/preprocess"
)

// TracerName is the instrumentation scope of the spans the gateway's packages
// start: the Classifier's stages, the HTTP server's and the embedded backend's.
const TracerName = "github.com/fish-classifier/fish-classifier/gateway"

// Span and attribute names the Classifier records (docs/tracing.md lists them
// with the others).
const (
	SpanPreprocess        = "preprocess"
	SpanDecode            = "decode"
	SpanResize            = "resize"
	SpanNormalize         = "normalize"
	SpanWaitDecodeSlot    = "wait decode slot"
	SpanWaitInferenceSlot = "wait inference slot"
	SpanInfer             = "infer"

	AttrImageIndex  = attribute.Key("fish.image.index")
	AttrImageBytes  = attribute.Key("fish.image.bytes")
	AttrImageFormat = attribute.Key("fish.image.format")
	AttrImageWidth  = attribute.Key("fish.image.width")
	AttrImageHeight = attribute.Key("fish.image.height")
	AttrBatchSize   = attribute.Key("fish.batch.size")
	AttrModel       = attribute.Key("fish.model.name")
	AttrVersion     = attribute.Key("fish.model.version")
	// AttrBackend is the backend that answered; AttrFallback is true when it
	// is the fallback's rather than the one configured.
	AttrBackend  = attribute.Key("fish.backend")
	AttrFallback = attribute.Key("fish.fallback")
	// AttrErrorKind is the error kind of a failed step.
	AttrErrorKind = attribute.Key("fish.error.kind")
)

// WithTracerProvider has the Classifier record its stages as spans of tp's
// tracers, children of the span in the request's context: the preprocessing of
// each image (with its decode, resize and normalise steps), the waits for
// decode and inference slots, and each backend call. A request whose context
// holds no recording span records none, so a gateway without tracing pays
// only that check. Without this option the Classifier records nothing.
func WithTracerProvider(tp trace.TracerProvider) ClassifierOption {
	return func(c *Classifier) { c.tracer = tp.Tracer(TracerName) }
}

// noSpan is the span of what is not recorded: every method does nothing.
var noSpan trace.Span = noop.Span{}

// StartSpan starts a child span named name of the recording span in ctx, with
// tracer; when ctx holds no recording span (tracing off, or the request not
// sampled) it records nothing and returns ctx and a span that does nothing,
// at the cost of one check. Adapters use it for their own steps.
func StartSpan(ctx context.Context, tracer trace.Tracer, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if tracer == nil || !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, noSpan
	}
	return tracer.Start(ctx, name, opts...)
}

// AddSpanEvent adds an event to the recording span in ctx, if any: the
// breaker's rejections, the Triton client's retries.
func AddSpanEvent(ctx context.Context, name string, attrs ...attribute.KeyValue) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent(name, trace.WithAttributes(attrs...))
	}
}

// recordStages records the steps of one image's preprocessing as children of
// span, back to back from start, with the durations preprocess measured.
func recordStages(ctx context.Context, tracer trace.Tracer, start time.Time, info preprocess.Info) {
	at := start
	for _, s := range [...]struct {
		name string
		d    time.Duration
	}{{SpanDecode, info.Stages.Decode}, {SpanResize, info.Stages.Resize}, {SpanNormalize, info.Stages.Normalize}} {
		if s.d <= 0 {
			continue // a step fused into the previous one
		}
		_, span := tracer.Start(ctx, s.name, trace.WithTimestamp(at))
		at = at.Add(s.d)
		span.End(trace.WithTimestamp(at))
	}
}

// failSpan marks span failed with err's public message and kind.
func failSpan(span trace.Span, err error) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(AttrErrorKind.String(KindOf(err).String()))
	span.SetStatus(codes.Error, PublicMessage(err))
}

// ExemplarLabel is the exemplar label that carries a trace id on the gateway's
// latency histograms, the name Grafana's trace links look up.
const ExemplarLabel = "trace_id"

// TraceID returns the trace id of the sampled span in ctx, in hex, and whether
// there is one: what the access log and the latency histograms' exemplars
// name.
func TraceID(ctx context.Context) (string, bool) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || !sc.IsSampled() {
		return "", false
	}
	return sc.TraceID().String(), true
}
