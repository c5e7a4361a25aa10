//go:build cgo

package onnx

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/fish-classifier/fish-classifier/gateway"
)

func TestRunIsAChildSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	b, err := New(configOf(repoModels, 1), nil, WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })

	// Outside a request: nothing recorded.
	if _, err := b.Infer(t.Context(), batchOf(b, 1, make([]byte, b.spec.ItemBytes))); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("%d spans without a parent, want none", n)
	}
	ctx, parent := tp.Tracer("test").Start(t.Context(), "infer")
	if _, err := b.Infer(ctx, batchOf(b, 2, make([]byte, 2*b.spec.ItemBytes))); err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, _ = b.Infer(canceled, batchOf(b, 1, make([]byte, b.spec.ItemBytes)))
	parent.End()

	var runs []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == SpanRun {
			runs = append(runs, s)
		}
	}
	if len(runs) != 2 {
		t.Fatalf("%d %q spans, want 2", len(runs), SpanRun)
	}
	for _, s := range runs {
		if s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("run span's parent %s, want the caller's", s.Parent().SpanID())
		}
	}
	size := int64(-1)
	for _, kv := range runs[0].Attributes() {
		if kv.Key == gateway.AttrBatchSize {
			size = kv.Value.AsInt64()
		}
	}
	if size != 2 || runs[0].Status().Code == codes.Error {
		t.Errorf("first run: batch size %d, status %+v; want 2, not failed", size, runs[0].Status())
	}
	if runs[1].Status().Code != codes.Error {
		t.Errorf("canceled run: status %+v, want failed", runs[1].Status())
	}
}
