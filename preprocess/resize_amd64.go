//go:build cgo && amd64

package preprocess

// The amd64 levels of the SIMD resampler (resize_simd.go), in resize_avx2.c: AVX2,
// and AVX-512 VNNI where the CPU has it (AMD Zen 4 and later, Intel Ice Lake and
// later servers), chosen at run time from the CPU's features.
//
// Why VNNI: Pillow-SIMD multiplies 16-bit weights (within a level of Pillow), but
// matching Pillow exactly needs its 23-bit signed weights, so the AVX2 kernels
// spend a 32-bit multiply and an add per tap and sample. VNNI's vpdpbusd does four
// byte-by-byte products and their sum in one instruction; splitting each weight
// into three signed bytes (weightDigits) keeps the sums exact at three
// instructions per four taps. Where the CPU has AVX-512 VBMI too (the same CPUs
// but Intel's Cascade Lake), the horizontal pass of a moderate shrink (four
// output pixels' taps within 64 bytes: up to about 4x) takes four consecutive
// output pixels of a row per register, their taps gathered by one byte permute
// (vpermb) from one load, instead of one pixel of four rows loaded lane by lane:
// a quarter fewer instructions (fc_hpass_vbmi).
//
// Why C intrinsics: the kernels need byte shuffles, 32-bit multiplies and
// saturating packs, which Go's compiler does not generate and Go's experimental
// SIMD package only offers behind GOEXPERIMENT=simd; Go assembly would be several
// hundred lines of hand-allocated registers. GCC compiles each function for its
// instruction set alone (target attribute), so the rest of the binary stays
// baseline x86-64 and the choice is made at run time from the CPU's features.

/*
#include "resize_avx2.h"
*/
import "C"

import (
	"encoding/binary"
	"math"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// haveSIMD says whether this CPU runs the AVX2 passes; haveVNNI, whether it also
// runs the AVX-512 VNNI ones (x/sys/cpu reports AVX-512 only where the operating
// system saves its registers).
var (
	haveSIMD = cpu.X86.HasAVX2
	haveVNNI = haveSIMD && cpu.X86.HasAVX512VNNI && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512BW
	haveVBMI = haveVNNI && cpu.X86.HasAVX512VBMI
)

// simdName names the resampler in use, for benchmarks and logs.
func simdName() string {
	switch {
	case haveVBMI:
		return "avx512vbmi"
	case haveVNNI:
		return "avx512vnni"
	case haveSIMD:
		return "avx2"
	}
	return "scalar"
}

// vnni says whether r runs the VNNI passes; vbmi, whether its horizontal pass
// may take four output pixels at a time (fc_hpass_vbmi).
func (r *resampler) vnni() bool { return haveVNNI && !r.noVNNI }
func (r *resampler) vbmi() bool { return haveVBMI && !r.noVNNI && !r.noVBMI }

// tapInts is how many int32 one group of four taps takes in wexp: the VNNI
// kernel's digits (three int32 of four bytes, and a zero), or the AVX2 kernel's
// weights, each repeated in three lanes of four.
func (r *resampler) tapInts() int {
	if r.vnni() {
		return 4
	}
	return 16
}

// vbmiMaxGroups bounds the taps (four per group) of an output pixel that
// fc_hpass_vbmi takes; at most 21 pixels fit the 64 bytes of four anyway.
const vbmiMaxGroups = 4

// quads lays out, from the VNNI tables taps just built (starts, groups, wexp)
// and c's tap counts, the tables of fc_hpass_vbmi: per four consecutive output
// pixels (a quad), where its 64-byte load starts (the lowest start of the four),
// which of those bytes it needs (its taps'), and per group of four taps the
// byte permute that puts pixel j's R, G and B taps in lane j's first three
// dwords, then the three digit vectors, pixel j's digits in lane j. It reports
// false, leaving the other kernel to the pass, when a quad's taps span more than
// 64 bytes or a pixel has more than vbmiMaxGroups groups.
func (r *resampler) quads(c *coeffs) bool {
	out := len(r.starts)
	nq := (out + 3) / 4
	groups := 0
	for _, g := range r.groups {
		groups = max(groups, int(g))
	}
	if groups > vbmiMaxGroups {
		return false
	}
	r.qbase = grow(r.qbase, nq)
	r.qmask = grow(r.qmask, nq)
	r.qtab = grow(r.qtab, nq*groups*256)
	clear(r.qtab)
	// Where each output pixel's digits start in wexp (four int32 a group).
	at := 0
	for q := range nq {
		lo, hi := math.MaxInt, 0
		for x := 4 * q; x < min(4*q+4, out); x++ {
			lo = min(lo, int(r.starts[x]))
			hi = max(hi, int(r.starts[x])+3*c.bounds[2*x+1])
		}
		if hi-lo > 64 {
			return false
		}
		r.qbase[q] = int32(lo)
		r.qmask[q] = ^uint64(0) >> (64 - (hi - lo))
		tab := r.qtab[q*groups*256 : (q+1)*groups*256]
		for j := range 4 {
			x := 4*q + j
			if x >= out {
				break
			}
			n, off := c.bounds[2*x+1], int(r.starts[x])-lo
			for g := range int(r.groups[x]) {
				t := tab[g*256 : (g+1)*256]
				for ch := range 3 {
					for k := range 4 {
						// Tap 4g+k's channel ch; a missing tap (zero digits) reads byte 0.
						if tap := 4*g + k; tap < n {
							t[16*j+4*ch+k] = byte(off + 3*tap + ch)
						}
					}
					for d := range 3 {
						binary.LittleEndian.PutUint32(t[64*(d+1)+16*j+4*ch:], uint32(r.wexp[4*(at+g)+d]))
					}
				}
			}
			at += int(r.groups[x])
		}
	}
	r.qgroups = groups
	return true
}

// hpassQuads runs fc_hpass_vbmi, the horizontal kernel on the tables quads laid
// out, for hpass, which checked the bounds.
func (r *resampler) hpassQuads(pix []byte, row0, rowStep, rows int, dst []byte, dstOff, dstRow int) bool {
	out := len(r.starts)
	C.fc_hpass_vbmi((*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(pix))), C.ptrdiff_t(row0), C.ptrdiff_t(rowStep), C.int(rows),
		(*C.int32_t)(unsafe.Pointer(unsafe.SliceData(r.qbase))), (*C.uint64_t)(unsafe.Pointer(unsafe.SliceData(r.qmask))),
		(*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(r.qtab))), C.int(r.qgroups), C.int(out),
		(*C.uint8_t)(unsafe.Pointer(&dst[dstOff])), C.ptrdiff_t(dstRow))
	return true
}
