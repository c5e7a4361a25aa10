package preprocess

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/image/webp"
)

// Info describes one processed image.
type Info struct {
	Format Format
	// Width and Height are the size stored in the file, before orientation.
	Width, Height int
	// Orientation is the EXIF orientation applied (1 when none).
	Orientation int
	// DecodedWidth and DecodedHeight are the size the decoder produced: the stored
	// size, or less when Spec.AllowDCTScaling let the JPEG decoder shrink it.
	DecodedWidth, DecodedHeight int
	// Stages are the time spent in each step.
	Stages Stages
}

// Stages is the time one image spent in each preprocessing step.
type Stages struct {
	Decode, Resize, Normalize time.Duration
}

// Header is what an image's first bytes declare, read without decoding pixels.
type Header struct {
	Format        Format
	Width, Height int // as stored, before orientation
	Orientation   int
	// pngColorType and pngBitDepth select Pillow's conversion rule for 16-bit grey.
	pngColorType, pngBitDepth int
}

// Preprocessor turns encoded images into tensors for one Spec. It is safe for
// concurrent use; its working buffers are pooled, so steady-state processing
// allocates little beyond what the PNG and WebP decoders allocate for the picture.
type Preprocessor struct {
	spec    Spec
	limits  Limits
	norm    *normalizer
	scratch sync.Pool // *scratch
	// scalarResize makes Process use the portable resampling passes even where
	// SIMD ones exist (tests compare the two); noVNNI, the AVX2 passes where
	// the AVX-512 VNNI ones exist.
	scalarResize bool
	noVNNI       bool
	// fullDecode makes Process decode every pixel of a JPEG, not only those the
	// resize reads (tests compare the two).
	fullDecode bool
	// streamMinPixels is the decoded size from which JPEGs are resized while they
	// are decoded (stream_simd.go); tests lower it to stream small pictures.
	streamMinPixels int
	streamed        atomic.Int64 // pictures resized while decoded, for tests
}

// scratch is one request's reusable memory.
type scratch struct {
	img     rgbImage // the decoded picture
	resized []byte   // Width×Height×3 packed RGB
	rs      resampler
	batch   []byte // the rows of one streaming batch
}

// New validates spec and limits and returns a Preprocessor for them.
func New(spec Spec, limits Limits) (*Preprocessor, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := limits.Validate(); err != nil {
		return nil, err
	}
	p := &Preprocessor{spec: spec, limits: limits, norm: newNormalizer(spec), streamMinPixels: defaultStreamMinPixels}
	p.scratch.New = func() any { return new(scratch) }
	return p, nil
}

// Spec returns the preprocessing in force.
func (p *Preprocessor) Spec() Spec { return p.spec }

// Limits returns the bounds in force.
func (p *Preprocessor) Limits() Limits { return p.limits }

// TensorBytes is the number of bytes Process writes for one image.
func (p *Preprocessor) TensorBytes() int { return p.spec.TensorBytes() }

// Probe sniffs the format and reads the header of data, and checks both against the
// limits, without decoding any pixel.
func (p *Preprocessor) Probe(data []byte) (Header, error) {
	if len(data) == 0 {
		return Header{}, ErrEmpty
	}
	if int64(len(data)) > p.limits.MaxBytes {
		return Header{}, fmt.Errorf("%w: %d bytes, over the limit of %d", ErrTooLarge, len(data), p.limits.MaxBytes)
	}
	h := Header{Format: Sniff(data), Orientation: 1}
	var err error
	switch h.Format {
	case FormatJPEG:
		h.Width, h.Height, _, h.Orientation, err = jpegInfo(data)
	case FormatPNG:
		h.Width, h.Height, h.pngBitDepth, h.pngColorType, h.Orientation, err = pngInfo(data)
	case FormatWebP:
		h.Width, h.Height, h.Orientation, err = webpInfo(data)
	default:
		return Header{}, fmt.Errorf("%w: %s (accepted: jpeg, png, webp)", ErrUnsupportedFormat, describeUnknown(data))
	}
	if err != nil {
		return Header{}, fmt.Errorf("read %s header: %w", h.Format, err)
	}
	if h.Orientation < 1 || h.Orientation > 8 {
		h.Orientation = 1
	}
	if err := p.limits.check(h.Width, h.Height); err != nil {
		return Header{}, err
	}
	return h, nil
}

