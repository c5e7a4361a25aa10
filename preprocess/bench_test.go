package preprocess

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// The benchmark photos (JPEG q90 4:2:0, photo-like) and the two paths: exact
// decodes at full size; fast lets libjpeg-turbo decode at a reduced DCT scale
// (Spec.AllowDCTScaling, the counterpart of Pillow's draft()).
var (
	benchSizes = []string{"640x480", "1024x768", "4032x3024"}
	benchPaths = []string{"exact", "fast"}
)

// contractSpec is the served model's preprocessing contract
// (triton-models/fish_classifier/config.pbtxt): shorter side 256 and centre
// crop 224 (bilinear), (x - 127) / 128 on 0..255, RGB, NCHW FP32.
func contractSpec(fast bool) Spec {
	return Spec{
		Width: 224, Height: 224,
		Resize: ResizeShorterCrop, ShorterSide: 256, Filter: FilterBilinear,
		Scale: 1, Mean: [3]float32{127, 127, 127}, Std: [3]float32{128, 128, 128},
		Order: RGB, Layout: NCHW, DataType: FP32,
		AllowDCTScaling: fast,
	}
}

// benchSetup reads a benchmark photo and builds the contract's Preprocessor for
// one path.
func benchSetup(b *testing.B, path, size string) ([]byte, *Preprocessor) {
	b.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "bench", "photo_"+size+".jpg"))
	if err != nil {
		b.Fatalf("bench input missing (run 'make fixtures'): %v", err)
	}
	p, err := New(contractSpec(path == "fast"), DefaultLimits())
	if err != nil {
		b.Fatal(err)
	}
	return data, p
}

// benchDecode decodes a photo as Process would (at the DCT scale the path
// allows) and returns the header, the DCT scale in eighths and the picture.
func benchDecode(b *testing.B, data []byte, p *Preprocessor) (Header, int, *rgbImage) {
	b.Helper()
	h, err := p.Probe(data)
	if err != nil {
		b.Fatal(err)
	}
	eighths := p.dctEighths(h)
	img := new(rgbImage)
	if _, err := decodeJPEGEighths(data, h.Width, h.Height, eighths, img); err != nil {
		b.Fatal(err)
	}
	return h, eighths, img
}

// BenchmarkPreprocess times one JPEG photo to the served model's tensor, the
// whole job: decode, Resize(256) + CenterCrop(224) resampling only the window,
// (x - 127) / 128 into FP32 NCHW. bench/compare_pillow.py runs Pillow and
// Pillow-SIMD on the same files and prints the ratios.
func BenchmarkPreprocess(b *testing.B) {
	for _, path := range benchPaths {
		for _, size := range benchSizes {
			b.Run(path+"/"+size, func(b *testing.B) {
				data, p := benchSetup(b, path, size)
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

// BenchmarkDecodeJPEGPhoto times the JPEG decode alone of the benchmark photos,
// at the DCT scale each path uses (fast: the one Process chooses for the
// contract), through the package's decoder (libjpeg-turbo with cgo). decoded-w
// and decoded-h report the size. (BenchmarkDecodeJPEG, in jpeg_test.go, compares
// the decoders and scales on a synthetic picture.)
func BenchmarkDecodeJPEGPhoto(b *testing.B) {
	for _, path := range benchPaths {
		for _, size := range benchSizes {
			b.Run(path+"/"+size, func(b *testing.B) {
				data, p := benchSetup(b, path, size)
				h, eighths, img := benchDecode(b, data, p)
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := decodeJPEGEighths(data, h.Width, h.Height, eighths, img); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(img.w), "decoded-w")
				b.ReportMetric(float64(img.h), "decoded-h")
			})
		}
	}
}

// BenchmarkResizeWindow times the resampler alone on a decoded photo: the
// contract's Resize(256) + CenterCrop(224) window (Spec.target), bilinear, into
// packed RGB, the way Process resizes it.
func BenchmarkResizeWindow(b *testing.B) {
	for _, path := range benchPaths {
		for _, size := range benchSizes {
			b.Run(path+"/"+size, func(b *testing.B) {
				data, p := benchSetup(b, path, size)
				h, _, img := benchDecode(b, data, p)
				spec := p.Spec()
				src := orientedView(img, h.Orientation)
				t := spec.target(src.w, src.h)
				out := make([]byte, 3*spec.Width*spec.Height)
				var r resampler
				b.ReportAllocs()
				for b.Loop() {
					r.resize(src, t.w, t.h, t.win, spec.Filter, out, 3*(t.dstY*spec.Width+t.dstX), 3*spec.Width)
				}
				b.ReportMetric(float64(img.w), "decoded-w")
				b.ReportMetric(float64(img.h), "decoded-h")
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
