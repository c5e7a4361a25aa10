// Package testenv gives the end-to-end tests of several packages (the gateway's
// command, monitoring/, loadtest/bench) the same way to find the repository,
// fetch ONNX Runtime's library, build the gateway binary and pick a loopback
// port. Only tests import it.
package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fish-classifier/fish-classifier/gateway/modelconfig"
	"github.com/fish-classifier/fish-classifier/gateway/triton/tritontest"
)

// buildTimeout bounds one build of the gateway: a cold cache on a loaded
// 2-core machine takes about a minute.
const buildTimeout = 5 * time.Minute

// RepoRoot is the module root: the folder with go.mod, two levels above this
// file, wherever the calling test runs.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("testenv: cannot tell where its source file is")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		tb.Fatalf("testenv: no go.mod at %s: %v", root, err)
	}
	return root
}

// ONNXRuntimeLib fetches (once, verified against pinned hashes, cached in
// .onnxruntime/) ONNX Runtime's library with scripts/fetch-onnxruntime.sh and
// returns its absolute path.
func ONNXRuntimeLib(tb testing.TB) string {
	tb.Helper()
	path, err := FetchONNXRuntime()
	if err != nil {
		tb.Fatal(err)
	}
	return path
}

// FetchONNXRuntime is ONNXRuntimeLib for a TestMain, which has no testing.TB.
func FetchONNXRuntime() (string, error) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command(filepath.Join(root, "scripts", "fetch-onnxruntime.sh"))
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("ONNX Runtime's library: scripts/fetch-onnxruntime.sh (make onnxruntime) failed: %v\n%s", err, stderr.String())
	}
	path := strings.TrimSpace(string(out))
	if !filepath.IsAbs(path) {
		path = filepath.Join(root, path)
	}
	return filepath.Clean(path), nil
}

// BuildGateway compiles ./gateway/cmd/gateway into a temporary folder and
// returns the binary's path. It is built without the race detector: these
// tests are about serving, and an instrumented binary is several times slower.
func BuildGateway(tb testing.TB) string {
	tb.Helper()
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = "go"
	}
	bin := filepath.Join(tb.TempDir(), "gateway")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, "./gateway/cmd/gateway")
	cmd.Dir = RepoRoot(tb)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build ./gateway/cmd/gateway: %v\n%s", err, out)
	}
	return bin
}

// FreeLoopbackAddr returns "127.0.0.1:port" with a port that was free a moment
// ago; a caller that loses it to someone else must try again.
func FreeLoopbackAddr(tb testing.TB) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	return addr
}

// RepositoryModel is tritontest's model shaped as the committed model
// repository's (triton-models/fish_classifier): its classes, labels and
// configuration parameters (preprocessing, provenance), for the tests whose
// gateway serves that repository beside a tritontest server (FALLBACK=onnx).
func RepositoryModel(tb testing.TB) tritontest.Model {
	tb.Helper()
	dir := filepath.Join(RepoRoot(tb), "triton-models", "fish_classifier")
	labels, err := modelconfig.ReadLabels(filepath.Join(dir, "labels.txt"))
	if err != nil {
		tb.Fatal(err)
	}
	mc, err := modelconfig.ReadFile(filepath.Join(dir, "config.pbtxt"))
	if err != nil {
		tb.Fatal(err)
	}
	m := tritontest.DefaultModel()
	m.Output.Dims, m.Labels = []int64{int64(len(labels))}, labels
	m.Parameters = map[string]string{}
	for k, v := range mc.GetParameters() {
		m.Parameters[k] = v.GetStringValue()
	}
	return m
}

// RealServers skips the calling test under `go test -short` (`make
// test-short`): it starts real servers or binaries (Triton, Prometheus and
// Alertmanager, Jaeger, MinIO, MariaDB, MLflow, a browser, schemathesis, the
// gateway under heavy load), which `make test` runs and the quick tier leaves
// out. what says what it starts.
func RealServers(tb testing.TB, what string) {
	tb.Helper()
	if testing.Short() {
		tb.Skipf("%s: the real-server tier, skipped with -short (make test runs it)", what)
	}
}
