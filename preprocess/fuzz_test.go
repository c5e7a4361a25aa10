package preprocess

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzProcess feeds arbitrary bytes through the whole decode path. Seeds are the
// parity inputs (every format and colour type), so `go test` runs them all; with
// -fuzz the engine mutates them. Whatever the input: no panic, either success or
// an error of one of the package's kinds, and the same tensor from the SIMD
// resampler (streaming JPEGs) and the scalar one (decoding them whole).
func FuzzProcess(f *testing.F) {
	inputs, _ := filepath.Glob(filepath.Join(parityDir, "inputs", "*"))
	for _, path := range inputs {
		if data, err := os.ReadFile(path); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte{})
	f.Add([]byte("\xff\xd8\xff"))
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
	f.Add([]byte("RIFF\x00\x00\x00\x00WEBPVP8X"))
	// Small limits keep each run cheap while still exercising every check.
	limits := Limits{MaxBytes: 1 << 20, MaxPixels: 1 << 20, MaxSide: 4096, MinSide: 1}
	spec := pixelSpec(16, 16, FilterBicubic)
	spec.Resize = ResizeLetterbox
	p, err := New(spec, limits)
	if err != nil {
		f.Fatal(err)
	}
	// The same preprocessing on the scalar resampler, decoding whole pictures: the
	// SIMD resampler, with JPEGs decoded by region and streamed, must agree with it
	// byte for byte on whatever decodes.
	scalar, err := New(spec, limits)
	if err != nil {
		f.Fatal(err)
	}
	scalar.scalarResize, scalar.fullDecode = true, true
	p.streamMinPixels = 0 // stream every JPEG the SIMD path can
	// Where the CPU has AVX-512 VNNI, p runs it: the AVX2 level too, streaming.
	var avx2 *Preprocessor
	if haveVNNI {
		if avx2, err = New(spec, limits); err != nil {
			f.Fatal(err)
		}
		avx2.noVNNI, avx2.streamMinPixels = true, 0
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dst := make([]byte, p.TensorBytes())
		info, err := p.Process(data, dst)
		ref := make([]byte, scalar.TensorBytes())
		if _, serr := scalar.Process(data, ref); (serr == nil) != (err == nil) {
			t.Fatalf("the %s and scalar resamplers disagree on success: %v / %v", simdName(), err, serr)
		} else if err == nil && !bytes.Equal(dst, ref) {
			t.Fatalf("the %s resampler's tensor differs from the scalar one's (byte %d)", simdName(), firstDiff(dst, ref))
		}
		if avx2 != nil && err == nil {
			got := make([]byte, avx2.TensorBytes())
			if _, aerr := avx2.Process(data, got); aerr != nil || !bytes.Equal(got, ref) {
				t.Fatalf("the avx2 resampler's tensor differs from the scalar one's (%v, byte %d)", aerr, firstDiff(got, ref))
			}
		}
		if err != nil {
			if kindOf(err) == nil {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		if info.Width*info.Height > int(limits.MaxPixels) {
			t.Fatalf("decoded %d×%d, over the pixel limit", info.Width, info.Height)
		}
	})
}
