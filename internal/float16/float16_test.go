package float16

import (
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
		if got := FromFloat32(tt.in); got != tt.want {
			t.Errorf("FromFloat32(%v) = %#04x, want %#04x", tt.in, got, tt.want)
		}
	}
	if got := FromFloat32(float32(math.NaN())); got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
		t.Errorf("FromFloat32(NaN) = %#04x, want a NaN", got)
	}
}

func TestFloat16ToFloat32(t *testing.T) {
	tests := []struct {
		h    uint16
		want float32
	}{
		{0x0000, 0}, {0x3c00, 1}, {0xbc00, -1}, {0x4000, 2}, {0x3800, 0.5},
		{0x7bff, 65504}, {0x0001, 5.960464477539063e-08}, {0x03ff, 6.097555160522461e-05},
		{0x0400, 6.103515625e-05}, {0x7c00, float32(math.Inf(1))}, {0xfc00, float32(math.Inf(-1))},
	}
	for _, tt := range tests {
		if got := ToFloat32(tt.h); got != tt.want {
			t.Errorf("ToFloat32(%#04x) = %g, want %g", tt.h, got, tt.want)
		}
	}
	if got := ToFloat32(0x8000); got != 0 || !math.Signbit(float64(got)) {
		t.Errorf("ToFloat32(0x8000) = %g, want -0", got)
	}
	if got := ToFloat32(0x7e00); !math.IsNaN(float64(got)) {
		t.Errorf("ToFloat32(0x7e00) = %g, want NaN", got)
	}
}

func TestFloat16RoundTrip(t *testing.T) {
	for h := range 1 << 16 {
		f := ToFloat32(uint16(h))
		if math.IsNaN(float64(f)) {
			if back := FromFloat32(f); back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %#04x encodes back to %#04x, not a NaN", h, back)
			}
			continue
		}
		if back := FromFloat32(f); back != uint16(h) {
			t.Fatalf("%#04x -> %v -> %#04x", h, f, back)
		}
	}
}
