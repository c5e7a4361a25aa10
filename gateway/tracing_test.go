package gateway

import (
	"context"
	"image/color"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// recordedProvider is a tracer provider that samples everything and keeps
// what ends in a recorder.
func recordedProvider(t *testing.T) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, rec
}

// spansByName indexes ended spans by name; names that repeat keep every span.
func spansByName(rec *tracetest.SpanRecorder) map[string][]sdktrace.ReadOnlySpan {
	out := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		out[s.Name()] = append(out[s.Name()], s)
	}
	return out
}

func attr(s sdktrace.ReadOnlySpan, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// traceObserver records the trace id Inferred saw in its context.
type traceObserver struct {
	NopObserver
	traceIDs []string
}

func (o *traceObserver) Inferred(ctx context.Context, _ ModelInfo, _ int, _ time.Duration, _ error) {
	id, _ := TraceID(ctx)
	o.traceIDs = append(o.traceIDs, id)
}

func TestClassifierRecordsItsStagesAsChildSpans(t *testing.T) {
	tp, rec := recordedProvider(t)
	obs := &traceObserver{}
	c := loadedClassifier(t, fishBackend(2, nil), obs, WithTracerProvider(tp), WithMaxConcurrentInferences(4))
	ctx, root := tp.Tracer("test").Start(context.Background(), "POST /predict/batch")
	images := [][]byte{
		solidPNG(t, color.NRGBA{1, 0, 0, 255}),
		[]byte("<html>not an image</html>"),
		solidPNG(t, color.NRGBA{2, 0, 0, 255}),
		solidPNG(t, color.NRGBA{0, 0, 0, 255}),
	}
	_, errs := c.ClassifyBatch(ctx, images, 1)
	root.End()
	if errs[1] == nil {
		t.Fatal("the HTML item was accepted")
	}

	spans := spansByName(rec)
	rootID := root.SpanContext().SpanID()
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() != root.SpanContext().TraceID() {
			t.Errorf("span %q is in trace %s, not the request's", s.Name(), s.SpanContext().TraceID())
		}
	}
	// One preprocess span per image, a child of the request's span, each with
	// its own wait and, when it decoded, its steps as children.
	pre := spans[SpanPreprocess]
	if len(pre) != len(images) {
		t.Fatalf("%d %q spans, want one per image (%d)", len(pre), SpanPreprocess, len(images))
	}
	for _, p := range pre {
		if p.Parent().SpanID() != rootID {
			t.Errorf("%q span's parent is %s, want the request's span", SpanPreprocess, p.Parent().SpanID())
		}
		idx, _ := attr(p, AttrImageIndex)
		children := childNames(rec, p)
		if idx.AsInt64() == 1 {
			if p.Status().Code != codes.Error || !strings.Contains(p.Status().Description, "image 1") {
				t.Errorf("the bad image's span has status %+v, want an error naming it", p.Status())
			}
			if kind, _ := attr(p, AttrErrorKind); kind.AsString() != KindUnsupportedMedia.String() {
				t.Errorf("the bad image's span has error kind %q", kind.AsString())
			}
			continue
		}
		if format, _ := attr(p, AttrImageFormat); format.AsString() != "png" {
			t.Errorf("image %d: format attribute %q, want png", idx.AsInt64(), format.AsString())
		}
		if !slices.Contains(children, SpanWaitDecodeSlot) || !slices.Contains(children, SpanDecode) || !slices.Contains(children, SpanResize) {
			t.Errorf("image %d: children %v, want the decode slot wait, decode and resize", idx.AsInt64(), children)
		}
	}
	// Steps are back to back inside their preprocess span.
	for _, d := range spans[SpanDecode] {
		var parent sdktrace.ReadOnlySpan
		for _, p := range pre {
			if p.SpanContext().SpanID() == d.Parent().SpanID() {
				parent = p
			}
		}
		if parent == nil || d.StartTime().Before(parent.StartTime()) || d.EndTime().After(parent.EndTime()) {
			t.Errorf("decode span [%v, %v] is not inside its preprocess span", d.StartTime(), d.EndTime())
		}
	}
	// Two backend calls of at most two images, each an infer span naming the
	// model, the batch and the backend that answered.
	infers := spans[SpanInfer]
	if len(infers) != 2 {
		t.Fatalf("%d %q spans, want 2 (3 good images, max batch 2)", len(infers), SpanInfer)
	}
	var sizes []int64
	for _, s := range infers {
		n, _ := attr(s, AttrBatchSize)
		sizes = append(sizes, n.AsInt64())
		if b, _ := attr(s, AttrBackend); b.AsString() != "fake" {
			t.Errorf("infer span backend %q, want fake", b.AsString())
		}
		if f, ok := attr(s, AttrFallback); !ok || f.AsBool() {
			t.Errorf("infer span fallback = %v (set %v), want false", f.AsBool(), ok)
		}
		if m, _ := attr(s, AttrModel); m.AsString() != "fish" {
			t.Errorf("infer span model %q", m.AsString())
		}
	}
	if slices.Sort(sizes); !slices.Equal(sizes, []int64{1, 2}) {
		t.Errorf("infer spans' batch sizes %v, want [1 2]", sizes)
	}
	if len(spans[SpanWaitInferenceSlot]) != 1 {
		t.Errorf("%d inference slot waits recorded, want 1", len(spans[SpanWaitInferenceSlot]))
	}
	// The observer saw the trace: the exemplar of the inference histogram.
	want := root.SpanContext().TraceID().String()
	if len(obs.traceIDs) != 2 || obs.traceIDs[0] != want || obs.traceIDs[1] != want {
		t.Errorf("Inferred saw trace ids %q, want %s twice", obs.traceIDs, want)
	}
}

