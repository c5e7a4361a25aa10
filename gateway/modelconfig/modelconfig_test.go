package modelconfig

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/kserve"
)

func config() *kserve.ModelConfig {
	return &kserve.ModelConfig{
		Platform:     "onnxruntime_onnx",
		MaxBatchSize: 8,
		Input: []*kserve.ModelInput{{Name: "input", DataType: kserve.DataType_TYPE_FP32,
			Format: kserve.ModelInput_FORMAT_NCHW, Dims: []int64{3, 224, 224}}},
		Output: []*kserve.ModelOutput{
			{Name: "logits", DataType: kserve.DataType_TYPE_FP32, Dims: []int64{9}},
			{Name: "probs", DataType: kserve.DataType_TYPE_FP16, Dims: []int64{1, 5}},
		},
	}
}

func TestDescribe(t *testing.T) {
	d, err := Describe(config())
	if err != nil {
		t.Fatal(err)
	}
	if d.ItemBytes != 3*224*224*4 || !d.Batched || d.MaxBatch != 8 || d.OutputName != "logits" || d.Classes != 9 ||
		d.Info.Platform != "onnxruntime_onnx" || d.Info.Input.Datatype != "FP32" || !d.Info.OutputIsLogits {
		t.Errorf("Describe = %+v", d)
	}
	c := config()
	c.Parameters = map[string]*kserve.ModelParameter{ParamOutputName: {StringValue: "probs"}}
	if d, err := Describe(c); err != nil || d.OutputName != "probs" || d.Classes != 5 || d.Info.Output.Datatype != "FP16" {
		t.Errorf("output_name=probs: %+v, %v", d, err)
	}

	bad := []struct {
		name   string
		mutate func(*kserve.ModelConfig)
		want   string
	}{
		{"two inputs", func(c *kserve.ModelConfig) { c.Input = append(c.Input, c.Input[0]) }, "2 inputs"},
		{"no output", func(c *kserve.ModelConfig) { c.Output = nil }, "no output"},
		{"negative batch", func(c *kserve.ModelConfig) { c.MaxBatchSize = -1 }, "negative"},
		{"variable dims", func(c *kserve.ModelConfig) { c.Input[0].Dims = []int64{3, -1, 224} }, "-1"},
		{"string output", func(c *kserve.ModelConfig) { c.Output[0].DataType = kserve.DataType_TYPE_STRING }, "BYTES"},
		{"two class dims", func(c *kserve.ModelConfig) { c.Output[0].Dims = []int64{3, 9} }, "[classes]"},
		{"unknown output_name", func(c *kserve.ModelConfig) {
			c.Parameters = map[string]*kserve.ModelParameter{ParamOutputName: {StringValue: "nope"}}
		}, "nope"},
	}
	for _, tt := range bad {
		c := config()
		tt.mutate(c)
		if _, err := Describe(c); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want one mentioning %q", tt.name, err, tt.want)
		}
	}
}

func TestReadLabels(t *testing.T) {
	path := filepath.Join(t.TempDir(), "labels.txt")
	if err := os.WriteFile(path, []byte("Sea Bass\r\n Trout \n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadLabels(path); err != nil || !reflect.DeepEqual(got, []string{"Sea Bass", "Trout"}) {
		t.Errorf("ReadLabels = %q, %v", got, err)
	}
	if err := os.WriteFile(path, []byte("\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLabels(path); err == nil {
		t.Error("an empty label file was accepted")
	}
}

func TestClassCount(t *testing.T) {
	for _, tt := range []struct {
		dims []int64
		want int
		ok   bool
	}{{[]int64{9}, 9, true}, {[]int64{1, 9}, 9, true}, {[]int64{9, 1, 1}, 9, true}, {[]int64{1}, 1, true}, {[]int64{3, 9}, 0, false}, {[]int64{-1}, 0, false}} {
		if got, ok := ClassCount(tt.dims); got != tt.want || ok != tt.ok {
			t.Errorf("ClassCount(%v) = %d, %v", tt.dims, got, ok)
		}
	}
}

func TestReadFile(t *testing.T) {
	mc, err := ReadFile(filepath.Join("..", "..", "triton-models", "fish_classifier", "config.pbtxt"))
	if err != nil {
		t.Fatal(err)
	}
	if mc.GetName() != "fish_classifier" || len(mc.GetOutput()) != 1 || mc.GetParameters()["model_sha256"] == nil {
		t.Errorf("the committed config read as %v", mc)
	}
	dir := t.TempDir()
	if _, err := ReadFile(filepath.Join(dir, "none.pbtxt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want os.ErrNotExist", err)
	}
	bad := filepath.Join(dir, "bad.pbtxt")
	if err := os.WriteFile(bad, []byte("max_batch_size: {"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("malformed file: %v, want an error naming it", err)
	}
}

func TestCheckBatch(t *testing.T) {
	item := make([]byte, 12)
	for _, tt := range []struct {
		name     string
		batched  bool
		maxBatch int
		in       gateway.Batch
		want     string // "" for no error
	}{
		{"one item", false, 0, gateway.Batch{Size: 1, Data: item}, ""},
		{"a full batch", true, 4, gateway.Batch{Size: 4, Data: make([]byte, 48)}, ""},
		{"no items", true, 4, gateway.Batch{Size: 0}, "batch of 0 items"},
		{"two for an unbatched model", false, 0, gateway.Batch{Size: 2, Data: make([]byte, 24)}, "no batch dimension"},
		{"over max_batch_size", true, 4, gateway.Batch{Size: 5, Data: make([]byte, 60)}, "exceeds model \"m\"'s max_batch_size 4"},
		{"short data", true, 4, gateway.Batch{Size: 2, Data: item}, "holds 12 bytes, want 24 (12 per item)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckBatch("x", "m", tt.batched, tt.maxBatch, 12, tt.in)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckBatch = %v, want nil", err)
				}
				return
			}
			if gateway.KindOf(err) != gateway.KindInternal || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "x: ") {
				t.Errorf("CheckBatch = %v (kind %v), want a KindInternal error from x saying %q", err, gateway.KindOf(err), tt.want)
			}
		})
	}
}
