package preprocess

import "errors"

// The errors below are the kinds of failure a caller must tell apart. Every error
// returned by this package wraps exactly one of them (test with errors.Is), with a
// message that says what was wrong with this particular input.
var (
	// ErrEmpty means the input had no bytes at all.
	ErrEmpty = errors.New("empty image")
	// ErrTooLarge means the encoded input is larger than Limits.MaxBytes.
	ErrTooLarge = errors.New("image too large")
	// ErrUnsupportedFormat means the bytes are not JPEG, PNG or WebP.
	ErrUnsupportedFormat = errors.New("unsupported image format")
	// ErrTooManyPixels means the declared dimensions exceed Limits.MaxPixels or
	// Limits.MaxSide. It is returned from the header, before any pixel is allocated.
	ErrTooManyPixels = errors.New("too many pixels")
	// ErrTooSmall means a side of the image is shorter than Limits.MinSide.
	ErrTooSmall = errors.New("image too small")
	// ErrCorrupt means the file is truncated, malformed, or made a decoder fail.
	ErrCorrupt = errors.New("corrupt image")
	// ErrInvalidSpec means a Spec or Limits value is unusable; it is a configuration
	// error, never the fault of an uploaded image.
	ErrInvalidSpec = errors.New("invalid preprocessing spec")
)
