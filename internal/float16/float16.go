// Package float16 converts between float32 and IEEE 754 binary16 ("FP16", the
// half-precision tensors KServe carries as raw little-endian bytes). It is shared
// by the tensor builder (preprocess), the Triton client and the Triton test server.
package float16

import "math"

// FromFloat32 converts f to IEEE 754 binary16 with round-to-nearest-even,
// overflowing to infinity and keeping subnormals, as numpy's astype(float16) does.
func FromFloat32(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int((b >> 23) & 0xff)
	mant := b & 0x7fffff
	switch {
	case exp == 0xff: // Inf or NaN
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp > 127+15: // too large: infinity
		return sign | 0x7c00
	case exp >= 127-14: // normal half
		e := uint32(exp - 127 + 15)
		m := mant >> 13
		rest := mant & 0x1fff
		h := e<<10 | m
		if rest > 0x1000 || (rest == 0x1000 && m&1 == 1) {
			h++ // may carry into the exponent, and up to infinity: both correct
		}
		return sign | uint16(h)
	case exp >= 127-25: // subnormal half
		m := mant | 0x800000 // implicit leading one
		shift := uint(126 - 14 - exp + 13 + 1)
		h := m >> shift
		rest := m & (1<<shift - 1)
		halfway := uint32(1) << (shift - 1)
		if rest > halfway || (rest == halfway && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	return sign // underflow to signed zero
}

// ToFloat32 decodes an IEEE 754 binary16 value; every half is exactly a float32.
func ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0x1f: // infinity or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case 0: // zero or subnormal: mant × 2^-24
		return math.Float32frombits(sign | math.Float32bits(float32(mant)/(1<<24)))
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}
