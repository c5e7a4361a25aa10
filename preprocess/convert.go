package preprocess

import (
	"image"
	"image/color"
)

// This file converts the images the standard decoders return into packed RGB the way
// Pillow's Image.convert("RGB") does, which is what Keras' load_img and
// torchvision's loaders feed models:
//   - grayscale is replicated into the three channels;
//   - alpha is dropped, not composited: the stored colour of a transparent pixel is
//     kept (PNG and lossless WebP store non-premultiplied colour, and so do the
//     image.NRGBA types Go decodes them into);
//   - palette images take the palette's RGB, ignoring its transparency;
//   - 16-bit colour and grey+alpha keep the high byte of each sample (Pillow's
//     "RGB;16B" and "LA;16B" raw modes), while 16-bit greyscale without alpha, which
//     Pillow opens as mode "I;16", is clipped: samples above 255 become 255 (Pillow's
//     I;16 to RGB conversion). clipGray16 selects that rule.

// toRGB converts img into dst. clipGray16 applies Pillow's I;16 rule to 16-bit grey
// samples (a PNG of colour type 0 with bit depth 16, with or without tRNS).
func toRGB(img image.Image, dst *rgbImage, clipGray16 bool) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	dst.reset(w, h)
	out := dst.pix
	switch m := img.(type) {
	case *image.Gray:
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			o := out[y*3*w : (y+1)*3*w]
			for x, v := range row {
				o[3*x], o[3*x+1], o[3*x+2] = v, v, v
			}
		}
	case *image.Gray16:
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+2*w]
			o := out[y*3*w : (y+1)*3*w]
			for x := range w {
				v := gray16To8(row[2*x], row[2*x+1], clipGray16)
				o[3*x], o[3*x+1], o[3*x+2] = v, v, v
			}
		}
	case *image.RGBA: // only opaque images decode to RGBA, so colour is not premultiplied
		copyRGBFrom4(out, m.Pix, m.Stride, w, h)
	case *image.NRGBA:
		copyRGBFrom4(out, m.Pix, m.Stride, w, h)
	case *image.RGBA64: // opaque 16-bit colour
		copyRGBFrom8(out, m.Pix, m.Stride, w, h, false)
	case *image.NRGBA64:
		copyRGBFrom8(out, m.Pix, m.Stride, w, h, clipGray16)
	case *image.Paletted:
		var pal [256][3]byte // indices past the palette's end read as black
		for i, c := range m.Palette {
			if i == 256 {
				break
			}
			pal[i] = storedRGB(c)
		}
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			o := out[y*3*w : (y+1)*3*w]
			for x, idx := range row {
				p := &pal[idx]
				o[3*x], o[3*x+1], o[3*x+2] = p[0], p[1], p[2]
			}
		}
	case *image.YCbCr:
		ycbcrToRGB(m, dst)
	case *image.NYCbCrA:
		ycbcrToRGB(&m.YCbCr, dst)
	default:
		i := 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				rgb := storedRGB(img.At(x, y))
				out[i], out[i+1], out[i+2] = rgb[0], rgb[1], rgb[2]
				i += 3
			}
		}
	}
}

func gray16To8(hi, lo byte, clip bool) byte {
	if !clip {
		return hi
	}
	if hi != 0 {
		return 255
	}
	return lo
}

// copyRGBFrom4 copies the first three of every four bytes.
func copyRGBFrom4(out, pix []byte, stride, w, h int) {
	for y := range h {
		row := pix[y*stride : y*stride+4*w]
		o := out[y*3*w : (y+1)*3*w]
		for x := range w {
			s := row[4*x : 4*x+3 : 4*x+3]
			d := o[3*x : 3*x+3 : 3*x+3]
			d[0], d[1], d[2] = s[0], s[1], s[2]
		}
	}
}

// copyRGBFrom8 reduces 16-bit RGBA samples (big-endian) to 8-bit RGB.
func copyRGBFrom8(out, pix []byte, stride, w, h int, clipGray16 bool) {
	for y := range h {
		row := pix[y*stride : y*stride+8*w]
		o := out[y*3*w : (y+1)*3*w]
		for x := range w {
			s := row[8*x : 8*x+6 : 8*x+6]
			d := o[3*x : 3*x+3 : 3*x+3]
			d[0] = gray16To8(s[0], s[1], clipGray16)
			d[1] = gray16To8(s[2], s[3], clipGray16)
			d[2] = gray16To8(s[4], s[5], clipGray16)
		}
	}
}

// storedRGB returns the colour a pixel stores, without its alpha and without
// premultiplication.
func storedRGB(c color.Color) [3]byte {
	switch v := c.(type) {
	case color.NRGBA:
		return [3]byte{v.R, v.G, v.B}
	case color.RGBA:
		if v.A == 255 {
			return [3]byte{v.R, v.G, v.B}
		}
	}
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	return [3]byte{n.R, n.G, n.B}
}
