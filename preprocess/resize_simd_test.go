package preprocess

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// TestResizeSIMDMatchesScalar checks the SIMD passes against the scalar Go passes,
// which are Pillow's arithmetic: every output byte must be equal, for both filters,
// every orientation, shrinking and enlarging, windows anywhere, and letterbox-style
// destinations with a wider stride. On a CPU without the SIMD passes both sides run
// the scalar code and the test says so.
func TestResizeSIMDMatchesScalar(t *testing.T) {
	if !haveSIMD {
		t.Logf("this build or CPU has no SIMD resampler (%s): comparing the scalar passes with themselves", simdName())
	}
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := [][2]int{{1, 1}, {2, 3}, {7, 5}, {31, 17}, {64, 48}, {333, 251}, {640, 480}, {1021, 767}}
	targets := [][2]int{{1, 1}, {3, 2}, {16, 16}, {224, 224}, {57, 199}, {700, 500}}
	for _, size := range sizes {
		img := noiseImage(size[0], size[1], uint64(size[0]*1000+size[1]))
		for o := 1; o <= 8; o++ {
			src := orientedView(img, o)
			for _, f := range []Filter{FilterBilinear, FilterBicubic} {
				for _, tg := range targets {
					outW, outH := tg[0], tg[1]
					win := rect{0, 0, outW, outH}
					if rng.IntN(2) == 0 && outW > 2 && outH > 2 {
						win.x, win.y = rng.IntN(outW/2), rng.IntN(outH/2)
						win.w, win.h = 1+rng.IntN(outW-win.x), 1+rng.IntN(outH-win.y)
					}
					name := fmt.Sprintf("%dx%d/o%d/%s/%dx%d/%v", size[0], size[1], o, f, outW, outH, win)
					// A destination with a margin on each side, as letterboxing writes.
					stride := 3*win.w + 9
					want := bytes.Repeat([]byte{0xA5}, stride*(win.h+2))
					var got []byte
					scalar := resampler{scalar: true}
					scalar.resize(src, outW, outH, win, f, want, stride+6, stride)
					for _, fast := range simdResamplers() {
						got = bytes.Repeat([]byte{0xA5}, len(want))
						fast.r.resize(src, outW, outH, win, f, got, stride+6, stride)
						if i := firstDiff(got, want); i >= 0 {
							t.Fatalf("%s %s: byte %d (row %d) is %d, the scalar pass gives %d", fast.name, name, i, i/stride, got[i], want[i])
						}
					}
				}
			}
		}
	}
}

// TestResizeSIMDWithoutSlack resizes a picture whose buffer has no spare capacity,
// where the SIMD horizontal pass may not read past the pixels: the result must
// still equal the scalar one (the SIMD pass steps aside).
func TestResizeSIMDWithoutSlack(t *testing.T) {
	img := noiseImage(97, 61, 5)
	tight := &rgbImage{pix: bytes.Clone(img.pix)[:len(img.pix):len(img.pix)], w: img.w, h: img.h}
	for o := 1; o <= 8; o++ {
		src := orientedView(tight, o)
		want := make([]byte, 3*40*30)
		got := make([]byte, len(want))
		scalar := resampler{scalar: true}
		scalar.resize(src, 40, 30, rect{0, 0, 40, 30}, FilterBicubic, want, 0, 3*40)
		for _, fast := range simdResamplers() {
			fast.r.resize(src, 40, 30, rect{0, 0, 40, 30}, FilterBicubic, got, 0, 3*40)
			if i := firstDiff(got, want); i >= 0 {
				t.Fatalf("%s, orientation %d: byte %d differs: %d, scalar %d", fast.name, o, i, got[i], want[i])
			}
		}
	}
}

// simdCase is a resampler forced to one SIMD level.
type simdCase struct {
	name string
	r    *resampler
}

// simdResamplers returns a resampler for each SIMD level this CPU runs, best
// first (none without cgo or SIMD): each must match the scalar passes.
func simdResamplers() []simdCase {
	var out []simdCase
	if haveVBMI {
		out = append(out, simdCase{"avx512vbmi", &resampler{}})
		out = append(out, simdCase{"avx512vnni", &resampler{noVBMI: true}})
	} else if haveVNNI {
		out = append(out, simdCase{"avx512vnni", &resampler{}})
	}
	if haveSIMD {
		base := "avx2" // amd64's first level; arm64 has only NEON
		if runtime.GOARCH == "arm64" {
			base = "neon"
		}
		out = append(out, simdCase{base, &resampler{noVNNI: true}})
	}
	return out
}

