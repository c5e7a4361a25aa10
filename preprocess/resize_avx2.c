//go:build cgo && amd64

// The SIMD resampling kernels of package preprocess: see resize_amd64.go. Each
// function is compiled for its instruction set alone (target attribute): AVX2,
// or AVX2 with AVX-512 VNNI on 256-bit registers; Go calls them only on CPUs that
// have it.

#include <string.h>
#include <immintrin.h>

#include "resize_avx2.h"

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
			fc_store_pixels(out + x * dst_pixel, rgb, 4, dst_stride, wide && x + 1 < out_w);
		}
	}
	for (; r + 2 <= rows; r += 2) {
		const uint8_t *base_a = pix + row0 + (ptrdiff_t)r * row_step;
		const uint8_t *base_b = base_a + row_step;
		uint8_t *out_a = dst + (ptrdiff_t)r * dst_stride;
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
			int32_t rgb[2] = {_mm256_cvtsi256_si32(s), _mm256_extract_epi32(s, 4)};
			// The last pixel of a row must not touch the next row's first byte.
			fc_store_pixels(out_a + x * dst_pixel, rgb, 2, dst_stride, wide && x + 1 < out_w);
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
			fc_store_pixels(out + x * dst_pixel, &rgb, 1, dst_stride, wide && x + 1 < out_w);
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
	fc_vrow_scalar(first, src_stride, i, len, k, n, out);
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


// ---- AVX-512 VNNI kernels ----
//
// vpdpbusd multiplies 64 unsigned bytes by 64 signed bytes and adds each group of
// four products to a 32-bit lane: four taps of one sample in one instruction, where
// the AVX2 kernels spend a 32-bit multiply and an add on each tap. The kernels use
// 512-bit registers: four rows (horizontal pass) or 64 columns (vertical pass) per
// instruction, which halves the instructions per byte against 256-bit ones even
// where the CPU splits 512-bit work in two (AMD Zen 4). The weights are
// 23-bit signed integers, so each is split into three signed bytes, w = d0 +
// 256*d1 + 65536*d2 (wdig, built by the Go side), summed separately and recombined:
// the same integer sums, bit for bit, as the AVX2 and scalar passes.

#define FC_VNNI __attribute__((target("avx2,avx512f,avx512vl,avx512bw,avx512vnni")))
// FC_VBMI adds AVX-512 VBMI's byte permute (vpermb) to it.
#define FC_VBMI __attribute__((target("avx2,avx512f,avx512vl,avx512bw,avx512vnni,avx512vbmi")))

// FC_VNNI_MAX_GROUPS bounds the taps (four per group) of the VNNI vertical pass;
// longer kernels (shrinking by more than ~100x) use the AVX2 one.
#define FC_VNNI_MAX_GROUPS 64

// fc_combine512 recombines three digit sums into the weighted sum, rounded,
// shifted and still 32-bit (a0 started at the rounding constant).
FC_VNNI static inline __m512i fc_combine512(__m512i a0, __m512i a1, __m512i a2) {
	__m512i s = _mm512_add_epi32(a0, _mm512_slli_epi32(a1, 8));
	return _mm512_srai_epi32(_mm512_add_epi32(s, _mm512_slli_epi32(a2, 16)), FC_PRECISION_BITS);
}

// fc_load4 loads 16 bytes from each of four rows, step bytes apart, into the four
// 128-bit lanes of a register.
FC_VNNI static inline __m512i fc_load4(const uint8_t *p, ptrdiff_t step) {
	__m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)p));
	v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + step)), 1);
	v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + 2 * step)), 2);
	return _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + 3 * step)), 3);
}

// fc_hpix4 computes one output pixel of four rows (row i in lane i): its taps start
// at p in the first row, groups groups of four taps, their digits at *w, which it
// advances. Each lane holds the pixel's R, G and B sums, rounded and shifted, and
// a zero.
FC_VNNI static inline __m512i fc_hpix4(const uint8_t *p, ptrdiff_t step, int groups, const int32_t **w,
                                       __m512i gather, __m512i half) {
	__m512i a0 = half, a1 = _mm512_setzero_si512(), a2 = a1;
	const int32_t *d = *w;
	for (int g = groups; g > 0; g--, p += 12, d += 4) {
		__m512i v = _mm512_shuffle_epi8(fc_load4(p, step), gather);
		a0 = _mm512_dpbusd_epi32(a0, v, _mm512_set1_epi32(d[0]));
		a1 = _mm512_dpbusd_epi32(a1, v, _mm512_set1_epi32(d[1]));
		a2 = _mm512_dpbusd_epi32(a2, v, _mm512_set1_epi32(d[2]));
	}
	*w = d;
	return fc_combine512(a0, a1, a2);
}

