package preprocess

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// The readers below look at the header of an upload and nothing else: they return
// the declared size (so the caller can apply Limits before a pixel is allocated) and
// the EXIF orientation. They are written for hostile input: every length and offset
// read from the file is checked against len(data) before it is used, arithmetic on
// 32-bit file values is done in uint64 so that nothing wraps, no loop runs more than
// once per segment or chunk (each at least 2 bytes), and nothing is allocated except
// the error on failure.

// headerPrefixOf reports whether b is a prefix of s (b may be shorter than s: a
// truncated signature).
func headerPrefixOf(b []byte, s string) bool {
	return len(b) <= len(s) && string(b) == s[:len(b)]
}

// JPEG markers the header walk has to tell apart (ITU T.81 table B.1).
const (
	jpegSOF0 = 0xC0 // baseline
	jpegSOF1 = 0xC1 // extended sequential
	jpegSOF2 = 0xC2 // progressive
	jpegSOF3 = 0xC3 // lossless
	jpegDHT  = 0xC4
	jpegJPG  = 0xC8 // reserved for JPEG extensions
	jpegSOF9 = 0xC9 // extended sequential, arithmetic
	jpegSOFA = 0xCA // progressive, arithmetic
	jpegDAC  = 0xCC
	jpegSOFF = 0xCF
	jpegRST0 = 0xD0
	jpegRST7 = 0xD7
	jpegSOI  = 0xD8
	jpegEOI  = 0xD9
	jpegSOS  = 0xDA
	jpegDHP  = 0xDE // hierarchical progression
	jpegEXP  = 0xDF // expand reference components (hierarchical)
	jpegAPP1 = 0xE1
	jpegJPG0 = 0xF0 // JPG0..JPG13: extensions (JPEG-LS uses 0xF7, 0xF8)
	jpegJPGD = 0xFD
	jpegTEM  = 0x01
)

