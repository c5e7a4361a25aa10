package preprocess

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzProcess feeds arbitrary bytes through the whole decode path. Seeds are the
// parity inputs (every format and colour type), so `go test` runs them all; with
// -fuzz the engine mutates them. Whatever the input: no panic, and either success
// or an error of one of the package's kinds.
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
	f.Fuzz(func(t *testing.T, data []byte) {
		dst := make([]byte, p.TensorBytes())
		info, err := p.Process(data, dst)
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
