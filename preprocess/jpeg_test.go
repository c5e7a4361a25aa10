package preprocess

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// jpegDecoder is decodeJPEG's signature; the std backend always decodes at 1/1.
type jpegDecoder func(data []byte, wantW, wantH, denom int, dst *rgbImage) (int, error)

func decodeJPEGStdAny(data []byte, wantW, wantH, _ int, dst *rgbImage) (int, error) {
	if err := decodeJPEGStd(data, wantW, wantH, dst); err != nil {
		return 0, err
	}
	return 1, nil
}

// jpegBackends lists the decoders compiled in: decodeJPEG (libjpeg-turbo with
// cgo) and the pure-Go one, which every build has.
func jpegBackends() []struct {
	name   string
	decode jpegDecoder
} {
	bs := []struct {
		name   string
		decode jpegDecoder
	}{{"image/jpeg", decodeJPEGStdAny}}
	if jpegBackend != "image/jpeg" {
		bs = append(bs, struct {
			name   string
			decode jpegDecoder
		}{jpegBackend, decodeJPEG})
	}
	return bs
}

// photoRGBA draws a deterministic photo-like picture: smooth gradients, sharp
// colour edges, fine texture and a little noise.
func photoRGBA(w, h int, seed uint64) *image.RGBA {
	rng := rand.New(rand.NewPCG(seed, 7))
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			fx, fy := float64(x)/float64(w), float64(y)/float64(h)
			r := 128 + 100*math.Sin(fx*9)*math.Cos(fy*5)
			g := 40 + 170*fx*(1-fy) + 25*math.Sin(float64(x+y)/3)
			b := 200 - 150*fy + 30*math.Cos(float64(x)/4)
			if dx, dy := fx-0.6, fy-0.45; dx*dx+dy*dy < 0.04 {
				r, g, b = 230, 40, 60
			}
			n := rng.NormFloat64() * 5
			i := m.PixOffset(x, y)
			m.Pix[i+0] = clampByte(r + n)
			m.Pix[i+1] = clampByte(g + n)
			m.Pix[i+2] = clampByte(b + n)
			m.Pix[i+3] = 255
		}
	}
	return m
}

func clampByte(v float64) byte {
	return byte(math.Max(0, math.Min(255, math.Round(v))))
}

func encodeTestJPEG(tb testing.TB, img image.Image, quality int) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func grayOf(m *image.RGBA) *image.Gray {
	g := image.NewGray(m.Rect)
	for i := range len(g.Pix) {
		p := m.Pix[4*i : 4*i+3]
		g.Pix[i] = byte((299*int(p[0]) + 587*int(p[1]) + 114*int(p[2]) + 500) / 1000)
	}
	return g
}

// pixelDiff returns the largest and the mean absolute difference of two equally
// long sample slices.
func pixelDiff(a, b []byte) (maxDiff int, mean float64) {
	sum := 0
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		sum += d
		maxDiff = max(maxDiff, d)
	}
	return maxDiff, float64(sum) / float64(len(a))
}

// TestDecodeJPEGBackendsAgree decodes pictures from the standard encoder with both
// backends. They differ by their IDCTs, rounding and, for colour, chroma
// upsampling (libjpeg interpolates, image/jpeg replicates), which shows at sharp
// colour edges.
func TestDecodeJPEGBackendsAgree(t *testing.T) {
	photo := photoRGBA(203, 131, 1)
	cases := []struct {
		name    string
		img     image.Image
		maxDiff int     // largest difference of one sample
		mean    float64 // mean difference
	}{
		{"ycbcr420", photo, 80, 3.0},
		{"gray", grayOf(photo), 3, 0.1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := encodeTestJPEG(t, c.img, 90)
			w, h := c.img.Bounds().Dx(), c.img.Bounds().Dy()
			var std, def rgbImage
			if err := decodeJPEGStd(data, w, h, &std); err != nil {
				t.Fatal(err)
			}
			denom, err := decodeJPEG(data, w, h, 1, &def)
			if err != nil || denom != 1 {
				t.Fatalf("decodeJPEG: denom %d, %v", denom, err)
			}
			if std.w != w || std.h != h || def.w != w || def.h != h || len(std.pix) != w*h*3 || len(def.pix) != w*h*3 {
				t.Fatalf("sizes: std %d×%d (%d bytes), %s %d×%d (%d bytes), want %d×%d",
					std.w, std.h, len(std.pix), jpegBackend, def.w, def.h, len(def.pix), w, h)
			}
			md, mean := pixelDiff(std.pix, def.pix)
			t.Logf("image/jpeg vs %s: max diff %d, mean %.3f", jpegBackend, md, mean)
			if md > c.maxDiff || mean > c.mean {
				t.Errorf("max diff %d (limit %d), mean %.3f (limit %.3f)", md, c.maxDiff, mean, c.mean)
			}
			if c.name == "gray" {
				for i := 0; i < len(def.pix); i += 3 {
					if def.pix[i] != def.pix[i+1] || def.pix[i] != def.pix[i+2] || std.pix[i] != std.pix[i+1] || std.pix[i] != std.pix[i+2] {
						t.Fatalf("grey pixel %d not replicated: %v %v", i/3, def.pix[i:i+3], std.pix[i:i+3])
					}
				}
			}
		})
	}
}

