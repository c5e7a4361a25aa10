package preprocess

// resizeTarget is the size the whole (oriented) picture is resized to, and the
// window of that resized picture that lands in the tensor at (dstX, dstY).
type resizeTarget struct {
	w, h       int
	win        rect
	dstX, dstY int
}

// target computes the resize geometry of a srcW×srcH oriented picture.
func (s Spec) target(srcW, srcH int) resizeTarget {
	W, H := s.Width, s.Height
	switch s.Resize {
	case ResizeShorterCrop:
		// torchvision: the shorter side becomes ShorterSide, the longer
		// int(ShorterSide*long/short); then the crop offsets are round((size-crop)/2)
		// with Python's round-half-to-even.
		S := s.ShorterSide
		var nw, nh int
		if srcW <= srcH {
			nw, nh = S, S*srcH/srcW
		} else {
			nw, nh = S*srcW/srcH, S
		}
		return resizeTarget{w: nw, h: nh, win: rect{roundHalfEven(nw - W), roundHalfEven(nh - H), W, H}}
	case ResizeLetterbox:
		var nw, nh int
		if W*srcH <= H*srcW { // width-bound
			nw, nh = W, max(1, (2*srcH*W+srcW)/(2*srcW))
		} else {
			nw, nh = max(1, (2*srcW*H+srcH)/(2*srcH)), H
		}
		return resizeTarget{w: nw, h: nh, win: rect{0, 0, nw, nh}, dstX: (W - nw) / 2, dstY: (H - nh) / 2}
	}
	return resizeTarget{w: W, h: H, win: rect{0, 0, W, H}}
}

// roundHalfEven returns round(n/2) with Python's rounding (half to even) for n ≥ 0.
func roundHalfEven(n int) int {
	q := n / 2
	if n%2 == 1 && q%2 == 1 {
		q++
	}
	return q
}

// region is a rectangle of a stored picture, [x0, x1) × [y0, y1); the zero region
// stands for the whole picture.
type region struct{ x0, y0, x1, y1 int }

// regionMargin is how many pixels a decode region reaches beyond the pixels the
// resize reads: more than a JPEG iMCU (16 at most), so that chroma upsampling at
// the region's edges sees the same neighbours as in a full decode.
const regionMargin = 18

// sourceSpan returns the source positions [lo, hi) that a resize of inSize
// samples to outSize reads for the output positions [first, first+n), by the
// bounds coeffs.compute and nearestTable give (outSize == inSize reads its window).
func sourceSpan(inSize, outSize, first, n int, f Filter) (lo, hi int) {
	if outSize == inSize {
		return first, first + n
	}
	scale := float64(inSize) / float64(outSize)
	if f == FilterNearest {
		return int(scale * float64(first)), min(inSize, int(scale*float64(first+n))+1)
	}
	support := filters[f].support * max(scale, 1)
	lo = int(float64(float64(first)+0.5)*scale - support + 0.5)
	hi = int(float64(float64(first+n-1)+0.5)*scale + support + 0.5)
	return max(lo, 0), min(hi, inSize)
}

// neededRegion returns the part of a stored w×h picture, shown under EXIF
// orientation o, that the resize to s reads, widened by regionMargin; the zero
// region when that is (nearly) the whole picture.
func (s Spec) neededRegion(w, h, o int) region {
	ow, oh := w, h
	if o >= 5 {
		ow, oh = h, w
	}
	t := s.target(ow, oh)
	xlo, xhi := sourceSpan(ow, t.w, t.win.x, t.win.w, s.Filter)
	ylo, yhi := sourceSpan(oh, t.h, t.win.y, t.win.h, s.Filter)
	xlo, ylo = max(0, xlo-regionMargin), max(0, ylo-regionMargin)
	xhi, yhi = min(ow, xhi+regionMargin), min(oh, yhi+regionMargin)
	// The oriented view's x and y ranges in stored coordinates (orientedView).
	mirrorX := o == 2 || o == 3 || o == 6 || o == 7 // the view's x runs backwards in storage
	mirrorY := o == 3 || o == 4 || o == 7 || o == 8 // the view's y runs backwards in storage
	if mirrorX {
		xlo, xhi = ow-xhi, ow-xlo
	}
	if mirrorY {
		ylo, yhi = oh-yhi, oh-ylo
	}
	r := region{xlo, ylo, xhi, yhi}
	if o >= 5 { // the view's x is the stored y
		r = region{ylo, xlo, yhi, xhi}
	}
	if (r.x1-r.x0)*(r.y1-r.y0) > w*h*15/16 {
		return region{}
	}
	return r
}
