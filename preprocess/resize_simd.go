//go:build cgo && (amd64 || arm64)

package preprocess

// SIMD versions of the two resampling passes, in C with intrinsics through the cgo
// this package already uses for libjpeg-turbo: AVX2, AVX-512 VNNI and VBMI on
// amd64 (resize_amd64.go, resize_avx2.c), NEON on arm64 (resize_arm64.go,
// resize_neon.c), behind the entry points of resize_simd.h. They compute exactly
// what the Go passes in resize.go compute (Pillow's 22-bit fixed-point weights,
// 32-bit integer sums, the same rounding and clipping), only many sums at a time,
// so their output is byte-identical to the scalar code, which stays the reference
// (TestResizeSIMDMatchesScalar, each level against it) and the path of every other
// CPU. This file is the Go side they share: the tap tables, the bounds checks, and
// how a resize is split into passes.
//
// Memory: the horizontal kernels read 16 bytes for each group of four taps, so
// they may read up to 16 bytes past the last tap; the Go side checks that those
// bytes lie inside the slice's capacity (rgbImage keeps simdSlack spare bytes) and
// uses the scalar pass otherwise.

/*
#include "resize_simd.h"
*/
import "C"

import "unsafe"

// taps lays out, for the horizontal kernel, the taps of out output pixels whose
// bounds and weights are in c: where each pixel's taps start (in bytes from its
// row's first sample), how many groups of four it has, and its weights, rounded up
// to a multiple of four taps with zeros, tapInts int32 a group: the VNNI kernel
// takes the four taps' digits (weightDigits) as bytes of three int32 and a zero
// (4 a group), the AVX2 kernel each weight repeated in three lanes and a zero lane
// (16), the NEON kernel each weight three times, the twelve in a row (12). A
// mirrored source (its samples stored right to left, width samples a row) reads
// each pixel's taps backwards, so they are stored reversed. It returns
// how far past its row's first sample a pixel's loads may reach. The source
// positions in c are counted from bias. A resampler that meets the same layout
// again keeps the tables (tapsKey).
func (r *resampler) taps(c *coeffs, out int, mirrored bool, width, bias int) (reach int) {
	key := tapsKey{c.of, out, mirrored, width, bias, r.vnni(), r.vbmi()}
	if r.tapsOf == key && c.of.n > 0 {
		return r.tapsReach
	}
	r.tapsOf = tapsKey{}
	r.starts = grow(r.starts, out)
	r.groups = grow(r.groups, out)
	total := 0
	for x := range out {
		total += (c.bounds[2*x+1] + 3) / 4
	}
	per := r.tapInts()
	r.wexp = grow(r.wexp, total*per)
	clear(r.wexp)
	w := r.wexp
	for x := range out {
		xmin, n := c.bounds[2*x]-bias, c.bounds[2*x+1]
		k := c.k[x*c.ksize : x*c.ksize+n]
		start := 3 * xmin
		if mirrored {
			start = 3 * (width - xmin - n)
		}
		for i, v := range k {
			j := i
			if mirrored {
				j = n - 1 - i
			}
			if per == 4 {
				d0, d1, d2 := weightDigits(v)
				shift := 8 * (j % 4)
				g := w[4*(j/4):]
				g[0] |= int32(uint32(uint8(d0)) << shift)
				g[1] |= int32(uint32(uint8(d1)) << shift)
				g[2] |= int32(uint32(uint8(d2)) << shift)
			} else {
				// The weight in three int32 of the tap's per/4.
				o := per / 4 * j
				w[o], w[o+1], w[o+2] = v, v, v
			}
		}
		g := (n + 3) / 4
		w = w[per*g:]
		r.starts[x], r.groups[x] = int32(start), int32(g)
		reach = max(reach, start+12*(g-1)+16)
	}
	r.quadsOK = r.vbmi() && r.quads(c)
	r.tapsOf, r.tapsReach = key, reach
	return reach
}

// hpass runs the horizontal kernel over rows rows of pix, the first row's sample 0
// at row0, the next rows rowStep bytes apart, with the taps laid out by r.taps,
// writing output pixel x of row y at dst[dstOff + y*dstRow + x*dstPixel]. It
// reports false, having done nothing, when a load could leave pix's capacity.
func (r *resampler) hpass(pix []byte, row0, rowStep, rows, reach int, dst []byte, dstOff, dstRow, dstPixel int) bool {
	out := len(r.starts)
	last := row0 + (rows-1)*rowStep
	if row0 < 0 || last < 0 || max(row0, last)+reach > cap(pix) {
		return false
	}
	if end := dstOff + (rows-1)*dstRow + (out-1)*dstPixel + 3; dstOff < 0 || end > len(dst) {
		return false
	}
	if dstPixel == 3 && r.quadsOK && r.hpassQuads(pix, row0, rowStep, rows, dst, dstOff, dstRow) {
		return true
	}
	C.fc_hpass(C.bool(r.vnni()), (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(pix))), C.ptrdiff_t(row0), C.ptrdiff_t(rowStep), C.int(rows),
		(*C.int32_t)(unsafe.Pointer(unsafe.SliceData(r.starts))), (*C.int32_t)(unsafe.Pointer(unsafe.SliceData(r.groups))),
		(*C.int32_t)(unsafe.Pointer(unsafe.SliceData(r.wexp))), C.int(out),
		(*C.uint8_t)(unsafe.Pointer(&dst[dstOff])), C.ptrdiff_t(dstRow), C.ptrdiff_t(dstPixel))
	return true
}

