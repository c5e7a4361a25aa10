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
