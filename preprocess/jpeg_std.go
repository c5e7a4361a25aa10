package preprocess

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
)

const (
	// jpegMaxSide is the largest side a JPEG frame header can declare.
	jpegMaxSide = 65535
	// jpegMaxScans bounds the scans of one file. Each scan of a progressive (or
	// multi-scan) JPEG makes the decoder pass over every block of its
	// components, so a small file of thousands of tiny scans costs seconds of
	// CPU (libjpeg-turbo's djpeg has -maxscans for this; NVIDIA's nvImageCodec
	// caps it at 256). Encoders write ~10 scans (libjpeg's default progressive
	// script has 10, mozjpeg's at most a few dozen).
	jpegMaxScans = 256
	// jpegMaxWarnings bounds the corrupt-data warnings libjpeg may recover from
	// in one file before the decode is abandoned as corrupt.
	jpegMaxWarnings = 1000
)

// decodeJPEGStd decodes a JPEG with the standard library's image/jpeg into dst as
// packed RGB, at full scale. wantW×wantH are the dimensions the caller read from
// the header and checked against its limits; a frame of any other size is
// corrupt (and is rejected before its pixels are allocated). Errors wrap
// ErrCorrupt, or ErrUnsupportedFormat for what image/jpeg cannot decode
// (arithmetic coding, 12-bit, lossless).
//
// Colour follows Pillow's convert("RGB") on the same file, up to the decoders'
// rounding: YCbCr with the standard library's formula (image/jpeg upsamples chroma
// by replication where libjpeg interpolates), grey replicated, CMYK and YCCK with
// Pillow's formula. A 4-component file without an Adobe marker, which image/jpeg
// refuses, is decoded the way libjpeg and Pillow do: as CMYK in Adobe's inverted
// polarity.
func decodeJPEGStd(data []byte, wantW, wantH int, dst *rgbImage) (err error) {
	if len(data) == 0 {
		return fmt.Errorf("%w: decode jpeg: no data", ErrCorrupt)
	}
	mk := walkJPEGMarkers(data, jpegMaxScans)
	if mk.scans > jpegMaxScans {
		return fmt.Errorf("%w: decode jpeg: more than %d scans (a progressive JPEG with too many scans takes too long to decode)", ErrCorrupt, jpegMaxScans)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: decode jpeg: decoder panic: %v", ErrCorrupt, r)
		}
	}()
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return jpegStdError(err)
	}
	if cfg.Width != wantW || cfg.Height != wantH {
		return fmt.Errorf("%w: decode jpeg: the frame is %d×%d, the header read before declared %d×%d", ErrCorrupt, cfg.Width, cfg.Height, wantW, wantH)
	}
	if cfg.ColorModel == color.CMYKModel && !mk.adobe {
		data = withAdobeMarker(data)
	}
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return jpegStdError(err)
	}
	if b := img.Bounds(); b.Dx() != wantW || b.Dy() != wantH {
		return fmt.Errorf("%w: decode jpeg: decoded %d×%d, the header declared %d×%d", ErrCorrupt, b.Dx(), b.Dy(), wantW, wantH)
	}
	return jpegImageToRGB(img, dst)
}

// jpegStdError maps image/jpeg's errors onto the package's.
func jpegStdError(err error) error {
	var unsupported jpeg.UnsupportedError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		err == jpeg.FormatError("short Huffman data"): // the data ended inside a scan
		return fmt.Errorf("%w: decode jpeg: truncated: %v", ErrCorrupt, err)
	case errors.As(err, &unsupported):
		return fmt.Errorf("%w: decode jpeg: %v", ErrUnsupportedFormat, err)
	default: // jpeg.FormatError and anything else
		return fmt.Errorf("%w: decode jpeg: %v", ErrCorrupt, err)
	}
}

// jpegImageToRGB converts what image/jpeg returns into dst.
func jpegImageToRGB(img image.Image, dst *rgbImage) error {
	switch m := img.(type) {
	case *image.YCbCr: // any chroma subsampling
		ycbcrToRGB(m, dst)
	case *image.Gray:
		w, h := m.Rect.Dx(), m.Rect.Dy()
		dst.reset(w, h)
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			o := dst.pix[y*3*w : (y+1)*3*w]
			for x, v := range row {
				d := o[3*x : 3*x+3 : 3*x+3]
				d[0], d[1], d[2] = v, v, v
			}
		}
	case *image.CMYK:
		cmykToRGB(m, dst)
	case *image.RGBA: // 3-component files marked as RGB (Adobe transform 0), opaque
		w, h := m.Rect.Dx(), m.Rect.Dy()
		dst.reset(w, h)
		copyRGBFrom4(dst.pix, m.Pix, m.Stride, w, h)
	default:
		return fmt.Errorf("%w: decode jpeg: unexpected %T from image/jpeg", ErrUnsupportedFormat, img)
	}
	return nil
}

