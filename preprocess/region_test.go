package preprocess

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestRegionDecodeMatchesFullDecode checks that decoding only the part of a JPEG
// the resize reads changes nothing: for every JPEG fixture (4:2:0, 4:2:2, 4:4:4,
// progressive, grey, CMYK, the eight EXIF orientations) and the bench photos, with
// centre crops that keep little or much of the picture, every filter, exact and
// DCT-scaled, the tensor equals the one from a full decode byte for byte.
func TestRegionDecodeMatchesFullDecode(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(parityDir, "inputs", "jpeg*.jpg"))
	files = append(files, filepath.Join("testdata", "bench", "photo_640x480.jpg"), filepath.Join("testdata", "bench", "photo_1024x768.jpg"))
	if len(files) < 10 {
		t.Fatalf("only %d JPEG inputs found (run 'make fixtures')", len(files))
	}
	cropped := 0
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, geo := range [][3]int{{256, 224, 224}, {40, 32, 32}, {120, 24, 96}} {
			for _, f := range []Filter{FilterBilinear, FilterBicubic, FilterNearest} {
				for _, fast := range []bool{false, true} {
					spec := pixelSpec(geo[1], geo[2], f)
					spec.Resize, spec.ShorterSide, spec.AllowDCTScaling = ResizeShorterCrop, geo[0], fast
					name := fmt.Sprintf("%s/%v/%s/fast=%v", filepath.Base(path), geo, f, fast)
					p := mustNew(t, spec, DefaultLimits())
					full := mustNew(t, spec, DefaultLimits())
					full.fullDecode = true
					want, _, err := process(t, full, data)
					if err != nil {
						t.Fatalf("%s: full decode: %v", name, err)
					}
					// Twice through the same pool: the second decode reuses a buffer
					// whose pixels outside the region are the first picture's.
					for range 2 {
						got, _, err := process(t, p, data)
						if err != nil {
							t.Fatalf("%s: region decode: %v", name, err)
						}
						if !bytes.Equal(got, want) {
							t.Fatalf("%s: the region decode's tensor differs from the full decode's at byte %d", name, firstDiff(got, want))
						}
					}
					h, _ := p.Probe(data)
					_, dw, dh := p.dctScale(h)
					if r := spec.neededRegion(dw, dh, h.Orientation); r != (region{}) {
						cropped++
					}
				}
			}
		}
	}
	if cropped == 0 {
		t.Fatal("no case decoded a region smaller than the picture: the test checked nothing")
	}
	t.Logf("%d of the cases need only a region of the picture (%s decodes only that)", cropped, jpegBackend)
}

// TestNeededRegion checks the region a 640×480 photo's centre crop needs, in
// stored coordinates, under each orientation.
func TestNeededRegion(t *testing.T) {
	spec := ImageNetSpec() // shorter side 256, centre 224×224, bilinear
	// Upright: resized to 341×256, window x 58..282 of 341 reads source columns
	// 107..531 (+ the filter's support) and rows 28..452, then the margin.
	up := spec.neededRegion(640, 480, 1)
	if up.x0 < 60 || up.x0 > 100 || up.x1 < 540 || up.x1 > 580 || up.y0 > 20 || up.y1 < 460 {
		t.Errorf("orientation 1: region %+v, want about x 89..551, y 10..470", up)
	}
	// Mirrored left-right: the same columns counted from the other side.
	if m := spec.neededRegion(640, 480, 2); m.x0 != 640-up.x1 || m.x1 != 640-up.x0 || m.y0 != up.y0 || m.y1 != up.y1 {
		t.Errorf("orientation 2: region %+v, want the mirror of %+v", m, up)
	}
	// Transposed orientations: stored 640×480 shown 480×640. Orientation 5 is the
	// transpose of a stored 480×640 upright picture; 6 runs the shown x (stored
	// rows) backwards.
	tr := spec.neededRegion(480, 640, 1)
	r5 := spec.neededRegion(640, 480, 5)
	if r5 != (region{tr.y0, tr.x0, tr.y1, tr.x1}) {
		t.Errorf("orientation 5: region %+v, want the transpose of %+v", r5, tr)
	}
	if r6 := spec.neededRegion(640, 480, 6); r6 != (region{r5.x0, 480 - r5.y1, r5.x1, 480 - r5.y0}) {
		t.Errorf("orientation 6: region %+v, want %+v with its rows mirrored", r6, r5)
	}
	// A square picture's shorter-side crop keeps 224/256 of both sides: still a region.
	if sq := spec.neededRegion(1000, 1000, 1); sq == (region{}) {
		t.Errorf("square: no region, want the centre")
	}
	// Stretch reads everything.
	st := spec
	st.Resize, st.ShorterSide = ResizeStretch, 0
	if r := st.neededRegion(640, 480, 1); r != (region{}) {
		t.Errorf("stretch: region %+v, want the whole picture", r)
	}
}

// TestRegionDecodeTruncated checks that a region decode still reads the whole
// file: a JPEG cut anywhere, even within the rows below the region or just
// before its end-of-image marker, is refused as corrupt, as a full decode does.
func TestRegionDecodeTruncated(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "bench", "photo_1024x768.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	p := mustNew(t, ImageNetSpec(), DefaultLimits())
	h, _ := p.Probe(data)
	if spec := p.Spec(); spec.neededRegion(h.Width, h.Height, h.Orientation) == (region{}) {
		t.Fatal("the photo's centre crop needs the whole picture: the test would not decode a region")
	}
	for _, cut := range []int{len(data) / 2, len(data) * 95 / 100, len(data) - 2} {
		_, _, err := process(t, p, data[:cut])
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("cut at %d of %d bytes: error %v, want ErrCorrupt", cut, len(data), err)
		}
	}
}
