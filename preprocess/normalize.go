package preprocess

import (
	"encoding/binary"
	"math"

	"github.com/fish-classifier/fish-classifier/internal/float16"
)

// normalizer writes a packed RGB image into a tensor. Every possible input byte of
// every channel is mapped once, at construction, to its output bytes, so the hot
// loop is a table look-up and a store per element.
type normalizer struct {
	layout   Layout
	dtype    DataType
	srcChan  [3]int         // tensor channel c reads source byte srcChan[c] of a pixel
	lut32    [3][256]uint32 // FP32 bit patterns
	lut16    [3][256]uint16 // FP16 bit patterns
	elemSize int
}

func newNormalizer(s Spec) *normalizer {
	n := &normalizer{layout: s.Layout, dtype: s.DataType, elemSize: s.DataType.ElementSize()}
	for c := range 3 {
		n.srcChan[c] = c
		if s.Order == BGR {
			n.srcChan[c] = 2 - c
		}
		for v := range 256 {
			// float64 then one rounding to float32: the value numpy computes in float64
			// and casts, within one unit in the last place of a float32 pipeline.
			f := float32((float64(v)*float64(s.Scale) - float64(s.Mean[c])) / float64(s.Std[c]))
			n.lut32[c][v] = math.Float32bits(f)
			n.lut16[c][v] = float16.FromFloat32(f)
		}
	}
	return n
}

// write fills dst (exactly w*h*3*elemSize bytes) from the packed RGB pixels of a
// w×h image.
func (n *normalizer) write(pix []byte, w, h int, dst []byte) {
	plane := w * h
	switch n.layout {
	case NCHW:
		for c := range 3 {
			src := pix[n.srcChan[c]:]
			out := dst[c*plane*n.elemSize : (c+1)*plane*n.elemSize]
			n.writeChannel(c, src, plane, 3, out, n.elemSize)
		}
	case NHWC:
		for c := range 3 {
			n.writeChannel(c, pix[n.srcChan[c]:], plane, 3, dst[c*n.elemSize:], 3*n.elemSize)
		}
	}
}

// writeChannel maps count samples of channel c, read every srcStep bytes from src,
// to elements written every dstStep bytes into dst.
func (n *normalizer) writeChannel(c int, src []byte, count, srcStep int, dst []byte, dstStep int) {
	switch n.dtype {
	case FP32:
		lut := &n.lut32[c]
		for i := range count {
			binary.LittleEndian.PutUint32(dst[i*dstStep:], lut[src[i*srcStep]])
		}
	case FP16:
		lut := &n.lut16[c]
		for i := range count {
			binary.LittleEndian.PutUint16(dst[i*dstStep:], lut[src[i*srcStep]])
		}
	case UINT8:
		for i := range count {
			dst[i*dstStep] = src[i*srcStep]
		}
	}
}
