package preprocess

import "image"

// ycbcrToRGB converts a planar YCbCr image of any chroma subsampling into packed RGB
// with the standard library's fixed-point formula (color.YCbCrToRGB), nearest
// chroma sample, no per-pixel interface calls.
func ycbcrToRGB(m *image.YCbCr, dst *rgbImage) {
	b := m.Rect
	w, h := b.Dx(), b.Dy()
	dst.reset(w, h)
	// Chroma shifts: how many luma samples share one chroma sample, as a power of two.
	var sx, sy int
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio422:
		sx = 1
	case image.YCbCrSubsampleRatio420:
		sx, sy = 1, 1
	case image.YCbCrSubsampleRatio440:
		sy = 1
	case image.YCbCrSubsampleRatio411:
		sx = 2
	case image.YCbCrSubsampleRatio410:
		sx, sy = 2, 1
	}
	for y := range h {
		yrow := m.Y[(y)*m.YStride : y*m.YStride+w]
		cy := (b.Min.Y+y)>>sy - b.Min.Y>>sy
		crow := cy * m.CStride
		o := dst.pix[y*3*w : (y+1)*3*w]
		for x, yv := range yrow {
			ci := crow + (b.Min.X+x)>>sx - b.Min.X>>sx
			r, g, bl := ycbcrPixel(yv, m.Cb[ci], m.Cr[ci])
			d := o[3*x : 3*x+3 : 3*x+3]
			d[0], d[1], d[2] = r, g, bl
		}
	}
}

// ycbcrPixel is color.YCbCrToRGB, inlined.
func ycbcrPixel(y, cb, cr byte) (byte, byte, byte) {
	yy1 := int32(y) * 0x10101
	cb1 := int32(cb) - 128
	cr1 := int32(cr) - 128
	r := yy1 + 91881*cr1
	if uint32(r)&0xff000000 == 0 {
		r >>= 16
	} else {
		r = ^(r >> 31)
	}
	g := yy1 - 22554*cb1 - 46802*cr1
	if uint32(g)&0xff000000 == 0 {
		g >>= 16
	} else {
		g = ^(g >> 31)
	}
	bl := yy1 + 116130*cb1
	if uint32(bl)&0xff000000 == 0 {
		bl >>= 16
	} else {
		bl = ^(bl >> 31)
	}
	return byte(r), byte(g), byte(bl)
}

// webpYUVToRGB converts a lossy WebP frame (BT.601 limited-range YUV, which
// x/image/webp returns as an image.YCbCr although image.YCbCr assumes JFIF's full
// range) with libwebp's fixed-point formula, nearest chroma sample. libwebp also
// interpolates chroma ("fancy upsampling"), which this does not.
func webpYUVToRGB(m *image.YCbCr, dst *rgbImage) {
	b := m.Rect
	w, h := b.Dx(), b.Dy()
	dst.reset(w, h)
	for y := range h {
		yrow := m.Y[y*m.YStride : y*m.YStride+w]
		crow := ((b.Min.Y+y)>>1 - b.Min.Y>>1) * m.CStride
		o := dst.pix[y*3*w : (y+1)*3*w]
		for x, yv := range yrow {
			ci := crow + (b.Min.X+x)>>1 - b.Min.X>>1
			u, v := int(m.Cb[ci]), int(m.Cr[ci])
			yy := int(yv) * 19077 >> 8
			d := o[3*x : 3*x+3 : 3*x+3]
			d[0] = webpClip(yy + v*26149>>8 - 14234)
			d[1] = webpClip(yy - u*6419>>8 - v*13320>>8 + 8708)
			d[2] = webpClip(yy + u*33050>>8 - 17685)
		}
	}
}

// webpClip is libwebp's VP8Clip8 with 6 fractional bits.
func webpClip(v int) byte {
	const mask = 256<<6 - 1
	if v&^mask == 0 {
		return byte(v >> 6)
	}
	if v < 0 {
		return 0
	}
	return 255
}
