//go:build cgo && arm64

package preprocess

// The arm64 level of the SIMD resampler (resize_simd.go): NEON, in resize_neon.c.
// Advanced SIMD is part of the base arm64 architecture (AWS Graviton, NVIDIA
// Grace, Ampere, Apple), so every arm64 CPU runs it and there is nothing to
// detect. The kernels are those of AVX2 on amd64, in 128-bit registers: each
// weight of Pillow's (23-bit, signed) multiplies samples widened to 32 bits, so
// the sums are exact. The dot-product instructions that would mirror the VNNI
// level need either a signed pixel operand (SDOT) or the i8mm extension (USDOT,
// not on Graviton 2); they are left for when there is arm64 hardware to measure
// on (the tests run the kernels under emulation: make test-arm64).

// haveSIMD: every arm64 CPU runs the NEON passes; the amd64 levels do not exist.
const (
	haveSIMD = true
	haveVNNI = false
	haveVBMI = false
)

// simdName names the resampler in use, for benchmarks and logs.
func simdName() string { return "neon" }

// vnni and vbmi: the amd64 levels, never on arm64.
func (r *resampler) vnni() bool { return false }
func (r *resampler) vbmi() bool { return false }

// tapInts is how many int32 one group of four taps takes in wexp: each tap's
// weight three times, once for each byte of its pixel (resize_neon.c).
func (r *resampler) tapInts() int { return 12 }

// quads and hpassQuads are fc_hpass_vbmi's, an amd64 kernel.
func (r *resampler) quads(*coeffs) bool { return false }

func (r *resampler) hpassQuads([]byte, int, int, int, []byte, int, int) bool { return false }
