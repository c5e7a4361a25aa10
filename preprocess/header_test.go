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
	"testing"
	"time"
)

// ---- shared checks ----

var hdrSentinels = []error{ErrEmpty, ErrTooLarge, ErrUnsupportedFormat, ErrTooManyPixels, ErrTooSmall, ErrCorrupt, ErrInvalidSpec}

// hdrCheckErr fails unless err wraps want and no other sentinel. A nil want means
// err must be nil.
func hdrCheckErr(tb testing.TB, err, want error) {
	tb.Helper()
	if want == nil {
		if err != nil {
			tb.Errorf("err = %v, want nil", err)
		}
		return
	}
	if !errors.Is(err, want) {
		tb.Errorf("err = %v, want one wrapping %v", err, want)
		return
	}
	for _, s := range hdrSentinels {
		if s != want && errors.Is(err, s) {
			tb.Errorf("err = %v wraps %v as well as %v", err, s, want)
		}
	}
}

// hdrOneSentinel fails unless err wraps exactly one sentinel, one of allowed.
func hdrOneSentinel(tb testing.TB, err error, allowed ...error) {
	tb.Helper()
	var found []error
	for _, s := range hdrSentinels {
		if errors.Is(err, s) {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		tb.Fatalf("err = %v wraps %d sentinel errors (%v), want exactly one", err, len(found), found)
	}
	for _, a := range allowed {
		if found[0] == a {
			return
		}
	}
	tb.Fatalf("err = %v wraps %v, want one of %v", err, found[0], allowed)
}

// hdrGradient is a small picture with some detail, in the colour model of m.
func hdrGradient(w, h int, model string) image.Image {
	r := image.Rect(0, 0, w, h)
	switch model {
	case "gray":
		m := image.NewGray(r)
		for y := range h {
			for x := range w {
				m.SetGray(x, y, color.Gray{uint8(x*255/w ^ y*17)})
			}
		}
		return m
	case "gray16":
		m := image.NewGray16(r)
		for y := range h {
			for x := range w {
				m.SetGray16(x, y, color.Gray16{uint16(x*65535/w ^ y*1000)})
			}
		}
		return m
	case "paletted":
		m := image.NewPaletted(r, color.Palette{color.Black, color.White})
		for y := range h {
			for x := range w {
				m.SetColorIndex(x, y, uint8((x+y)&1))
			}
		}
		return m
	}
	m := image.NewNRGBA(r)
	for y := range h {
		for x := range w {
			m.SetNRGBA(x, y, color.NRGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8(x ^ y), uint8(255 - x)})
		}
	}
	return m
}

// ---- JPEG helpers ----

func hdrJPEG(tb testing.TB, img image.Image) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 75}); err != nil {
		tb.Fatalf("jpeg.Encode: %v", err)
	}
	return buf.Bytes()
}

// hdrSegment is a JPEG marker segment: 0xFF, marker, length, payload.
func hdrSegment(marker byte, payload []byte) []byte {
	b := []byte{0xFF, marker, 0, 0}
	binary.BigEndian.PutUint16(b[2:], uint16(len(payload)+2))
	return append(b, payload...)
}

// hdrAPP1Exif is an APP1 segment carrying EXIF with the given TIFF block.
func hdrAPP1Exif(tiff []byte) []byte {
	return hdrSegment(0xE1, append([]byte(exifAPP1Prefix), tiff...))
}

// hdrInsert returns a copy of b with ins inserted at offset at.
func hdrInsert(b []byte, at int, ins ...[]byte) []byte {
	out := append([]byte(nil), b[:at]...)
	for _, x := range ins {
		out = append(out, x...)
	}
	return append(out, b[at:]...)
}

// hdrJPEGSOF returns the offset of the 0xFF of the first SOF0..SOF15 marker of a
// JPEG written by image/jpeg (no fill bytes, no stray data), and the offset just
// after its segment.
func hdrJPEGSOF(tb testing.TB, b []byte) (at, end int) {
	tb.Helper()
	for p := 2; p+4 <= len(b); {
		if b[p] != 0xFF {
			tb.Fatalf("hdrJPEGSOF: no marker at offset %d", p)
		}
		m, n := b[p+1], int(binary.BigEndian.Uint16(b[p+2:]))
		if m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC {
			return p, p + 2 + n
		}
		p += 2 + n
	}
	tb.Fatalf("hdrJPEGSOF: no SOF")
	return 0, 0
}

// hdrWithSOF returns a copy of a JPEG with its SOF segment edited by edit, which
// receives the whole segment from 0xFF on (marker at 1, length at 2, precision at
// 4, height at 5, width at 7, component count at 9, components from 10).
func hdrWithSOF(tb testing.TB, b []byte, edit func(sof []byte)) []byte {
	tb.Helper()
	b = append([]byte(nil), b...)
	at, end := hdrJPEGSOF(tb, b)
	edit(b[at:end])
	return b
}

// hdrSOF is a hand-made SOFn segment with nc components, each sampled 1×1 with
// quantisation table 0.
func hdrSOF(marker byte, precision, w, h, nc int) []byte {
	p := []byte{byte(precision), byte(h >> 8), byte(h), byte(w >> 8), byte(w), byte(nc)}
	for c := range nc {
		p = append(p, byte(c+1), 0x11, 0)
	}
	return hdrSegment(marker, p)
}

type jpegCase struct {
	name                string
	data                []byte
	w, h, comps, orient int
	err                 error
}

