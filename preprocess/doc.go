// Package preprocess turns the bytes of an uploaded image into the exact tensor a
// model expects.
//
// It sniffs the format from the bytes (JPEG, PNG or WebP; nothing else), checks the
// declared dimensions against Limits before a single pixel is allocated, decodes,
// applies the EXIF orientation, converts to RGB the way Pillow's convert("RGB")
// does, resizes with Pillow's filters (nearest, bilinear, bicubic, with Pillow's
// antialiasing when downscaling), and normalises into the model's layout and data
// type, writing little-endian bytes straight into a caller-supplied buffer.
//
// The package knows nothing of HTTP, gRPC or metrics: it imports the standard
// library and image decoders only. Errors wrap one of the sentinel errors in
// errors.go so callers map them to responses with errors.Is.
//
// JPEG decoding uses libjpeg-turbo through cgo when cgo is enabled (it is several
// times faster than image/jpeg and can decode at a reduced DCT scale); builds
// without cgo fall back to the standard library decoder.
package preprocess
