package gateway

import (
	"context"
	"image/color"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// BenchmarkClassifyTracing is the Classifier's tracing cost per image: an 8×8
// PNG through preprocessing and a backend that answers at once, under no
// span (tracing off) and under a sampled one whose spans go to a batch
// processor that drops them.
func BenchmarkClassifyTracing(b *testing.B) {
	img := solidPNG(b, color.NRGBA{1, 0, 0, 255})
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	for _, bc := range []struct {
		name string
		opts []ClassifierOption
		ctx  func() (context.Context, func())
	}{
		{"off", nil, func() (context.Context, func()) { return context.Background(), func() {} }},
		{"sampled", []ClassifierOption{WithTracerProvider(tp)}, func() (context.Context, func()) {
			ctx, span := tp.Tracer("bench").Start(context.Background(), "request")
			return ctx, func() { span.End() }
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := loadedClassifier(b, fishBackend(4, nil), nil, bc.opts...)
			b.ReportAllocs()
			for b.Loop() {
				ctx, end := bc.ctx()
				if _, err := c.Classify(ctx, img, 1); err != nil {
					b.Fatal(err)
				}
				end()
			}
		})
	}
}