// jpegCases are the unit-test table of jpegInfo, also the seed corpus of FuzzJPEGInfo.
func jpegCases(tb testing.TB) []jpegCase {
	tb.Helper()
	le, be := binary.LittleEndian, binary.BigEndian
	gray := hdrJPEG(tb, hdrGradient(16, 8, "gray"))
	rgb := hdrJPEG(tb, hdrGradient(17, 9, "rgb"))
	soi := []byte{0xFF, 0xD8}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	_, rgbSOFEnd := hdrJPEGSOF(tb, rgb)

	cases := []jpegCase{
		{name: "gray", data: gray, w: 16, h: 8, comps: 1, orient: 1},
		{name: "rgb", data: rgb, w: 17, h: 9, comps: 3, orient: 1},
		{name: "declares 65500x65500", data: hdrWithSOF(tb, rgb, func(s []byte) {
			be.PutUint16(s[5:], 65500)
			be.PutUint16(s[7:], 65500)
		}), w: 65500, h: 65500, comps: 3, orient: 1},
		{name: "declares 65535x65535", data: hdrWithSOF(tb, gray, func(s []byte) {
			be.PutUint16(s[5:], 65535)
			be.PutUint16(s[7:], 65535)
		}), w: 65535, h: 65535, comps: 1, orient: 1},
		{name: "4 components (CMYK)", data: cat(soi, hdrSOF(0xC0, 8, 20, 10, 4)), w: 20, h: 10, comps: 4, orient: 1},
		{name: "SOF only, nothing after", data: cat(soi, hdrSOF(0xC2, 8, 3, 2, 3)), w: 3, h: 2, comps: 3, orient: 1},
		{name: "sampling 4x4", data: cat(soi, hdrSegment(0xC0, []byte{8, 0, 8, 0, 8, 1, 1, 0x44, 3})), w: 8, h: 8, comps: 1, orient: 1},

		// EXIF
		{name: "exif II 6", data: hdrInsert(rgb, 2, hdrAPP1Exif(hdrOrientationTIFF(tb, le, 6))), w: 17, h: 9, comps: 3, orient: 6},
		{name: "exif MM 8", data: hdrInsert(rgb, 2, hdrAPP1Exif(hdrOrientationTIFF(tb, be, 8))), w: 17, h: 9, comps: 3, orient: 8},
		{name: "exif orientation 0", data: hdrInsert(gray, 2, hdrAPP1Exif(hdrOrientationTIFF(tb, le, 0))), w: 16, h: 8, comps: 1, orient: 1},
		{name: "exif orientation 9", data: hdrInsert(gray, 2, hdrAPP1Exif(hdrOrientationTIFF(tb, be, 9))), w: 16, h: 8, comps: 1, orient: 1},
		{name: "exif after JFIF APP0", data: hdrInsert(rgb, 2,
			hdrSegment(0xE0, []byte("JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")),
			hdrAPP1Exif(hdrOrientationTIFF(tb, be, 3))), w: 17, h: 9, comps: 3, orient: 3},
		{name: "first exif wins", data: hdrInsert(rgb, 2,
			hdrAPP1Exif(hdrOrientationTIFF(tb, le, 5)),
			hdrAPP1Exif(hdrOrientationTIFF(tb, le, 7))), w: 17, h: 9, comps: 3, orient: 5},
		{name: "unreadable first exif still wins", data: hdrInsert(rgb, 2,
			hdrAPP1Exif([]byte("garbage")),
			hdrAPP1Exif(hdrOrientationTIFF(tb, le, 7))), w: 17, h: 9, comps: 3, orient: 1},
		{name: "XMP APP1 then exif", data: hdrInsert(rgb, 2,
			hdrSegment(0xE1, []byte("http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta/>")),
			hdrAPP1Exif(hdrOrientationTIFF(tb, be, 2))), w: 17, h: 9, comps: 3, orient: 2},
		{name: "exif in APP2 ignored", data: hdrInsert(rgb, 2,
			hdrSegment(0xE2, append([]byte(exifAPP1Prefix), hdrOrientationTIFF(tb, le, 6)...))), w: 17, h: 9, comps: 3, orient: 1},
		{name: "exif after the frame ignored", data: hdrInsert(rgb, rgbSOFEnd, hdrAPP1Exif(hdrOrientationTIFF(tb, le, 6))),
			w: 17, h: 9, comps: 3, orient: 1},
		{name: "exif prefix alone", data: hdrInsert(rgb, 2, hdrSegment(0xE1, []byte(exifAPP1Prefix))), w: 17, h: 9, comps: 3, orient: 1},
		{name: "exif with outside IFD offset", data: hdrInsert(rgb, 2, hdrAPP1Exif([]byte("MM\x00*\x7F\xFF\xFF\xFF"))), w: 17, h: 9, comps: 3, orient: 1},
		{name: "exif with IFD count 0xFFFF", data: hdrInsert(rgb, 2, hdrAPP1Exif([]byte("II*\x00\x08\x00\x00\x00\xFF\xFF"))), w: 17, h: 9, comps: 3, orient: 1},
		{name: "empty APP1", data: hdrInsert(rgb, 2, hdrSegment(0xE1, nil)), w: 17, h: 9, comps: 3, orient: 1},

		// Tolerated oddities
		{name: "fill bytes before a marker", data: hdrInsert(rgb, 2, []byte{0xFF, 0xFF, 0xFF}), w: 17, h: 9, comps: 3, orient: 1},
		{name: "stray bytes between segments", data: hdrInsert(rgb, 2, []byte{0x00, 0x12, 0x34}), w: 17, h: 9, comps: 3, orient: 1},
		{name: "stuffed zero between segments", data: hdrInsert(rgb, 2, []byte{0xFF, 0x00}), w: 17, h: 9, comps: 3, orient: 1},
		{name: "RST and TEM before the frame", data: hdrInsert(rgb, 2, []byte{0xFF, 0xD0, 0xFF, 0xD7, 0xFF, 0x01}), w: 17, h: 9, comps: 3, orient: 1},
		{name: "DNL, DRI, COM before the frame", data: hdrInsert(gray, 2,
			hdrSegment(0xDC, []byte{0, 8}), hdrSegment(0xDD, []byte{0, 4}), hdrSegment(0xFE, []byte("hi"))), w: 16, h: 8, comps: 1, orient: 1},
		{name: "segment length 2", data: hdrInsert(gray, 2, hdrSegment(0xE5, nil)), w: 16, h: 8, comps: 1, orient: 1},

		// Errors
		{name: "nil", data: nil, err: ErrEmpty},
		{name: "not a JPEG", data: []byte("GIF89a\x01\x00\x01\x00"), err: ErrUnsupportedFormat},
		{name: "PNG", data: []byte("\x89PNG\r\n\x1a\n"), err: ErrUnsupportedFormat},
		{name: "one byte of SOI", data: []byte{0xFF}, err: ErrCorrupt},
		{name: "SOI only", data: soi, err: ErrCorrupt},
		{name: "SOI and fill bytes", data: []byte{0xFF, 0xD8, 0xFF, 0xFF}, err: ErrCorrupt},
		{name: "SOI and garbage", data: cat(soi, bytes.Repeat([]byte{0x55}, 1000)), err: ErrCorrupt},
		{name: "zero segment length", data: hdrInsert(rgb, 2, []byte{0xFF, 0xE0, 0x00, 0x00}), err: ErrCorrupt},
		{name: "segment length 1", data: hdrInsert(rgb, 2, []byte{0xFF, 0xE0, 0x00, 0x01}), err: ErrCorrupt},
		{name: "segment length past the end", data: cat(soi, []byte{0xFF, 0xE1, 0xFF, 0xFF}, []byte(exifAPP1Prefix)), err: ErrCorrupt},
		{name: "length cut", data: cat(soi, []byte{0xFF, 0xDB, 0x00}), err: ErrCorrupt},
		{name: "SOS before SOF", data: cat(soi, hdrSegment(0xDA, []byte{1, 1, 0, 0, 63, 0})), err: ErrCorrupt},
		{name: "EOI before SOF", data: cat(soi, []byte{0xFF, 0xD9}), err: ErrCorrupt},
		{name: "second SOI", data: cat(soi, soi, hdrSOF(0xC0, 8, 1, 1, 1)), err: ErrCorrupt},
		{name: "reserved marker 0x02", data: cat(soi, hdrSegment(0x02, nil), hdrSOF(0xC0, 8, 1, 1, 1)), err: ErrCorrupt},
		{name: "reserved marker 0xBF", data: cat(soi, hdrSegment(0xBF, nil), hdrSOF(0xC0, 8, 1, 1, 1)), err: ErrCorrupt},
		{name: "JPEG-LS SOF55", data: cat(soi, hdrSOF(0xF7, 8, 1, 1, 1)), err: ErrUnsupportedFormat},
		{name: "DHP (hierarchical)", data: cat(soi, hdrSegment(0xDE, []byte{8, 0, 1, 0, 1, 1, 1, 0x11, 0}), hdrSOF(0xC5, 8, 1, 1, 1)), err: ErrUnsupportedFormat},
		{name: "12-bit precision", data: hdrWithSOF(tb, rgb, func(s []byte) { s[1], s[4] = 0xC1, 12 }), err: ErrUnsupportedFormat},
		{name: "16-bit lossless", data: cat(soi, hdrSOF(0xC3, 16, 1, 1, 1)), err: ErrUnsupportedFormat},
		{name: "2 components", data: cat(soi, hdrSOF(0xC0, 8, 4, 4, 2)), err: ErrUnsupportedFormat},
		{name: "0 components", data: cat(soi, hdrSOF(0xC0, 8, 4, 4, 0)), err: ErrUnsupportedFormat},
		{name: "255 components", data: cat(soi, hdrSegment(0xC0, []byte{8, 0, 4, 0, 4, 255})), err: ErrUnsupportedFormat},
		{name: "height 0 (DNL)", data: hdrWithSOF(tb, rgb, func(s []byte) { be.PutUint16(s[5:], 0) }), err: ErrUnsupportedFormat},
		{name: "width 0", data: hdrWithSOF(tb, rgb, func(s []byte) { be.PutUint16(s[7:], 0) }), err: ErrCorrupt},
		{name: "SOF too short", data: cat(soi, hdrSegment(0xC0, []byte{8, 0, 4, 0, 4})), err: ErrCorrupt},
		{name: "SOF length for 1 component, 3 declared", data: cat(soi, hdrSegment(0xC0, []byte{8, 0, 4, 0, 4, 3, 1, 0x11, 0})), err: ErrCorrupt},
		{name: "SOF length too long", data: cat(soi, hdrSegment(0xC0, []byte{8, 0, 4, 0, 4, 1, 1, 0x11, 0, 0})), err: ErrCorrupt},
		{name: "sampling factor 0", data: cat(soi, hdrSegment(0xC0, []byte{8, 0, 4, 0, 4, 1, 1, 0x01, 0})), err: ErrCorrupt},
		{name: "sampling factor 5", data: cat(soi, hdrSegment(0xC0, []byte{8, 0, 4, 0, 4, 1, 1, 0x15, 0})), err: ErrCorrupt},
		{name: "quantisation table 4", data: cat(soi, hdrSegment(0xC0, []byte{8, 0, 4, 0, 4, 1, 1, 0x11, 4})), err: ErrCorrupt},
		{name: "SOF cut in its payload", data: hdrWithSOF(tb, rgb, func(s []byte) {})[:rgbSOFEnd-1], err: ErrCorrupt},
	}

	// Every SOFn marker type.
	for m := 0xC0; m <= 0xCF; m++ {
		var want error
		switch m {
		case 0xC4, 0xCC: // DHT, DAC: not frames; the walk goes on to SOS
			want = ErrCorrupt
		case 0xC0, 0xC1, 0xC2, 0xC9, 0xCA:
		default: // lossless, hierarchical, JPG
			want = ErrUnsupportedFormat
		}
		c := jpegCase{name: fmt.Sprintf("marker 0x%02X", m), data: hdrWithSOF(tb, rgb, func(s []byte) { s[1] = byte(m) }), err: want}
		if want == nil {
			c.w, c.h, c.comps, c.orient = 17, 9, 3, 1
		}
		cases = append(cases, c)
	}
	// Every orientation in both byte orders.
	for _, bo := range []binary.ByteOrder{le, be} {
		for n := uint16(1); n <= 8; n++ {
			cases = append(cases, jpegCase{name: fmt.Sprintf("exif %s %d", hdrOrderName(bo), n),
				data: hdrInsert(gray, 2, hdrAPP1Exif(hdrOrientationTIFF(tb, bo, n))), w: 16, h: 8, comps: 1, orient: int(n)})
		}
	}
	return cases
}