// TestDecodeJPEGScaled checks the sizes of DCT-scaled decodes, ceil(w/denom), and
// that a scaled picture looks like the full one reduced by box averaging.
func TestDecodeJPEGScaled(t *testing.T) {
	for _, size := range [][2]int{{1, 1}, {9, 7}, {17, 33}, {203, 131}} {
		w, h := size[0], size[1]
		data := encodeTestJPEG(t, photoRGBA(w, h, 2), 90)
		var full rgbImage
		if _, err := decodeJPEG(data, w, h, 1, &full); err != nil {
			t.Fatal(err)
		}
		for _, denom := range []int{1, 2, 4, 8, 3} {
			var dst rgbImage
			got, err := decodeJPEG(data, w, h, denom, &dst)
			if err != nil {
				t.Fatalf("%d×%d 1/%d: %v", w, h, denom, err)
			}
			want := denom
			if jpegBackend == "image/jpeg" || denom == 3 {
				want = 1
			}
			if got != want {
				t.Errorf("%d×%d asked 1/%d: used 1/%d, want 1/%d", w, h, denom, got, want)
			}
			sw, sh := (w+got-1)/got, (h+got-1)/got
			if dst.w != sw || dst.h != sh || len(dst.pix) != sw*sh*3 {
				t.Fatalf("%d×%d 1/%d: got %d×%d (%d bytes), want %d×%d", w, h, got, dst.w, dst.h, len(dst.pix), sw, sh)
			}
			if got == 1 || w < 16 {
				continue
			}
			// Box-average the full decode over got×got cells (the interior ones).
			sum, n := 0.0, 0
			for y := 0; y+got <= h; y += got {
				for x := 0; x+got <= w; x += got {
					for c := range 3 {
						acc := 0
						for yy := y; yy < y+got; yy++ {
							for xx := x; xx < x+got; xx++ {
								acc += int(full.pix[(yy*w+xx)*3+c])
							}
						}
						box := float64(acc) / float64(got*got)
						sum += math.Abs(box - float64(dst.pix[((y/got)*sw+x/got)*3+c]))
						n++
					}
				}
			}
			mean := sum / float64(n)
			t.Logf("%d×%d at 1/%d: mean diff from box-averaged full decode %.2f", w, h, got, mean)
			if mean > 12 {
				t.Errorf("%d×%d at 1/%d: mean diff %.2f from the box-averaged full decode", w, h, got, mean)
			}
		}
	}
}

func TestDecodeJPEGErrors(t *testing.T) {
	const w, h = 64, 48
	good := encodeTestJPEG(t, photoRGBA(w, h, 3), 90)
	sof := bytes.Index(good, []byte{0xFF, 0xC0})
	if sof < 0 {
		t.Fatal("no SOF0 in the encoded file")
	}
	sos := bytes.Index(good, []byte{0xFF, 0xDA})
	patched := func(at int, b byte) []byte {
		d := bytes.Clone(good)
		d[at] = b
		return d
	}
	cases := []struct {
		name         string
		data         []byte
		wantW, wantH int
		want         error
		msg          string // in the error message
	}{
		{"empty", nil, w, h, ErrCorrupt, ""},
		{"soi only", good[:2], w, h, ErrCorrupt, ""},
		{"truncated in header", good[:sof+5], w, h, ErrCorrupt, ""},
		{"truncated after sos", good[:sos+14], w, h, ErrCorrupt, "truncated"},
		{"truncated in half", good[:len(good)/2], w, h, ErrCorrupt, "truncated"},
		{"no EOI", good[:len(good)-2], w, h, ErrCorrupt, "truncated"},
		{"half EOI", good[:len(good)-1], w, h, ErrCorrupt, "truncated"},
		{"garbage after SOI", append([]byte{0xFF, 0xD8, 0xFF}, []byte(strings.Repeat("not a jpeg ", 20))...), w, h, ErrCorrupt, ""},
		{"random after SOI", append([]byte{0xFF, 0xD8}, randomBytes(4000, 9)...), w, h, ErrCorrupt, ""},
		{"wrong width", good, w + 1, h, ErrCorrupt, "64"},
		{"wrong height", good, w, h - 8, ErrCorrupt, "48"},
		{"zero size", good, 0, 0, ErrCorrupt, ""},
		{"12-bit", patched(sof+4, 12), w, h, ErrUnsupportedFormat, ""},
		{"lossless", patched(sof+1, 0xC3), w, h, ErrUnsupportedFormat, ""},
	}
	for _, b := range jpegBackends() {
		for _, c := range cases {
			var dst rgbImage
			_, err := b.decode(c.data, c.wantW, c.wantH, 1, &dst)
			if !errors.Is(err, c.want) {
				t.Errorf("%s: %s: got %v, want %v", b.name, c.name, err, c.want)
				continue
			}
			if !strings.Contains(err.Error(), "decode jpeg") || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("%s: %s: message %q lacks %q", b.name, c.name, err, c.msg)
			}
			t.Logf("%s: %s: %v", b.name, c.name, err)
		}
	}
}

