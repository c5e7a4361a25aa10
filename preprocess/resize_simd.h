// What the SIMD resampling kernels of package preprocess share, whatever the
// instruction set (resize_avx2.c on amd64, resize_neon.c on arm64): the entry
// points resize_simd.go calls, and the scalar pieces both kernels use.
#ifndef FC_RESIZE_SIMD_H
#define FC_RESIZE_SIMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

// Pillow's fixed point: weights are integers scaled by 2^22.
#define FC_PRECISION_BITS 22

// fc_norm describes the tensor the fused vertical pass writes (normalize.go).
// (No pointers in it: cgo may not pass Go memory holding Go pointers.)
typedef struct {
	int dtype;             // 0 FP32, 1 FP16, 2 UINT8
	int nhwc;              // 1: NHWC, 0: NCHW
	int src_chan[3];       // tensor channel c reads byte src_chan[c] of a pixel
	int width, height;     // of the tensor
} fc_norm;

// The entry points Go calls. digits picks, on amd64, the AVX-512 VNNI kernels
// (the horizontal weights laid out as digits) over the AVX2 ones; arm64 has one
// level and ignores it. weights is laid out by resampler.taps for that kernel.
void fc_hpass(bool digits, const uint8_t *pix, ptrdiff_t row0, ptrdiff_t row_step, int rows,
              const int32_t *starts, const int32_t *groups, const int32_t *weights, int out_w,
              uint8_t *dst, ptrdiff_t dst_stride, ptrdiff_t dst_pixel);
void fc_vpass(bool digits, const uint8_t *src, ptrdiff_t src_stride, int len, const int64_t *bounds, int64_t bias,
              const int32_t *k, int ksize, int out_rows, uint8_t *dst, ptrdiff_t dst_stride);
void fc_vpass_norm(bool digits, const uint8_t *src, ptrdiff_t src_stride, int len, const int64_t *bounds, int64_t bias,
                   const int32_t *k, int ksize, int out_rows, const fc_norm *nm,
                   const uint32_t *lut32, const uint16_t *lut16, uint8_t *row_buf, uint8_t *tensor);

// fc_store_pixels writes one output pixel of n rows, rgb[i] holding row i's
// bytes (R, G, B in its low three), stride bytes apart. A packed pixel that is
// not its row's last (wide) is written as four bytes, one store: the fourth is
// the next pixel's first, written later. (Constant sizes: each memcpy becomes
// one store, not a call.)
static inline void fc_store_pixels(uint8_t *o, const int32_t *rgb, int n, ptrdiff_t stride, int wide) {
	if (wide) {
		for (int i = 0; i < n; i++, o += stride)
			memcpy(o, &rgb[i], 4);
	} else {
		for (int i = 0; i < n; i++, o += stride)
			memcpy(o, &rgb[i], 3);
	}
}

// fc_vrow_scalar computes bytes [i, len) of one output row of the vertical pass,
// one at a time (the SIMD kernels' last few): each the sum over n rows of src
// (src_stride bytes apart, from first) weighted by k, rounded, shifted, clipped.
static inline void fc_vrow_scalar(const uint8_t *first, ptrdiff_t src_stride, int i, int len,
                                  const int32_t *k, int n, uint8_t *out) {
	for (; i < len; i++) {
		int32_t a = 1 << (FC_PRECISION_BITS - 1);
		const uint8_t *p = first + i;
		for (int t = 0; t < n; t++, p += src_stride)
			a += (int32_t)*p * k[t];
		a >>= FC_PRECISION_BITS;
		out[i] = a < 0 ? 0 : a > 255 ? 255 : (uint8_t)a;
	}
}

// fc_norm_row writes row y of the tensor from one row of packed RGB pixels.
// lut32 and lut16 are the FP32 and FP16 bit patterns, 3 x 256, by tensor channel.
static inline void fc_norm_row(const fc_norm *nm, const uint32_t *lut32, const uint16_t *lut16,
                               const uint8_t *rgb, int y, uint8_t *tensor) {
	const int w = nm->width;
	const size_t plane = (size_t)w * nm->height;
	for (int c = 0; c < 3; c++) {
		const uint8_t *in = rgb + nm->src_chan[c];
		// NCHW: the row of plane c; NHWC: every third element from channel c.
		size_t first = nm->nhwc ? (size_t)y * w * 3 + c : c * plane + (size_t)y * w;
		size_t step = nm->nhwc ? 3 : 1;
		switch (nm->dtype) {
		case 0: {
			const uint32_t *lut = lut32 + c * 256;
			uint32_t *out = (uint32_t *)tensor + first;
			for (int x = 0; x < w; x++)
				out[x * step] = lut[in[3 * x]];
			break;
		}
		case 1: {
			const uint16_t *lut = lut16 + c * 256;
			uint16_t *out = (uint16_t *)tensor + first;
			for (int x = 0; x < w; x++)
				out[x * step] = lut[in[3 * x]];
			break;
		}
		default: {
			uint8_t *out = tensor + first;
			for (int x = 0; x < w; x++)
				out[x * step] = in[3 * x];
		}
		}
	}
}

#endif
