//go:build !cgo || !(amd64 || arm64)

package preprocess

// Without cgo, or off amd64, only the portable passes of resize.go exist.

const (
	haveSIMD = false
	haveVNNI = false
	haveVBMI = false
)

func simdName() string { return "scalar" }

func (r *resampler) horizontalSIMD(view, int, int, int) bool { return false }

func (r *resampler) verticalSIMD(int, int, int, []byte, int, int) bool { return false }

func (r *resampler) transposedSIMD(view, int, rect, Filter, int, int, []byte, int, int) bool {
	return false
}

func (r *resampler) verticalNormalizeSIMD(int, rect, *normalizer, []byte) bool { return false }

const defaultStreamMinPixels = 0

func (p *Preprocessor) processStreaming([]byte, Header, *scratch, []byte, *Info) (handled, normalized bool, err error) {
	return false, false, nil
}
