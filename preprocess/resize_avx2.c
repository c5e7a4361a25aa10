//go:build cgo && amd64

// The AVX2 resampling kernels of package preprocess: see resize_avx2.go. Each
// function is compiled for AVX2 alone (target attribute); Go calls them only
// on CPUs that have it.

#include <string.h>
#include <immintrin.h>

#include "resize_avx2.h"

#define FC_PRECISION_BITS 22

// fc_hpass: for each of rows rows (row r's stored pixel 0 at pix + row0 + r*row_step),
// output pixel x (0 <= x < out_w), written at dst + r*dst_stride + x*dst_pixel, is
// the sum over groups[x]*4 taps of weight * the RGB pixel at base + starts[x] +
// 3*tap. wexp holds, per output pixel and tap, the weight repeated in three int32
// lanes and a zero lane (16 int32 per group of four taps), output pixel after
// output pixel. Four rows (then two, then one) are
// computed together, so each weight and each start is loaded once for all.
__attribute__((target("avx2")))
void fc_hpass_avx2(const uint8_t *pix, ptrdiff_t row0, ptrdiff_t row_step, int rows,
                          const int32_t *starts, const int32_t *groups, const int32_t *wexp, int out_w,
                          uint8_t *dst, ptrdiff_t dst_stride, ptrdiff_t dst_pixel) {
	// Output pixels dst_pixel bytes apart: packed (3) lets each store write four
	// bytes, the fourth overwritten by the next pixel; otherwise three bytes.
	const int wide = dst_pixel == 3;
	// Within each 128-bit lane: one pixel's R, G, B widened to int32, then a zero.
	const __m256i taps01 = _mm256_setr_epi8(
		0, -1, -1, -1, 1, -1, -1, -1, 2, -1, -1, -1, -1, -1, -1, -1,
		3, -1, -1, -1, 4, -1, -1, -1, 5, -1, -1, -1, -1, -1, -1, -1);
	const __m256i taps23 = _mm256_setr_epi8(
		6, -1, -1, -1, 7, -1, -1, -1, 8, -1, -1, -1, -1, -1, -1, -1,
		9, -1, -1, -1, 10, -1, -1, -1, 11, -1, -1, -1, -1, -1, -1, -1);
	const __m256i half = _mm256_set1_epi32(1 << (FC_PRECISION_BITS - 1));
	int r = 0;
	for (; r + 4 <= rows; r += 4) {
		const uint8_t *base = pix + row0 + (ptrdiff_t)r * row_step;
		uint8_t *out = dst + (ptrdiff_t)r * dst_stride;
		const int32_t *w = wexp;
		for (int x = 0; x < out_w; x++) {
			const uint8_t *p = base + starts[x];
			__m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
			for (int g = groups[x]; g > 0; g--, p += 12, w += 16) {
				__m256i w01 = _mm256_loadu_si256((const __m256i *)w);
				__m256i w23 = _mm256_loadu_si256((const __m256i *)(w + 8));
				__m256i va = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
				__m256i vb = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(p + row_step)));
				__m256i vc = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(p + 2 * row_step)));
				__m256i vd = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(p + 3 * row_step)));
				a = _mm256_add_epi32(a, _mm256_mullo_epi32(_mm256_shuffle_epi8(va, taps01), w01));
				b = _mm256_add_epi32(b, _mm256_mullo_epi32(_mm256_shuffle_epi8(vb, taps01), w01));
				c = _mm256_add_epi32(c, _mm256_mullo_epi32(_mm256_shuffle_epi8(vc, taps01), w01));
				d = _mm256_add_epi32(d, _mm256_mullo_epi32(_mm256_shuffle_epi8(vd, taps01), w01));
				a = _mm256_add_epi32(a, _mm256_mullo_epi32(_mm256_shuffle_epi8(va, taps23), w23));
				b = _mm256_add_epi32(b, _mm256_mullo_epi32(_mm256_shuffle_epi8(vb, taps23), w23));
				c = _mm256_add_epi32(c, _mm256_mullo_epi32(_mm256_shuffle_epi8(vc, taps23), w23));
				d = _mm256_add_epi32(d, _mm256_mullo_epi32(_mm256_shuffle_epi8(vd, taps23), w23));
			}
			// Each row's two lanes hold the even and the odd taps: add them (a and c in
			// the low lanes, b and d in the high ones), round, shift, clip to bytes:
			// the bytes of a, c, b, d end up in dwords 0, 1, 4, 5.
			__m256i ab = _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
			__m256i cd = _mm256_add_epi32(_mm256_permute2x128_si256(c, d, 0x20), _mm256_permute2x128_si256(c, d, 0x31));
			ab = _mm256_srai_epi32(_mm256_add_epi32(ab, half), FC_PRECISION_BITS);
			cd = _mm256_srai_epi32(_mm256_add_epi32(cd, half), FC_PRECISION_BITS);
			__m256i px = _mm256_packus_epi16(_mm256_packs_epi32(ab, cd), ab);
			int32_t rgb[4] = {_mm256_cvtsi256_si32(px), _mm256_extract_epi32(px, 4),
				_mm256_extract_epi32(px, 1), _mm256_extract_epi32(px, 5)};
			uint8_t *o = out + x * dst_pixel;
			if (wide && x + 1 < out_w) {
				for (int i = 0; i < 4; i++, o += dst_stride)
					memcpy(o, &rgb[i], 4);
			} else {
				for (int i = 0; i < 4; i++, o += dst_stride)
					memcpy(o, &rgb[i], 3);
			}
		}
	}
	for (; r + 2 <= rows; r += 2) {
		const uint8_t *base_a = pix + row0 + (ptrdiff_t)r * row_step;
		const uint8_t *base_b = base_a + row_step;
		uint8_t *out_a = dst + (ptrdiff_t)r * dst_stride;
		uint8_t *out_b = out_a + dst_stride;
		const int32_t *w = wexp;
		for (int x = 0; x < out_w; x++) {
			const uint8_t *pa = base_a + starts[x], *pb = base_b + starts[x];
			__m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256();
			for (int g = groups[x]; g > 0; g--, pa += 12, pb += 12, w += 16) {
				__m256i w01 = _mm256_loadu_si256((const __m256i *)w);
				__m256i w23 = _mm256_loadu_si256((const __m256i *)(w + 8));
				__m256i va = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)pa));
				__m256i vb = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)pb));
				a = _mm256_add_epi32(a, _mm256_mullo_epi32(_mm256_shuffle_epi8(va, taps01), w01));
				b = _mm256_add_epi32(b, _mm256_mullo_epi32(_mm256_shuffle_epi8(vb, taps01), w01));
				a = _mm256_add_epi32(a, _mm256_mullo_epi32(_mm256_shuffle_epi8(va, taps23), w23));
				b = _mm256_add_epi32(b, _mm256_mullo_epi32(_mm256_shuffle_epi8(vb, taps23), w23));
			}
			// Each row's two lanes hold the even and the odd taps: add them, a's sum in
			// the low lane and b's in the high one, then round, shift, clip to bytes.
			__m256i s = _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
			s = _mm256_srai_epi32(_mm256_add_epi32(s, half), FC_PRECISION_BITS);
			s = _mm256_packus_epi16(_mm256_packs_epi32(s, s), s);
			int32_t rgb_a = _mm256_cvtsi256_si32(s), rgb_b = _mm256_extract_epi32(s, 4);
			// The last pixel of a row must not touch the next row's first byte.
			// (Constant sizes: memcpy becomes one store, not a call.)
			if (wide && x + 1 < out_w) {
				memcpy(out_a + x * dst_pixel, &rgb_a, 4);
				memcpy(out_b + x * dst_pixel, &rgb_b, 4);
			} else {
				memcpy(out_a + x * dst_pixel, &rgb_a, 3);
				memcpy(out_b + x * dst_pixel, &rgb_b, 3);
			}
		}
	}
	for (; r < rows; r++) {
		const uint8_t *base = pix + row0 + (ptrdiff_t)r * row_step;
		uint8_t *out = dst + (ptrdiff_t)r * dst_stride;
		const int32_t *w = wexp;
		for (int x = 0; x < out_w; x++) {
			const uint8_t *p = base + starts[x];
			__m256i a = _mm256_setzero_si256();
			for (int g = groups[x]; g > 0; g--, p += 12, w += 16) {
				__m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
				a = _mm256_add_epi32(a, _mm256_mullo_epi32(_mm256_shuffle_epi8(v, taps01), _mm256_loadu_si256((const __m256i *)w)));
				a = _mm256_add_epi32(a, _mm256_mullo_epi32(_mm256_shuffle_epi8(v, taps23), _mm256_loadu_si256((const __m256i *)(w + 8))));
			}
			__m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
			s = _mm_srai_epi32(_mm_add_epi32(s, _mm256_castsi256_si128(half)), FC_PRECISION_BITS);
			s = _mm_packus_epi16(_mm_packs_epi32(s, s), s);
			int32_t rgb = _mm_cvtsi128_si32(s);
			if (wide && x + 1 < out_w)
				memcpy(out + x * dst_pixel, &rgb, 4);
			else
				memcpy(out + x * dst_pixel, &rgb, 3);
		}
	}
}