// cmykToRGB converts image/jpeg's CMYK with Pillow's formula. image/jpeg undoes
// Adobe's inversion (its samples are ink amounts, 255 = full ink), so they are
// the values Pillow reads with its "CMYK;I" raw mode, and convert("RGB") gives,
// per channel, nk - MULDIV255(C, nk) with nk = 255 - K.
func cmykToRGB(m *image.CMYK, dst *rgbImage) {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	dst.reset(w, h)
	for y := range h {
		row := m.Pix[y*m.Stride : y*m.Stride+4*w]
		o := dst.pix[y*3*w : (y+1)*3*w]
		for x := range w {
			s := row[4*x : 4*x+4 : 4*x+4]
			d := o[3*x : 3*x+3 : 3*x+3]
			nk := 255 - int32(s[3])
			d[0] = byte(nk - muldiv255(int32(s[0]), nk))
			d[1] = byte(nk - muldiv255(int32(s[1]), nk))
			d[2] = byte(nk - muldiv255(int32(s[2]), nk))
		}
	}
}

// muldiv255 is Pillow's MULDIV255: a*b/255 rounded, for a, b in [0, 255]. The
// result is at most b, so nk - muldiv255(c, nk) needs no clipping.
func muldiv255(a, b int32) int32 {
	t := a*b + 128
	return ((t >> 8) + t) >> 8
}

// jpegMarkers is what walkJPEGMarkers learns from a stream's marker segments.
type jpegMarkers struct {
	scans int  // SOS markers, counted up to the limit + 1
	adobe bool // a valid Adobe APP14 segment (12 bytes at least, "Adobe")
}

// walkJPEGMarkers follows the marker segments of a JPEG stream from SOI to EOI,
// skipping entropy-coded data, without decoding anything; it stops at the first
// malformed structure (the decoder will report it) or once it has counted more
// than maxScans scans. It costs a pass over the bytes at memchr speed.
func walkJPEGMarkers(data []byte, maxScans int) jpegMarkers {
	var mk jpegMarkers
	if len(data) < 2 || data[0] != 0xFF || data[1] != 0xD8 {
		return mk
	}
	i := 2
	for {
		// Find the next marker, skipping extraneous bytes (both decoders tolerate
		// them) and 0xFF fill bytes.
		j := bytes.IndexByte(data[i:], 0xFF)
		if j < 0 {
			return mk
		}
		i += j
		for i < len(data) && data[i] == 0xFF {
			i++
		}
		if i >= len(data) {
			return mk
		}
		m := data[i]
		i++
		switch {
		case m == 0xD9: // EOI
			return mk
		case m == 0x00 || m == 0x01 || m == 0xD8 || m >= 0xD0 && m <= 0xD7:
			continue // stuffed byte, TEM, SOI, RSTn: no length
		}
		if i+2 > len(data) {
			return mk
		}
		n := int(data[i])<<8 | int(data[i+1])
		if n < 2 || i+n > len(data) {
			return mk
		}
		seg := data[i+2 : i+n]
		i += n
		switch m {
		case 0xEE: // APP14
			if len(seg) >= 12 && string(seg[:5]) == "Adobe" {
				mk.adobe = true
			}
		case 0xDA: // SOS: the entropy-coded data runs to the next marker other than RSTn
			mk.scans++
			if mk.scans > maxScans {
				return mk
			}
			for {
				j := bytes.IndexByte(data[i:], 0xFF)
				if j < 0 || i+j+1 >= len(data) {
					return mk
				}
				if c := data[i+j+1]; c == 0x00 || c >= 0xD0 && c <= 0xD7 {
					i += j + 2
					continue
				}
				i += j
				break
			}
		}
	}
}

// adobeCMYK is an Adobe APP14 segment with transform 0: no colour transform,
// Adobe's inverted CMYK. It is what libjpeg assumes of a 4-component file with no
// Adobe segment, and Pillow assumes the inversion.
var adobeCMYK = []byte{0xFF, 0xEE, 0x00, 0x0E, 'A', 'd', 'o', 'b', 'e', 0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00}

// withAdobeMarker returns a copy of data with adobeCMYK right after SOI.
func withAdobeMarker(data []byte) []byte {
	out := make([]byte, 0, len(data)+len(adobeCMYK))
	out = append(out, data[:2]...)
	out = append(out, adobeCMYK...)
	return append(out, data[2:]...)
}
