package preprocess

import "bytes"

// Format is an image file format, recognised from the file's first bytes.
type Format int

const (
	FormatUnknown Format = iota
	FormatJPEG
	FormatPNG
	FormatWebP
)

var formatNames = []string{"unknown", "jpeg", "png", "webp"}

func (f Format) String() string { return enumName(formatNames, int(f)) }

// MediaType is the IANA media type of the format.
func (f Format) MediaType() string {
	switch f {
	case FormatJPEG:
		return "image/jpeg"
	case FormatPNG:
		return "image/png"
	case FormatWebP:
		return "image/webp"
	}
	return "application/octet-stream"
}

var (
	pngSignature  = []byte("\x89PNG\r\n\x1a\n")
	jpegSignature = []byte{0xFF, 0xD8, 0xFF}
)

// Sniff names the format of data from its signature alone. It never looks at a file
// name or a declared content type, and it needs at most the first 16 bytes.
func Sniff(data []byte) Format {
	switch {
	case bytes.HasPrefix(data, jpegSignature):
		return FormatJPEG
	case bytes.HasPrefix(data, pngSignature):
		return FormatPNG
	case len(data) >= 16 && string(data[0:4]) == "RIFF" && string(data[8:12]) == "WEBP" &&
		(string(data[12:16]) == "VP8 " || string(data[12:16]) == "VP8L" || string(data[12:16]) == "VP8X"):
		return FormatWebP
	}
	return FormatUnknown
}