func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// TestDecodeJPEGWarnings: bytes where a marker should be are recovered from (a
// libjpeg warning) and decode as the clean file does; too many of them are corrupt
// for libjpeg.
func TestDecodeJPEGWarnings(t *testing.T) {
	const w, h = 40, 24
	good := encodeTestJPEG(t, photoRGBA(w, h, 4), 90)
	sof := bytes.Index(good, []byte{0xFF, 0xC0})
	junky := slicesConcat(good[:sof], []byte("junk"), good[sof:])
	var many []byte
	many = append(many, good[:2]...)
	for range jpegMaxWarnings + 1 {
		many = append(many, 0x00, 0xFF, 0xFE, 0x00, 0x02) // one extraneous byte, an empty COM
	}
	many = append(many, good[2:]...)
	for _, b := range jpegBackends() {
		var clean, dst rgbImage
		if _, err := b.decode(good, w, h, 1, &clean); err != nil {
			t.Fatal(err)
		}
		if _, err := b.decode(junky, w, h, 1, &dst); err != nil {
			t.Errorf("%s: extraneous bytes: %v", b.name, err)
		} else if !bytes.Equal(dst.pix, clean.pix) {
			t.Errorf("%s: extraneous bytes changed the picture", b.name)
		}
		_, err := b.decode(many, w, h, 1, &dst)
		if b.name == "libjpeg-turbo" {
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "warnings") {
				t.Errorf("%s: %d warnings: got %v, want ErrCorrupt", b.name, jpegMaxWarnings+1, err)
			}
			t.Logf("%s: %v", b.name, err)
		} else if err != nil { // image/jpeg skips extraneous bytes silently
			t.Errorf("%s: %d extraneous bytes: %v", b.name, jpegMaxWarnings+1, err)
		}
	}
}

func slicesConcat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// manyScansJPEG builds a valid 8×8 grey progressive JPEG of n scans (1 <= n <= 883):
// the DC scan, then for each AC coefficient k a first scan at Al=13 and its 13
// successive-approximation refinements, all coefficients zero (a flat 128 grey).
// Such a file is legal and tiny, yet each scan costs the decoder a pass over every
// block: the progressive-JPEG denial of service.
func manyScansJPEG(n int) []byte {
	d := []byte{0xFF, 0xD8}
	d = append(d, 0xFF, 0xDB, 0x00, 0x43, 0x00) // DQT 0: all ones
	d = append(d, bytes.Repeat([]byte{1}, 64)...)
	d = append(d, 0xFF, 0xC2, 0x00, 0x0B, 8, 0, 8, 0, 8, 1, 1, 0x11, 0) // SOF2, 8×8, 1 component
	// DHT DC 0 and AC 0: one 1-bit code, for symbol 0.
	for _, class := range []byte{0x00, 0x10} {
		d = append(d, 0xFF, 0xC4, 0x00, 0x14, class, 1)
		d = append(d, make([]byte, 15)...)
		d = append(d, 0)
	}
	scan := func(ss, se, ah, al byte) {
		// Symbol 0 (DC diff 0, AC end of band) or one refinement bit 0, then 1s.
		d = append(d, 0xFF, 0xDA, 0x00, 0x08, 1, 1, 0x00, ss, se, ah<<4|al, 0x7F)
	}
	scan(0, 0, 0, 0)
	for k, count := byte(1), 1; count < n; k++ {
		scan(k, k, 0, 13)
		count++
		for ah := byte(13); ah >= 1 && count < n; ah-- {
			scan(k, k, ah, ah-1)
			count++
		}
	}
	return append(d, 0xFF, 0xD9)
}