// vpass runs the vertical kernel: output row y (0 <= y < outRows), len bytes at
// dst[dstOff + y*dstStride], weighs c's rows of src, row i at src[first + i*srcStride]
// (srcStride of either sign) with i counted from bias. The caller guarantees that
// every row read lies inside src.
func (r *resampler) vpass(c *coeffs, src []byte, first, srcStride, bias, length, outRows int, dst []byte, dstOff, dstStride int) bool {
	if dstOff < 0 || dstOff+(outRows-1)*dstStride+length > len(dst) {
		return false
	}
	C.fc_vpass(C.bool(r.vnni()), (*C.uint8_t)(unsafe.Pointer(&src[first])), C.ptrdiff_t(srcStride), C.int(length),
		(*C.int64_t)(unsafe.Pointer(unsafe.SliceData(c.bounds))), C.int64_t(bias),
		(*C.int32_t)(unsafe.Pointer(unsafe.SliceData(c.k))), C.int(c.ksize), C.int(outRows),
		(*C.uint8_t)(unsafe.Pointer(&dst[dstOff])), C.ptrdiff_t(dstStride))
	return true
}

// horizontalSIMD runs the horizontal pass of resize with SIMD when the CPU has it
// and the view's pixels are consecutive in memory (orientations 1 to 4); it
// returns false, having done nothing, otherwise.
func (r *resampler) horizontalSIMD(src view, yFirst, rows, rowBytes int) bool {
	if !haveSIMD || (src.dx != 3 && src.dx != -3) {
		return false
	}
	reach := r.taps(&r.horiz, rowBytes/3, src.dx < 0, src.w, 0)
	// The offset of stored pixel 0 of the first row.
	row0 := src.off + yFirst*src.dy
	if src.dx < 0 {
		row0 -= 3 * (src.w - 1)
	}
	return r.hpass(src.pix, row0, src.dy, rows, reach, r.tmp, 0, rowBytes, 3)
}

// verticalSIMD runs the vertical pass of resize with SIMD when the CPU has it, and
// returns false otherwise.
func (r *resampler) verticalSIMD(yFirst, rowBytes, outRows int, dst []byte, dstOff, dstStride int) bool {
	return haveSIMD && r.vpass(&r.vert, r.tmp, 0, rowBytes, yFirst, rowBytes, outRows, dst, dstOff, dstStride)
}

// transposedSIMD resizes a view whose rows are columns in memory (orientations 5
// to 8), where the horizontal pass would read one byte triple per stored row. It
// swaps the kernels instead: the horizontal pass weighs whole stored rows (the
// vertical kernel), giving one row of r.tmp per output column, and the vertical
// pass runs the horizontal kernel along those rows, storing each result as a
// column of dst. Same sums, same rounding of the intermediate, so the same bytes
// as the scalar passes. r.vert must hold the vertical coefficients already;
// yFirst and rows are the view rows they read. It returns false, having written
// nothing to dst, when it does not apply.
func (r *resampler) transposedSIMD(src view, outW int, win rect, f Filter, yFirst, rows int, dst []byte, dstOff, dstStride int) bool {
	if !haveSIMD || src.dx == 3 || src.dx == -3 || outW == src.w {
		return false
	}
	r.horiz.compute(src.w, outW, win.x, win.w, f)
	// r.tmp row x holds, for output column x, the samples of view rows
	// yFirst..yFirst+rows-1: forward when dy > 0, backward when dy < 0.
	colBytes := 3 * rows
	r.tmp = grow(r.tmp, win.w*colBytes+simdSlack)[:win.w*colBytes]
	first := src.off + yFirst*src.dy // view (0, yFirst)
	if src.dy < 0 {
		first += (rows - 1) * src.dy // view (0, yFirst+rows-1): the lowest address
	}
	if !r.vpass(&r.horiz, src.pix, first, src.dx, 0, colBytes, win.w, r.tmp, 0, colBytes) {
		return false
	}
	// The vertical coefficients count view rows from 0; r.tmp's rows start at yFirst.
	reach := r.taps(&r.vert, win.h, src.dy < 0, rows, yFirst)
	return r.hpass(r.tmp, 0, colBytes, win.w, reach, dst, dstOff, 3, dstStride)
}

// verticalNormalizeSIMD runs the vertical pass with SIMD and writes each output
// row straight into the tensor through n's tables, when the CPU has SIMD and the
// tensor is exactly the window; it returns false, having written nothing,
// otherwise.
func (r *resampler) verticalNormalizeSIMD(yFirst int, win rect, n *normalizer, tensor []byte) bool {
	if !haveSIMD || len(tensor) != win.w*win.h*3*n.elemSize {
		return false
	}
	rowBytes := 3 * win.w
	r.row = grow(r.row, rowBytes)
	nm := C.fc_norm{width: C.int(win.w), height: C.int(win.h)}
	switch n.dtype {
	case FP32:
		nm.dtype = 0
	case FP16:
		nm.dtype = 1
	case UINT8:
		nm.dtype = 2
	default:
		return false
	}
	switch n.layout {
	case NCHW:
	case NHWC:
		nm.nhwc = 1
	default:
		return false
	}
	for c := range 3 {
		nm.src_chan[c] = C.int(n.srcChan[c])
	}
	C.fc_vpass_norm(C.bool(r.vnni()), (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(r.tmp))), C.ptrdiff_t(rowBytes), C.int(rowBytes),
		(*C.int64_t)(unsafe.Pointer(unsafe.SliceData(r.vert.bounds))), C.int64_t(yFirst),
		(*C.int32_t)(unsafe.Pointer(unsafe.SliceData(r.vert.k))), C.int(r.vert.ksize), C.int(win.h), &nm,
		(*C.uint32_t)(unsafe.Pointer(&n.lut32[0][0])), (*C.uint16_t)(unsafe.Pointer(&n.lut16[0][0])),
		(*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(r.row))), (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(tensor))))
	return true
}