func TestJPEGInfo(t *testing.T) {
	for _, tc := range jpegCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			w, h, comps, orient, err := jpegInfo(tc.data)
			hdrCheckErr(t, err, tc.err)
			if tc.err != nil {
				if orient != 1 {
					t.Errorf("orientation = %d with an error, want 1", orient)
				}
				return
			}
			if w != tc.w || h != tc.h || comps != tc.comps || orient != tc.orient {
				t.Errorf("jpegInfo = %d×%d, %d components, orientation %d; want %d×%d, %d, %d",
					w, h, comps, orient, tc.w, tc.h, tc.comps, tc.orient)
			}
		})
	}
}

// TestJPEGInfoAgreesWithImageJPEG checks the size and component count against the
// standard library on real files.
func TestJPEGInfoAgreesWithImageJPEG(t *testing.T) {
	for _, tc := range []struct {
		name  string
		img   image.Image
		comps int
	}{
		{"gray", hdrGradient(31, 7, "gray"), 1},
		{"rgb", hdrGradient(5, 40, "rgb"), 3},
		{"rgb 1x1", hdrGradient(1, 1, "rgb"), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := hdrJPEG(t, tc.img)
			cfg, err := jpeg.DecodeConfig(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("jpeg.DecodeConfig: %v", err)
			}
			w, h, comps, _, err := jpegInfo(data)
			if err != nil {
				t.Fatalf("jpegInfo: %v", err)
			}
			if w != cfg.Width || h != cfg.Height || comps != tc.comps {
				t.Errorf("jpegInfo = %d×%d, %d components; image/jpeg says %d×%d, want %d components", w, h, comps, cfg.Width, cfg.Height, tc.comps)
			}
		})
	}
}

// TestJPEGInfoTruncated cuts a small JPEG with EXIF at every offset: no panic, and
// either an error or the full file's answer (once the frame header is complete).
func TestJPEGInfoTruncated(t *testing.T) {
	full := hdrInsert(hdrJPEG(t, hdrGradient(12, 10, "rgb")), 2, hdrAPP1Exif(hdrOrientationTIFF(t, binary.BigEndian, 6)))
	_, sofEnd := hdrJPEGSOF(t, full)
	for i := 0; i <= len(full); i++ {
		w, h, comps, orient, err := jpegInfo(full[:i])
		switch {
		case err != nil:
			hdrOneSentinel(t, err, ErrEmpty, ErrCorrupt)
			if i >= sofEnd {
				t.Errorf("cut at %d (frame header ends at %d): %v", i, sofEnd, err)
			}
		case i < sofEnd:
			t.Errorf("cut at %d, inside or before the frame header ending at %d: no error", i, sofEnd)
		case w != 12 || h != 10 || comps != 3 || orient != 6:
			t.Errorf("cut at %d: %d×%d, %d components, orientation %d; want 12×10, 3, 6", i, w, h, comps, orient)
		}
	}
}

func TestJPEGInfoAllocs(t *testing.T) {
	data := hdrInsert(hdrJPEG(t, hdrGradient(12, 10, "rgb")), 2, hdrAPP1Exif(hdrOrientationTIFF(t, binary.LittleEndian, 3)))
	if n := testing.AllocsPerRun(100, func() { jpegInfo(data) }); n != 0 {
		t.Errorf("jpegInfo allocates %v times a call, want 0", n)
	}
}

