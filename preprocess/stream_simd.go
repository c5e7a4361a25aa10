//go:build cgo && (amd64 || arm64)

package preprocess

import (
	"fmt"
	"time"
)

// Streaming: a large upright (or mirrored) JPEG is resized as libjpeg-turbo
// decodes it. Each batch of decoded rows goes through the SIMD horizontal pass at
// once, into the resampler's intermediate rows, so the whole RGB picture (36 MB
// for 12 MP) is never held: only streamRows rows of the decoded region and the
// horizontally resampled rows the vertical pass needs (224 columns wide). The
// output is byte-identical to decoding the picture and then resizing it.
// Orientations 5 to 8 read the picture column by column and keep the decode-then-
// resize path, as do small pictures, where the whole picture costs little.

// streamRows is how many decoded rows one batch holds.
const streamRows = 16

// defaultStreamMinPixels is the decoded size from which JPEGs are streamed.
const defaultStreamMinPixels = 2_000_000

// processStreaming decodes a JPEG into the tensor (or into s.resized, for the
// caller to normalise, when normalized is false) batch by batch. handled is false,
// with nothing done, when streaming does not apply to this picture.
func (p *Preprocessor) processStreaming(data []byte, h Header, s *scratch, tensor []byte, info *Info) (handled, normalized bool, err error) {
	if !haveSIMD || p.scalarResize || h.Format != FormatJPEG || h.Orientation > 4 || p.spec.Filter == FilterNearest {
		return false, false, nil
	}
	e, dw, dh := p.dctScale(h)
	if dw*dh < p.streamMinPixels {
		return false, false, nil
	}
	t := p.spec.target(dw, dh)
	if t.w == dw || t.h == dh {
		return false, false, nil
	}
	r := &s.rs
	r.scalar, r.noVNNI = false, p.noVNNI
	win := t.win
	r.vert.compute(dh, t.h, win.y, win.h, p.spec.Filter)
	yFirst, yLast := r.vert.span()
	rowBytes := 3 * win.w
	r.tmp = grow(r.tmp, (yLast-yFirst)*rowBytes)
	r.horiz.compute(dw, t.w, win.x, win.w, p.spec.Filter)
	mirrored := h.Orientation == 2 || h.Orientation == 3
	flipped := h.Orientation == 3 || h.Orientation == 4
	reach := r.taps(&r.horiz, win.w, mirrored, dw, 0)

	start := time.Now()
	d, err := openJPEG(data, h.Width, h.Height, e, p.spec.neededRegion(dw, dh, h.Orientation))
	if err != nil {
		return true, false, err
	}
	defer d.close()
	// The batch rows start at column d.x0 of the picture: shift the taps to match
	// (the shifted tables are this picture's only).
	r.tapsOf = tapsKey{}
	for i := range r.starts {
		r.starts[i] -= int32(3 * d.x0)
		if r.starts[i] < 0 {
			return true, false, fmt.Errorf("%w: decode jpeg: libjpeg decoded from column %d, after a tap of the resize", ErrCorrupt, d.x0)
		}
	}
	for i := range r.qbase {
		r.qbase[i] -= int32(3 * d.x0)
	}
	reach -= 3 * d.x0
	stride := 3 * d.cw
	s.batch = grow(s.batch, streamRows*stride+simdSlack)[:streamRows*stride]
	var resizing time.Duration
	for sy := d.y0; sy < d.y1; {
		n, err := d.read(s.batch, stride, streamRows)
		if err != nil {
			return true, false, err
		}
		if n == 0 {
			return true, false, fmt.Errorf("%w: decode jpeg: no rows decoded", ErrCorrupt)
		}
		// The stored rows [a, b) of this batch that the vertical pass reads, in view
		// rows [ya, ya+b-a): the same rows, or counted from the bottom when flipped.
		a, b := sy, sy+n
		if flipped {
			a, b = max(a, dh-yLast), min(b, dh-yFirst)
		} else {
			a, b = max(a, yFirst), min(b, yLast)
		}
		if a < b {
			hStart := time.Now()
			row0, step, ya := (a-sy)*stride, stride, a
			if flipped {
				row0, step, ya = (b-1-sy)*stride, -stride, dh-b
			}
			if !r.hpass(s.batch, row0, step, b-a, reach, r.tmp, (ya-yFirst)*rowBytes, rowBytes, 3) {
				return true, false, fmt.Errorf("%w: the streaming resize's rows do not fit its buffers", ErrInvalidSpec)
			}
			resizing += time.Since(hStart)
		}
		sy += n
	}
	if err := d.finish(); err != nil {
		return true, false, err
	}
	decoded := time.Now()
	info.DecodedWidth, info.DecodedHeight = dw, dh
	info.Stages.Decode = decoded.Sub(start) - resizing

	stride3 := 3 * p.spec.Width
	if p.spec.Resize == ResizeLetterbox {
		p.fillLetterbox(s.resized)
	} else if r.verticalNormalizeSIMD(yFirst, win, p.norm, tensor) {
		info.Stages.Resize = resizing + time.Since(decoded)
		return true, true, nil
	}
	if !r.verticalSIMD(yFirst, rowBytes, win.h, s.resized, t.dstY*stride3+3*t.dstX, stride3) {
		return true, false, fmt.Errorf("%w: the streaming resize's window does not fit the tensor", ErrInvalidSpec)
	}
	info.Stages.Resize = resizing + time.Since(decoded)
	return true, false, nil
}
