//go:build cgo && arm64

// The NEON resampling kernels of package preprocess: see resize_arm64.go. Advanced
// SIMD is part of every arm64 CPU, so there is no run-time choice to make. Like
// the AVX2 kernels, they multiply Pillow's 23-bit signed weights by the samples
// in 32-bit lanes and add the products in 32 bits: the sums of the scalar Go
// passes, bit for bit.

#include <arm_neon.h>

#include "resize_simd.h"

#define FC_ALWAYS_INLINE static inline __attribute__((always_inline))

// Table lookups that zero-extend bytes 4i to 4i+3 of a 16-byte load to four
// int32 lanes (an index past the table gives zero).
static const uint8_t fc_widen[3][16] = {
	{0, 16, 16, 16, 1, 16, 16, 16, 2, 16, 16, 16, 3, 16, 16, 16},
	{4, 16, 16, 16, 5, 16, 16, 16, 6, 16, 16, 16, 7, 16, 16, 16},
	{8, 16, 16, 16, 9, 16, 16, 16, 10, 16, 16, 16, 11, 16, 16, 16},
};

// fc_hrows_neon computes the horizontal pass of R rows (1 to 4, a constant where
// it is inlined, so that the arrays below live in registers), the first at base,
// the next row_step bytes apart. The taps of output pixel x start at base +
// starts[x]: groups[x] groups of four, each read by one 16-byte load (twelve
// bytes used: four RGB pixels). wexp holds, per group, twelve int32: each tap's
// weight three times over (w0 w0 w0 w1 | w1 w1 w2 w2 | w2 w3 w3 w3), in the order
// of the twelve bytes, so each of the three widened quarters of the load has its
// own weight vector and three multiply-adds take the group.
FC_ALWAYS_INLINE void fc_hrows_neon(const int R, const uint8_t *base, ptrdiff_t row_step,
                                    const int32_t *starts, const int32_t *groups, const int32_t *wexp, int out_w,
                                    uint8_t *out, ptrdiff_t dst_stride, ptrdiff_t dst_pixel) {
	const uint8x16_t t0 = vld1q_u8(fc_widen[0]), t1 = vld1q_u8(fc_widen[1]), t2 = vld1q_u8(fc_widen[2]);
	const int32x4_t half = vdupq_n_s32(1 << (FC_PRECISION_BITS - 1));
	const int wide = dst_pixel == 3;
	const int32_t *w = wexp;
	for (int x = 0; x < out_w; x++) {
		const uint8_t *p = base + starts[x];
		int32x4_t a0[4], a1[4], a2[4];
		_Pragma("GCC unroll 4") for (int r = 0; r < R; r++)
			a0[r] = a1[r] = a2[r] = vdupq_n_s32(0);
		for (int g = groups[x]; g > 0; g--, p += 12, w += 12) {
			const int32x4_t w0 = vld1q_s32(w), w1 = vld1q_s32(w + 4), w2 = vld1q_s32(w + 8);
			_Pragma("GCC unroll 4") for (int r = 0; r < R; r++) {
				const uint8x16_t v = vld1q_u8(p + r * row_step);
				a0[r] = vmlaq_s32(a0[r], vreinterpretq_s32_u8(vqtbl1q_u8(v, t0)), w0);
				a1[r] = vmlaq_s32(a1[r], vreinterpretq_s32_u8(vqtbl1q_u8(v, t1)), w1);
				a2[r] = vmlaq_s32(a2[r], vreinterpretq_s32_u8(vqtbl1q_u8(v, t2)), w2);
			}
		}
		// Lanes 0-2 of s: the R, G and B sums. a0 holds R0 G0 B0 R1, a1 G1 B1 R2
		// G2, a2 B2 R3 G3 B3: add a0, a0 from lane 3 on, a1 from lane 2 on, a2 from
		// lane 1 on. Then round, shift, and clip to bytes (saturating narrows).
		uint16x4_t h[4];
		_Pragma("GCC unroll 4") for (int r = 0; r < R; r++) {
			int32x4_t s = vaddq_s32(a0[r], vextq_s32(a0[r], a1[r], 3));
			s = vaddq_s32(s, vextq_s32(a1[r], a2[r], 2));
			s = vaddq_s32(s, vextq_s32(a2[r], a2[r], 1));
			h[r] = vqmovun_s32(vshrq_n_s32(vaddq_s32(s, half), FC_PRECISION_BITS));
		}
		_Pragma("GCC unroll 4") for (int r = R; r < 4; r++)
			h[r] = h[0];
		const uint8x16_t b = vcombine_u8(vqmovn_u16(vcombine_u16(h[0], h[1])), vqmovn_u16(vcombine_u16(h[2], h[3])));
		int32_t rgb[4];
		vst1q_s32(rgb, vreinterpretq_s32_u8(b));
		// The last pixel of a row must not touch the next row's first byte.
		fc_store_pixels(out + x * dst_pixel, rgb, R, dst_stride, wide && x + 1 < out_w);
	}
}

// fc_hpass_neon: for each of rows rows (row r's stored pixel 0 at pix + row0 +
// r*row_step), output pixel x (0 <= x < out_w), written at dst + r*dst_stride +
// x*dst_pixel, is the weighted sum of its taps (fc_hrows_neon). Four rows (then
// two, then one) go together, so each weight is loaded once for all.
static void fc_hpass_neon(const uint8_t *pix, ptrdiff_t row0, ptrdiff_t row_step, int rows,
                          const int32_t *starts, const int32_t *groups, const int32_t *wexp, int out_w,
                          uint8_t *dst, ptrdiff_t dst_stride, ptrdiff_t dst_pixel) {
	int r = 0;
	for (; r + 4 <= rows; r += 4)
		fc_hrows_neon(4, pix + row0 + (ptrdiff_t)r * row_step, row_step, starts, groups, wexp, out_w,
			dst + (ptrdiff_t)r * dst_stride, dst_stride, dst_pixel);
	for (; r + 2 <= rows; r += 2)
		fc_hrows_neon(2, pix + row0 + (ptrdiff_t)r * row_step, row_step, starts, groups, wexp, out_w,
			dst + (ptrdiff_t)r * dst_stride, dst_stride, dst_pixel);
	for (; r < rows; r++)
		fc_hrows_neon(1, pix + row0 + (ptrdiff_t)r * row_step, row_step, starts, groups, wexp, out_w,
			dst + (ptrdiff_t)r * dst_stride, dst_stride, dst_pixel);
}

