package preprocess

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestStreamingMatchesDecodeThenResize checks that resizing a JPEG while it is
// decoded gives the very tensor of decoding it whole and then resizing: every JPEG
// fixture (4:2:0, 4:2:2, 4:4:4, progressive, grey, CMYK, EXIF orientations 1-8,
// of which 5-8 keep the whole-picture path) and the bench photos, every resize
// mode, bilinear and bicubic, exact and DCT-scaled.
func TestStreamingMatchesDecodeThenResize(t *testing.T) {
	files := streamInputs(t)
	var streamed int64
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, mode := range []ResizeMode{ResizeShorterCrop, ResizeStretch, ResizeLetterbox} {
			for _, f := range []Filter{FilterBilinear, FilterBicubic} {
				for _, fast := range []bool{false, true} {
					spec := ImageNetSpec()
					spec.Width, spec.Height, spec.Filter, spec.Resize, spec.AllowDCTScaling = 56, 40, f, mode, fast
					spec.ShorterSide = 64
					if mode != ResizeShorterCrop {
						spec.ShorterSide = 0
					}
					name := fmt.Sprintf("%s/%s/%s/fast=%v", filepath.Base(path), mode, f, fast)
					p := mustNew(t, spec, DefaultLimits())
					p.streamMinPixels = 0
					whole := mustNew(t, spec, DefaultLimits())
					whole.fullDecode = true
					want, wantInfo, err := process(t, whole, data)
					if err != nil {
						t.Fatalf("%s: whole-picture path: %v", name, err)
					}
					got, info, err := process(t, p, data)
					if err != nil {
						t.Fatalf("%s: streaming: %v", name, err)
					}
					if i := firstDiff(got, want); i >= 0 {
						t.Fatalf("%s: streaming tensor differs at byte %d: %d, whole-picture %d", name, i, got[i], want[i])
					}
					if info.DecodedWidth != wantInfo.DecodedWidth || info.DecodedHeight != wantInfo.DecodedHeight {
						t.Errorf("%s: decoded %d×%d, the whole-picture path %d×%d", name, info.DecodedWidth, info.DecodedHeight, wantInfo.DecodedWidth, wantInfo.DecodedHeight)
					}
					streamed += p.streamed.Load()
				}
			}
		}
	}
	if haveSIMD && streamed == 0 {
		t.Fatal("no picture was streamed: the test compared the whole-picture path with itself")
	}
	t.Logf("%d pictures streamed (resampler %s)", streamed, simdName())
}

// TestReusedPreprocessorMatchesFresh runs one Preprocessor (streaming on, so its
// pooled resampler shifts its tap tables for streamed pictures) over every JPEG
// fixture twice in a row, and checks each tensor against a fresh whole-picture
// Preprocessor's: the coefficients and tap tables a resampler keeps from one
// picture must never leak into the next.
func TestReusedPreprocessorMatchesFresh(t *testing.T) {
	files := streamInputs(t)
	spec := ImageNetSpec()
	spec.Width, spec.Height, spec.ShorterSide = 56, 40, 64
	// What a fresh whole-picture Preprocessor gives for each file.
	inputs, wants := make([][]byte, len(files)), make([][]byte, len(files))
	for i, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		whole := mustNew(t, spec, DefaultLimits())
		whole.fullDecode = true
		want, _, err := process(t, whole, data)
		if err != nil {
			t.Fatalf("%s: whole-picture path: %v", path, err)
		}
		inputs[i], wants[i] = data, want
	}
	reused := mustNew(t, spec, DefaultLimits())
	reused.streamMinPixels = 0
	for round := range 2 {
		for i, path := range files {
			want := wants[i]
			got, _, err := process(t, reused, inputs[i])
			if err != nil {
				t.Fatalf("%s (round %d): %v", path, round, err)
			}
			if i := firstDiff(got, want); i >= 0 {
				t.Fatalf("%s (round %d): byte %d is %d, a fresh Preprocessor's %d", filepath.Base(path), round, i, got[i], want[i])
			}
		}
	}
	if haveSIMD && reused.streamed.Load() == 0 {
		t.Fatal("no picture was streamed")
	}
}

// streamInputs lists the JPEGs the streaming tests run: every JPEG fixture and
// the two smaller bench photos.
func streamInputs(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(parityDir, "inputs", "jpeg*.jpg"))
	files = append(files, filepath.Join("testdata", "bench", "photo_640x480.jpg"), filepath.Join("testdata", "bench", "photo_1024x768.jpg"))
	if len(files) < 10 {
		t.Fatalf("only %d JPEG inputs found (run 'make fixtures')", len(files))
	}
	return files
}

// TestStreamingTruncated checks that a streamed JPEG cut anywhere, within the
// rows the resize reads, below them or just before the end-of-image marker, is
// refused as corrupt.
func TestStreamingTruncated(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "bench", "photo_1024x768.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	p := mustNew(t, ImageNetSpec(), DefaultLimits())
	p.streamMinPixels = 0
	for _, cut := range []int{len(data) / 3, len(data) / 2, len(data) * 95 / 100, len(data) - 2} {
		if _, _, err := process(t, p, data[:cut]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("cut at %d of %d bytes: error %v, want ErrCorrupt", cut, len(data), err)
		}
	}
	if _, _, err := process(t, p, data); err != nil {
		t.Fatalf("the whole file: %v", err)
	}
	if haveSIMD && p.streamed.Load() == 0 {
		t.Fatal("nothing was streamed")
	}
}

// TestStreamingMemory checks what streaming is for: a 12 MP photo is preprocessed
// without ever holding its 36 MB of RGB pixels. It counts the bytes allocated by
// a first Process (empty pools), streamed and whole-picture.
func TestStreamingMemory(t *testing.T) {
	if !haveSIMD {
		t.Skipf("no streaming without the SIMD resampler (%s); the whole-picture path is tested elsewhere", simdName())
	}
	data, err := os.ReadFile(filepath.Join("testdata", "bench", "photo_4032x3024.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	allocated := func(whole bool) uint64 {
		p := mustNew(t, ImageNetSpec(), DefaultLimits())
		p.fullDecode = whole
		dst := make([]byte, p.TensorBytes())
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := p.Process(data, dst); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	streamed, whole := allocated(false), allocated(true)
	t.Logf("Go memory allocated for a 4032×3024 JPEG: streamed %.1f MB, whole picture %.1f MB", float64(streamed)/1e6, float64(whole)/1e6)
	if whole < 36<<20 {
		t.Fatalf("the whole-picture path allocated only %d bytes: the measurement is wrong", whole)
	}
	if streamed > 8<<20 {
		t.Errorf("streaming allocated %d bytes, want under 8 MiB", streamed)
	}
}