// fc_hpass_vnni is fc_hpass_avx2 with the weights as digits: wdig holds, per group
// of four taps, four int32: the d0, d1 and d2 bytes of the four taps (tap j in
// byte j), then a zero. Four rows go through one 512-bit register, one per lane,
// and packed outputs (dst_pixel 3) are stored four pixels at a time.
FC_VNNI
void fc_hpass_vnni(const uint8_t *pix, ptrdiff_t row0, ptrdiff_t row_step, int rows,
                   const int32_t *starts, const int32_t *groups, const int32_t *wdig, int out_w,
                   uint8_t *dst, ptrdiff_t dst_stride, ptrdiff_t dst_pixel) {
	const int wide = dst_pixel == 3;
	// Four packed RGB pixels (12 bytes) to one dword each of R, G and B (the four
	// taps' bytes together) and a zero dword, in every lane.
	const __m128i gather128 = _mm_setr_epi8(0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11, -1, -1, -1, -1);
	const __m512i gather = _mm512_broadcast_i32x4(gather128);
	// Four pixels' R, G, B, 0 bytes to twelve packed bytes.
	const __m512i compact = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1));
	const __m512i half = _mm512_set1_epi32(1 << (FC_PRECISION_BITS - 1));
	int r = 0;
	for (; r + 4 <= rows; r += 4) {
		const uint8_t *base = pix + row0 + (ptrdiff_t)r * row_step;
		uint8_t *out = dst + (ptrdiff_t)r * dst_stride;
		const int32_t *w = wdig;
		int x = 0;
		if (wide) {
			for (; x + 4 <= out_w; x += 4) {
				__m512i s0 = fc_hpix4(base + starts[x], row_step, groups[x], &w, gather, half);
				__m512i s1 = fc_hpix4(base + starts[x + 1], row_step, groups[x + 1], &w, gather, half);
				__m512i s2 = fc_hpix4(base + starts[x + 2], row_step, groups[x + 2], &w, gather, half);
				__m512i s3 = fc_hpix4(base + starts[x + 3], row_step, groups[x + 3], &w, gather, half);
				// Per lane: the four pixels' R, G, B, 0 bytes, then packed.
				__m512i b = _mm512_packus_epi16(_mm512_packs_epi32(s0, s1), _mm512_packs_epi32(s2, s3));
				b = _mm512_shuffle_epi8(b, compact);
				__m128i l[4] = {_mm512_castsi512_si128(b), _mm512_extracti32x4_epi32(b, 1),
					_mm512_extracti32x4_epi32(b, 2), _mm512_extracti32x4_epi32(b, 3)};
				uint8_t *o = out + 3 * x;
				if (x + 5 < out_w) {
					// Sixteen bytes: the last four are pixel x+4 and the first byte of
					// pixel x+5, both written later.
					for (int i = 0; i < 4; i++, o += dst_stride)
						_mm_storeu_si128((__m128i *)o, l[i]);
				} else {
					for (int i = 0; i < 4; i++, o += dst_stride) {
						_mm_storel_epi64((__m128i *)o, l[i]);
						int32_t last = _mm_extract_epi32(l[i], 2);
						memcpy(o + 8, &last, 4);
					}
				}
			}
		}
		for (; x < out_w; x++) {
			__m512i s = fc_hpix4(base + starts[x], row_step, groups[x], &w, gather, half);
			__m512i px = _mm512_packus_epi16(_mm512_packs_epi32(s, s), s);
			int32_t rgb[4] = {_mm_cvtsi128_si32(_mm512_castsi512_si128(px)),
				_mm_cvtsi128_si32(_mm512_extracti32x4_epi32(px, 1)),
				_mm_cvtsi128_si32(_mm512_extracti32x4_epi32(px, 2)),
				_mm_cvtsi128_si32(_mm512_extracti32x4_epi32(px, 3))};
			fc_store_pixels(out + x * dst_pixel, rgb, 4, dst_stride, wide && x + 1 < out_w);
		}
	}
	// The last rows one at a time, 128-bit.
	for (; r < rows; r++) {
		const uint8_t *base = pix + row0 + (ptrdiff_t)r * row_step;
		uint8_t *out = dst + (ptrdiff_t)r * dst_stride;
		const int32_t *w = wdig;
		for (int x = 0; x < out_w; x++) {
			const uint8_t *p = base + starts[x];
			__m128i a0 = _mm512_castsi512_si128(half), a1 = _mm_setzero_si128(), a2 = a1;
			for (int g = groups[x]; g > 0; g--, p += 12, w += 4) {
				__m128i v = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p), gather128);
				a0 = _mm_dpbusd_epi32(a0, v, _mm_set1_epi32(w[0]));
				a1 = _mm_dpbusd_epi32(a1, v, _mm_set1_epi32(w[1]));
				a2 = _mm_dpbusd_epi32(a2, v, _mm_set1_epi32(w[2]));
			}
			__m128i s = _mm_add_epi32(a0, _mm_slli_epi32(a1, 8));
			s = _mm_srai_epi32(_mm_add_epi32(s, _mm_slli_epi32(a2, 16)), FC_PRECISION_BITS);
			s = _mm_packus_epi16(_mm_packs_epi32(s, s), s);
			int32_t rgb = _mm_cvtsi128_si32(s);
			fc_store_pixels(out + x * dst_pixel, &rgb, 1, dst_stride, wide && x + 1 < out_w);
		}
	}
}