// fc_narrow8 rounds off, shifts and clips two int32x4 sums to eight bytes.
FC_ALWAYS_INLINE uint8x8_t fc_narrow8(int32x4_t a, int32x4_t b) {
	return vqmovn_u16(vcombine_u16(vqmovun_s32(vshrq_n_s32(a, FC_PRECISION_BITS)),
		vqmovun_s32(vshrq_n_s32(b, FC_PRECISION_BITS))));
}

// fc_vrow_neon computes one output row of the vertical pass: len bytes, each the
// sum over n rows of src (src_stride bytes apart, from first) weighted by k.
// Sixteen bytes a step: one load, widened to four int32x4, four multiply-adds per
// row read.
static void fc_vrow_neon(const uint8_t *first, ptrdiff_t src_stride, int len, const int32_t *k, int n, uint8_t *out) {
	const int32x4_t half = vdupq_n_s32(1 << (FC_PRECISION_BITS - 1));
	int i = 0;
	for (; i + 16 <= len; i += 16) {
		int32x4_t a0 = half, a1 = half, a2 = half, a3 = half;
		const uint8_t *p = first + i;
		for (int t = 0; t < n; t++, p += src_stride) {
			const uint8x16_t v = vld1q_u8(p);
			const uint16x8_t lo = vmovl_u8(vget_low_u8(v)), hi = vmovl_high_u8(v);
			const int32_t wt = k[t];
			a0 = vmlaq_n_s32(a0, vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(lo))), wt);
			a1 = vmlaq_n_s32(a1, vreinterpretq_s32_u32(vmovl_high_u16(lo)), wt);
			a2 = vmlaq_n_s32(a2, vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(hi))), wt);
			a3 = vmlaq_n_s32(a3, vreinterpretq_s32_u32(vmovl_high_u16(hi)), wt);
		}
		vst1q_u8(out + i, vcombine_u8(fc_narrow8(a0, a1), fc_narrow8(a2, a3)));
	}
	for (; i + 8 <= len; i += 8) {
		int32x4_t a0 = half, a1 = half;
		const uint8_t *p = first + i;
		for (int t = 0; t < n; t++, p += src_stride) {
			const uint16x8_t v = vmovl_u8(vld1_u8(p));
			a0 = vmlaq_n_s32(a0, vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(v))), k[t]);
			a1 = vmlaq_n_s32(a1, vreinterpretq_s32_u32(vmovl_high_u16(v)), k[t]);
		}
		vst1_u8(out + i, fc_narrow8(a0, a1));
	}
	fc_vrow_scalar(first, src_stride, i, len, k, n, out);
}

// ---- Entry points (resize_simd.h) ----

void fc_hpass(bool digits, const uint8_t *pix, ptrdiff_t row0, ptrdiff_t row_step, int rows,
              const int32_t *starts, const int32_t *groups, const int32_t *weights, int out_w,
              uint8_t *dst, ptrdiff_t dst_stride, ptrdiff_t dst_pixel) {
	(void)digits;
	fc_hpass_neon(pix, row0, row_step, rows, starts, groups, weights, out_w, dst, dst_stride, dst_pixel);
}

// fc_vpass: output row y (0 <= y < out_rows), at dst + y*dst_stride, is, byte by
// byte over len bytes, the sum of bounds[2y+1] rows of src, src_stride bytes apart
// (either sign), starting at row bounds[2y] - bias, weighted by k[y*ksize ...].
void fc_vpass(bool digits, const uint8_t *src, ptrdiff_t src_stride, int len, const int64_t *bounds, int64_t bias,
              const int32_t *k, int ksize, int out_rows, uint8_t *dst, ptrdiff_t dst_stride) {
	(void)digits;
	for (int y = 0; y < out_rows; y++)
		fc_vrow_neon(src + (ptrdiff_t)(bounds[2 * y] - bias) * src_stride, src_stride, len,
			k + (ptrdiff_t)y * ksize, (int)bounds[2 * y + 1], dst + (ptrdiff_t)y * dst_stride);
}

// fc_vpass_norm is fc_vpass for out_rows rows of the whole tensor's width (len =
// 3 * nm->width bytes), each row normalised into the tensor as soon as it is
// computed, from row_buf (len bytes), while it is still in the L1 cache.
void fc_vpass_norm(bool digits, const uint8_t *src, ptrdiff_t src_stride, int len, const int64_t *bounds, int64_t bias,
                   const int32_t *k, int ksize, int out_rows, const fc_norm *nm,
                   const uint32_t *lut32, const uint16_t *lut16, uint8_t *row_buf, uint8_t *tensor) {
	(void)digits;
	for (int y = 0; y < out_rows; y++) {
		fc_vrow_neon(src + (ptrdiff_t)(bounds[2 * y] - bias) * src_stride, src_stride, len,
			k + (ptrdiff_t)y * ksize, (int)bounds[2 * y + 1], row_buf);
		fc_norm_row(nm, lut32, lut16, row_buf, y, tensor);
	}
}
