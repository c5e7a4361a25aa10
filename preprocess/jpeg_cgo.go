//go:build cgo

package preprocess

// The libjpeg-turbo backend. It uses the libjpeg API (not TurboJPEG) so that it can
// set the same decompression parameters as Pillow, which links the same library
// (Pillow 13 wheels bundle libjpeg-turbo 3.2): on the test fixtures the output,
// full-scale and DCT-scaled, CMYK and YCCK included, is byte-identical to
// Image.open(f).convert("RGB") (after draft() for the scaled ones).
//
// libjpeg reports fatal errors by calling error_exit, which must not return; the
// usual answer is setjmp/longjmp. A longjmp must never cross a Go frame, so every
// C function Go calls (jpeg.c: open, read rows, finish) arms its own jump buffer
// on entry: a longjmp lands back in that function, which returns a status, and
// after a failure Go only frees the decoder. The decoder lives in C memory (libjpeg
// keeps pointers into it); the input bytes, which libjpeg reads between calls, are
// pinned (runtime.Pinner) until it is freed; scanlines are written straight into
// the Go buffer passed to each read, and C keeps no pointer to it afterwards.

/*
#cgo LDFLAGS: -ljpeg
#include "jpeg.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// jpegBackend names the decoder in use: "libjpeg-turbo" or "image/jpeg".
const jpegBackend = "libjpeg-turbo"

// decodeJPEG decodes a JPEG whose header was already read and accepted by the caller
// (wantW×wantH are the full-size dimensions from the header) into dst as packed RGB,
// at a DCT scale of 1/denom, denom ∈ {1,2,4,8}, and returns the denominator used.
// It is decodeJPEGEighths for the power-of-two scales Pillow's draft() uses.
func decodeJPEG(data []byte, wantW, wantH, denom int, dst *rgbImage) (int, error) {
	switch denom {
	case 2, 4, 8:
	default:
		denom = 1
	}
	eighths, err := decodeJPEGEighths(data, wantW, wantH, 8/denom, dst)
	if err != nil {
		return 0, err
	}
	return 8 / eighths, nil
}

// decodeJPEGEighths decodes like decodeJPEG at a DCT scale of eighths/8, eighths ∈
// 1..8 (anything else decodes at full scale), and returns the scale used. dst is
// resized to libjpeg's output size, ceil(w×eighths/8)×ceil(h×eighths/8). libjpeg-turbo
// scales inside the inverse DCT, which gives a properly filtered picture; only its
// 1/8, 1/4, 1/2 and 8/8 inverse DCTs are SIMD (Preprocessor.dctEighths picks among
// those). Errors wrap ErrCorrupt (anything malformed or
// truncated) or ErrUnsupportedFormat (a JPEG variant the decoder cannot do, e.g.
// 12-bit, lossless).
//
// This build decodes with libjpeg-turbo exactly as Pillow does: the accurate
// integer IDCT, fancy upsampling, and Pillow's CMYK→RGB conversion.
func decodeJPEGEighths(data []byte, wantW, wantH, eighths int, dst *rgbImage) (int, error) {
	return decodeJPEGRegion(data, wantW, wantH, eighths, region{}, dst)
}

// decodeJPEGRegion is decodeJPEGEighths that only needs the pixels of need (in the
// scaled picture's stored coordinates; the zero region means all): the others
// hold whatever dst held before.
func decodeJPEGRegion(data []byte, wantW, wantH, eighths int, need region, dst *rgbImage) (int, error) {
	if eighths < 1 || eighths > 8 {
		eighths = 8
	}
	d, err := openJPEG(data, wantW, wantH, eighths, need)
	if err != nil {
		return 0, err
	}
	defer d.close()
	dst.reset(d.w, d.h)
	stride := 3 * d.w
	if _, err := d.read(dst.pix[d.y0*stride+3*d.x0:], stride, d.y1-d.y0); err != nil {
		return 0, err
	}
	if err := d.finish(); err != nil {
		return 0, err
	}
	return eighths, nil
}

// jpegDecode is a libjpeg-turbo decode in progress: open, read the rows in order
// (all at once or a few at a time), finish, close.
type jpegDecode struct {
	j      *C.fc_jpeg
	pin    runtime.Pinner // data, which libjpeg reads between calls
	w, h   int            // the scaled picture
	x0, cw int            // the columns decoded: [x0, x0+cw)
	y0, y1 int            // the rows read returns: [y0, y1)
}

// openJPEG starts decoding a JPEG whose header the caller read and accepted
// (wantW×wantH at full scale) at a DCT scale of eighths/8, only the columns and
// rows of need when need is not the zero region. The decoder must be closed.
func openJPEG(data []byte, wantW, wantH, eighths int, need region) (*jpegDecode, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: decode jpeg: no data", ErrCorrupt)
	}
	if wantW < 1 || wantH < 1 || wantW > jpegMaxSide || wantH > jpegMaxSide {
		return nil, fmt.Errorf("%w: decode jpeg: %d×%d is not a JPEG size", ErrCorrupt, wantW, wantH)
	}
	j := C.fc_jpeg_new()
	if j == nil {
		return nil, fmt.Errorf("decode jpeg: out of memory")
	}
	d := &jpegDecode{j: j}
	d.pin.Pin(&data[0])
	status := C.fc_jpeg_open(j, (*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)),
		C.int(wantW), C.int(wantH), C.int(eighths),
		C.int(need.x0), C.int(need.y0), C.int(need.x1), C.int(need.y1),
		C.int(jpegMaxScans), C.int(jpegMaxWarnings))
	if err := d.err(status); err != nil {
		d.close()
		return nil, err
	}
	res := &j.res
	d.w, d.h = int(res.out_w), int(res.out_h)
	d.x0, d.cw, d.y0, d.y1 = int(res.out_x0), int(res.out_cw), int(res.out_y0), int(res.out_y1)
	return d, nil
}

// read decodes the next rows, at most n, into out as packed RGB, row i at
// out[i*stride:], cw pixels each, and returns how many it decoded.
func (d *jpegDecode) read(out []byte, stride, n int) (int, error) {
	if n <= 0 {
		return 0, nil
	}
	n = min(n, d.y1-d.y0)
	if need := (n-1)*stride + 3*d.cw; n > 0 && len(out) < need {
		return 0, fmt.Errorf("%w: decode jpeg: a %d-byte buffer for %d rows of %d bytes", ErrInvalidSpec, len(out), n, 3*d.cw)
	}
	var got C.int
	status := C.fc_jpeg_read(d.j, (*C.uchar)(unsafe.Pointer(unsafe.SliceData(out))), C.size_t(stride), C.int(n), &got)
	return int(got), d.err(status)
}

// finish decodes what is left of the file after the rows read, without keeping it.
func (d *jpegDecode) finish() error { return d.err(C.fc_jpeg_finish(d.j)) }

// close frees the decoder; it may be called once, after any other call.
func (d *jpegDecode) close() {
	C.fc_jpeg_free(d.j)
	d.j = nil
	d.pin.Unpin()
}

func (d *jpegDecode) err(status C.int) error {
	switch status {
	case C.FC_OK:
		return nil
	case C.FC_UNSUPPORTED:
		return fmt.Errorf("%w: decode jpeg: %s", ErrUnsupportedFormat, C.GoString(&d.j.res.msg[0]))
	default:
		return fmt.Errorf("%w: decode jpeg: %s", ErrCorrupt, C.GoString(&d.j.res.msg[0]))
	}
}
