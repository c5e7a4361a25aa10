package preprocess

import (
	"encoding/binary"
	"math"
	"testing"
)

func TestFloat32ToFloat16(t *testing.T) {
	tests := []struct {
		in   float32
		want uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{-2, 0xc000},
		{0.5, 0x3800},
		{65504, 0x7bff},                  // largest half
		{65520, 0x7c00},                  // rounds up to infinity
		{1e6, 0x7c00},                    // overflow
		{float32(math.Inf(-1)), 0xfc00},  // -inf
		{6.103515625e-05, 0x0400},        // smallest normal half
		{5.960464477539063e-08, 0x0001},  // smallest subnormal half
		{2.9802322387695312e-08, 0x0000}, // exactly half the smallest subnormal: ties to even (0)
		{4.470348358154297e-08, 0x0001},  // 0.75 of the smallest subnormal rounds up
		{1.0009765625, 0x3c01},           // 1 + 2^-10
		{1.00048828125, 0x3c00},          // 1 + 2^-11: tie, to even
		{1.00146484375, 0x3c02},          // 1 + 3·2^-11: tie, to even (up)
		{0.1, 0x2e66},
		{-2.1179039478302, 0xc03c}, // (0 - 0.485)/0.229, the ImageNet minimum
	}
	for _, tt := range tests {
		if got := float32ToFloat16(tt.in); got != tt.want {
			t.Errorf("float32ToFloat16(%v) = %#04x, want %#04x", tt.in, got, tt.want)
		}
	}
	if got := float32ToFloat16(float32(math.NaN())); got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
		t.Errorf("float32ToFloat16(NaN) = %#04x, want a NaN", got)
	}
}

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
		want := []uint16{0x0000, 0x3c00, float32ToFloat16(0.2)}
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
