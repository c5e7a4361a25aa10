package preprocess

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// gridImage is a w×h image whose pixel (x, y) is (x, y, x+y) so any misplaced pixel
// shows.
func gridImage(w, h int) *rgbImage {
	m := &rgbImage{}
	m.reset(w, h)
	for y := range h {
		for x := range w {
			i := 3 * (y*w + x)
			m.pix[i], m.pix[i+1], m.pix[i+2] = byte(x), byte(y), byte(x+y)
		}
	}
	return m
}

func noiseImage(w, h int, seed uint64) *rgbImage {
	m := &rgbImage{}
	m.reset(w, h)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range m.pix {
		m.pix[i] = byte(r.IntN(256))
	}
	return m
}

// at reads a view's pixel as the stored (x, y) it came from, using the grid image.
func (v view) at(x, y int) [2]int {
	p := v.off + x*v.dx + y*v.dy
	return [2]int{int(v.pix[p]), int(v.pix[p+1])}
}

func TestOrientedView(t *testing.T) {
	// A stored 3×2 picture; each case lists, row by row, which stored (x, y) each
	// displayed pixel shows, following EXIF (and Pillow's exif_transpose).
	img := gridImage(3, 2)
	tests := []struct {
		orientation int
		want        [][][2]int
	}{
		{1, [][][2]int{{{0, 0}, {1, 0}, {2, 0}}, {{0, 1}, {1, 1}, {2, 1}}}},
		{2, [][][2]int{{{2, 0}, {1, 0}, {0, 0}}, {{2, 1}, {1, 1}, {0, 1}}}},
		{3, [][][2]int{{{2, 1}, {1, 1}, {0, 1}}, {{2, 0}, {1, 0}, {0, 0}}}},
		{4, [][][2]int{{{0, 1}, {1, 1}, {2, 1}}, {{0, 0}, {1, 0}, {2, 0}}}},
		{5, [][][2]int{{{0, 0}, {0, 1}}, {{1, 0}, {1, 1}}, {{2, 0}, {2, 1}}}},
		// 6: the camera was turned 90° clockwise; displaying rotates 90° clockwise,
		// so the stored bottom-left pixel lands top-left.
		{6, [][][2]int{{{0, 1}, {0, 0}}, {{1, 1}, {1, 0}}, {{2, 1}, {2, 0}}}},
		{7, [][][2]int{{{2, 1}, {2, 0}}, {{1, 1}, {1, 0}}, {{0, 1}, {0, 0}}}},
		{8, [][][2]int{{{2, 0}, {2, 1}}, {{1, 0}, {1, 1}}, {{0, 0}, {0, 1}}}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.orientation), func(t *testing.T) {
			v := orientedView(img, tt.orientation)
			if v.h != len(tt.want) || v.w != len(tt.want[0]) {
				t.Fatalf("view is %d×%d, want %d×%d", v.w, v.h, len(tt.want[0]), len(tt.want))
			}
			for y, row := range tt.want {
				for x, want := range row {
					if got := v.at(x, y); got != want {
						t.Errorf("displayed (%d, %d) shows stored %v, want %v", x, y, got, want)
					}
				}
			}
		})
	}
}

// resizeAll resizes a whole view with no window.
func resizeAll(src view, w, h int, f Filter) []byte {
	out := make([]byte, w*h*3)
	var r resampler
	r.resize(src, w, h, rect{0, 0, w, h}, f, out, 0, 3*w)
	return out
}

func TestResizeWindowEqualsCrop(t *testing.T) {
	img := noiseImage(97, 61, 1)
	for _, f := range []Filter{FilterNearest, FilterBilinear, FilterBicubic} {
		for _, size := range [][2]int{{40, 30}, {150, 90}, {97, 20}} {
			t.Run(fmt.Sprintf("%s/%dx%d", f, size[0], size[1]), func(t *testing.T) {
				src := orientedView(img, 1)
				full := resizeAll(src, size[0], size[1], f)
				win := rect{x: 5, y: 3, w: size[0] - 9, h: size[1] - 7}
				got := make([]byte, win.w*win.h*3)
				var r resampler
				r.resize(src, size[0], size[1], win, f, got, 0, 3*win.w)
				for y := range win.h {
					wantRow := full[3*((win.y+y)*size[0]+win.x) : 3*((win.y+y)*size[0]+win.x+win.w)]
					if gotRow := got[3*y*win.w : 3*(y+1)*win.w]; !bytes.Equal(gotRow, wantRow) {
						t.Fatalf("window row %d differs from the cropped full resize", y)
					}
				}
			})
		}
	}
}