// TestJPEGInfoHugeGarbageIsLinear feeds megabytes of stray bytes and fill bytes: the
// walk must stay linear.
func TestJPEGInfoHugeGarbageIsLinear(t *testing.T) {
	for _, fill := range []byte{0x00, 0xFF} {
		data := append([]byte{0xFF, 0xD8}, bytes.Repeat([]byte{fill}, 8<<20)...)
		start := time.Now()
		_, _, _, _, err := jpegInfo(data)
		hdrCheckErr(t, err, ErrCorrupt)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("8 MiB of 0x%02X took %v", fill, d)
		}
	}
}

func FuzzJPEGInfo(f *testing.F) {
	for _, tc := range jpegCases(f) {
		f.Add(tc.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		w, h, comps, orient, err := jpegInfo(data)
		if orient < 1 || orient > 8 {
			t.Fatalf("orientation %d", orient)
		}
		if err != nil {
			hdrOneSentinel(t, err, ErrEmpty, ErrCorrupt, ErrUnsupportedFormat)
			return
		}
		if w < 1 || w > 65535 || h < 1 || h > 65535 || (comps != 1 && comps != 3 && comps != 4) {
			t.Fatalf("jpegInfo = %d×%d, %d components, no error", w, h, comps)
		}
	})
}

// ---- PNG helpers ----

func hdrPNG(tb testing.TB, img image.Image) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		tb.Fatalf("png.Encode: %v", err)
	}
	return buf.Bytes()
}