// fc_vrow_vnni is fc_vrow_avx2 on 64 bytes at a time with four taps per
// instruction: the four rows of a group are interleaved byte by byte so that each
// 32-bit lane holds one column's four samples. The last bytes of the row go
// through the same code with masked loads and stores.
FC_VNNI static void fc_vrow_vnni(const uint8_t *first, ptrdiff_t src_stride, int len, const int32_t *k, int n, uint8_t *out) {
	const int groups = (n + 3) / 4;
	if (groups > FC_VNNI_MAX_GROUPS) {
		fc_vrow_avx2(first, src_stride, len, k, n, out);
		return;
	}
	// Per group: the three digit vectors' dwords and the four rows' offsets (a
	// missing tap reads the last row with weight zero).
	int32_t dig[3 * FC_VNNI_MAX_GROUPS];
	ptrdiff_t off[4 * FC_VNNI_MAX_GROUPS];
	for (int g = 0; g < groups; g++) {
		uint32_t d0 = 0, d1 = 0, d2 = 0;
		for (int j = 0; j < 4; j++) {
			int t = 4 * g + j;
			off[4 * g + j] = (ptrdiff_t)(t < n ? t : n - 1) * src_stride;
			if (t >= n)
				continue;
			int32_t v = k[t];
			int8_t b0 = (int8_t)v;
			v = (v - b0) >> 8;
			int8_t b1 = (int8_t)v;
			int8_t b2 = (int8_t)((v - b1) >> 8);
			d0 |= (uint32_t)(uint8_t)b0 << (8 * j);
			d1 |= (uint32_t)(uint8_t)b1 << (8 * j);
			d2 |= (uint32_t)(uint8_t)b2 << (8 * j);
		}
		dig[3 * g] = (int32_t)d0, dig[3 * g + 1] = (int32_t)d1, dig[3 * g + 2] = (int32_t)d2;
	}
	const __m512i half = _mm512_set1_epi32(1 << (FC_PRECISION_BITS - 1));
	for (int i = 0; i < len; i += 64) {
		__mmask64 m = len - i >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (len - i)) - 1);
		// Accumulators by quarter q (columns 4q..4q+3 of each 16-byte lane) and digit.
		__m512i a00 = half, a01 = _mm512_setzero_si512(), a02 = a01;
		__m512i a10 = half, a11 = a01, a12 = a01;
		__m512i a20 = half, a21 = a01, a22 = a01;
		__m512i a30 = half, a31 = a01, a32 = a01;
		const uint8_t *p = first + i;
		for (int g = 0; g < groups; g++) {
			const ptrdiff_t *o = off + 4 * g;
			__m512i r0 = _mm512_maskz_loadu_epi8(m, p + o[0]);
			__m512i r1 = _mm512_maskz_loadu_epi8(m, p + o[1]);
			__m512i r2 = _mm512_maskz_loadu_epi8(m, p + o[2]);
			__m512i r3 = _mm512_maskz_loadu_epi8(m, p + o[3]);
			__m512i lo01 = _mm512_unpacklo_epi8(r0, r1), hi01 = _mm512_unpackhi_epi8(r0, r1);
			__m512i lo23 = _mm512_unpacklo_epi8(r2, r3), hi23 = _mm512_unpackhi_epi8(r2, r3);
			__m512i q0 = _mm512_unpacklo_epi16(lo01, lo23), q1 = _mm512_unpackhi_epi16(lo01, lo23);
			__m512i q2 = _mm512_unpacklo_epi16(hi01, hi23), q3 = _mm512_unpackhi_epi16(hi01, hi23);
			__m512i d0 = _mm512_set1_epi32(dig[3 * g]), d1 = _mm512_set1_epi32(dig[3 * g + 1]), d2 = _mm512_set1_epi32(dig[3 * g + 2]);
			a00 = _mm512_dpbusd_epi32(a00, q0, d0), a01 = _mm512_dpbusd_epi32(a01, q0, d1), a02 = _mm512_dpbusd_epi32(a02, q0, d2);
			a10 = _mm512_dpbusd_epi32(a10, q1, d0), a11 = _mm512_dpbusd_epi32(a11, q1, d1), a12 = _mm512_dpbusd_epi32(a12, q1, d2);
			a20 = _mm512_dpbusd_epi32(a20, q2, d0), a21 = _mm512_dpbusd_epi32(a21, q2, d1), a22 = _mm512_dpbusd_epi32(a22, q2, d2);
			a30 = _mm512_dpbusd_epi32(a30, q3, d0), a31 = _mm512_dpbusd_epi32(a31, q3, d1), a32 = _mm512_dpbusd_epi32(a32, q3, d2);
		}
		// Per 16-byte lane, q0..q3 hold columns 0-3, 4-7, 8-11, 12-15: the packs
		// put them back in order.
		__m512i s01 = _mm512_packs_epi32(fc_combine512(a00, a01, a02), fc_combine512(a10, a11, a12));
		__m512i s23 = _mm512_packs_epi32(fc_combine512(a20, a21, a22), fc_combine512(a30, a31, a32));
		_mm512_mask_storeu_epi8(out + i, m, _mm512_packus_epi16(s01, s23));
	}
}