// jpegInfo walks the JPEG marker segments from SOI up to the first SOFn frame
// header and returns the frame size, the number of components, and the EXIF
// orientation (1..8; 1 when absent or unreadable) from an APP1 "Exif\0\0" segment
// seen before the frame. It never reads past len(data) and never allocates per byte.
// Errors: truncated before SOF or malformed segment lengths → wrap ErrCorrupt;
// lossless (SOF3/SOF7/SOF11/SOF15), hierarchical (SOF5-7, SOF13-15) frames, a
// sample precision other than 8, or a component count other than 1, 3 or 4 → wrap ErrUnsupportedFormat.
// Baseline SOF0, extended SOF1, progressive SOF2, and arithmetic SOF9/SOF10 are accepted.
//
// Like libjpeg it skips stray bytes between segments and "\xFF\x00" pairs, and it
// rejects the markers libjpeg rejects before the frame (a second SOI, reserved
// markers, the JPEG extensions JPGn including JPEG-LS, DHP and EXP). When several
// APP1 segments carry EXIF the first counts, as in Pillow.
func jpegInfo(data []byte) (width, height, components, orientation int, err error) {
	orientation = 1
	if len(data) == 0 {
		return 0, 0, 0, 1, fmt.Errorf("%w: jpeg: no bytes", ErrEmpty)
	}
	if len(data) < 2 || data[0] != 0xFF || data[1] != jpegSOI {
		if headerPrefixOf(data, "\xFF\xD8") {
			return 0, 0, 0, 1, fmt.Errorf("%w: jpeg: the file ends after %d bytes, before the frame header", ErrCorrupt, len(data))
		}
		return 0, 0, 0, 1, fmt.Errorf("%w: jpeg: no SOI marker", ErrUnsupportedFormat)
	}
	exifSeen := false
	pos := 2
	for {
		// Find the next marker. Bytes other than 0xFF are stray data, which libjpeg
		// skips with a warning; any number of 0xFF fill bytes may precede a marker.
		for pos < len(data) && data[pos] != 0xFF {
			pos++
		}
		for pos < len(data) && data[pos] == 0xFF {
			pos++
		}
		if pos >= len(data) {
			return 0, 0, 0, 1, fmt.Errorf("%w: jpeg: the file ends after %d bytes, before the frame header", ErrCorrupt, len(data))
		}
		markerAt := pos - 1
		m := data[pos]
		pos++

		switch {
		case m == 0x00: // a stuffed zero outside entropy-coded data: stray bytes
			continue
		case m == jpegTEM || (m >= jpegRST0 && m <= jpegRST7): // standalone, no length
			continue
		case m == jpegSOI:
			return 0, 0, 0, 1, fmt.Errorf("%w: jpeg: second SOI marker at offset %d", ErrCorrupt, markerAt)
		case m == jpegEOI:
			return 0, 0, 0, 1, fmt.Errorf("%w: jpeg: EOI at offset %d before any frame header", ErrCorrupt, markerAt)
		case m == jpegSOS:
			return 0, 0, 0, 1, fmt.Errorf("%w: jpeg: SOS at offset %d before any frame header", ErrCorrupt, markerAt)
		case m < jpegSOF0: // 0x02..0xBF are reserved
			return 0, 0, 0, 1, fmt.Errorf("%w: jpeg: reserved marker 0xFF%02X at offset %d", ErrCorrupt, m, markerAt)
		case m == jpegJPG || m == jpegDHP || m == jpegEXP || (m >= jpegJPG0 && m <= jpegJPGD):
			return 0, 0, 0, 1, fmt.Errorf("%w: jpeg: marker 0xFF%02X (JPEG extension or hierarchical mode)", ErrUnsupportedFormat, m)
		}

		// Every other marker starts a segment whose 2-byte length counts itself.
		if len(data)-pos < 2 {
			return 0, 0, 0, 1, fmt.Errorf("%w: jpeg: truncated in the length of marker 0xFF%02X at offset %d", ErrCorrupt, m, markerAt)
		}
		n := int(binary.BigEndian.Uint16(data[pos:]))
		if n < 2 {
			return 0, 0, 0, 1, fmt.Errorf("%w: jpeg: marker 0xFF%02X at offset %d has segment length %d", ErrCorrupt, m, markerAt, n)
		}
		if n > len(data)-pos {
			return 0, 0, 0, 1, fmt.Errorf("%w: jpeg: segment 0xFF%02X at offset %d (%d bytes) runs past the end of the %d-byte file",
				ErrCorrupt, m, markerAt, n, len(data))
		}
		seg := data[pos+2 : pos+n]
		pos += n

		if m >= jpegSOF0 && m <= jpegSOFF && m != jpegDHT && m != jpegDAC {
			width, height, components, err = jpegFrameHeader(m, seg)
			if err != nil {
				return 0, 0, 0, 1, err
			}
			return width, height, components, orientation, nil
		}
		if m == jpegAPP1 && !exifSeen && len(seg) >= len(exifAPP1Prefix) && string(seg[:len(exifAPP1Prefix)]) == exifAPP1Prefix {
			exifSeen = true
			orientation = exifOrientation(seg[len(exifAPP1Prefix):])
		}
		// DQT, DHT, DAC, DRI, DNL, APPn, COM: nothing the header needs.
	}
}