// hdrPNGChunk is a complete PNG chunk with a correct CRC.
func hdrPNGChunk(typ string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	b = append(b, typ...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
}

// hdrPNGChunkAt returns the offset of the first chunk of type typ.
func hdrPNGChunkAt(tb testing.TB, b []byte, typ string) int {
	tb.Helper()
	for p := 8; p+8 <= len(b); p += 12 + int(binary.BigEndian.Uint32(b[p:])) {
		if string(b[p+4:p+8]) == typ {
			return p
		}
	}
	tb.Fatalf("no %s chunk", typ)
	return 0
}

// hdrWithIHDR returns a copy of a PNG whose IHDR data (13 bytes: width, height,
// depth, colour type, compression, filter, interlace) is edited by edit, with the
// CRC made right again.
func hdrWithIHDR(tb testing.TB, b []byte, edit func(ihdr []byte)) []byte {
	tb.Helper()
	b = append([]byte(nil), b...)
	edit(b[16:29])
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

type pngCase struct {
	name                           string
	data                           []byte
	w, h, depth, colorType, orient int
	err                            error
}

// pngCases are the unit-test table of pngInfo, also the seed corpus of FuzzPNGInfo.
func pngCases(tb testing.TB) []pngCase {
	tb.Helper()
	le, be := binary.LittleEndian, binary.BigEndian
	rgba := hdrPNG(tb, hdrGradient(17, 9, "rgb"))
	gray := hdrPNG(tb, hdrGradient(16, 8, "gray"))
	idat := hdrPNGChunkAt(tb, rgba, "IDAT")
	iend := hdrPNGChunkAt(tb, rgba, "IEND")
	exif := func(n uint16, bo binary.ByteOrder) []byte { return hdrPNGChunk("eXIf", hdrOrientationTIFF(tb, bo, n)) }
	sig := rgba[:8]
	ihdr := rgba[8:33]
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	badCRC := exif(6, le)
	badCRC[len(badCRC)-1] ^= 1
	withDepth := func(depth, ct byte) []byte {
		return hdrWithIHDR(tb, gray, func(h []byte) { h[8], h[9] = depth, ct })
	}

	cases := []pngCase{
		{name: "rgba", data: rgba, w: 17, h: 9, depth: 8, colorType: 6, orient: 1},
		{name: "gray", data: gray, w: 16, h: 8, depth: 8, colorType: 0, orient: 1},
		{name: "gray16", data: hdrPNG(tb, hdrGradient(3, 5, "gray16")), w: 3, h: 5, depth: 16, colorType: 0, orient: 1},
		{name: "paletted 1-bit", data: hdrPNG(tb, hdrGradient(9, 9, "paletted")), w: 9, h: 9, depth: 1, colorType: 3, orient: 1},
		{name: "interlaced flag", data: hdrWithIHDR(tb, gray, func(h []byte) { h[12] = 1 }), w: 16, h: 8, depth: 8, colorType: 0, orient: 1},
		{name: "declares 100000x100000", data: hdrWithIHDR(tb, rgba, func(h []byte) {
			be.PutUint32(h[0:], 100000)
			be.PutUint32(h[4:], 100000)
		}), w: 100000, h: 100000, depth: 8, colorType: 6, orient: 1},
		{name: "declares 2^31-1 square", data: hdrWithIHDR(tb, rgba, func(h []byte) {
			be.PutUint32(h[0:], 1<<31-1)
			be.PutUint32(h[4:], 1<<31-1)
		}), w: 1<<31 - 1, h: 1<<31 - 1, depth: 8, colorType: 6, orient: 1},
		{name: "cut inside IDAT", data: rgba[:idat+9], w: 17, h: 9, depth: 8, colorType: 6, orient: 1},
		{name: "IDAT length past the end", data: cat(sig, ihdr, []byte{0x7F, 0xFF, 0xFF, 0xFF}, []byte("IDAT")), w: 17, h: 9, depth: 8, colorType: 6, orient: 1},

		// eXIf
		{name: "eXIf II 6", data: hdrInsert(rgba, idat, exif(6, le)), w: 17, h: 9, depth: 8, colorType: 6, orient: 6},
		{name: "eXIf MM 8", data: hdrInsert(rgba, idat, exif(8, be)), w: 17, h: 9, depth: 8, colorType: 6, orient: 8},
		{name: "eXIf right after IHDR", data: hdrInsert(rgba, 33, exif(3, be)), w: 17, h: 9, depth: 8, colorType: 6, orient: 3},
		{name: "eXIf with Exif prefix", data: hdrInsert(rgba, idat,
			hdrPNGChunk("eXIf", append([]byte(exifAPP1Prefix), hdrOrientationTIFF(tb, le, 5)...))), w: 17, h: 9, depth: 8, colorType: 6, orient: 5},
		{name: "eXIf orientation 0", data: hdrInsert(rgba, idat, exif(0, le)), w: 17, h: 9, depth: 8, colorType: 6, orient: 1},
		{name: "eXIf orientation 9", data: hdrInsert(rgba, idat, exif(9, be)), w: 17, h: 9, depth: 8, colorType: 6, orient: 1},
		{name: "eXIf after IDAT ignored", data: hdrInsert(rgba, iend, exif(6, le)), w: 17, h: 9, depth: 8, colorType: 6, orient: 1},
		{name: "second eXIf wins", data: hdrInsert(rgba, idat, exif(6, le), exif(7, be)), w: 17, h: 9, depth: 8, colorType: 6, orient: 7},
		{name: "empty eXIf", data: hdrInsert(rgba, idat, hdrPNGChunk("eXIf", nil)), w: 17, h: 9, depth: 8, colorType: 6, orient: 1},
		{name: "eXIf with outside IFD offset", data: hdrInsert(rgba, idat, hdrPNGChunk("eXIf", []byte("II*\x00\xF0\xFF\xFF\xFF"))), w: 17, h: 9, depth: 8, colorType: 6, orient: 1},
		{name: "eXIf with IFD count 0xFFFF", data: hdrInsert(rgba, idat, hdrPNGChunk("eXIf", []byte("MM\x00*\x00\x00\x00\x08\xFF\xFF"))), w: 17, h: 9, depth: 8, colorType: 6, orient: 1},
		{name: "eXIf after other chunks", data: hdrInsert(rgba, idat,
			hdrPNGChunk("gAMA", []byte{0, 0, 0xB1, 0x8F}), hdrPNGChunk("tEXt", []byte("k\x00v")), exif(4, le), hdrPNGChunk("pHYs", make([]byte, 9))),
			w: 17, h: 9, depth: 8, colorType: 6, orient: 4},
		{name: "eXIf bad CRC", data: hdrInsert(rgba, idat, badCRC), err: ErrCorrupt},

		// Errors
		{name: "nil", data: nil, err: ErrEmpty},
		{name: "JPEG", data: []byte{0xFF, 0xD8, 0xFF, 0xE0}, err: ErrUnsupportedFormat},
		{name: "signature cut", data: sig[:5], err: ErrCorrupt},
		{name: "signature only", data: sig, err: ErrCorrupt},
		{name: "wrong signature byte", data: cat([]byte("\x89PNG\r\n\x1a\x0a"[:7]), []byte{0}, ihdr), err: ErrUnsupportedFormat},
		{name: "IHDR cut", data: rgba[:32], err: ErrCorrupt},
		{name: "IHDR only", data: rgba[:33], err: ErrCorrupt},
		{name: "IHDR CRC wrong", data: func() []byte { b := append([]byte(nil), rgba...); b[32] ^= 0x80; return b }(), err: ErrCorrupt},
		{name: "IHDR data changed, CRC not fixed", data: func() []byte { b := append([]byte(nil), rgba...); b[19] ^= 1; return b }(), err: ErrCorrupt},
		{name: "first chunk not IHDR", data: cat(sig, hdrPNGChunk("tEXt", []byte("a\x00b")), rgba[8:]), err: ErrCorrupt},
		{name: "IHDR of 14 bytes", data: cat(sig, hdrPNGChunk("IHDR", append(append([]byte(nil), rgba[16:29]...), 0)), rgba[33:]), err: ErrCorrupt},
		{name: "width 0", data: hdrWithIHDR(tb, rgba, func(h []byte) { be.PutUint32(h[0:], 0) }), err: ErrCorrupt},
		{name: "height 0", data: hdrWithIHDR(tb, rgba, func(h []byte) { be.PutUint32(h[4:], 0) }), err: ErrCorrupt},
		{name: "width 2^31", data: hdrWithIHDR(tb, rgba, func(h []byte) { be.PutUint32(h[0:], 1<<31) }), err: ErrCorrupt},
		{name: "height 0xFFFFFFFF", data: hdrWithIHDR(tb, rgba, func(h []byte) { be.PutUint32(h[4:], 0xFFFFFFFF) }), err: ErrCorrupt},
		{name: "compression method 1", data: hdrWithIHDR(tb, rgba, func(h []byte) { h[10] = 1 }), err: ErrCorrupt},
		{name: "filter method 1", data: hdrWithIHDR(tb, rgba, func(h []byte) { h[11] = 1 }), err: ErrCorrupt},
		{name: "interlace method 2", data: hdrWithIHDR(tb, rgba, func(h []byte) { h[12] = 2 }), err: ErrCorrupt},
		{name: "IEND before IDAT", data: cat(sig, ihdr, hdrPNGChunk("IEND", nil)), err: ErrCorrupt},
		{name: "second IHDR", data: cat(sig, ihdr, ihdr, rgba[33:]), err: ErrCorrupt},
		{name: "chunk length 2^31", data: cat(sig, ihdr, []byte{0x80, 0, 0, 0}, []byte("tEXt")), err: ErrCorrupt},
		{name: "chunk length 0xFFFFFFFF", data: cat(sig, ihdr, []byte{0xFF, 0xFF, 0xFF, 0xFF}, []byte("IDAT")), err: ErrCorrupt},
		{name: "chunk past the end", data: cat(sig, ihdr, hdrPNGChunk("tEXt", []byte("a\x00b"))[:14]), err: ErrCorrupt},
		{name: "no IDAT, no IEND", data: cat(sig, ihdr, hdrPNGChunk("tEXt", []byte("a\x00b"))), err: ErrCorrupt},
		{name: "chunk header cut", data: cat(sig, ihdr, []byte{0, 0, 0, 0, 'I', 'D'}), err: ErrCorrupt},
	}

	// Every bit depth with every colour type.
	valid := map[[2]byte]bool{
		{1, 0}: true, {2, 0}: true, {4, 0}: true, {8, 0}: true, {16, 0}: true,
		{8, 2}: true, {16, 2}: true,
		{1, 3}: true, {2, 3}: true, {4, 3}: true, {8, 3}: true,
		{8, 4}: true, {16, 4}: true,
		{8, 6}: true, {16, 6}: true,
	}
	for _, d := range []byte{0, 1, 2, 3, 4, 5, 8, 12, 16, 32} {
		for _, ct := range []byte{0, 1, 2, 3, 4, 5, 6, 7, 8} {
			c := pngCase{name: fmt.Sprintf("depth %d colour type %d", d, ct), data: withDepth(d, ct)}
			if valid[[2]byte{d, ct}] {
				c.w, c.h, c.depth, c.colorType, c.orient = 16, 8, int(d), int(ct), 1
			} else {
				c.err = ErrCorrupt
			}
			cases = append(cases, c)
		}
	}
	return cases
}

func TestPNGInfo(t *testing.T) {
	for _, tc := range pngCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			w, h, depth, ct, orient, err := pngInfo(tc.data)
			hdrCheckErr(t, err, tc.err)
			if tc.err != nil {
				if orient != 1 {
					t.Errorf("orientation = %d with an error, want 1", orient)
				}
				return
			}
			if w != tc.w || h != tc.h || depth != tc.depth || ct != tc.colorType || orient != tc.orient {
				t.Errorf("pngInfo = %d×%d, depth %d, colour type %d, orientation %d; want %d×%d, %d, %d, %d",
					w, h, depth, ct, orient, tc.w, tc.h, tc.depth, tc.colorType, tc.orient)
			}
		})
	}
}

func TestPNGInfoAgreesWithImagePNG(t *testing.T) {
	for _, model := range []string{"gray", "gray16", "paletted", "rgb"} {
		t.Run(model, func(t *testing.T) {
			data := hdrPNG(t, hdrGradient(13, 6, model))
			cfg, err := png.DecodeConfig(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("png.DecodeConfig: %v", err)
			}
			w, h, _, _, _, err := pngInfo(data)
			if err != nil {
				t.Fatalf("pngInfo: %v", err)
			}
			if w != cfg.Width || h != cfg.Height {
				t.Errorf("pngInfo = %d×%d, image/png says %d×%d", w, h, cfg.Width, cfg.Height)
			}
		})
	}
}

