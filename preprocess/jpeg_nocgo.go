//go:build !cgo

package preprocess

// jpegBackend names the decoder in use: "libjpeg-turbo" or "image/jpeg".
const jpegBackend = "image/jpeg"

// decodeJPEG decodes a JPEG whose header was already read and accepted by the caller
// (wantW×wantH are the full-size dimensions from the header) into dst as packed RGB,
// at a DCT scale of 1/denom, denom ∈ {1,2,4,8}. It returns the denominator actually
// used (the pure-Go decoder always uses 1, and so does libjpeg if asked for 1).
// dst is resized with dst.reset(w, h) to the scaled size (libjpeg's output_width/height,
// i.e. ceil(w/denom)). Errors wrap ErrCorrupt (anything malformed or truncated) or
// ErrUnsupportedFormat (a JPEG variant the decoder cannot do, e.g. 12-bit, lossless).
//
// This build (no cgo) decodes with image/jpeg, always at full scale.
func decodeJPEG(data []byte, wantW, wantH, denom int, dst *rgbImage) (int, error) {
	if err := decodeJPEGStd(data, wantW, wantH, dst); err != nil {
		return 0, err
	}
	return 1, nil
}

// decodeJPEGEighths decodes at full scale in this build and returns 8 (eighths).
func decodeJPEGEighths(data []byte, wantW, wantH, _ int, dst *rgbImage) (int, error) {
	if err := decodeJPEGStd(data, wantW, wantH, dst); err != nil {
		return 0, err
	}
	return 8, nil
}

// decodeJPEGRegion decodes the whole picture in this build.
func decodeJPEGRegion(data []byte, wantW, wantH, eighths int, _ region, dst *rgbImage) (int, error) {
	return decodeJPEGEighths(data, wantW, wantH, eighths, dst)
}