FC_VNNI
void fc_vpass_vnni(const uint8_t *src, ptrdiff_t src_stride, int len, const int64_t *bounds, int64_t bias,
                   const int32_t *k, int ksize, int out_rows, uint8_t *dst, ptrdiff_t dst_stride) {
	for (int y = 0; y < out_rows; y++)
		fc_vrow_vnni(src + (ptrdiff_t)(bounds[2 * y] - bias) * src_stride, src_stride, len,
			k + (ptrdiff_t)y * ksize, (int)bounds[2 * y + 1], dst + (ptrdiff_t)y * dst_stride);
}

FC_VNNI
void fc_vpass_norm_vnni(const uint8_t *src, ptrdiff_t src_stride, int len, const int64_t *bounds, int64_t bias,
                        const int32_t *k, int ksize, int out_rows, const fc_norm *nm,
                        const uint32_t *lut32, const uint16_t *lut16, uint8_t *row_buf, uint8_t *tensor) {
	for (int y = 0; y < out_rows; y++) {
		fc_vrow_vnni(src + (ptrdiff_t)(bounds[2 * y] - bias) * src_stride, src_stride, len,
			k + (ptrdiff_t)y * ksize, (int)bounds[2 * y + 1], row_buf);
		fc_norm_row(nm, lut32, lut16, row_buf, y, tensor);
	}
}

// fc_store_quad writes four output pixels, lane j of s holding pixel j's R, G
// and B sums (rounded and shifted) and a zero, as packed bytes: the bytes of
// mask m of the twelve.
FC_VBMI static inline void fc_store_quad(uint8_t *o, __m512i s, __mmask16 m) {
	// After the packs, lane j's bytes 0-2 are pixel j's R, G and B.
	const __m512i pick = _mm512_castsi128_si512(_mm_setr_epi8(0, 1, 2, 16, 17, 18, 32, 33, 34, 48, 49, 50, 0, 0, 0, 0));
	__m512i b = _mm512_packs_epi32(s, s);
	b = _mm512_permutexvar_epi8(pick, _mm512_packus_epi16(b, b));
	_mm_mask_storeu_epi8(o, m, _mm512_castsi512_si128(b));
}

