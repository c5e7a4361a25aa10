package preprocess

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/fish-classifier/fish-classifier/internal/float16"
)

// A 2×1 image with pixels (10, 20, 30) and (40, 50, 60).
var twoPixels = []byte{10, 20, 30, 40, 50, 60}

func TestNormalizerLayouts(t *testing.T) {
	spec := Spec{Scale: 1, Mean: [3]float32{1, 2, 3}, Std: [3]float32{1, 2, 4}}
	tests := []struct {
		name   string
		order  ChannelOrder
		layout Layout
		want   []float32
	}{
		// (v - mean[c]) / std[c], channel c of the tensor.
		{"rgb nchw", RGB, NCHW, []float32{9, 39, 9, 24, 6.75, 14.25}},
		{"rgb nhwc", RGB, NHWC, []float32{9, 9, 6.75, 39, 24, 14.25}},
		// BGR: tensor channel 0 is blue, normalised with Mean[0]/Std[0].
		{"bgr nchw", BGR, NCHW, []float32{29, 59, 9, 24, 1.75, 9.25}},
		{"bgr nhwc", BGR, NHWC, []float32{29, 9, 1.75, 59, 24, 9.25}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec
			s.Order, s.Layout, s.DataType = tt.order, tt.layout, FP32
			dst := make([]byte, 6*4)
			newNormalizer(s).write(twoPixels, 2, 1, dst)
			for i, want := range tt.want {
				got := math.Float32frombits(binary.LittleEndian.Uint32(dst[4*i:]))
				if got != want {
					t.Errorf("element %d = %v, want %v", i, got, want)
				}
			}
		})
	}
}

func TestNormalizerTypes(t *testing.T) {
	t.Run("fp16", func(t *testing.T) {
		s := Spec{Scale: 1.0 / 255, Std: [3]float32{1, 1, 1}, DataType: FP16, Layout: NHWC}
		dst := make([]byte, 6*2)
		newNormalizer(s).write([]byte{0, 255, 51, 0, 0, 0}, 2, 1, dst)
		want := []uint16{0x0000, 0x3c00, float16.FromFloat32(0.2)}
		for i, w := range want {
			if got := binary.LittleEndian.Uint16(dst[2*i:]); got != w {
				t.Errorf("element %d = %#04x, want %#04x", i, got, w)
			}
		}
	})
	t.Run("uint8 nchw", func(t *testing.T) {
		s := Spec{Scale: 1, Std: [3]float32{1, 1, 1}, DataType: UINT8, Layout: NCHW}
		dst := make([]byte, 6)
		newNormalizer(s).write(twoPixels, 2, 1, dst)
		if want := []byte{10, 40, 20, 50, 30, 60}; string(dst) != string(want) {
			t.Errorf("tensor = %v, want %v", dst, want)
		}
	})
}