func TestDecodeJPEGScanLimit(t *testing.T) {
	for _, b := range jpegBackends() {
		var dst rgbImage
		if _, err := b.decode(manyScansJPEG(jpegMaxScans), 8, 8, 1, &dst); err != nil {
			t.Fatalf("%s: %d scans: %v", b.name, jpegMaxScans, err)
		}
		for i, v := range dst.pix {
			if v != 128 {
				t.Fatalf("%s: sample %d is %d, want 128", b.name, i, v)
			}
		}
		_, err := b.decode(manyScansJPEG(jpegMaxScans+1), 8, 8, 1, &dst)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "scans") {
			t.Errorf("%s: %d scans: got %v, want ErrCorrupt about scans", b.name, jpegMaxScans+1, err)
		}
		t.Logf("%s: %v", b.name, err)
	}
}

// TestDecodeJPEGPillow compares with what Pillow 13 (libjpeg-turbo 3.2) decodes
// the fixtures to: Image.open(f).convert("RGB"), after draft() for the scaled ones
// (testdata/jpeg/make_fixtures.py).
func TestDecodeJPEGPillow(t *testing.T) {
	const w, h = 77, 53
	cases := []struct {
		name   string
		denoms []int
		// Largest and mean sample difference allowed, for libjpeg-turbo (same
		// library and parameters as Pillow) and for image/jpeg at full scale.
		libMax, stdMax   int
		libMean, stdMean float64
	}{
		{"rgb420", []int{1, 2, 4, 8}, 0, 64, 0, 3.5},
		{"rgb422", []int{1}, 0, 48, 0, 3.0},
		{"rgb444", []int{1}, 0, 3, 0, 0.6},
		{"progressive", []int{1, 2, 4, 8}, 0, 64, 0, 3.5},
		{"gray", []int{1, 2}, 0, 2, 0, 0.2},
		{"cmyk_adobe", []int{1, 2}, 0, 3, 0, 0.6},
		{"cmyk_noadobe", []int{1}, 0, 3, 0, 0.6},
		{"ycck", []int{1}, 0, 4, 0, 0.6},
	}
	for _, c := range cases {
		data, err := os.ReadFile(filepath.Join("testdata", "jpeg", c.name+".jpg"))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range jpegBackends() {
			for _, denom := range c.denoms {
				if denom > 1 && b.name == "image/jpeg" {
					continue
				}
				suffix := ""
				if denom > 1 {
					suffix = fmt.Sprintf("_d%d", denom)
				}
				want, err := os.ReadFile(filepath.Join("testdata", "jpeg", c.name+suffix+".rgb"))
				if err != nil {
					t.Fatal(err)
				}
				var dst rgbImage
				if _, err := b.decode(data, w, h, denom, &dst); err != nil {
					t.Errorf("%s %s 1/%d: %v", b.name, c.name, denom, err)
					continue
				}
				if len(dst.pix) != len(want) || dst.w != (w+denom-1)/denom || dst.h != (h+denom-1)/denom {
					t.Errorf("%s %s 1/%d: %d×%d, %d bytes; Pillow has %d bytes", b.name, c.name, denom, dst.w, dst.h, len(dst.pix), len(want))
					continue
				}
				md, mean := pixelDiff(dst.pix, want)
				t.Logf("%-13s %-12s 1/%d vs Pillow: max diff %d, mean %.4f", b.name, c.name, denom, md, mean)
				limMax, limMean := c.libMax, c.libMean
				if b.name == "image/jpeg" {
					limMax, limMean = c.stdMax, c.stdMean
				}
				if md > limMax || mean > limMean {
					t.Errorf("%s %s 1/%d: max diff %d (limit %d), mean %.4f (limit %.4f)", b.name, c.name, denom, md, limMax, mean, limMean)
				}
			}
		}
	}
}