// fc_hpass_vbmi is the horizontal pass for outputs written as packed rows when
// four consecutive output pixels' taps lie within 64 bytes of a row (shrinking
// by up to about 4x): one masked 64-byte load per row and four output pixels,
// one byte permute (vpermb) per group of four taps putting output pixel j's R, G
// and B taps in lane j, then the same digit products as fc_hpass_vnni. Without
// the per-lane loads and inserts of fc_hpix4, it does a quarter fewer
// instructions. For quad q: qbase[q] is where its load starts (from the row's
// first sample), qmask[q] the bytes it loads, and qtab + q*groups*256 holds per
// group the 64 permute indices, then the d0, d1 and d2 digit vectors (lane j
// for output pixel 4q+j; output pixels past out_w have zero digits). Four rows
// share each table load.
FC_VBMI
void fc_hpass_vbmi(const uint8_t *pix, ptrdiff_t row0, ptrdiff_t row_step, int rows,
                   const int32_t *qbase, const uint64_t *qmask, const uint8_t *qtab, int groups, int out_w,
                   uint8_t *dst, ptrdiff_t dst_stride) {
	const int nq = (out_w + 3) / 4;
	const __m512i half = _mm512_set1_epi32(1 << (FC_PRECISION_BITS - 1));
	const __m512i zero = _mm512_setzero_si512();
	// Byte 16r + 3j + c of the result is byte 16j + 4r + c: row r's pixel j's
	// channel c, from lane j to lane r.
	uint8_t order[64] = {0};
	for (int r = 0; r < 4; r++)
		for (int j = 0; j < 4; j++)
			for (int c = 0; c < 3; c++)
				order[16 * r + 3 * j + c] = (uint8_t)(16 * j + 4 * r + c);
	const __m512i rows4 = _mm512_loadu_si512(order);
	int r = 0;
	for (; r + 4 <= rows; r += 4) {
		const uint8_t *row = pix + row0 + (ptrdiff_t)r * row_step;
		uint8_t *out = dst + (ptrdiff_t)r * dst_stride;
		const uint8_t *t = qtab;
		for (int q = 0; q < nq; q++) {
			const uint8_t *p = row + qbase[q];
			const __mmask64 m = qmask[q];
			const __m512i v0 = _mm512_maskz_loadu_epi8(m, p);
			const __m512i v1 = _mm512_maskz_loadu_epi8(m, p + row_step);
			const __m512i v2 = _mm512_maskz_loadu_epi8(m, p + 2 * row_step);
			const __m512i v3 = _mm512_maskz_loadu_epi8(m, p + 3 * row_step);
			__m512i a00 = half, a01 = zero, a02 = zero;
			__m512i a10 = half, a11 = zero, a12 = zero;
			__m512i a20 = half, a21 = zero, a22 = zero;
			__m512i a30 = half, a31 = zero, a32 = zero;
			for (int g = 0; g < groups; g++, t += 256) {
				const __m512i idx = _mm512_loadu_si512(t);
				const __m512i d0 = _mm512_loadu_si512(t + 64);
				const __m512i d1 = _mm512_loadu_si512(t + 128);
				const __m512i d2 = _mm512_loadu_si512(t + 192);
				__m512i x = _mm512_permutexvar_epi8(idx, v0);
				a00 = _mm512_dpbusd_epi32(a00, x, d0), a01 = _mm512_dpbusd_epi32(a01, x, d1), a02 = _mm512_dpbusd_epi32(a02, x, d2);
				x = _mm512_permutexvar_epi8(idx, v1);
				a10 = _mm512_dpbusd_epi32(a10, x, d0), a11 = _mm512_dpbusd_epi32(a11, x, d1), a12 = _mm512_dpbusd_epi32(a12, x, d2);
				x = _mm512_permutexvar_epi8(idx, v2);
				a20 = _mm512_dpbusd_epi32(a20, x, d0), a21 = _mm512_dpbusd_epi32(a21, x, d1), a22 = _mm512_dpbusd_epi32(a22, x, d2);
				x = _mm512_permutexvar_epi8(idx, v3);
				a30 = _mm512_dpbusd_epi32(a30, x, d0), a31 = _mm512_dpbusd_epi32(a31, x, d1), a32 = _mm512_dpbusd_epi32(a32, x, d2);
			}
			const int valid = out_w - 4 * q < 4 ? out_w - 4 * q : 4;
			const __mmask16 sm = (__mmask16)((1u << (3 * valid)) - 1);
			// Lane j: the four rows' bytes of pixel j (R, G, B, 0 each); then lane r:
			// row r's four pixels, packed.
			__m512i b = _mm512_packus_epi16(
				_mm512_packs_epi32(fc_combine512(a00, a01, a02), fc_combine512(a10, a11, a12)),
				_mm512_packs_epi32(fc_combine512(a20, a21, a22), fc_combine512(a30, a31, a32)));
			b = _mm512_permutexvar_epi8(rows4, b);
			uint8_t *o = out + 12 * q;
			_mm_mask_storeu_epi8(o, sm, _mm512_castsi512_si128(b));
			_mm_mask_storeu_epi8(o + dst_stride, sm, _mm512_extracti32x4_epi32(b, 1));
			_mm_mask_storeu_epi8(o + 2 * dst_stride, sm, _mm512_extracti32x4_epi32(b, 2));
			_mm_mask_storeu_epi8(o + 3 * dst_stride, sm, _mm512_extracti32x4_epi32(b, 3));
		}
	}
	for (; r < rows; r++) {
		const uint8_t *row = pix + row0 + (ptrdiff_t)r * row_step;
		uint8_t *out = dst + (ptrdiff_t)r * dst_stride;
		const uint8_t *t = qtab;
		for (int q = 0; q < nq; q++) {
			const __m512i v = _mm512_maskz_loadu_epi8(qmask[q], row + qbase[q]);
			__m512i a0 = half, a1 = zero, a2 = zero;
			for (int g = 0; g < groups; g++, t += 256) {
				const __m512i x = _mm512_permutexvar_epi8(_mm512_loadu_si512(t), v);
				a0 = _mm512_dpbusd_epi32(a0, x, _mm512_loadu_si512(t + 64));
				a1 = _mm512_dpbusd_epi32(a1, x, _mm512_loadu_si512(t + 128));
				a2 = _mm512_dpbusd_epi32(a2, x, _mm512_loadu_si512(t + 192));
			}
			const int valid = out_w - 4 * q < 4 ? out_w - 4 * q : 4;
			fc_store_quad(out + 12 * q, fc_combine512(a0, a1, a2), (__mmask16)((1u << (3 * valid)) - 1));
		}
	}
}