// jpegFrameHeader checks the payload of SOFn marker m (the bytes after the length).
func jpegFrameHeader(m byte, seg []byte) (width, height, components int, err error) {
	switch m {
	case jpegSOF0, jpegSOF1, jpegSOF2, jpegSOF9, jpegSOFA:
	case jpegSOF3, 0xC7, 0xCB, jpegSOFF:
		return 0, 0, 0, fmt.Errorf("%w: jpeg: lossless frame (SOF%d)", ErrUnsupportedFormat, m-jpegSOF0)
	default: // SOF5, SOF6, SOF13, SOF14
		return 0, 0, 0, fmt.Errorf("%w: jpeg: hierarchical frame (SOF%d)", ErrUnsupportedFormat, m-jpegSOF0)
	}
	if len(seg) < 6 {
		return 0, 0, 0, fmt.Errorf("%w: jpeg: frame header of %d bytes, want at least 6", ErrCorrupt, len(seg))
	}
	precision := int(seg[0])
	height = int(binary.BigEndian.Uint16(seg[1:3]))
	width = int(binary.BigEndian.Uint16(seg[3:5]))
	components = int(seg[5])
	if precision != 8 {
		return 0, 0, 0, fmt.Errorf("%w: jpeg: %d-bit samples (only 8-bit is supported)", ErrUnsupportedFormat, precision)
	}
	if components != 1 && components != 3 && components != 4 {
		return 0, 0, 0, fmt.Errorf("%w: jpeg: %d colour components (want 1, 3 or 4)", ErrUnsupportedFormat, components)
	}
	if len(seg) != 6+3*components {
		return 0, 0, 0, fmt.Errorf("%w: jpeg: frame header of %d bytes, want 6+3×%d components = %d",
			ErrCorrupt, len(seg), components, 6+3*components)
	}
	for c := range components {
		hv, tq := seg[6+3*c+1], seg[6+3*c+2]
		if h, v := hv>>4, hv&15; h < 1 || h > 4 || v < 1 || v > 4 {
			return 0, 0, 0, fmt.Errorf("%w: jpeg: component %d has sampling factors %d×%d (want 1..4)", ErrCorrupt, c, h, v)
		}
		if tq > 3 {
			return 0, 0, 0, fmt.Errorf("%w: jpeg: component %d uses quantisation table %d (want 0..3)", ErrCorrupt, c, tq)
		}
	}
	if height == 0 {
		// The height would come later, in a DNL segment after the first scan.
		return 0, 0, 0, fmt.Errorf("%w: jpeg: height 0 in the frame header (DNL)", ErrUnsupportedFormat)
	}
	if width == 0 {
		return 0, 0, 0, fmt.Errorf("%w: jpeg: width 0 in the frame header", ErrCorrupt)
	}
	return width, height, components, nil
}

const pngMaxUint = 1<<31 - 1 // the largest "PNG four-byte unsigned integer"