// TestJPEGImageToRGB checks the pure-Go conversions on images built directly:
// YCbCr of every subsampling (against color.YCbCrToRGB of the sample At picks,
// including a sub-image with odd origin), grey, CMYK (Pillow's formula, against a
// float reference) and RGBA.
func TestJPEGImageToRGB(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	fill := func(b []byte) {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
	}
	check := func(name string, img image.Image, ref func(x, y int) [3]byte) {
		t.Helper()
		var dst rgbImage
		if err := jpegImageToRGB(img, &dst); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b := img.Bounds()
		if dst.w != b.Dx() || dst.h != b.Dy() || len(dst.pix) != 3*b.Dx()*b.Dy() {
			t.Fatalf("%s: %d×%d, want %d×%d", name, dst.w, dst.h, b.Dx(), b.Dy())
		}
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				i := ((y-b.Min.Y)*dst.w + x - b.Min.X) * 3
				if got, want := [3]byte(dst.pix[i:i+3]), ref(x, y); got != want {
					t.Fatalf("%s: pixel (%d,%d) = %v, want %v", name, x, y, got, want)
				}
			}
		}
	}
	for _, r := range []image.YCbCrSubsampleRatio{
		image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420,
		image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410,
	} {
		m := image.NewYCbCr(image.Rect(0, 0, 37, 23), r)
		fill(m.Y)
		fill(m.Cb)
		fill(m.Cr)
		for _, img := range []*image.YCbCr{m, m.SubImage(image.Rect(3, 5, 30, 22)).(*image.YCbCr)} {
			check(r.String(), img, func(x, y int) [3]byte {
				c := img.YCbCrAt(x, y)
				rr, gg, bb := color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
				return [3]byte{rr, gg, bb}
			})
		}
	}
	g := image.NewGray(image.Rect(0, 0, 13, 7))
	fill(g.Pix)
	check("gray", g, func(x, y int) [3]byte { v := g.GrayAt(x, y).Y; return [3]byte{v, v, v} })
	k := image.NewCMYK(image.Rect(0, 0, 256, 64))
	fill(k.Pix)
	check("cmyk", k, func(x, y int) [3]byte {
		c := k.CMYKAt(x, y)
		nk := 255 - float64(c.K)
		ch := func(v uint8) byte { return byte(math.Round(nk - float64(v)*nk/255)) }
		return [3]byte{ch(c.C), ch(c.M), ch(c.Y)}
	})
	a := image.NewRGBA(image.Rect(0, 0, 9, 4))
	fill(a.Pix)
	check("rgba", a, func(x, y int) [3]byte { c := a.RGBAAt(x, y); return [3]byte{c.R, c.G, c.B} })
}

// TestDecodeJPEGConcurrent decodes from many goroutines (run with -race).
func TestDecodeJPEGConcurrent(t *testing.T) {
	const w, h = 96, 64
	data := encodeTestJPEG(t, photoRGBA(w, h, 6), 85)
	var ref rgbImage
	if _, err := decodeJPEG(data, w, h, 2, &ref); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			var dst rgbImage
			for i := range 20 {
				d := data
				if (g+i)%3 == 0 {
					d = data[:len(data)/2] // failing decodes must not disturb the others
				}
				_, err := decodeJPEG(d, w, h, 2, &dst)
				if len(d) == len(data) && (err != nil || !bytes.Equal(dst.pix, ref.pix)) {
					t.Errorf("goroutine %d: %v", g, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkDecodeJPEG decodes a 1024×768 photo-like q90 4:2:0 JPEG.
func BenchmarkDecodeJPEG(b *testing.B) {
	const w, h = 1024, 768
	data := encodeTestJPEG(b, photoRGBA(w, h, 8), 90)
	b.Run("image/jpeg", func(b *testing.B) {
		var dst rgbImage
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if err := decodeJPEGStd(data, w, h, &dst); err != nil {
				b.Fatal(err)
			}
		}
	})
	if jpegBackend == "image/jpeg" {
		return
	}
	for _, denom := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("%s/denom=%d", jpegBackend, denom), func(b *testing.B) {
			var dst rgbImage
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := decodeJPEG(data, w, h, denom, &dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDecodeJPEGEighths checks every n/8 scale: the size is ceil(w·n/8), and the
// pure-Go build, which cannot scale, says it decoded at 8/8.
func TestDecodeJPEGEighths(t *testing.T) {
	const w, h = 203, 131
	data := encodeTestJPEG(t, photoRGBA(w, h, 5), 90)
	for e := 1; e <= 8; e++ {
		var dst rgbImage
		got, err := decodeJPEGEighths(data, w, h, e, &dst)
		if err != nil {
			t.Fatalf("%d/8: %v", e, err)
		}
		want := e
		if jpegBackend == "image/jpeg" {
			want = 8
		}
		if got != want {
			t.Fatalf("%d/8: decoded at %d/8, want %d/8", e, got, want)
		}
		if sw, sh := (w*got+7)/8, (h*got+7)/8; dst.w != sw || dst.h != sh || len(dst.pix) != sw*sh*3 {
			t.Errorf("%d/8: got %d×%d, want %d×%d", e, dst.w, dst.h, sw, sh)
		}
	}
}
