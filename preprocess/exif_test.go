package preprocess

import (
	"encoding/binary"
	"fmt"
	"testing"
)

// hdrIFDEntry is one IFD0 entry for hdrTIFF.
type hdrIFDEntry struct {
	tag, typ uint16
	count    uint32
	// value is the SHORT itself when typ is SHORT and count is 1 (it is then written
	// left-justified in the 4-byte field, as TIFF wants), else the raw 4-byte field.
	value uint32
}

// hdrTIFF builds a TIFF block (the payload of an EXIF segment after "Exif\0\0"):
// the header in byte order bo, then IFD0 at offset 8 with entries, then a zero
// next-IFD offset.
func hdrTIFF(tb testing.TB, bo binary.ByteOrder, entries ...hdrIFDEntry) []byte {
	tb.Helper()
	b := make([]byte, 8+2+12*len(entries)+4)
	switch bo {
	case binary.LittleEndian:
		copy(b, "II*\x00")
	case binary.BigEndian:
		copy(b, "MM\x00*")
	default:
		tb.Fatalf("hdrTIFF: byte order %v", bo)
	}
	bo.PutUint32(b[4:], 8)
	bo.PutUint16(b[8:], uint16(len(entries)))
	for i, e := range entries {
		p := b[10+12*i:]
		bo.PutUint16(p[0:], e.tag)
		bo.PutUint16(p[2:], e.typ)
		bo.PutUint32(p[4:], e.count)
		if e.typ == tiffTypeShort && e.count == 1 {
			bo.PutUint16(p[8:], uint16(e.value))
		} else {
			bo.PutUint32(p[8:], e.value)
		}
	}
	return b
}

// hdrOrientationTIFF builds a minimal but realistic TIFF block whose IFD0 holds an
// orientation tag with value n between two other tags.
func hdrOrientationTIFF(tb testing.TB, bo binary.ByteOrder, n uint16) []byte {
	tb.Helper()
	return hdrTIFF(tb, bo,
		hdrIFDEntry{tag: 0x0100, typ: 4, count: 1, value: 640},         // ImageWidth, LONG
		hdrIFDEntry{tag: 0x0112, typ: 3, count: 1, value: uint32(n)},   // Orientation, SHORT
		hdrIFDEntry{tag: 0x8769, typ: 4, count: 1, value: 0xFFFF_FFF0}, // ExifIFD pointer, never followed
	)
}

func hdrOrderName(bo binary.ByteOrder) string {
	if bo == binary.LittleEndian {
		return "II"
	}
	return "MM"
}

type exifCase struct {
	name string
	tiff []byte
	want int
}