// TestPNGInfoTruncated cuts a PNG with eXIf at every offset: no panic, and either
// an error or the full answer (once the IDAT chunk header is reached).
func TestPNGInfoTruncated(t *testing.T) {
	base := hdrPNG(t, hdrGradient(12, 10, "rgb"))
	full := hdrInsert(base, hdrPNGChunkAt(t, base, "IDAT"), hdrPNGChunk("eXIf", hdrOrientationTIFF(t, binary.LittleEndian, 8)))
	ok := hdrPNGChunkAt(t, full, "IDAT") + 8
	for i := 0; i <= len(full); i++ {
		w, h, depth, ct, orient, err := pngInfo(full[:i])
		switch {
		case err != nil:
			hdrOneSentinel(t, err, ErrEmpty, ErrCorrupt)
			if i >= ok {
				t.Errorf("cut at %d (IDAT header ends at %d): %v", i, ok, err)
			}
		case i < ok:
			t.Errorf("cut at %d, before the IDAT header ending at %d: no error", i, ok)
		case w != 12 || h != 10 || depth != 8 || ct != 6 || orient != 8:
			t.Errorf("cut at %d: %d×%d depth %d colour type %d orientation %d; want 12×10, 8, 6, 8", i, w, h, depth, ct, orient)
		}
	}
}

func TestPNGInfoAllocs(t *testing.T) {
	base := hdrPNG(t, hdrGradient(12, 10, "rgb"))
	data := hdrInsert(base, hdrPNGChunkAt(t, base, "IDAT"), hdrPNGChunk("eXIf", hdrOrientationTIFF(t, binary.LittleEndian, 8)))
	if n := testing.AllocsPerRun(100, func() { pngInfo(data) }); n != 0 {
		t.Errorf("pngInfo allocates %v times a call, want 0", n)
	}
}

func FuzzPNGInfo(f *testing.F) {
	for _, tc := range pngCases(f) {
		f.Add(tc.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		w, h, depth, ct, orient, err := pngInfo(data)
		if orient < 1 || orient > 8 {
			t.Fatalf("orientation %d", orient)
		}
		if err != nil {
			hdrOneSentinel(t, err, ErrEmpty, ErrCorrupt, ErrUnsupportedFormat)
			return
		}
		if w < 1 || w > 1<<31-1 || h < 1 || h > 1<<31-1 || !pngValidDepth(depth, ct) {
			t.Fatalf("pngInfo = %d×%d, depth %d, colour type %d, no error", w, h, depth, ct)
		}
		// When the standard library reads the same header, it must agree.
		if cfg, err := png.DecodeConfig(bytes.NewReader(data)); err == nil && (cfg.Width != w || cfg.Height != h) {
			t.Fatalf("pngInfo = %d×%d, image/png.DecodeConfig = %d×%d", w, h, cfg.Width, cfg.Height)
		}
	})
}

// ---- WebP helpers ----

// hdrWebPChunk is a RIFF chunk: FourCC, little-endian size, payload, pad byte.
func hdrWebPChunk(fourcc string, payload []byte) []byte {
	b := append([]byte(fourcc), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(payload)))
	b = append(b, payload...)
	if len(payload)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

// hdrWebP wraps chunks in a RIFF/WEBP container with the right RIFF size.
func hdrWebP(chunks ...[]byte) []byte {
	body := bytes.Join(chunks, nil)
	b := []byte("RIFF\x00\x00\x00\x00WEBP")
	binary.LittleEndian.PutUint32(b[4:], uint32(4+len(body)))
	return append(b, body...)
}

// hdrVP8X is a VP8X payload with the given flags and canvas size.
func hdrVP8X(flags byte, w, h int) []byte {
	p := []byte{flags, 0, 0, 0}
	p = append(p, byte(w-1), byte((w-1)>>8), byte((w-1)>>16))
	return append(p, byte(h-1), byte((h-1)>>8), byte((h-1)>>16))
}

// hdrVP8 is the start of a VP8 key frame of w×h (tag, start code, size), enough
// for the header reader.
func hdrVP8(w, h int) []byte {
	p := []byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a}
	p = binary.LittleEndian.AppendUint16(p, uint16(w))
	p = binary.LittleEndian.AppendUint16(p, uint16(h))
	return append(p, 0, 0, 0, 0)
}

// hdrVP8L is the start of a VP8L bitstream of w×h (signature, packed size).
func hdrVP8L(w, h int, alpha bool) []byte {
	bits := uint32(w-1) | uint32(h-1)<<14
	if alpha {
		bits |= 1 << 28
	}
	return binary.LittleEndian.AppendUint32([]byte{0x2f}, bits)
}

