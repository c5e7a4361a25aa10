package preprocess

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// ResizeMode says how the decoded picture is brought to the model's input size.
type ResizeMode int

const (
	// ResizeStretch resizes to exactly Width×Height, ignoring the aspect ratio
	// (what Keras' load_img(target_size=...) does).
	ResizeStretch ResizeMode = iota
	// ResizeShorterCrop resizes the shorter side to ShorterSide keeping the aspect
	// ratio, then cuts the central Width×Height window (torchvision's
	// Resize(ShorterSide) followed by CenterCrop((Height, Width))).
	ResizeShorterCrop
	// ResizeLetterbox fits the whole picture inside Width×Height keeping the aspect
	// ratio and fills the borders with Fill.
	ResizeLetterbox
)

var resizeModeNames = []string{"stretch", "shorter_crop", "letterbox"}

func (m ResizeMode) String() string { return enumName(resizeModeNames, int(m)) }

// Filter is a resampling filter. Each matches the Pillow filter of the same name,
// including Pillow's antialiasing (the support widens by the scale) when downscaling.
type Filter int

const (
	FilterNearest Filter = iota
	FilterBilinear
	FilterBicubic
)

var filterNames = []string{"nearest", "bilinear", "bicubic"}

func (f Filter) String() string { return enumName(filterNames, int(f)) }

// ChannelOrder is the order of the colour channels in the tensor.
type ChannelOrder int

const (
	RGB ChannelOrder = iota
	BGR
)

var channelOrderNames = []string{"rgb", "bgr"}

func (o ChannelOrder) String() string { return enumName(channelOrderNames, int(o)) }

// Layout is the order of the tensor's dimensions (the batch dimension excluded).
type Layout int

const (
	// NCHW stores one plane per channel: C×H×W.
	NCHW Layout = iota
	// NHWC stores the channels of a pixel together: H×W×C.
	NHWC
)

var layoutNames = []string{"nchw", "nhwc"}

func (l Layout) String() string { return enumName(layoutNames, int(l)) }

// DataType is the element type of the tensor, written little-endian.
type DataType int

const (
	FP32 DataType = iota
	FP16
	// UINT8 carries the resized pixels themselves; normalisation then belongs to the
	// model's first layer, so Scale, Mean and Std must be the identity.
	UINT8
)

var dataTypeNames = []string{"FP32", "FP16", "UINT8"}

// String returns the KServe v2 datatype name ("FP32", "FP16", "UINT8").
func (d DataType) String() string { return enumName(dataTypeNames, int(d)) }

// ElementSize is the number of bytes of one tensor element.
func (d DataType) ElementSize() int {
	switch d {
	case FP32:
		return 4
	case FP16:
		return 2
	default:
		return 1
	}
}

func enumName(names []string, i int) string {
	if i < 0 || i >= len(names) {
		return fmt.Sprintf("invalid(%d)", i)
	}
	return names[i]
}

// ParseResizeMode, ParseFilter, ParseChannelOrder, ParseLayout and ParseDataType
// read the names String returns (case-insensitive), as found in a model's
// configuration parameters.
func ParseResizeMode(s string) (ResizeMode, error) {
	i, err := parseEnum("resize mode", resizeModeNames, s)
	return ResizeMode(i), err
}

func ParseFilter(s string) (Filter, error) {
	i, err := parseEnum("filter", filterNames, s)
	return Filter(i), err
}

func ParseChannelOrder(s string) (ChannelOrder, error) {
	i, err := parseEnum("channel order", channelOrderNames, s)
	return ChannelOrder(i), err
}

func ParseLayout(s string) (Layout, error) {
	i, err := parseEnum("layout", layoutNames, s)
	return Layout(i), err
}

func ParseDataType(s string) (DataType, error) {
	i, err := parseEnum("data type", dataTypeNames, s)
	return DataType(i), err
}