// A resampler keeps the coefficients of its last sizes: reused for other
// sizes, windows, filters and orientations, then for the first ones again, it
// must give what a fresh one gives each time.
func TestReusedResamplerMatchesFresh(t *testing.T) {
	type job struct {
		img        *rgbImage
		o          int
		outW, outH int
		win        rect
		f          Filter
	}
	a, b := noiseImage(97, 61, 3), noiseImage(120, 80, 4)
	jobs := []job{
		{a, 1, 40, 30, rect{2, 3, 30, 20}, FilterBilinear},
		{a, 1, 40, 30, rect{3, 3, 30, 20}, FilterBilinear}, // window moved by one column
		{a, 1, 40, 30, rect{2, 3, 30, 20}, FilterBicubic},  // same sizes, other filter
		{a, 2, 40, 30, rect{2, 3, 30, 20}, FilterBicubic},  // mirrored: taps read backwards
		{a, 6, 40, 30, rect{2, 3, 30, 20}, FilterBilinear}, // rotated: width and height swap
		{b, 1, 40, 30, rect{2, 3, 30, 20}, FilterBilinear}, // other source size
		{b, 1, 41, 30, rect{2, 3, 30, 20}, FilterBilinear}, // other output width
		{a, 1, 40, 30, rect{2, 3, 30, 20}, FilterBilinear}, // the first again
		{a, 6, 40, 30, rect{2, 3, 30, 20}, FilterBilinear},
	}
	var reused resampler
	for i, j := range jobs {
		src := orientedView(j.img, j.o)
		got := make([]byte, 3*j.win.w*j.win.h)
		want := make([]byte, len(got))
		reused.resize(src, j.outW, j.outH, j.win, j.f, got, 0, 3*j.win.w)
		var fresh resampler
		fresh.resize(src, j.outW, j.outH, j.win, j.f, want, 0, 3*j.win.w)
		if k := firstDiff(got, want); k >= 0 {
			t.Fatalf("job %d (%+v): byte %d is %d reused, %d fresh", i, j, k, got[k], want[k])
		}
	}
}

func TestResizeIdentity(t *testing.T) {
	img := noiseImage(33, 17, 2)
	for _, f := range []Filter{FilterNearest, FilterBilinear, FilterBicubic} {
		if got := resizeAll(orientedView(img, 1), 33, 17, f); !bytes.Equal(got, img.pix) {
			t.Errorf("%s: resizing to the same size changed pixels", f)
		}
	}
}

// Resizing an oriented view must equal resizing a materialised copy of it, since
// the orientation is applied by the view without copying.
func TestResizeOrientedViewEqualsCopy(t *testing.T) {
	img := noiseImage(41, 23, 3)
	for o := 1; o <= 8; o++ {
		v := orientedView(img, o)
		cp := &rgbImage{}
		cp.reset(v.w, v.h)
		for y := range v.h {
			for x := range v.w {
				p := v.off + x*v.dx + y*v.dy
				copy(cp.pix[3*(y*v.w+x):], v.pix[p:p+3])
			}
		}
		for _, f := range []Filter{FilterNearest, FilterBilinear, FilterBicubic} {
			want := resizeAll(orientedView(cp, 1), 17, 29, f)
			if got := resizeAll(v, 17, 29, f); !bytes.Equal(got, want) {
				t.Errorf("orientation %d, %s: view resize differs from copy resize", o, f)
			}
		}
	}
}

// A flat image stays flat under every filter and scale: the weights of every output
// pixel sum to one in fixed point.
func TestResizeKeepsFlatColour(t *testing.T) {
	img := &rgbImage{}
	img.reset(211, 97)
	for i := 0; i < len(img.pix); i += 3 {
		img.pix[i], img.pix[i+1], img.pix[i+2] = 200, 13, 255
	}
	for _, f := range []Filter{FilterNearest, FilterBilinear, FilterBicubic} {
		for _, size := range [][2]int{{7, 5}, {224, 224}, {600, 31}} {
			out := resizeAll(orientedView(img, 1), size[0], size[1], f)
			for i := 0; i < len(out); i += 3 {
				if out[i] != 200 || out[i+1] != 13 || out[i+2] != 255 {
					t.Fatalf("%s to %v: pixel %d = %v, want [200 13 255]", f, size, i/3, out[i:i+3])
				}
			}
		}
	}
}

func TestNearestTable(t *testing.T) {
	// Pillow: 10 → 4 samples at positions 1.25, 3.75, 6.25, 8.75.
	if got := nearestTable(nil, 10, 4, 0, 4); fmt.Sprint(got) != "[1 3 6 8]" {
		t.Errorf("nearestTable(10→4) = %v", got)
	}
	// Upscaling 3 → 7 repeats samples.
	if got := nearestTable(nil, 3, 7, 0, 7); fmt.Sprint(got) != "[0 0 1 1 1 2 2]" {
		t.Errorf("nearestTable(3→7) = %v", got)
	}
}