// exifCases are the unit-test table of exifOrientation, also the seed corpus of
// FuzzExifOrientation.
func exifCases(tb testing.TB) []exifCase {
	tb.Helper()
	var cases []exifCase
	orders := []binary.ByteOrder{binary.LittleEndian, binary.BigEndian}
	for _, bo := range orders {
		for n := uint16(1); n <= 8; n++ {
			cases = append(cases, exifCase{fmt.Sprintf("%s/orientation %d", hdrOrderName(bo), n), hdrOrientationTIFF(tb, bo, n), int(n)})
		}
		for _, n := range []uint16{0, 9, 0x0100, 0xFFFF} {
			cases = append(cases, exifCase{fmt.Sprintf("%s/out of range %d", hdrOrderName(bo), n), hdrOrientationTIFF(tb, bo, n), 1})
		}
	}
	le, be := binary.LittleEndian, binary.BigEndian
	with := func(b []byte, edit func(b []byte)) []byte {
		b = append([]byte(nil), b...)
		edit(b)
		return b
	}
	six := hdrOrientationTIFF(tb, le, 6)
	sixBE := hdrOrientationTIFF(tb, be, 6)
	cases = append(cases,
		exifCase{"only the orientation tag", hdrTIFF(tb, le, hdrIFDEntry{0x0112, 3, 1, 3}), 3},
		exifCase{"no orientation tag", hdrTIFF(tb, le, hdrIFDEntry{0x0100, 4, 1, 640}), 1},
		exifCase{"empty IFD", hdrTIFF(tb, be), 1},
		exifCase{"orientation as LONG (Pillow accepts it)", hdrTIFF(tb, le, hdrIFDEntry{0x0112, 4, 1, 6}), 6},
		exifCase{"orientation as big-endian LONG", hdrTIFF(tb, binary.BigEndian, hdrIFDEntry{0x0112, 4, 1, 7}), 7},
		exifCase{"orientation as RATIONAL", hdrTIFF(tb, le, hdrIFDEntry{0x0112, 5, 1, 6}), 1},
		exifCase{"orientation as BYTE", hdrTIFF(tb, le, hdrIFDEntry{0x0112, 1, 1, 6}), 1},
		exifCase{"orientation count 2", hdrTIFF(tb, be, hdrIFDEntry{0x0112, 3, 2, 6<<16 | 6}), 1},
		exifCase{"orientation count 0", hdrTIFF(tb, le, hdrIFDEntry{0x0112, 3, 0, 6}), 1},
		exifCase{"duplicate tag: last wins", hdrTIFF(tb, le, hdrIFDEntry{0x0112, 3, 1, 6}, hdrIFDEntry{0x0112, 3, 1, 8}), 8},
		exifCase{"duplicate tag: last is bad", hdrTIFF(tb, be, hdrIFDEntry{0x0112, 3, 1, 6}, hdrIFDEntry{0x0112, 3, 1, 0}), 1},
		exifCase{"value in the wrong half (big-endian)", with(sixBE, func(b []byte) {
			// the SHORT written right-justified, as a careless writer would
			copy(b[10+12+8:], []byte{0, 0, 0, 6})
		}), 1},

		exifCase{"nil", nil, 1},
		exifCase{"empty", []byte{}, 1},
		exifCase{"header only", []byte("II*\x00"), 1},
		exifCase{"7 bytes", []byte("II*\x00\x08\x00\x00"), 1},
		exifCase{"header without IFD", []byte("MM\x00*\x00\x00\x00\x08"), 1},
		exifCase{"IFD count cut", []byte("MM\x00*\x00\x00\x00\x08\x00"), 1},
		exifCase{"mixed byte order mark", with(six, func(b []byte) { copy(b, "IM*\x00") }), 1},
		exifCase{"little-endian mark, big-endian magic", with(six, func(b []byte) { copy(b, "II\x00*") }), 1},
		exifCase{"BigTIFF magic", with(six, func(b []byte) { b[2] = 43 }), 1},
		exifCase{"Exif prefix not stripped", append([]byte(exifAPP1Prefix), six...), 1},

		exifCase{"IFD offset 0", with(six, func(b []byte) { le.PutUint32(b[4:], 0) }), 1},
		exifCase{"IFD offset inside the header", with(six, func(b []byte) { le.PutUint32(b[4:], 4) }), 1},
		exifCase{"IFD offset at the end", with(six, func(b []byte) { le.PutUint32(b[4:], uint32(len(b))) }), 1},
		exifCase{"IFD offset one before the end", with(six, func(b []byte) { le.PutUint32(b[4:], uint32(len(b)-1)) }), 1},
		exifCase{"IFD offset far outside", with(six, func(b []byte) { le.PutUint32(b[4:], 1<<30) }), 1},
		exifCase{"IFD offset 0xFFFFFFFF", with(sixBE, func(b []byte) { be.PutUint32(b[4:], 0xFFFFFFFF) }), 1},
		exifCase{"IFD offset 0xFFFFFFFE (wraps with +2 in 32 bits)", with(sixBE, func(b []byte) { be.PutUint32(b[4:], 0xFFFFFFFE) }), 1},
		exifCase{"IFD after padding", func() []byte {
			b := append([]byte(nil), six[:8]...)
			b = append(b, make([]byte, 100)...)
			b = append(b, six[8:]...)
			le.PutUint32(b[4:], 108)
			return b
		}(), 6},
		exifCase{"next-IFD offset loops to IFD0", with(six, func(b []byte) { le.PutUint32(b[len(b)-4:], 8) }), 6},

		exifCase{"IFD count 0xFFFF, orientation entry present", with(six, func(b []byte) { le.PutUint16(b[8:], 0xFFFF) }), 6},
		exifCase{"IFD count 0xFFFF, big-endian", with(sixBE, func(b []byte) { be.PutUint16(b[8:], 0xFFFF) }), 6},
		exifCase{"IFD count 0xFFFF, no entries", []byte("II*\x00\x08\x00\x00\x00\xFF\xFF"), 1},
		exifCase{"IFD count 1 skips the orientation entry", with(six, func(b []byte) { le.PutUint16(b[8:], 1) }), 1},
		exifCase{"IFD count 0", with(six, func(b []byte) { le.PutUint16(b[8:], 0) }), 1},
		exifCase{"orientation entry cut short", six[:10+12+11], 1},
		exifCase{"orientation entry complete, rest cut", six[:10+12+12], 6},
	)
	return cases
}

