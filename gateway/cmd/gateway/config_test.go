package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fish-classifier/fish-classifier/gateway/breaker"
	"github.com/fish-classifier/fish-classifier/gateway/httpapi"
	"github.com/fish-classifier/fish-classifier/gateway/onnx"
	"github.com/fish-classifier/fish-classifier/gateway/triton"
	"github.com/fish-classifier/fish-classifier/preprocess"
)

func lookupFrom(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(lookupFrom(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Backend != "onnx" || c.ONNX.LibraryPath != defaultONNXRuntimeLib || c.ONNX.Model != "fish_classifier" {
		t.Errorf("backend defaults: %q %+v", c.Backend, c.ONNX)
	}
	if c.ListenAddr != ":8000" || c.Triton.Address != "localhost:8001" || c.Triton.Model != "fish_classifier" ||
		c.HTTP.RequestTimeout != 10*time.Second || c.Breaker.ConsecutiveFailures != 5 || c.Limits.MaxPixels != 50_000_000 {
		t.Errorf("defaults: %+v", c)
	}
	names := map[string]bool{}
	for _, s := range c.settings {
		names[s.Name] = true
	}
	for _, want := range []string{"TRITON_URL", "REQUEST_TIMEOUT", "BREAKER_OPEN_TIMEOUT", "IMAGE_MAX_PIXELS"} {
		if !names[want] {
			t.Errorf("%s missing from the logged settings", want)
		}
	}
}

// TestLoadConfigLayersOnThePackagesDefaults: with nothing set, each package's
// configuration is its DefaultConfig plus the names only the command knows;
// a variable set to 0 means 0.
func TestLoadConfigLayersOnThePackagesDefaults(t *testing.T) {
	c, err := loadConfig(lookupFrom(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP != httpapi.DefaultConfig() {
		t.Errorf("HTTP = %+v, want %+v", c.HTTP, httpapi.DefaultConfig())
	}
	if !reflect.DeepEqual(c.Limits, preprocess.DefaultLimits()) {
		t.Errorf("Limits = %+v, want %+v", c.Limits, preprocess.DefaultLimits())
	}
	wantTriton := triton.DefaultConfig()
	wantTriton.Model = "fish_classifier"
	if !reflect.DeepEqual(c.Triton, wantTriton) {
		t.Errorf("Triton = %+v, want %+v", c.Triton, wantTriton)
	}
	wantONNX := onnx.DefaultConfig()
	wantONNX.LibraryPath, wantONNX.ModelRepository, wantONNX.Model = defaultONNXRuntimeLib, "triton-models", "fish_classifier"
	if c.ONNX != wantONNX {
		t.Errorf("ONNX = %+v, want %+v", c.ONNX, wantONNX)
	}
	wantBreaker := breaker.DefaultSettings()
	wantBreaker.Name = "triton"
	if c.Breaker != wantBreaker {
		t.Errorf("Breaker = %+v, want %+v", c.Breaker, wantBreaker)
	}

	c, err = loadConfig(lookupFrom(map[string]string{"TRITON_RETRIES": "0", "BREAKER_INTERVAL": "0s", "ONNX_INTRA_OP_THREADS": "1"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Triton.Retries != 0 || c.Breaker.Interval != 0 {
		t.Errorf("TRITON_RETRIES=0, BREAKER_INTERVAL=0s: Retries %d, Interval %v; want 0, 0", c.Triton.Retries, c.Breaker.Interval)
	}
	// The runs' default follows the threads set.
	if c.ONNX.IntraOpThreads != 1 || c.ONNX.MaxConcurrentRuns != onnx.DefaultMaxConcurrentRuns(1) {
		t.Errorf("ONNX_INTRA_OP_THREADS=1: %d threads, %d runs; want 1, %d", c.ONNX.IntraOpThreads, c.ONNX.MaxConcurrentRuns, onnx.DefaultMaxConcurrentRuns(1))
	}
	// 0 was "the default" for the ONNX bounds; it is no value of theirs now.
	if _, err := loadConfig(lookupFrom(map[string]string{"ONNX_INTRA_OP_THREADS": "0", "ONNX_MAX_CONCURRENT_RUNS": "0"})); err == nil ||
		!strings.Contains(err.Error(), "ONNX_INTRA_OP_THREADS") || !strings.Contains(err.Error(), "ONNX_MAX_CONCURRENT_RUNS") {
		t.Errorf("ONNX_INTRA_OP_THREADS=0, ONNX_MAX_CONCURRENT_RUNS=0: %v, want both refused", err)
	}
}

func TestLoadConfigReportsEveryProblem(t *testing.T) {
	_, err := loadConfig(lookupFrom(map[string]string{
		"REQUEST_TIMEOUT":              "soon",
		"MAX_IN_FLIGHT":                "0",
		"BREAKER_FAILURE_RATIO":        "2",
		"GATEWAY_LOG_LEVEL":            "loud",
		"IMAGE_MIN_SIDE":               "20000",
		"BREAKER_CONSECUTIVE_FAILURES": "x",
	}))
	if err == nil {
		t.Fatal("loadConfig accepted a bad environment")
	}
	for _, name := range []string{"REQUEST_TIMEOUT", "MAX_IN_FLIGHT", "BREAKER_FAILURE_RATIO", "GATEWAY_LOG_LEVEL", "IMAGE_MIN_SIDE", "BREAKER_CONSECUTIVE_FAILURES"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s:\n%v", name, err)
		}
	}
}

func TestReadLabels(t *testing.T) {
	dir := t.TempDir()
	if got, err := readLabels(dir, "fish"); err != nil || got != nil {
		t.Errorf("missing file: %v, %v; want no labels and no error", got, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "fish"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fish", "labels.txt"), []byte("cod\r\ntuna\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readLabels(dir, "fish")
	if err != nil || !reflect.DeepEqual(got, []string{"cod", "tuna"}) {
		t.Errorf("readLabels = %q, %v", got, err)
	}
}
