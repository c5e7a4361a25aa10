package preprocess

import (
	"fmt"
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

// BenchmarkResize times the Pillow-exact resampler alone on packed RGB.
func BenchmarkResize(b *testing.B) {
	for _, size := range [][2]int{{320, 240}, {640, 480}, {4032, 3024}} {
		for _, f := range []Filter{FilterBilinear, FilterBicubic} {
			b.Run(fmt.Sprintf("%dx%d/%s", size[0], size[1], f), func(b *testing.B) {
				src := orientedView(noiseImage(size[0], size[1], 7), 1)
				out := make([]byte, 224*224*3)
				var r resampler
				b.ReportAllocs()
				for b.Loop() {
					r.resize(src, 224, 224, rect{0, 0, 224, 224}, f, out, 0, 3*224)
				}
			})
		}
	}
}
