//go:build cgo

package onnx

import (
	"fmt"
	"testing"
	"time"
)

// TestTimings logs how long New and one inference take (go test -v -run Timings).
func TestTimings(t *testing.T) {
	start := time.Now()
	b := newBackend(t)
	t.Logf("New (library loaded, session, warm-up): %v with %d intra-op threads", time.Since(start), b.threads)
	for _, n := range []int{1, 8} {
		in := batchOf(b, n, input(b, n, 1))
		b.Infer(t.Context(), in) // fills the pool for this size
		const runs = 20
		start := time.Now()
		for range runs {
			if _, err := b.Infer(t.Context(), in); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("Infer batch %d: %v per call", n, time.Since(start)/runs)
	}
}

func BenchmarkInfer(b *testing.B) {
	be := newBackend(b)
	for _, n := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			in := batchOf(be, n, input(be, n, 1))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := be.Infer(b.Context(), in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "items/s")
		})
	}
}