// hdrWebPFile reads a fixture made by testdata/webp/make.py.
func hdrWebPFile(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "webp", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

type webpCase struct {
	name            string
	data            []byte
	w, h, orient    int
	lossless, alpha bool
	err             error
}

// webpCases are the unit-test table of webpInfo, also the seed corpus of FuzzWebPInfo.
func webpCases(tb testing.TB) []webpCase {
	tb.Helper()
	le, be := binary.LittleEndian, binary.BigEndian
	exifChunk := func(n uint16, bo binary.ByteOrder) []byte { return hdrWebPChunk("EXIF", hdrOrientationTIFF(tb, bo, n)) }
	const exifFlag, alphaFlag, animFlag = 0x08, 0x10, 0x02
	x := func(flags byte, w, h int) []byte { return hdrWebPChunk("VP8X", hdrVP8X(flags, w, h)) }
	vp8 := func(w, h int) []byte { return hdrWebPChunk("VP8 ", hdrVP8(w, h)) }
	vp8l := func(w, h int, alpha bool) []byte { return hdrWebPChunk("VP8L", hdrVP8L(w, h, alpha)) }
	lossy := hdrWebPFile(tb, "lossy_17x9.webp")
	patched := func(b []byte, edit func(b []byte)) []byte {
		b = append([]byte(nil), b...)
		edit(b)
		return b
	}

	return []webpCase{
		// Files written by Pillow (libwebp).
		{name: "pillow lossy", data: lossy, w: 17, h: 9, orient: 1},
		{name: "pillow lossless with alpha", data: hdrWebPFile(tb, "lossless_alpha_17x9.webp"), w: 17, h: 9, orient: 1, lossless: true, alpha: true},
		{name: "pillow lossy with alpha (VP8X, ALPH)", data: hdrWebPFile(tb, "lossy_alpha_17x9.webp"), w: 17, h: 9, orient: 1, alpha: true},
		{name: "pillow lossy with exif 6", data: hdrWebPFile(tb, "lossy_exif6_17x9.webp"), w: 17, h: 9, orient: 6},
		{name: "pillow lossless with exif 8", data: hdrWebPFile(tb, "lossless_exif8_17x9.webp"), w: 17, h: 9, orient: 8, lossless: true},
		{name: "pillow animated", data: hdrWebPFile(tb, "animated_17x9.webp"), err: ErrUnsupportedFormat},
		{name: "trailing bytes after the RIFF chunk", data: append(append([]byte(nil), lossy...), "junk after the file"...), w: 17, h: 9, orient: 1},

		// Simple formats.
		{name: "VP8", data: hdrWebP(vp8(300, 200)), w: 300, h: 200, orient: 1},
		{name: "VP8 with scale bits", data: hdrWebP(vp8(300|0xC000, 200|0x4000)), w: 300, h: 200, orient: 1},
		{name: "VP8 16383 square", data: hdrWebP(vp8(16383, 16383)), w: 16383, h: 16383, orient: 1},
		{name: "VP8L", data: hdrWebP(vp8l(1, 1, false)), w: 1, h: 1, orient: 1, lossless: true},
		{name: "VP8L 16384 square with alpha", data: hdrWebP(vp8l(16384, 16384, true)), w: 16384, h: 16384, orient: 1, lossless: true, alpha: true},
		{name: "simple VP8 ignores a later EXIF", data: hdrWebP(vp8(5, 5), exifChunk(6, le)), w: 5, h: 5, orient: 1},

		// Extended format.
		{name: "VP8X + VP8", data: hdrWebP(x(0, 30, 20), vp8(30, 20)), w: 30, h: 20, orient: 1},
		{name: "VP8X + VP8L", data: hdrWebP(x(alphaFlag, 30, 20), vp8l(30, 20, true)), w: 30, h: 20, orient: 1, lossless: true, alpha: true},
		{name: "VP8X + ALPH + VP8", data: hdrWebP(x(alphaFlag, 30, 20), hdrWebPChunk("ALPH", []byte{0, 1, 2}), vp8(30, 20)), w: 30, h: 20, orient: 1, alpha: true},
		{name: "VP8X + ICCP + VP8 + EXIF MM 3", data: hdrWebP(x(exifFlag|0x20, 30, 20), hdrWebPChunk("ICCP", make([]byte, 7)), vp8(30, 20), exifChunk(3, be)),
			w: 30, h: 20, orient: 3},
		{name: "EXIF II 5 before the image", data: hdrWebP(x(exifFlag, 30, 20), exifChunk(5, le), vp8(30, 20)), w: 30, h: 20, orient: 5},
		{name: "EXIF with Exif prefix", data: hdrWebP(x(exifFlag, 30, 20), vp8(30, 20),
			hdrWebPChunk("EXIF", append([]byte(exifAPP1Prefix), hdrOrientationTIFF(tb, le, 7)...))), w: 30, h: 20, orient: 7},
		{name: "EXIF without the VP8X flag ignored", data: hdrWebP(x(0, 30, 20), vp8(30, 20), exifChunk(6, le)), w: 30, h: 20, orient: 1},
		{name: "first EXIF wins", data: hdrWebP(x(exifFlag, 30, 20), vp8(30, 20), exifChunk(2, le), exifChunk(4, le)), w: 30, h: 20, orient: 2},
		{name: "EXIF orientation 9", data: hdrWebP(x(exifFlag, 30, 20), vp8(30, 20), exifChunk(9, be)), w: 30, h: 20, orient: 1},
		{name: "EXIF with outside IFD offset", data: hdrWebP(x(exifFlag, 30, 20), vp8(30, 20), hdrWebPChunk("EXIF", []byte("II*\x00\xFF\xFF\xFF\xFF"))), w: 30, h: 20, orient: 1},
		{name: "odd EXIF chunk padded", data: hdrWebP(x(exifFlag, 30, 20), hdrWebPChunk("EXIF", append(hdrOrientationTIFF(tb, be, 8), 0xAA)), vp8(30, 20)), w: 30, h: 20, orient: 8},
		{name: "last chunk missing its pad byte", data: func() []byte {
			b := hdrWebP(x(0, 30, 20), vp8(30, 20), hdrWebPChunk("XMP ", []byte("abc")))
			b = b[:len(b)-1]
			le.PutUint32(b[4:], uint32(len(b)-8))
			return b
		}(), w: 30, h: 20, orient: 1},
		{name: "canvas and VP8L 16384 square", data: hdrWebP(x(0, 16384, 16384), vp8l(16384, 16384, false)), w: 16384, h: 16384, orient: 1, lossless: true},

		// Animation.
		{name: "animation flag", data: hdrWebP(x(animFlag, 30, 20), vp8(30, 20)), err: ErrUnsupportedFormat},
		{name: "ANIM without the flag", data: hdrWebP(x(0, 30, 20), hdrWebPChunk("ANIM", make([]byte, 6)), vp8(30, 20)), err: ErrUnsupportedFormat},
		{name: "ANMF without the flag", data: hdrWebP(x(0, 30, 20), vp8(30, 20), hdrWebPChunk("ANMF", make([]byte, 16))), err: ErrUnsupportedFormat},

		// Errors.
		{name: "nil", data: nil, err: ErrEmpty},
		{name: "not RIFF", data: []byte("\x89PNG\r\n\x1a\n"), err: ErrUnsupportedFormat},
		{name: "RIFF WAVE", data: patched(lossy, func(b []byte) { copy(b[8:], "WAVE") }), err: ErrUnsupportedFormat},
		{name: "RIFF cut", data: []byte("RI"), err: ErrCorrupt},
		{name: "RIFF size cut", data: []byte("RIFF\x10\x00"), err: ErrCorrupt},
		{name: "WEBP cut", data: []byte("RIFF\x10\x00\x00\x00WE"), err: ErrCorrupt},
		{name: "no chunk", data: []byte("RIFF\x04\x00\x00\x00WEBP"), err: ErrCorrupt},
		{name: "RIFF size past the end", data: patched(lossy, func(b []byte) { le.PutUint32(b[4:], uint32(len(b)-7)) }), err: ErrCorrupt},
		{name: "RIFF size 0xFFFFFFFF", data: patched(lossy, func(b []byte) { le.PutUint32(b[4:], 0xFFFFFFFF) }), err: ErrCorrupt},
		{name: "RIFF size 0xFFFFFFF8 (wraps with +8 in 32 bits)", data: patched(lossy, func(b []byte) { le.PutUint32(b[4:], 0xFFFFFFF8) }), err: ErrCorrupt},
		{name: "RIFF size 11", data: patched(lossy, func(b []byte) { le.PutUint32(b[4:], 11) }), err: ErrCorrupt},
		{name: "RIFF size cuts the VP8 chunk", data: patched(lossy, func(b []byte) { le.PutUint32(b[4:], 30) }), err: ErrCorrupt},
		{name: "chunk size 0xFFFFFFFF", data: patched(lossy, func(b []byte) { le.PutUint32(b[16:], 0xFFFFFFFF) }), err: ErrCorrupt},
		{name: "first chunk ALPH", data: hdrWebP(hdrWebPChunk("ALPH", []byte{0}), vp8(3, 3)), err: ErrCorrupt},
		{name: "VP8 too short", data: hdrWebP(hdrWebPChunk("VP8 ", hdrVP8(3, 3)[:9])), err: ErrCorrupt},
		{name: "VP8 not a key frame", data: hdrWebP(hdrWebPChunk("VP8 ", patched(hdrVP8(3, 3), func(b []byte) { b[0] |= 1 }))), err: ErrCorrupt},
		{name: "VP8 bad start code", data: hdrWebP(hdrWebPChunk("VP8 ", patched(hdrVP8(3, 3), func(b []byte) { b[4] = 0 }))), err: ErrCorrupt},
		{name: "VP8 width 0", data: hdrWebP(vp8(0xC000, 3)), err: ErrCorrupt},
		{name: "VP8 height 0", data: hdrWebP(vp8(3, 0)), err: ErrCorrupt},
		{name: "VP8L too short", data: hdrWebP(hdrWebPChunk("VP8L", hdrVP8L(3, 3, false)[:4])), err: ErrCorrupt},
		{name: "VP8L bad signature", data: hdrWebP(hdrWebPChunk("VP8L", patched(hdrVP8L(3, 3, false), func(b []byte) { b[0] = 0x2e }))), err: ErrCorrupt},
		{name: "VP8L version 1", data: hdrWebP(hdrWebPChunk("VP8L", patched(hdrVP8L(3, 3, false), func(b []byte) { b[4] |= 0x20 }))), err: ErrCorrupt},
		{name: "VP8X of 9 bytes", data: hdrWebP(hdrWebPChunk("VP8X", hdrVP8X(0, 3, 3)[:9]), vp8(3, 3)), err: ErrCorrupt},
		{name: "VP8X of 12 bytes", data: hdrWebP(hdrWebPChunk("VP8X", append(hdrVP8X(0, 3, 3), 0, 0)), vp8(3, 3)), err: ErrCorrupt},
		{name: "VP8X without image", data: hdrWebP(x(exifFlag, 3, 3), exifChunk(6, le)), err: ErrCorrupt},
		{name: "VP8X canvas smaller than the VP8L bitstream", data: hdrWebP(x(0, 16, 16), vp8l(16384, 16384, false)), err: ErrCorrupt},
		{name: "VP8X canvas larger than the VP8 bitstream", data: hdrWebP(x(0, 1<<24, 1<<24), vp8(16, 16)), err: ErrCorrupt},
		{name: "VP8X with a corrupt VP8", data: hdrWebP(x(0, 3, 3), hdrWebPChunk("VP8 ", make([]byte, 10))), err: ErrCorrupt},
		{name: "VP8X chunk past the RIFF end", data: func() []byte {
			b := hdrWebP(x(0, 3, 3), vp8(3, 3))
			le.PutUint32(b[len(b)-18:], 15) // the VP8 chunk (8+14 bytes) claims one byte more than there is
			return b
		}(), err: ErrCorrupt},
	}
}

func TestWebPInfo(t *testing.T) {
	for _, tc := range webpCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			w, h, orient, err := webpInfo(tc.data)
			hdrCheckErr(t, err, tc.err)
			f, ferr := readWebPFeatures(tc.data)
			if (ferr == nil) != (err == nil) {
				t.Errorf("webpInfo err = %v, readWebPFeatures err = %v", err, ferr)
			}
			if tc.err != nil {
				if orient != 1 {
					t.Errorf("orientation = %d with an error, want 1", orient)
				}
				return
			}
			if w != tc.w || h != tc.h || orient != tc.orient {
				t.Errorf("webpInfo = %d×%d, orientation %d; want %d×%d, %d", w, h, orient, tc.w, tc.h, tc.orient)
			}
			want := webpFeatures{width: tc.w, height: tc.h, orientation: tc.orient, lossless: tc.lossless, alpha: tc.alpha}
			if f != want {
				t.Errorf("readWebPFeatures = %+v, want %+v", f, want)
			}
		})
	}
}