func parseEnum(what string, names []string, s string) (int, error) {
	for i, n := range names {
		if strings.EqualFold(n, strings.TrimSpace(s)) {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown %s %q (want one of %s)", ErrInvalidSpec, what, s, strings.Join(names, ", "))
}

// Spec describes, for one model, how an image becomes its input tensor. The zero
// value is not valid: fill it in and call Validate (New does).
type Spec struct {
	// Width and Height are the spatial size of the tensor.
	Width, Height int
	// Resize and Filter choose how the picture reaches Width×Height.
	Resize ResizeMode
	Filter Filter
	// ShorterSide is the length the shorter side is resized to before the centre
	// crop, for ResizeShorterCrop only (torchvision's Resize(256)+CenterCrop(224)
	// has ShorterSide 256). It must be at least max(Width, Height).
	ShorterSide int
	// Fill is the RGB colour of the borders, for ResizeLetterbox only.
	Fill [3]uint8
	// Scale, Mean and Std normalise every element: (pixel*Scale - Mean[c]) / Std[c],
	// pixel in 0..255. Mean and Std are indexed by the tensor's channel, that is in
	// ChannelOrder (for BGR, Mean[0] is the blue mean).
	Scale float32
	Mean  [3]float32
	Std   [3]float32
	// Order, Layout and DataType fix the memory layout of the tensor.
	Order    ChannelOrder
	Layout   Layout
	DataType DataType
	// AllowDCTScaling lets the JPEG decoder decode at 1/2, 1/4 or 1/8 scale when the
	// picture is that much larger than what the resize needs (Pillow's draft(),
	// libvips' shrink-on-load). Much faster on large photos, but the result is no
	// longer bit-comparable with a full decode followed by the same resize.
	AllowDCTScaling bool
}

// ImageNetSpec returns the common torchvision ImageNet preprocessing: shorter side
// 256 (bilinear), centre crop 224×224, scale 1/255, ImageNet mean and std, RGB, NCHW,
// FP32.
func ImageNetSpec() Spec {
	return Spec{
		Width: 224, Height: 224,
		Resize: ResizeShorterCrop, ShorterSide: 256, Filter: FilterBilinear,
		Scale: 1.0 / 255,
		Mean:  [3]float32{0.485, 0.456, 0.406},
		Std:   [3]float32{0.229, 0.224, 0.225},
		Order: RGB, Layout: NCHW, DataType: FP32,
	}
}

// maxTensorSide bounds Width and Height so that a tensor's size cannot overflow and
// a typo in a configuration cannot ask for gigabytes per request.
const maxTensorSide = 8192

// Validate reports every problem of the Spec at once, each naming the field.
func (s Spec) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if s.Width < 1 || s.Width > maxTensorSide {
		bad("Width %d out of range [1, %d]", s.Width, maxTensorSide)
	}
	if s.Height < 1 || s.Height > maxTensorSide {
		bad("Height %d out of range [1, %d]", s.Height, maxTensorSide)
	}
	if s.Resize < ResizeStretch || s.Resize > ResizeLetterbox {
		bad("Resize %d is not a resize mode", int(s.Resize))
	}
	if s.Filter < FilterNearest || s.Filter > FilterBicubic {
		bad("Filter %d is not a filter", int(s.Filter))
	}
	if s.Resize == ResizeShorterCrop {
		if need := max(s.Width, s.Height); s.ShorterSide < need || s.ShorterSide > maxTensorSide {
			bad("ShorterSide %d must be in [max(Width, Height) = %d, %d] so the centre crop fits", s.ShorterSide, need, maxTensorSide)
		}
	} else if s.ShorterSide != 0 {
		bad("ShorterSide %d is only used by the %s resize mode", s.ShorterSide, ResizeShorterCrop)
	}
	if s.Order < RGB || s.Order > BGR {
		bad("Order %d is not a channel order", int(s.Order))
	}
	if s.Layout < NCHW || s.Layout > NHWC {
		bad("Layout %d is not a layout", int(s.Layout))
	}
	if s.DataType < FP32 || s.DataType > UINT8 {
		bad("DataType %d is not a data type", int(s.DataType))
	}
	if !finite(s.Scale) || s.Scale <= 0 {
		bad("Scale %v must be a positive finite number", s.Scale)
	}
	for c := range 3 {
		if !finite(s.Mean[c]) {
			bad("Mean[%d] %v must be finite", c, s.Mean[c])
		}
		if !finite(s.Std[c]) || s.Std[c] <= 0 {
			bad("Std[%d] %v must be a positive finite number", c, s.Std[c])
		}
	}
	if s.DataType == UINT8 && (s.Scale != 1 || s.Mean != [3]float32{} || s.Std != [3]float32{1, 1, 1}) {
		bad("UINT8 tensors carry raw pixels: Scale must be 1, Mean 0 and Std 1 (normalise inside the model)")
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidSpec, errors.Join(errs...))
}

func finite(f float32) bool { return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) }

