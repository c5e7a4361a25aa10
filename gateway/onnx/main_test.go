//go:build cgo

package onnx

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// libPath is the ONNX Runtime library the tests load, fetched (or found in the
// cache) by scripts/fetch-onnxruntime.sh.
var libPath string

// repoRoot is the repository's root directory.
var repoRoot = func() string { abs, _ := filepath.Abs("../.."); return abs }()

func TestMain(m *testing.M) {
	cmd := exec.Command(filepath.Join(repoRoot, "scripts", "fetch-onnxruntime.sh"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "gateway/onnx tests need ONNX Runtime's library: scripts/fetch-onnxruntime.sh (make onnxruntime) failed: %v\n%s", err, stderr.String())
		os.Exit(1)
	}
	libPath = strings.TrimSpace(stdout.String())
	os.Exit(m.Run())
}