// Process decodes data and writes its tensor into dst, which must be exactly
// TensorBytes long (one entry of a batch's raw input). On error dst may have been
// partly written. Errors wrap one of the sentinel errors of this package.
func (p *Preprocessor) Process(data []byte, dst []byte) (Info, error) {
	if len(dst) != p.TensorBytes() {
		return Info{}, fmt.Errorf("%w: destination is %d bytes, the tensor is %d", ErrInvalidSpec, len(dst), p.TensorBytes())
	}
	h, err := p.Probe(data)
	if err != nil {
		return Info{}, err
	}
	info := Info{Format: h.Format, Width: h.Width, Height: h.Height, Orientation: h.Orientation}
	s := p.scratch.Get().(*scratch)
	defer p.scratch.Put(s)

	s.resized = grow(s.resized, p.spec.Width*p.spec.Height*3)
	if !p.fullDecode {
		handled, normalized, err := p.processStreaming(data, h, s, dst, &info)
		if err != nil {
			return Info{}, err
		}
		if handled {
			p.streamed.Add(1)
			if !normalized {
				start := time.Now()
				p.norm.write(s.resized, p.spec.Width, p.spec.Height, dst)
				info.Stages.Normalize = time.Since(start)
			}
			return info, nil
		}
	}

	start := time.Now()
	if err := p.decode(data, h, s); err != nil {
		return Info{}, err
	}
	info.DecodedWidth, info.DecodedHeight = s.img.w, s.img.h
	decoded := time.Now()
	info.Stages.Decode = decoded.Sub(start)

	src := orientedView(&s.img, h.Orientation)
	s.rs.scalar, s.rs.noVNNI = p.scalarResize, p.noVNNI
	normalized := p.resize(src, s, dst)
	resized := time.Now()
	info.Stages.Resize = resized.Sub(decoded)
	if normalized {
		// The SIMD resize wrote the tensor from its last pass: normalising was
		// part of the resize stage.
		return info, nil
	}
	p.norm.write(s.resized, p.spec.Width, p.spec.Height, dst)
	info.Stages.Normalize = time.Since(resized)
	return info, nil
}

// decode fills s.img with the picture's RGB pixels, recovering any decoder panic.
func (p *Preprocessor) decode(data []byte, h Header, s *scratch) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s decoder failed: %v", ErrCorrupt, h.Format, r)
		}
	}()
	switch h.Format {
	case FormatJPEG:
		e, dw, dh := p.dctScale(h)
		var need region
		if !p.fullDecode {
			need = p.spec.neededRegion(dw, dh, h.Orientation)
		}
		_, err := decodeJPEGRegion(data, h.Width, h.Height, e, need, &s.img)
		return err
	case FormatPNG:
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("%w: decode png: %v", ErrCorrupt, err)
		}
		if err := checkBounds(img, h); err != nil {
			return err
		}
		toRGB(img, &s.img, h.pngColorType == 0 && h.pngBitDepth == 16)
		return nil
	case FormatWebP:
		img, err := webp.Decode(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("%w: decode webp: %v", ErrCorrupt, err)
		}
		if err := checkBounds(img, h); err != nil {
			return err
		}
		switch m := img.(type) {
		case *image.YCbCr:
			webpYUVToRGB(m, &s.img)
		case *image.NYCbCrA:
			webpYUVToRGB(&m.YCbCr, &s.img)
		default:
			toRGB(img, &s.img, false)
		}
		return nil
	}
	return fmt.Errorf("%w: %s", ErrUnsupportedFormat, h.Format)
}

// checkBounds makes sure a decoder produced the size its header promised, since the
// limits were checked on the header.
func checkBounds(img image.Image, h Header) error {
	if b := img.Bounds(); b.Dx() != h.Width || b.Dy() != h.Height {
		return fmt.Errorf("%w: %s header says %d×%d but the decoder produced %d×%d", ErrCorrupt, h.Format, h.Width, h.Height, b.Dx(), b.Dy())
	}
	return nil
}