// fc_vrow computes one output row of the vertical pass: len bytes, each the sum
// over n rows of src (src_stride bytes apart, from first) weighted by k.
__attribute__((target("avx2")))
static inline void fc_vrow_avx2(const uint8_t *first, ptrdiff_t src_stride, int len, const int32_t *k, int n, uint8_t *out) {
	const __m256i half = _mm256_set1_epi32(1 << (FC_PRECISION_BITS - 1));
	const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
	int i = 0;
	for (; i + 32 <= len; i += 32) {
		__m256i a0 = half, a1 = half, a2 = half, a3 = half;
		const uint8_t *p = first + i;
		for (int t = 0; t < n; t++, p += src_stride) {
			__m256i w = _mm256_set1_epi32(k[t]);
			a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)), w));
			a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + 8))), w));
			a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + 16))), w));
			a3 = _mm256_add_epi32(a3, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + 24))), w));
		}
		a0 = _mm256_srai_epi32(a0, FC_PRECISION_BITS);
		a1 = _mm256_srai_epi32(a1, FC_PRECISION_BITS);
		a2 = _mm256_srai_epi32(a2, FC_PRECISION_BITS);
		a3 = _mm256_srai_epi32(a3, FC_PRECISION_BITS);
		// The packs work within 128-bit lanes; the permute puts the bytes back in order.
		__m256i b = _mm256_packus_epi16(_mm256_packs_epi32(a0, a1), _mm256_packs_epi32(a2, a3));
		_mm256_storeu_si256((__m256i *)(out + i), _mm256_permutevar8x32_epi32(b, order));
	}
	for (; i + 8 <= len; i += 8) {
		__m256i a = half;
		const uint8_t *p = first + i;
		for (int t = 0; t < n; t++, p += src_stride)
			a = _mm256_add_epi32(a, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)),
				_mm256_set1_epi32(k[t])));
		a = _mm256_srai_epi32(a, FC_PRECISION_BITS);
		__m128i s = _mm_packs_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
		_mm_storel_epi64((__m128i *)(out + i), _mm_packus_epi16(s, s));
	}
	for (; i < len; i++) {
		int32_t a = 1 << (FC_PRECISION_BITS - 1);
		const uint8_t *p = first + i;
		for (int t = 0; t < n; t++, p += src_stride)
			a += (int32_t)*p * k[t];
		a >>= FC_PRECISION_BITS;
		out[i] = a < 0 ? 0 : a > 255 ? 255 : (uint8_t)a;
	}
}