// pngInfo reads IHDR (must be the first chunk) and returns size, bit depth and colour type,
// and the orientation from an eXIf chunk if one appears before the first IDAT (1 otherwise).
// It checks the IHDR CRC. Width/height are uint32 in the file: values > 1<<31-1 must not
// overflow int. Malformed → ErrCorrupt; invalid bit-depth/colour-type combination → ErrCorrupt.
//
// Width, height or chunk lengths above 1<<31-1 are invalid PNG and wrap ErrCorrupt
// (so the results fit an int on every platform). The chunks between IHDR and the
// first IDAT must be complete; IDAT itself is not read, so data may be cut inside
// it. The CRC of an eXIf chunk is checked too (a bad one wraps ErrCorrupt); a second
// eXIf replaces the first, as in Pillow.
func pngInfo(data []byte) (width, height, bitDepth, colorType, orientation int, err error) {
	const sig = "\x89PNG\r\n\x1a\n"
	orientation = 1
	if len(data) == 0 {
		return 0, 0, 0, 0, 1, fmt.Errorf("%w: png: no bytes", ErrEmpty)
	}
	if len(data) < len(sig) || string(data[:len(sig)]) != sig {
		if headerPrefixOf(data, sig) {
			return 0, 0, 0, 0, 1, fmt.Errorf("%w: png: the file ends after %d bytes, in the signature", ErrCorrupt, len(data))
		}
		return 0, 0, 0, 0, 1, fmt.Errorf("%w: png: no PNG signature", ErrUnsupportedFormat)
	}
	// Signature (8), IHDR length and type (8), IHDR data (13), CRC (4).
	const ihdrEnd = 8 + 8 + 13 + 4
	if len(data) < ihdrEnd {
		return 0, 0, 0, 0, 1, fmt.Errorf("%w: png: the file ends after %d bytes, in IHDR", ErrCorrupt, len(data))
	}
	if n, typ := binary.BigEndian.Uint32(data[8:12]), data[12:16]; string(typ) != "IHDR" || n != 13 {
		return 0, 0, 0, 0, 1, fmt.Errorf("%w: png: first chunk is %q of %d bytes, want IHDR of 13", ErrCorrupt, typ, n)
	}
	if got, want := crc32.ChecksumIEEE(data[12:29]), binary.BigEndian.Uint32(data[29:33]); got != want {
		return 0, 0, 0, 0, 1, fmt.Errorf("%w: png: IHDR CRC is %08x, computed %08x", ErrCorrupt, want, got)
	}
	ihdr := data[16:29]
	w, h := binary.BigEndian.Uint32(ihdr[0:4]), binary.BigEndian.Uint32(ihdr[4:8])
	if w == 0 || h == 0 || w > pngMaxUint || h > pngMaxUint {
		return 0, 0, 0, 0, 1, fmt.Errorf("%w: png: IHDR declares %d×%d pixels (want 1..%d a side)", ErrCorrupt, w, h, pngMaxUint)
	}
	bitDepth, colorType = int(ihdr[8]), int(ihdr[9])
	if !pngValidDepth(bitDepth, colorType) {
		return 0, 0, 0, 0, 1, fmt.Errorf("%w: png: bit depth %d is not allowed with colour type %d", ErrCorrupt, bitDepth, colorType)
	}
	if ihdr[10] != 0 || ihdr[11] != 0 || ihdr[12] > 1 {
		return 0, 0, 0, 0, 1, fmt.Errorf("%w: png: compression method %d, filter method %d, interlace method %d (want 0, 0, 0 or 1)",
			ErrCorrupt, ihdr[10], ihdr[11], ihdr[12])
	}

	// Walk the chunks up to the first IDAT, looking for eXIf.
	for pos := ihdrEnd; ; {
		if len(data)-pos < 8 {
			return 0, 0, 0, 0, 1, fmt.Errorf("%w: png: the file ends after %d bytes, before IDAT", ErrCorrupt, len(data))
		}
		n := binary.BigEndian.Uint32(data[pos : pos+4])
		typ := data[pos+4 : pos+8]
		if n > pngMaxUint {
			return 0, 0, 0, 0, 1, fmt.Errorf("%w: png: chunk %q at offset %d has length %d", ErrCorrupt, typ, pos, n)
		}
		if string(typ) == "IDAT" {
			return int(w), int(h), bitDepth, colorType, orientation, nil
		}
		if uint64(n)+12 > uint64(len(data)-pos) {
			return 0, 0, 0, 0, 1, fmt.Errorf("%w: png: chunk %q at offset %d (%d bytes) runs past the end of the %d-byte file",
				ErrCorrupt, typ, pos, n, len(data))
		}
		end := pos + 8 + int(n) // n <= len(data) - pos - 12: no overflow
		switch string(typ) {
		case "IEND":
			return 0, 0, 0, 0, 1, fmt.Errorf("%w: png: IEND at offset %d before any IDAT", ErrCorrupt, pos)
		case "IHDR":
			return 0, 0, 0, 0, 1, fmt.Errorf("%w: png: second IHDR at offset %d", ErrCorrupt, pos)
		case "eXIf":
			if got, want := crc32.ChecksumIEEE(data[pos+4:end]), binary.BigEndian.Uint32(data[end:end+4]); got != want {
				return 0, 0, 0, 0, 1, fmt.Errorf("%w: png: eXIf CRC is %08x, computed %08x", ErrCorrupt, want, got)
			}
			orientation = exifChunkOrientation(data[pos+8 : end])
		}
		pos = end + 4
	}
}

// pngValidDepth reports whether bit depth d is allowed with colour type ct (PNG
// specification, table 11.1).
func pngValidDepth(d, ct int) bool {
	switch ct {
	case 0: // greyscale
		return d == 1 || d == 2 || d == 4 || d == 8 || d == 16
	case 3: // palette
		return d == 1 || d == 2 || d == 4 || d == 8
	case 2, 4, 6: // RGB, grey+alpha, RGBA
		return d == 8 || d == 16
	}
	return false
}

// webpFeatures is what the WebP container header tells about an image.
type webpFeatures struct {
	width, height int
	orientation   int  // 1..8, from the EXIF chunk of an extended file
	lossless      bool // the bitstream is VP8L
	alpha         bool // the image has an alpha channel
}

// webpInfo reads the RIFF/WEBP container: simple lossy ("VP8 "), lossless ("VP8L")
// or extended ("VP8X": canvas size, and the orientation from an "EXIF" chunk if present),
// and reports the size and whether it is lossless/has alpha/animation. Animated WebP
// (VP8X animation flag or ANIM/ANMF chunks) → ErrUnsupportedFormat ("animated webp").
// Chunk sizes bounded by the RIFF size and len(data); malformed → ErrCorrupt.
//
// The lossless and alpha flags come from readWebPFeatures, which this wraps.
func webpInfo(data []byte) (width, height, orientation int, err error) {
	f, err := readWebPFeatures(data)
	if err != nil {
		return 0, 0, 1, err
	}
	return f.width, f.height, f.orientation, nil
}