// resize resizes src into s.resized, or, where the window fills the tensor and
// the SIMD passes run, straight into the normalised tensor; it reports which.
func (p *Preprocessor) resize(src view, s *scratch, tensor []byte) (normalized bool) {
	t := p.spec.target(src.w, src.h)
	stride := 3 * p.spec.Width
	if p.spec.Resize == ResizeLetterbox {
		p.fillLetterbox(s.resized)
		s.rs.resize(src, t.w, t.h, t.win, p.spec.Filter, s.resized, t.dstY*stride+3*t.dstX, stride)
		return false
	}
	return s.rs.resizeNormalize(src, t.w, t.h, t.win, p.spec.Filter, s.resized, 0, stride, p.norm, tensor)
}

// fillLetterbox paints a packed RGB tensor-sized picture with the letterbox colour.
func (p *Preprocessor) fillLetterbox(pix []byte) {
	fill := p.spec.Fill
	for i := 0; i < len(pix); i += 3 {
		pix[i], pix[i+1], pix[i+2] = fill[0], fill[1], fill[2]
	}
}

// dctScale returns dctEighths and the size of the picture libjpeg decodes at that
// scale (ceil of the stored size × eighths/8).
func (p *Preprocessor) dctScale(h Header) (eighths, w, ht int) {
	e := p.dctEighths(h)
	return e, (h.Width*e + 7) / 8, (h.Height*e + 7) / 8
}

// dctEighths chooses the JPEG DCT scale, in eighths: the smallest of 1/8, 1/4 and
// 1/2 that keeps the decoded picture at least as large as what the resize needs,
// so the resize still only shrinks; full size (8/8) when none does. These are
// Pillow's draft() scales, and the ones libjpeg-turbo has SIMD inverse DCTs for:
// its other n/8 scales are plain C and measured slower than the full-size decode
// (a 1024×768 photo: 3/8 2.34 ms, 4/8 2.27 ms, 8/8 2.58 ms; 640×480: 5/8 1.44 ms
// against 8/8 1.04 ms), since entropy decoding, which no scale saves, dominates.
func (p *Preprocessor) dctEighths(h Header) int {
	if !p.spec.AllowDCTScaling {
		return 8
	}
	w, ht := h.Width, h.Height
	if h.Orientation >= 5 { // the resize sees the picture transposed
		w, ht = ht, w
	}
	t := p.spec.target(w, ht)
	for _, e := range [...]int{1, 2, 4} {
		if (w*e+7)/8 >= t.w && (ht*e+7)/8 >= t.h {
			return e
		}
	}
	return 8
}

// describeUnknown names common formats we refuse, so the error says what was sent.
func describeUnknown(data []byte) string {
	head := data[:min(len(data), 512)]
	trimmed := bytes.ToLower(bytes.TrimLeft(head, " \t\r\n\xef\xbb\xbf"))
	switch {
	case bytes.HasPrefix(head, []byte("GIF8")):
		return "the data is a GIF"
	case bytes.HasPrefix(head, []byte("BM")):
		return "the data looks like a BMP"
	case bytes.HasPrefix(head, []byte("II*\x00")), bytes.HasPrefix(head, []byte("MM\x00*")):
		return "the data is a TIFF"
	case len(head) >= 12 && string(head[4:8]) == "ftyp":
		return fmt.Sprintf("the data is an ISO media file (brand %q, e.g. HEIC or AVIF)", head[8:12])
	case bytes.HasPrefix(head, []byte("RIFF")):
		return "the data is a RIFF file that is not a still WebP"
	case bytes.HasPrefix(trimmed, []byte("<svg")), bytes.HasPrefix(trimmed, []byte("<?xml")):
		return "the data is XML or SVG"
	case bytes.HasPrefix(trimmed, []byte("<!doctype")), bytes.HasPrefix(trimmed, []byte("<html")):
		return "the data is HTML"
	}
	return "the data does not start with a JPEG, PNG or WebP signature"
}