func TestExifOrientation(t *testing.T) {
	for _, tc := range exifCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			if got := exifOrientation(tc.tiff); got != tc.want {
				t.Errorf("exifOrientation(% x) = %d, want %d", tc.tiff, got, tc.want)
			}
		})
	}
}

func TestExifChunkOrientation(t *testing.T) {
	tiff := hdrOrientationTIFF(t, binary.BigEndian, 7)
	tests := []struct {
		name    string
		payload []byte
		want    int
	}{
		{"bare TIFF", tiff, 7},
		{"Exif prefix", append([]byte(exifAPP1Prefix), tiff...), 7},
		{"prefix only", []byte(exifAPP1Prefix), 1},
		{"prefix cut", []byte("Exif\x00"), 1},
		{"two prefixes", append([]byte(exifAPP1Prefix+exifAPP1Prefix), tiff...), 1},
		{"empty", nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := exifChunkOrientation(tc.payload); got != tc.want {
				t.Errorf("exifChunkOrientation(% x) = %d, want %d", tc.payload, got, tc.want)
			}
		})
	}
}

// TestExifOrientationTruncated cuts a valid block at every offset: the result is
// the full answer once the orientation entry is complete, and 1 before.
func TestExifOrientationTruncated(t *testing.T) {
	for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		tiff := hdrOrientationTIFF(t, bo, 5)
		complete := 10 + 2*12 // header, count, ImageWidth and Orientation entries
		for i := 0; i <= len(tiff); i++ {
			want := 1
			if i >= complete {
				want = 5
			}
			if got := exifOrientation(tiff[:i]); got != want {
				t.Errorf("%s cut at %d of %d: got %d, want %d", hdrOrderName(bo), i, len(tiff), got, want)
			}
		}
	}
}

func TestExifOrientationAllocs(t *testing.T) {
	tiff := hdrOrientationTIFF(t, binary.BigEndian, 6)
	if n := testing.AllocsPerRun(100, func() { exifOrientation(tiff) }); n != 0 {
		t.Errorf("exifOrientation allocates %v times a call, want 0", n)
	}
}

func FuzzExifOrientation(f *testing.F) {
	for _, tc := range exifCases(f) {
		f.Add(tc.tiff)
	}
	f.Fuzz(func(t *testing.T, tiff []byte) {
		got := exifOrientation(tiff)
		if got < 1 || got > 8 {
			t.Fatalf("exifOrientation(% x) = %d, want 1..8", tiff, got)
		}
		if again := exifChunkOrientation(append([]byte(exifAPP1Prefix), tiff...)); again != got {
			t.Fatalf("with the Exif prefix: %d, without: %d", again, got)
		}
	})
}
