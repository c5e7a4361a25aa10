package preprocess

import "encoding/binary"

// exifAPP1Prefix starts the payload of a JPEG APP1 segment that carries EXIF. Some
// writers also put it in front of the TIFF block of a PNG eXIf or WebP EXIF chunk,
// where the specifications want the TIFF block alone.
const exifAPP1Prefix = "Exif\x00\x00"

const (
	exifTagOrientation = 0x0112
	tiffTypeShort      = 3
	tiffTypeLong       = 4
	tiffIFDEntrySize   = 12
)

// exifOrientation parses a TIFF-structured EXIF block (starting at the "II*\0" or
// "MM\0*" byte order mark, i.e. after the "Exif\0\0" prefix), reads IFD0 tag 0x0112
// (SHORT, or LONG as some writers store it and Pillow accepts, count 1) and
// returns 1..8; any oddity (bad offsets, loops, wrong type,
// out-of-range value) returns 1. It must not panic or loop on any input.
//
// Only IFD0 is read and no IFD chain is followed, so a loop of IFD offsets cannot
// make it spin: the work is bounded by len(tiff)/12 entries. An entry count larger
// than what the block holds is not an error by itself: the entries that are there
// are read and the missing ones ignored, as Pillow does (it warns and keeps the tags
// it read). If tag 0x0112 appears more than once, the last one counts, as in Pillow.
// It never allocates.
func exifOrientation(tiff []byte) int {
	if len(tiff) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch {
	case tiff[0] == 'I' && tiff[1] == 'I' && tiff[2] == 42 && tiff[3] == 0:
		bo = binary.LittleEndian
	case tiff[0] == 'M' && tiff[1] == 'M' && tiff[2] == 0 && tiff[3] == 42:
		bo = binary.BigEndian
	default:
		return 1
	}
	// The IFD may not overlap the 8-byte header, and its 2-byte entry count must be
	// inside the block. Compare in uint64 so that no offset can wrap around.
	off := uint64(bo.Uint32(tiff[4:8]))
	if off < 8 || off+2 > uint64(len(tiff)) {
		return 1
	}
	p := int(off) // off < len(tiff), so it fits an int
	n := int(bo.Uint16(tiff[p:]))
	p += 2

	found := false
	var typ uint16
	var count, value uint32
	for i := 0; i < n && len(tiff)-p >= tiffIFDEntrySize; i, p = i+1, p+tiffIFDEntrySize {
		e := tiff[p : p+tiffIFDEntrySize]
		if bo.Uint16(e[0:2]) != exifTagOrientation {
			continue
		}
		found = true
		typ = bo.Uint16(e[2:4])
		count = bo.Uint32(e[4:8])
		// A value of count 1 sits at the start of the 4-byte value field, in the
		// block's byte order: two bytes for a SHORT, four for a LONG.
		switch typ {
		case tiffTypeShort:
			value = uint32(bo.Uint16(e[8:10]))
		case tiffTypeLong:
			value = bo.Uint32(e[8:12])
		default:
			value = 0
		}
	}
	if !found || count != 1 || value < 1 || value > 8 {
		return 1
	}
	return int(value)
}

// exifChunkOrientation reads the orientation from the payload of a PNG eXIf or
// WebP EXIF chunk: a TIFF block, possibly preceded by "Exif\0\0".
func exifChunkOrientation(payload []byte) int {
	if len(payload) >= len(exifAPP1Prefix) && string(payload[:len(exifAPP1Prefix)]) == exifAPP1Prefix {
		payload = payload[len(exifAPP1Prefix):]
	}
	return exifOrientation(payload)
}