// fc_vpass: output row y (0 <= y < out_rows), at dst + y*dst_stride, is, byte by
// byte over len bytes, the sum of bounds[2y+1] rows of src, src_stride bytes apart
// (either sign), starting at row bounds[2y] - bias, weighted by k[y*ksize ...].
__attribute__((target("avx2")))
void fc_vpass_avx2(const uint8_t *src, ptrdiff_t src_stride, int len, const int64_t *bounds, int64_t bias,
                          const int32_t *k, int ksize, int out_rows, uint8_t *dst, ptrdiff_t dst_stride) {
	for (int y = 0; y < out_rows; y++)
		fc_vrow_avx2(src + (ptrdiff_t)(bounds[2 * y] - bias) * src_stride, src_stride, len,
			k + (ptrdiff_t)y * ksize, (int)bounds[2 * y + 1], dst + (ptrdiff_t)y * dst_stride);
}


// fc_norm_row writes row y of the tensor from one row of packed RGB pixels.
// lut32 and lut16 are the FP32 and FP16 bit patterns, 3 x 256, by tensor channel.
static void fc_norm_row(const fc_norm *nm, const uint32_t *lut32, const uint16_t *lut16,
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

// fc_vpass_norm_avx2 is fc_vpass for out_rows rows of the whole tensor's width
// (len = 3 * nm->width bytes), each row normalised into the tensor as soon as it
// is computed, from row_buf (len bytes), while it is still in the L1 cache.
__attribute__((target("avx2")))
void fc_vpass_norm_avx2(const uint8_t *src, ptrdiff_t src_stride, int len, const int64_t *bounds, int64_t bias,
                               const int32_t *k, int ksize, int out_rows, const fc_norm *nm,
                               const uint32_t *lut32, const uint16_t *lut16, uint8_t *row_buf, uint8_t *tensor) {
	for (int y = 0; y < out_rows; y++) {
		fc_vrow_avx2(src + (ptrdiff_t)(bounds[2 * y] - bias) * src_stride, src_stride, len,
			k + (ptrdiff_t)y * ksize, (int)bounds[2 * y + 1], row_buf);
		fc_norm_row(nm, lut32, lut16, row_buf, y, tensor);
	}
}