// ---- Entry points ----

void fc_hpass(bool digits, const uint8_t *pix, ptrdiff_t row0, ptrdiff_t row_step, int rows,
              const int32_t *starts, const int32_t *groups, const int32_t *weights, int out_w,
              uint8_t *dst, ptrdiff_t dst_stride, ptrdiff_t dst_pixel) {
	(digits ? fc_hpass_vnni : fc_hpass_avx2)(pix, row0, row_step, rows, starts, groups, weights, out_w, dst, dst_stride, dst_pixel);
}

void fc_vpass(bool digits, const uint8_t *src, ptrdiff_t src_stride, int len, const int64_t *bounds, int64_t bias,
              const int32_t *k, int ksize, int out_rows, uint8_t *dst, ptrdiff_t dst_stride) {
	(digits ? fc_vpass_vnni : fc_vpass_avx2)(src, src_stride, len, bounds, bias, k, ksize, out_rows, dst, dst_stride);
}

void fc_vpass_norm(bool digits, const uint8_t *src, ptrdiff_t src_stride, int len, const int64_t *bounds, int64_t bias,
                   const int32_t *k, int ksize, int out_rows, const fc_norm *nm,
                   const uint32_t *lut32, const uint16_t *lut16, uint8_t *row_buf, uint8_t *tensor) {
	(digits ? fc_vpass_norm_vnni : fc_vpass_norm_avx2)(src, src_stride, len, bounds, bias, k, ksize, out_rows, nm,
		lut32, lut16, row_buf, tensor);
}