// readWebPFeatures does the work of webpInfo.
//
// The RIFF size must fit in data (a shorter file is truncated: libwebp refuses to
// decode it); bytes after the RIFF chunk are ignored, as libwebp does. In an
// extended file every chunk is walked: ANIM or ANMF anywhere means an animation,
// the first VP8/VP8L chunk must declare exactly the canvas size (otherwise a small
// canvas could smuggle a huge bitstream past Limits), and as in libwebp's demuxer
// (which Pillow uses) the EXIF chunk counts only when the VP8X EXIF flag is set, and
// the first one wins.
func readWebPFeatures(data []byte) (f webpFeatures, err error) {
	defer func() {
		if err != nil {
			f = webpFeatures{orientation: 1} // nothing half-read on failure
		}
	}()
	f.orientation = 1
	if len(data) == 0 {
		return f, fmt.Errorf("%w: webp: no bytes", ErrEmpty)
	}
	if !headerPrefixOf(data[:min(len(data), 4)], "RIFF") || (len(data) > 8 && !headerPrefixOf(data[8:min(len(data), 12)], "WEBP")) {
		return f, fmt.Errorf("%w: webp: no RIFF/WEBP header", ErrUnsupportedFormat)
	}
	if len(data) < 12+8 {
		return f, fmt.Errorf("%w: webp: the file ends after %d bytes, in the header", ErrCorrupt, len(data))
	}
	riffSize := binary.LittleEndian.Uint32(data[4:8])
	if riffSize < 4+8 {
		return f, fmt.Errorf("%w: webp: RIFF size %d is too small for any image", ErrCorrupt, riffSize)
	}
	if uint64(riffSize) > uint64(len(data)-8) {
		return f, fmt.Errorf("%w: webp: RIFF size %d runs past the end of the %d-byte file", ErrCorrupt, riffSize, len(data))
	}
	body := data[:8+int(riffSize)] // every chunk must end inside the RIFF chunk

	fourcc, payload, next, err := webpChunk(body, 12)
	if err != nil {
		return f, err
	}
	switch fourcc {
	case "VP8 ":
		f.width, f.height, err = webpVP8Size(payload)
		return f, err
	case "VP8L":
		f.lossless = true
		f.width, f.height, f.alpha, err = webpVP8LSize(payload)
		return f, err
	case "VP8X":
	default:
		return f, fmt.Errorf("%w: webp: first chunk is %q, want \"VP8 \", \"VP8L\" or \"VP8X\"", ErrCorrupt, data[12:16])
	}

	if len(payload) != 10 {
		return f, fmt.Errorf("%w: webp: VP8X chunk of %d bytes, want 10", ErrCorrupt, len(payload))
	}
	flags := payload[0]
	if flags&0x02 != 0 {
		return f, fmt.Errorf("%w: animated webp", ErrUnsupportedFormat)
	}
	hasEXIF := flags&0x08 != 0
	f.alpha = flags&0x10 != 0
	f.width = 1 + int(uint32(payload[4])|uint32(payload[5])<<8|uint32(payload[6])<<16)
	f.height = 1 + int(uint32(payload[7])|uint32(payload[8])<<8|uint32(payload[9])<<16)

	imageFound, exifSeen := false, false
	for pos := next; len(body)-pos >= 8; pos = next {
		fourcc, payload, next, err = webpChunk(body, pos)
		if err != nil {
			return f, err
		}
		switch fourcc {
		case "ANIM", "ANMF":
			return f, fmt.Errorf("%w: animated webp (%s chunk)", ErrUnsupportedFormat, fourcc)
		case "EXIF":
			if hasEXIF && !exifSeen {
				exifSeen = true
				f.orientation = exifChunkOrientation(payload)
			}
		case "VP8 ", "VP8L":
			if imageFound {
				continue
			}
			imageFound = true
			var w, h int
			if fourcc == "VP8 " {
				w, h, err = webpVP8Size(payload)
			} else {
				f.lossless = true
				w, h, _, err = webpVP8LSize(payload)
			}
			if err != nil {
				return f, err
			}
			if w != f.width || h != f.height {
				return f, fmt.Errorf("%w: webp: %q bitstream is %d×%d but the VP8X canvas is %d×%d",
					ErrCorrupt, fourcc, w, h, f.width, f.height)
			}
		}
	}
	if !imageFound {
		return f, fmt.Errorf("%w: webp: extended file without a VP8 or VP8L chunk", ErrCorrupt)
	}
	return f, nil
}