// childNames are the names of span's children.
func childNames(rec *tracetest.SpanRecorder, span sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range rec.Ended() {
		if s.Parent().SpanID() == span.SpanContext().SpanID() {
			out = append(out, s.Name())
		}
	}
	return out
}

func TestClassifierRecordsNothingWithoutARecordingParent(t *testing.T) {
	tp, rec := recordedProvider(t)
	obs := &traceObserver{}
	c := loadedClassifier(t, fishBackend(2, nil), obs, WithTracerProvider(tp))
	img := solidPNG(t, color.NRGBA{1, 0, 0, 255})

	// No span at all, then a span that was not sampled.
	unsampled := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1},
	}))
	for _, ctx := range []context.Context{context.Background(), unsampled} {
		if _, err := c.Classify(ctx, img, 1); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans recorded without a recording parent, want none", n)
	}
	if len(obs.traceIDs) != 2 || obs.traceIDs[0] != "" || obs.traceIDs[1] != "" {
		t.Errorf("Inferred saw trace ids %q, want none: no exemplar without a sampled span", obs.traceIDs)
	}
}

func TestInferSpanSaysWhoAnsweredAndWhatFailed(t *testing.T) {
	tp, rec := recordedProvider(t)
	img := solidPNG(t, color.NRGBA{1, 0, 0, 255})
	fallback := fishBackend(0, nil)
	fallback.InferFunc = func(ctx context.Context, in Batch) (Scores, error) {
		s, err := scoreByRed(ctx, in)
		s.Backend = "onnx"
		return s, err
	}
	failing := fishBackend(0, nil)
	failing.InferFunc = func(context.Context, Batch) (Scores, error) {
		return Scores{}, Errorf(KindUnavailable, "inference server unavailable")
	}
	for _, tc := range []struct {
		name    string
		backend Inferencer
		check   func(t *testing.T, s sdktrace.ReadOnlySpan)
	}{
		{"fallback", fallback, func(t *testing.T, s sdktrace.ReadOnlySpan) {
			if b, _ := attr(s, AttrBackend); b.AsString() != "onnx" {
				t.Errorf("backend %q, want onnx", b.AsString())
			}
			if f, _ := attr(s, AttrFallback); !f.AsBool() {
				t.Error("fallback attribute not true")
			}
		}},
		{"failure", failing, func(t *testing.T, s sdktrace.ReadOnlySpan) {
			if s.Status().Code != codes.Error || s.Status().Description != "inference server unavailable" {
				t.Errorf("status %+v, want the error", s.Status())
			}
			if k, _ := attr(s, AttrErrorKind); k.AsString() != KindUnavailable.String() {
				t.Errorf("error kind %q", k.AsString())
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec.Reset()
			c := loadedClassifier(t, tc.backend, nil, WithTracerProvider(tp))
			ctx, root := tp.Tracer("test").Start(context.Background(), "request")
			_, _ = c.Classify(ctx, img, 1)
			root.End()
			infers := spansByName(rec)[SpanInfer]
			if len(infers) != 1 {
				t.Fatalf("%d infer spans, want 1", len(infers))
			}
			tc.check(t, infers[0])
		})
	}
}