// TensorBytes is the size in bytes of one image's tensor.
func (s Spec) TensorBytes() int { return s.Width * s.Height * 3 * s.DataType.ElementSize() }

// Shape is the tensor's shape without the batch dimension, in Layout order.
func (s Spec) Shape() []int64 {
	if s.Layout == NHWC {
		return []int64{int64(s.Height), int64(s.Width), 3}
	}
	return []int64{3, int64(s.Height), int64(s.Width)}
}

// Limits bounds what one input may cost. Every bound is checked from the file's
// header, before any pixel memory is allocated.
type Limits struct {
	// MaxBytes is the largest encoded input accepted.
	MaxBytes int64
	// MaxPixels bounds width×height as declared by the header.
	MaxPixels int64
	// MaxSide bounds the longer side.
	MaxSide int
	// MinSide is the shortest side accepted (tiny images carry no signal and are
	// usually icons or tracking pixels).
	MinSide int
}

// DefaultLimits accepts every phone photo up to 40 MP (a 12 MP photo is 4032×3024)
// and a 32 MiB file, and nothing smaller than 8 pixels a side. A full-size 40 MP
// decode holds 120 MB of RGB pixels, which bounds one request's peak memory.
func DefaultLimits() Limits {
	return Limits{MaxBytes: 16 << 20, MaxPixels: 50_000_000, MaxSide: 16384, MinSide: 8}
}

// Validate reports every problem of the Limits at once.
func (l Limits) Validate() error {
	var errs []error
	if l.MaxBytes < 1 {
		errs = append(errs, fmt.Errorf("MaxBytes %d must be positive", l.MaxBytes))
	}
	if l.MaxPixels < 1 {
		errs = append(errs, fmt.Errorf("MaxPixels %d must be positive", l.MaxPixels))
	}
	if l.MaxSide < 1 || l.MaxSide > 1<<16 {
		errs = append(errs, fmt.Errorf("MaxSide %d out of range [1, 65536]", l.MaxSide))
	}
	if l.MinSide < 1 || l.MinSide > l.MaxSide {
		errs = append(errs, fmt.Errorf("MinSide %d out of range [1, MaxSide]", l.MinSide))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: limits: %w", ErrInvalidSpec, errors.Join(errs...))
}

// check tests a header's declared size against the limits.
func (l Limits) check(width, height int) error {
	if width <= 0 || height <= 0 {
		return fmt.Errorf("%w: header declares %d×%d pixels", ErrCorrupt, width, height)
	}
	if width > l.MaxSide || height > l.MaxSide {
		return fmt.Errorf("%w: %d×%d has a side over the limit of %d", ErrTooManyPixels, width, height, l.MaxSide)
	}
	if px := int64(width) * int64(height); px > l.MaxPixels {
		return fmt.Errorf("%w: %d×%d is %d pixels, over the limit of %d", ErrTooManyPixels, width, height, px, l.MaxPixels)
	}
	if width < l.MinSide || height < l.MinSide {
		return fmt.Errorf("%w: %d×%d has a side under the minimum of %d", ErrTooSmall, width, height, l.MinSide)
	}
	return nil
}
