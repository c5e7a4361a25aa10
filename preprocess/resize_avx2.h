// The amd64 resampling kernels of package preprocess (resize_avx2.c), behind the
// entry points of resize_simd.h; resize_amd64.go says why there are three levels
// and why they are in C.
#ifndef FC_RESIZE_AVX2_H
#define FC_RESIZE_AVX2_H

#include "resize_simd.h"

void fc_hpass_avx2(const uint8_t *pix, ptrdiff_t row0, ptrdiff_t row_step, int rows,
                   const int32_t *starts, const int32_t *groups, const int32_t *wexp, int out_w,
                   uint8_t *dst, ptrdiff_t dst_stride, ptrdiff_t dst_pixel);
void fc_vpass_avx2(const uint8_t *src, ptrdiff_t src_stride, int len, const int64_t *bounds, int64_t bias,
                   const int32_t *k, int ksize, int out_rows, uint8_t *dst, ptrdiff_t dst_stride);
void fc_vpass_norm_avx2(const uint8_t *src, ptrdiff_t src_stride, int len, const int64_t *bounds, int64_t bias,
                        const int32_t *k, int ksize, int out_rows, const fc_norm *nm,
                        const uint32_t *lut32, const uint16_t *lut16, uint8_t *row_buf, uint8_t *tensor);

// The same passes with AVX-512 VNNI (256-bit registers); fc_hpass_vnni takes the
// weights as digits (resize_avx2.c).
void fc_hpass_vnni(const uint8_t *pix, ptrdiff_t row0, ptrdiff_t row_step, int rows,
                   const int32_t *starts, const int32_t *groups, const int32_t *wdig, int out_w,
                   uint8_t *dst, ptrdiff_t dst_stride, ptrdiff_t dst_pixel);
void fc_vpass_vnni(const uint8_t *src, ptrdiff_t src_stride, int len, const int64_t *bounds, int64_t bias,
                   const int32_t *k, int ksize, int out_rows, uint8_t *dst, ptrdiff_t dst_stride);
void fc_vpass_norm_vnni(const uint8_t *src, ptrdiff_t src_stride, int len, const int64_t *bounds, int64_t bias,
                        const int32_t *k, int ksize, int out_rows, const fc_norm *nm,
                        const uint32_t *lut32, const uint16_t *lut16, uint8_t *row_buf, uint8_t *tensor);

// The horizontal pass with AVX-512 VBMI too, for packed output rows and taps
// laid out four output pixels at a time (resize_avx2.c).
void fc_hpass_vbmi(const uint8_t *pix, ptrdiff_t row0, ptrdiff_t row_step, int rows,
                   const int32_t *qbase, const uint64_t *qmask, const uint8_t *qtab, int groups, int out_w,
                   uint8_t *dst, ptrdiff_t dst_stride);

#endif
