package preprocess

// simdSlack is the spare capacity kept after an image's pixels: the SIMD resize
// reads up to 16 bytes past the last pixel it uses (and ignores them).
const simdSlack = 32

// rgbImage is a decoded picture as packed 8-bit RGB: three bytes a pixel, rows of
// 3*w bytes, no padding. Every decoder produces one, whatever the file's colour type,
// so the resize and normalise stages have a single input form.
type rgbImage struct {
	pix  []byte
	w, h int
}

// reset sizes m to w×h, reusing its buffer when it is large enough. The pixels are
// left as they were: the caller overwrites all of them.
func (m *rgbImage) reset(w, h int) {
	n := w * h * 3
	if cap(m.pix) < n+simdSlack {
		m.pix = make([]byte, n, n+simdSlack)
	}
	m.pix = m.pix[:n]
	m.w, m.h = w, h
}
