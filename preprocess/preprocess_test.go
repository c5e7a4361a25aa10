package preprocess

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// sentinels are the kinds every error of Process must wrap.
var sentinels = []error{ErrEmpty, ErrTooLarge, ErrUnsupportedFormat, ErrTooManyPixels, ErrTooSmall, ErrCorrupt}

func kindOf(err error) error {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return s
		}
	}
	return nil
}

func testPicture(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.SetNRGBA(x, y, color.NRGBA{byte(x * 255 / max(1, w-1)), byte(y * 255 / max(1, h-1)), byte((x ^ y) * 7), 255})
		}
	}
	return m
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t testing.TB, img image.Image, quality int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: quality}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// withPNGChunk inserts a chunk right after IHDR.
func withPNGChunk(data []byte, typ string, payload []byte) []byte {
	const ihdrEnd = 8 + 8 + 13 + 4
	chunk := make([]byte, 0, 12+len(payload))
	chunk = binary.BigEndian.AppendUint32(chunk, uint32(len(payload)))
	chunk = append(chunk, typ...)
	chunk = append(chunk, payload...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
	out := append([]byte{}, data[:ihdrEnd]...)
	out = append(out, chunk...)
	return append(out, data[ihdrEnd:]...)
}

// tiffOrientation is a little-endian TIFF block whose IFD0 holds one Orientation tag.
func tiffOrientation(o uint16) []byte {
	b := []byte("II*\x00")
	b = binary.LittleEndian.AppendUint32(b, 8) // IFD0 offset
	b = binary.LittleEndian.AppendUint16(b, 1) // one entry
	b = binary.LittleEndian.AppendUint16(b, 0x0112)
	b = binary.LittleEndian.AppendUint16(b, 3) // SHORT
	b = binary.LittleEndian.AppendUint32(b, 1)
	b = binary.LittleEndian.AppendUint16(b, o)
	b = binary.LittleEndian.AppendUint16(b, 0)
	return binary.LittleEndian.AppendUint32(b, 0) // no next IFD
}

func mustNew(t testing.TB, s Spec, l Limits) *Preprocessor {
	t.Helper()
	p, err := New(s, l)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func pixelSpec(w, h int, f Filter) Spec {
	return Spec{Width: w, Height: h, Filter: f, Scale: 1, Std: [3]float32{1, 1, 1}, Layout: NHWC, DataType: UINT8}
}

func process(t testing.TB, p *Preprocessor, data []byte) ([]byte, Info, error) {
	t.Helper()
	dst := make([]byte, p.TensorBytes())
	info, err := p.Process(data, dst)
	return dst, info, err
}

// A picture stored sideways with EXIF orientation 6 gives the tensor of the same
// picture stored upright, exactly.
func TestOrientationSixEqualsUpright(t *testing.T) {
	upright := testPicture(40, 64)
	// What a camera held 90° clockwise stores: the upright picture rotated 90°
	// counter-clockwise, to be turned back by the viewer.
	stored := image.NewNRGBA(image.Rect(0, 0, 64, 40))
	for y := range 64 {
		for x := range 40 {
			stored.Set(y, 39-x, upright.At(x, y))
		}
	}
	p := mustNew(t, pixelSpec(20, 30, FilterBicubic), DefaultLimits())
	want, _, err := process(t, p, encodePNG(t, upright))
	if err != nil {
		t.Fatal(err)
	}
	got, info, err := process(t, p, withPNGChunk(encodePNG(t, stored), "eXIf", tiffOrientation(6)))
	if err != nil {
		t.Fatal(err)
	}
	if info.Orientation != 6 {
		t.Fatalf("orientation = %d, want 6", info.Orientation)
	}
	if !bytes.Equal(got, want) {
		t.Error("orientation-6 tensor differs from the upright tensor")
	}
}

// A JPEG decodes into the same tensor whatever its orientation, once the
// orientation's transform is undone by hand.
func TestJPEGOrientationMatchesTransform(t *testing.T) {
	base := encodeJPEG(t, testPicture(48, 32), 95)
	exif := append([]byte("Exif\x00\x00"), tiffOrientation(8)...)
	seg := append([]byte{0xFF, 0xE1}, byte((len(exif)+2)>>8), byte(len(exif)+2))
	rotated := append(append(append([]byte{}, base[:2]...), append(seg, exif...)...), base[2:]...)

	p := mustNew(t, pixelSpec(32, 48, FilterNearest), DefaultLimits())
	got, info, err := process(t, p, rotated)
	if err != nil {
		t.Fatal(err)
	}
	if info.Orientation != 8 {
		t.Fatalf("orientation = %d, want 8", info.Orientation)
	}
	// Orientation 8 displays the stored picture rotated 90° counter-clockwise:
	// displayed (x, y) is stored (W-1-y, x).
	plain := mustNew(t, pixelSpec(48, 32, FilterNearest), DefaultLimits())
	flat, _, err := process(t, plain, base)
	if err != nil {
		t.Fatal(err)
	}
	for y := range 48 {
		for x := range 32 {
			sx, sy := 47-y, x
			if !bytes.Equal(got[3*(y*32+x):3*(y*32+x)+3], flat[3*(sy*48+sx):3*(sy*48+sx)+3]) {
				t.Fatalf("displayed (%d, %d) is not stored (%d, %d)", x, y, sx, sy)
			}
		}
	}
}

// patchJPEGSize rewrites the frame size in the SOF0 segment of a baseline JPEG.
func patchJPEGSize(t testing.TB, data []byte, w, h int) []byte {
	t.Helper()
	out := append([]byte{}, data...)
	i := bytes.Index(out, []byte{0xFF, 0xC0})
	if i < 0 {
		t.Fatal("no SOF0 marker")
	}
	binary.BigEndian.PutUint16(out[i+5:], uint16(h))
	binary.BigEndian.PutUint16(out[i+7:], uint16(w))
	return out
}

// patchPNGSize rewrites IHDR's width and height and its CRC.
func patchPNGSize(data []byte, w, h uint32) []byte {
	out := append([]byte{}, data...)
	binary.BigEndian.PutUint32(out[16:], w)
	binary.BigEndian.PutUint32(out[20:], h)
	binary.BigEndian.PutUint32(out[29:], crc32.ChecksumIEEE(out[12:29]))
	return out
}

func TestHostileInputs(t *testing.T) {
	smallJPEG := encodeJPEG(t, testPicture(16, 16), 50)
	smallPNG := encodePNG(t, testPicture(16, 16))
	webpLossless, err := os.ReadFile(firstFixture(t, "*.webp"))
	if err != nil {
		t.Fatal(err)
	}
	bigJPEG := patchJPEGSize(t, smallJPEG, 65500, 65500)
	if len(bigJPEG) > 1000 {
		t.Fatalf("the big-header JPEG is %d bytes; the point is a tiny file", len(bigJPEG))
	}
	badCRC := append([]byte{}, smallPNG...)
	badCRC[len(badCRC)-20] ^= 0xFF // inside the IDAT data: zlib or CRC must catch it

	tests := []struct {
		name    string
		data    []byte
		limits  Limits
		want    error
		message string // a substring the message must contain
	}{
		{"empty", nil, DefaultLimits(), ErrEmpty, "empty"},
		{"over max bytes", smallPNG, Limits{MaxBytes: 100, MaxPixels: 1 << 20, MaxSide: 4096, MinSide: 1}, ErrTooLarge, "limit of 100"},
		{"html named .jpg", []byte("<!DOCTYPE html><html><body>hi</body></html>"), DefaultLimits(), ErrUnsupportedFormat, "HTML"},
		{"svg", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>`), DefaultLimits(), ErrUnsupportedFormat, "SVG"},
		{"gif", []byte("GIF89a\x10\x00\x10\x00\x00\x00\x00;"), DefaultLimits(), ErrUnsupportedFormat, "GIF"},
		{"text", []byte("hello"), DefaultLimits(), ErrUnsupportedFormat, "signature"},
		{"png signature then html", append(append([]byte{}, pngSignature...), "<html>"...), DefaultLimits(), ErrCorrupt, ""},
		{"jpeg signature then html", append([]byte{0xFF, 0xD8, 0xFF}, "<html><script>"...), DefaultLimits(), ErrCorrupt, ""},
		{"600-byte jpeg declaring 65500x65500", bigJPEG, DefaultLimits(), ErrTooManyPixels, "65500"},
		{"png declaring 100000x100000", patchPNGSize(smallPNG, 100000, 100000), DefaultLimits(), ErrTooManyPixels, "100000"},
		{"png declaring 2^31 wide", patchPNGSize(smallPNG, 1<<31, 1), DefaultLimits(), nil, ""},
		{"png declaring 0 wide", patchPNGSize(smallPNG, 0, 16), DefaultLimits(), ErrCorrupt, ""},
		{"tiny image", encodePNG(t, testPicture(4, 4)), DefaultLimits(), ErrTooSmall, "minimum of 8"},
		{"jpeg truncated", smallJPEG[:len(smallJPEG)/2], DefaultLimits(), ErrCorrupt, ""},
		{"png truncated", smallPNG[:len(smallPNG)-30], DefaultLimits(), ErrCorrupt, ""},
		{"png corrupt idat", badCRC, DefaultLimits(), ErrCorrupt, ""},
		{"webp truncated", webpLossless[:len(webpLossless)*2/3], DefaultLimits(), ErrCorrupt, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, ImageNetSpec(), tt.limits)
			_, _, err := process(t, p, tt.data)
			if err == nil {
				t.Fatal("Process succeeded, want an error")
			}
			if tt.want == nil { // any typed error will do
				if kindOf(err) == nil {
					t.Fatalf("error %q wraps none of the package's kinds", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error = %q, want it to wrap %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error = %q, want it to mention %q", err, tt.message)
			}
		})
	}
}

// Declared sizes are refused from the header: a huge declaration costs neither
// memory nor decoding time.
func TestHugeDeclarationAllocatesNothing(t *testing.T) {
	p := mustNew(t, ImageNetSpec(), DefaultLimits())
	small := encodeJPEG(t, testPicture(16, 16), 50)
	inputs := map[string][]byte{
		"jpeg": patchJPEGSize(t, small, 65500, 65500),
		"png":  patchPNGSize(encodePNG(t, testPicture(16, 16)), 100000, 100000),
	}
	dst := make([]byte, p.TensorBytes())
	for name, data := range inputs {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range 10 {
			if _, err := p.Process(data, dst); !errors.Is(err, ErrTooManyPixels) {
				t.Fatalf("%s: error = %v, want ErrTooManyPixels", name, err)
			}
		}
		runtime.ReadMemStats(&after)
		if perCall := (after.TotalAlloc - before.TotalAlloc) / 10; perCall > 64<<10 {
			t.Errorf("%s: %d bytes allocated per refused call, want under 64 KiB", name, perCall)
		}
	}
}

// Every prefix of a valid file either fails with a typed error or (for prefixes
// that happen to be complete) succeeds; none panics.
func TestTruncationAtEveryOffset(t *testing.T) {
	files := map[string][]byte{
		"jpeg": encodeJPEG(t, testPicture(24, 16), 80),
		"png":  encodePNG(t, testPicture(24, 16)),
	}
	if webp, err := os.ReadFile(firstFixture(t, "*.webp")); err == nil && len(webp) < 64<<10 {
		files["webp"] = webp
	}
	p := mustNew(t, pixelSpec(8, 8, FilterBilinear), DefaultLimits())
	dst := make([]byte, p.TensorBytes())
	for name, data := range files {
		step := max(1, len(data)/400)
		for n := 0; n < len(data); n += step {
			if _, err := p.Process(data[:n], dst); err != nil && kindOf(err) == nil {
				t.Fatalf("%s cut at %d: untyped error %q", name, n, err)
			}
		}
	}
}

// Process is safe for concurrent use and gives every caller the same tensor.
func TestConcurrentProcess(t *testing.T) {
	p := mustNew(t, ImageNetSpec(), DefaultLimits())
	inputs := [][]byte{encodeJPEG(t, testPicture(300, 200), 90), encodePNG(t, testPicture(123, 77))}
	want := make([][]byte, len(inputs))
	for i, in := range inputs {
		var err error
		if want[i], _, err = process(t, p, in); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([]byte, p.TensorBytes())
			for i := range 20 {
				k := (g + i) % len(inputs)
				if _, err := p.Process(inputs[k], dst); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(dst, want[k]) {
					errs <- fmt.Errorf("goroutine %d: input %d gave a different tensor", g, k)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestProcessChecksDestination(t *testing.T) {
	p := mustNew(t, ImageNetSpec(), DefaultLimits())
	if _, err := p.Process(encodePNG(t, testPicture(16, 16)), make([]byte, 10)); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("short destination: error = %v, want ErrInvalidSpec", err)
	}
	if _, err := New(Spec{}, DefaultLimits()); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("New(zero Spec): error = %v, want ErrInvalidSpec", err)
	}
}

// The fast path decodes large JPEGs at a reduced DCT scale and says so.
func TestDCTScaling(t *testing.T) {
	data := encodeJPEG(t, testPicture(1024, 768), 90)
	spec := ImageNetSpec()
	spec.Resize, spec.ShorterSide = ResizeStretch, 0
	exact := mustNew(t, spec, DefaultLimits())
	spec.AllowDCTScaling = true
	fast := mustNew(t, spec, DefaultLimits())
	a, infoA, err := process(t, exact, data)
	if err != nil {
		t.Fatal(err)
	}
	b, infoB, err := process(t, fast, data)
	if err != nil {
		t.Fatal(err)
	}
	if infoA.DecodedWidth != 1024 || infoA.DecodedHeight != 768 {
		t.Errorf("exact path decoded %d×%d, want the full 1024×768", infoA.DecodedWidth, infoA.DecodedHeight)
	}
	// 768 × 1/4 = 192 is too few for 224 rows, so 1/2 (3/8 would cover them, but
	// libjpeg-turbo decodes odd eighths more slowly than the full size).
	wantW, wantH := 512, 384
	if jpegBackend == "image/jpeg" {
		wantW, wantH = 1024, 768 // no DCT scaling in the standard library
	}
	if infoB.DecodedWidth != wantW || infoB.DecodedHeight != wantH {
		t.Errorf("fast path decoded %d×%d, want %d×%d", infoB.DecodedWidth, infoB.DecodedHeight, wantW, wantH)
	}
	// Both are the same picture: the tensors agree closely on average.
	fa, fb := decodeFP32(a), decodeFP32(b)
	var sum float64
	for i := range fa {
		d := float64(fa[i] - fb[i])
		sum += d * d
	}
	if rms := sum / float64(len(fa)); rms > 0.01 {
		t.Errorf("fast and exact tensors differ: mean squared difference %.4f", rms)
	}
}

// firstFixture returns the first parity input matching pattern.
func firstFixture(t testing.TB, pattern string) string {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(parityDir, "inputs", pattern))
	if len(matches) == 0 {
		t.Fatalf("no parity input matches %s (run 'make fixtures')", pattern)
	}
	return matches[0]
}
