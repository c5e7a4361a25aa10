package preprocess

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkPreprocess times one JPEG photo to a 224×224 ImageNet FP32 NCHW tensor,
// the job Pillow's "open + convert + resize(BILINEAR) + numpy normalise" does. The
// exact path decodes at full size; the fast path may decode at a reduced DCT scale
// (Pillow's draft()). bench/compare_pillow.py runs Pillow on the same files and
// prints the ratios.
func BenchmarkPreprocess(b *testing.B) {
	for _, mode := range []string{"exact", "fast"} {
		for _, size := range []string{"640x480", "1024x768", "4032x3024"} {
			b.Run(mode+"/"+size, func(b *testing.B) {
				data, err := os.ReadFile(filepath.Join("testdata", "bench", "photo_"+size+".jpg"))
				if err != nil {
					b.Fatalf("bench input missing (run 'make fixtures'): %v", err)
				}
				spec := ImageNetSpec()
				spec.Resize, spec.ShorterSide = ResizeStretch, 0
				spec.AllowDCTScaling = mode == "fast"
				p, err := New(spec, DefaultLimits())
				if err != nil {
					b.Fatal(err)
				}
				dst := make([]byte, p.TensorBytes())
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := p.Process(data, dst); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
