//go:build cgo

package onnx

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/fish-classifier/fish-classifier/internal/testenv"
)

// libPath is the ONNX Runtime library the tests load, fetched (or found in the
// cache) by scripts/fetch-onnxruntime.sh, through testenv like every other test.
var libPath string

// repoRoot is the repository's root directory.
var repoRoot = func() string { abs, _ := filepath.Abs("../.."); return abs }()

func TestMain(m *testing.M) {
	var err error
	if libPath, err = testenv.FetchONNXRuntime(); err != nil {
		fmt.Fprintln(os.Stderr, "gateway/onnx tests:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