// TestWebPInfoTruncated cuts every fixture at every offset: the RIFF size then no
// longer fits, so each cut must be an error, and never a panic.
func TestWebPInfoTruncated(t *testing.T) {
	for _, name := range []string{"lossy_17x9.webp", "lossless_alpha_17x9.webp", "lossy_alpha_17x9.webp", "lossy_exif6_17x9.webp", "animated_17x9.webp"} {
		full := hdrWebPFile(t, name)
		for i := 0; i < len(full); i++ {
			w, h, orient, err := webpInfo(full[:i])
			if err == nil {
				t.Errorf("%s cut at %d of %d: %d×%d orientation %d, no error", name, i, len(full), w, h, orient)
				continue
			}
			hdrOneSentinel(t, err, ErrEmpty, ErrCorrupt)
		}
	}
}

// TestWebPInfoTruncatedWithRIFFSize cuts a file at every offset and also makes the
// RIFF size agree with the cut, so that the chunk walk itself meets every cut.
func TestWebPInfoTruncatedWithRIFFSize(t *testing.T) {
	full := hdrWebP(hdrWebPChunk("VP8X", hdrVP8X(0x08, 30, 20)), hdrWebPChunk("ALPH", []byte{1, 2, 3}),
		hdrWebPChunk("VP8 ", hdrVP8(30, 20)), hdrWebPChunk("EXIF", hdrOrientationTIFF(t, binary.LittleEndian, 6)))
	exifEnd := len(full)
	imageEnd := len(full) - len(hdrWebPChunk("EXIF", hdrOrientationTIFF(t, binary.LittleEndian, 6)))
	for i := 12; i <= len(full); i++ {
		b := append([]byte(nil), full[:i]...)
		binary.LittleEndian.PutUint32(b[4:], uint32(i-8))
		w, h, orient, err := webpInfo(b)
		switch {
		case err != nil:
			hdrOneSentinel(t, err, ErrCorrupt)
			if i == exifEnd || (i >= imageEnd && i < imageEnd+8) {
				t.Errorf("cut at %d: %v", i, err)
			}
		case i < imageEnd:
			t.Errorf("cut at %d, before the image chunk ends at %d: no error", i, imageEnd)
		case w != 30 || h != 20:
			t.Errorf("cut at %d: %d×%d, want 30×20", i, w, h)
		case i == exifEnd && orient != 6:
			t.Errorf("complete file: orientation %d, want 6", orient)
		}
	}
}

func TestWebPInfoAllocs(t *testing.T) {
	data := hdrWebPFile(t, "lossy_exif6_17x9.webp")
	if n := testing.AllocsPerRun(100, func() { webpInfo(data) }); n != 0 {
		t.Errorf("webpInfo allocates %v times a call, want 0", n)
	}
}

// TestWebPInfoManyChunksIsLinear walks a RIFF of a million empty chunks.
func TestWebPInfoManyChunksIsLinear(t *testing.T) {
	chunks := [][]byte{hdrWebPChunk("VP8X", hdrVP8X(0, 3, 3)), hdrWebPChunk("VP8 ", hdrVP8(3, 3))}
	chunks = append(chunks, bytes.Repeat(hdrWebPChunk("XMP ", nil), 1<<20))
	data := hdrWebP(chunks...)
	start := time.Now()
	w, h, _, err := webpInfo(data)
	if err != nil || w != 3 || h != 3 {
		t.Errorf("webpInfo = %d×%d, %v; want 3×3", w, h, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a million chunks took %v", d)
	}
}

func FuzzWebPInfo(f *testing.F) {
	for _, tc := range webpCases(f) {
		f.Add(tc.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		w, h, orient, err := webpInfo(data)
		if orient < 1 || orient > 8 {
			t.Fatalf("orientation %d", orient)
		}
		if err != nil {
			hdrOneSentinel(t, err, ErrEmpty, ErrCorrupt, ErrUnsupportedFormat)
			return
		}
		if w < 1 || w > 1<<24 || h < 1 || h > 1<<24 {
			t.Fatalf("webpInfo = %d×%d, no error", w, h)
		}
	})
}