// webpChunk reads the chunk header at pos of body (which ends where the RIFF chunk
// ends) and returns its FourCC, its payload, and where the next chunk starts (the
// payload is padded to an even length; the padding may be missing at the very end).
func webpChunk(body []byte, pos int) (fourcc string, payload []byte, next int, err error) {
	if len(body)-pos < 8 {
		return "", nil, 0, fmt.Errorf("%w: webp: truncated chunk header at offset %d", ErrCorrupt, pos)
	}
	fourcc = webpFourCC(body[pos : pos+4])
	n := binary.LittleEndian.Uint32(body[pos+4 : pos+8])
	if uint64(n) > uint64(len(body)-pos-8) {
		return "", nil, 0, fmt.Errorf("%w: webp: chunk %q at offset %d (%d bytes) runs past the end of the RIFF chunk",
			ErrCorrupt, body[pos:pos+4], pos, n)
	}
	start := pos + 8
	end := start + int(n)
	return fourcc, body[start:end], end + int(n&1), nil
}

// webpFourCC returns the chunk name b as one of the constant strings the reader acts
// on (so that naming a chunk never allocates), or "" for any other name.
func webpFourCC(b []byte) string {
	for _, name := range [...]string{"VP8 ", "VP8L", "VP8X", "ANIM", "ANMF", "EXIF"} {
		if string(b) == name {
			return name
		}
	}
	return ""
}

// webpVP8Size reads the frame size from a "VP8 " payload (RFC 6386 §9.1): a 3-byte
// frame tag of a key frame, the start code 9d 01 2a, then 14-bit width and height
// (the top two bits of each are an upscaling hint that does not change the size).
func webpVP8Size(p []byte) (width, height int, err error) {
	if len(p) < 10 {
		return 0, 0, fmt.Errorf("%w: webp: VP8 chunk of %d bytes, want at least 10", ErrCorrupt, len(p))
	}
	if p[0]&1 != 0 {
		return 0, 0, fmt.Errorf("%w: webp: VP8 bitstream does not start with a key frame", ErrCorrupt)
	}
	if p[3] != 0x9d || p[4] != 0x01 || p[5] != 0x2a {
		return 0, 0, fmt.Errorf("%w: webp: VP8 start code is % x, want 9d 01 2a", ErrCorrupt, p[3:6])
	}
	width = int(binary.LittleEndian.Uint16(p[6:8]) & 0x3fff)
	height = int(binary.LittleEndian.Uint16(p[8:10]) & 0x3fff)
	if width == 0 || height == 0 {
		return 0, 0, fmt.Errorf("%w: webp: VP8 frame of %d×%d pixels", ErrCorrupt, width, height)
	}
	return width, height, nil
}

// webpVP8LSize reads the image size from a "VP8L" payload: the signature byte 0x2f,
// then 14 bits of width-1, 14 bits of height-1, the alpha hint and a 3-bit version
// that must be 0, packed little-endian.
func webpVP8LSize(p []byte) (width, height int, alpha bool, err error) {
	if len(p) < 5 {
		return 0, 0, false, fmt.Errorf("%w: webp: VP8L chunk of %d bytes, want at least 5", ErrCorrupt, len(p))
	}
	if p[0] != 0x2f {
		return 0, 0, false, fmt.Errorf("%w: webp: VP8L signature is 0x%02x, want 0x2f", ErrCorrupt, p[0])
	}
	bits := binary.LittleEndian.Uint32(p[1:5])
	if v := bits >> 29; v != 0 {
		return 0, 0, false, fmt.Errorf("%w: webp: VP8L version %d, want 0", ErrCorrupt, v)
	}
	return int(bits&0x3fff) + 1, int(bits>>14&0x3fff) + 1, bits>>28&1 != 0, nil
}