// TestWeightDigits checks that every weight the resampler can produce (22-bit
// fixed point, bicubic lobes included, with room to spare) splits into signed
// bytes that add back up to it.
func TestWeightDigits(t *testing.T) {
	for v := int32(-(1 << 23) + 1<<16); v < 1<<23-1<<16; v++ {
		d0, d1, d2 := weightDigits(v)
		if got := int32(d0) + 256*int32(d1) + 65536*int32(d2); got != v {
			t.Fatalf("weightDigits(%d) = %d, %d, %d: adds up to %d", v, d0, d1, d2, got)
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// BenchmarkResizeSIMD times the resampler alone on the served model's window (the
// shorter side to 256, the centre 224×224 computed), scalar and SIMD passes side by
// side, on noise pictures of the three benchmark photo sizes, upright (orientation
// 1) and as a phone's portrait photo (6).
func BenchmarkResizeSIMD(b *testing.B) {
	spec := ImageNetSpec()
	for _, size := range [][2]int{{640, 480}, {1024, 768}, {4032, 3024}} {
		img := noiseImage(size[0], size[1], 3)
		for _, o := range []int{1, 6} {
			src := orientedView(img, o)
			t := spec.target(src.w, src.h)
			out := make([]byte, 3*t.win.w*t.win.h)
			impls := append([]simdCase{{"scalar", &resampler{scalar: true}}}, simdResamplers()...)
			for _, impl := range impls {
				b.Run(fmt.Sprintf("%dx%d/o%d/%s", size[0], size[1], o, impl.name), func(b *testing.B) {
					r := impl.r
					b.ReportAllocs()
					for b.Loop() {
						r.resize(src, t.w, t.h, t.win, FilterBilinear, out, 0, 3*t.win.w)
					}
				})
			}
		}
	}
}

// TestFusedNormalizeMatches checks the SIMD vertical pass that writes the tensor
// directly against the scalar resize followed by the normaliser, for every data
// type, layout and channel order, and the resize modes that fill the tensor.
func TestFusedNormalizeMatches(t *testing.T) {
	pictures := map[string][]byte{
		"jpeg": encodeJPEG(t, testPicture(301, 203), 90),
		"png":  encodePNG(t, testPicture(150, 260)),
	}
	for name, data := range pictures {
		for _, dt := range []DataType{FP32, FP16, UINT8} {
			for _, layout := range []Layout{NCHW, NHWC} {
				for _, order := range []ChannelOrder{RGB, BGR} {
					for _, mode := range []ResizeMode{ResizeStretch, ResizeShorterCrop} {
						spec := ImageNetSpec()
						spec.Width, spec.Height = 67, 45
						spec.DataType, spec.Layout, spec.Order, spec.Resize = dt, layout, order, mode
						if dt == UINT8 {
							spec.Scale, spec.Mean, spec.Std = 1, [3]float32{}, [3]float32{1, 1, 1}
						}
						if mode == ResizeShorterCrop {
							spec.ShorterSide = 80
						} else {
							spec.ShorterSide = 0
						}
						ref := mustNew(t, spec, DefaultLimits())
						ref.scalarResize = true
						want, _, err := process(t, ref, data)
						if err != nil {
							t.Fatal(err)
						}
						// The best SIMD level, and AVX2 where that is VNNI.
						for _, noVNNI := range []bool{false, true} {
							if noVNNI && !haveVNNI {
								continue
							}
							fused := mustNew(t, spec, DefaultLimits())
							fused.noVNNI = noVNNI
							got, info, err := process(t, fused, data)
							if err != nil {
								t.Fatal(err)
							}
							if i := firstDiff(got, want); i >= 0 {
								t.Fatalf("%s %s %s %s %s (noVNNI %v): byte %d is %d, the scalar path's %d", name, dt, layout, order, mode, noVNNI, i, got[i], want[i])
							}
							if haveSIMD && info.Stages.Normalize != 0 {
								t.Errorf("%s %s %s %s %s: a separate normalise stage ran (%v): the fused pass did not", name, dt, layout, order, mode, info.Stages.Normalize)
							}
						}
					}
				}
			}
		}
	}
}
