// Package onnx is the gateway's embedded backend: a gateway.Inferencer that runs
// the model of a Triton model repository in process on the CPU through ONNX
// Runtime (github.com/yalue/onnxruntime_go, which loads the runtime's shared
// library at run time).
//
// It reads the same triton-models/<model>/config.pbtxt that Triton serves, so
// both backends agree on the tensors, the labels and the preprocessing. The
// library comes from scripts/fetch-onnxruntime.sh (`make onnxruntime`); the
// backend needs cgo, and without it New returns an error saying so.
package onnx

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/prototext"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/triton"
	"github.com/fish-classifier/fish-classifier/gateway/triton/inferencepb"
)

// BackendName is the ModelInfo.Backend of this package.
const BackendName = "onnxruntime"

// Config says which library and which model to load.
type Config struct {
	// LibraryPath is ONNX Runtime's shared library, libonnxruntime.so.1 (>= 1.24),
	// as scripts/fetch-onnxruntime.sh prints it.
	LibraryPath string
	// ModelRepository is a Triton model repository; Model names a directory in it
	// holding config.pbtxt, the label file its output names, and version
	// directories holding model.onnx. Version picks one; "" picks the highest
	// numeric version directory.
	ModelRepository, Model, Version string
	// IntraOpThreads is the number of threads one inference may use; 0 means
	// runtime.GOMAXPROCS(0).
	IntraOpThreads int
}

// modelSpec is what the repository says about the model.
type modelSpec struct {
	info      gateway.ModelInfo
	modelPath string // <repo>/<model>/<version>/model.onnx
	// input
	inputName string
	inputDims []int64 // without batch
	itemBytes int
	batched   bool
	maxBatch  int
	// output
	outputName string
	outputDims []int64 // without batch
	classes    int
}

// readRepository reads cfg's model from its repository: config.pbtxt, the labels,
// and the version directory. It does not open model.onnx.
func readRepository(cfg Config) (*modelSpec, error) {
	if cfg.ModelRepository == "" || cfg.Model == "" {
		return nil, errors.New("onnx: the model repository and the model name must be set")
	}
	dir := filepath.Join(cfg.ModelRepository, cfg.Model)
	cfgPath := filepath.Join(dir, "config.pbtxt")
	text, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("onnx: model %q: %w", cfg.Model, err)
	}
	mc := new(inferencepb.ModelConfig)
	// Triton's full ModelConfig has fields the gateway's subset lacks
	// (instance_group, version_policy, model_warmup...): skip them.
	if err := (prototext.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(text, mc); err != nil {
		return nil, fmt.Errorf("onnx: %s: %w", cfgPath, err)
	}
	spec, err := describe(cfg.Model, mc)
	if err != nil {
		return nil, fmt.Errorf("onnx: %s: %w", cfgPath, err)
	}

	version := cfg.Version
	if version == "" {
		if version, err = highestVersion(dir); err != nil {
			return nil, fmt.Errorf("onnx: model %q: %w", cfg.Model, err)
		}
	} else if n, err := strconv.ParseInt(version, 10, 64); err != nil || n < 0 {
		return nil, fmt.Errorf("onnx: model %q: version %q is not a non-negative integer", cfg.Model, version)
	}
	spec.info.Version = version
	spec.modelPath = filepath.Join(dir, version, "model.onnx")
	if st, err := os.Stat(spec.modelPath); err != nil {
		return nil, fmt.Errorf("onnx: model %q version %s: %w", cfg.Model, version, err)
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("onnx: %s is not a file", spec.modelPath)
	}

	out := mc.GetOutput()[slices.IndexFunc(mc.GetOutput(), func(o *inferencepb.ModelOutput) bool { return o.GetName() == spec.outputName })]
	if lf := out.GetLabelFilename(); lf != "" {
		labels, err := readLabels(filepath.Join(dir, lf))
		if err != nil {
			return nil, fmt.Errorf("onnx: model %q: output %q's label_filename: %w", cfg.Model, out.GetName(), err)
		}
		if len(labels) != spec.classes {
			return nil, fmt.Errorf("onnx: model %q: %s has %d labels for %d output classes", cfg.Model, lf, len(labels), spec.classes)
		}
		spec.info.Labels = labels
	}
	return spec, nil
}

// describe checks a model configuration the way the Triton adapter does
// (gateway/triton/model.go) and builds the model's description from it.
func describe(model string, mc *inferencepb.ModelConfig) (*modelSpec, error) {
	if mc.GetName() != "" && mc.GetName() != model {
		return nil, fmt.Errorf("name %q differs from the model directory %q", mc.GetName(), model)
	}
	if p := mc.GetPlatform(); p != "" && p != "onnxruntime_onnx" {
		return nil, fmt.Errorf("platform %q: the embedded backend runs ONNX models only (onnxruntime_onnx)", p)
	}
	if b := mc.GetBackend(); b != "" && b != "onnxruntime" {
		return nil, fmt.Errorf("backend %q: the embedded backend runs ONNX models only (onnxruntime)", b)
	}
	if n := len(mc.GetInput()); n != 1 {
		return nil, fmt.Errorf("it has %d inputs, want exactly 1 (the image)", n)
	}
	if len(mc.GetOutput()) == 0 {
		return nil, errors.New("it has no output")
	}
	if mc.GetMaxBatchSize() < 0 {
		return nil, fmt.Errorf("max_batch_size %d is negative", mc.GetMaxBatchSize())
	}
	params := make(map[string]string, len(mc.GetParameters()))
	for k, v := range mc.GetParameters() {
		params[k] = v.GetStringValue()
	}

	in := mc.GetInput()[0]
	inDatatype := wireDatatype(in.GetDataType())
	input := gateway.TensorInfo{Name: in.GetName(), Datatype: inDatatype, Shape: slices.Clone(in.GetDims())}
	var layout gateway.InputLayout
	switch in.GetFormat() {
	case inferencepb.ModelInput_FORMAT_NCHW:
		layout = gateway.LayoutNCHW
	case inferencepb.ModelInput_FORMAT_NHWC:
		layout = gateway.LayoutNHWC
	}
	spec, logits, err := gateway.ContractFromParameters(input, layout, params)
	if err != nil {
		return nil, err
	}
	itemElems, ok := elements(in.GetDims())
	if !ok || itemElems == 0 || itemElems > math.MaxInt32 {
		return nil, fmt.Errorf("input %q has dims %v: want fixed positive dimensions", in.GetName(), in.GetDims())
	}
	size := elementSize(inDatatype)
	if size == 0 {
		return nil, fmt.Errorf("input %q is %s, want FP32, FP16 or UINT8", in.GetName(), inDatatype)
	}

	out := mc.GetOutput()[0]
	if name := params[triton.ParamOutputName]; name != "" {
		i := slices.IndexFunc(mc.GetOutput(), func(o *inferencepb.ModelOutput) bool { return o.GetName() == name })
		if i < 0 {
			return nil, fmt.Errorf("parameter %s names output %q, which the model does not have", triton.ParamOutputName, name)
		}
		out = mc.GetOutput()[i]
	}
	if dt := wireDatatype(out.GetDataType()); dt != "FP32" {
		return nil, fmt.Errorf("output %q is %s, want FP32 scores", out.GetName(), dt)
	}
	classes, ok := classCount(out.GetDims())
	if !ok {
		return nil, fmt.Errorf("output %q has dims %v: want [classes], other dimensions being 1", out.GetName(), out.GetDims())
	}
	platform := mc.GetPlatform()
	if platform == "" {
		platform = mc.GetBackend()
	}
	return &modelSpec{
		info: gateway.ModelInfo{
			Name:           model,
			Backend:        BackendName,
			Platform:       platform,
			MaxBatchSize:   int(mc.GetMaxBatchSize()),
			Input:          input,
			Output:         gateway.TensorInfo{Name: out.GetName(), Datatype: "FP32", Shape: slices.Clone(out.GetDims())},
			OutputIsLogits: logits,
			Preprocess:     spec,
		},
		inputName:  in.GetName(),
		inputDims:  slices.Clone(in.GetDims()),
		itemBytes:  int(itemElems) * size,
		batched:    mc.GetMaxBatchSize() > 0,
		maxBatch:   int(mc.GetMaxBatchSize()),
		outputName: out.GetName(),
		outputDims: slices.Clone(out.GetDims()),
		classes:    classes,
	}, nil
}

// highestVersion is the highest numeric subdirectory of dir: the version
// Triton's default policy (latest, one version) serves.
func highestVersion(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	best, bestN := "", int64(-1)
	for _, e := range entries {
		n, err := strconv.ParseInt(e.Name(), 10, 64)
		if err != nil || n < 0 || !e.IsDir() {
			continue
		}
		if n > bestN {
			best, bestN = e.Name(), n
		}
	}
	if best == "" {
		return "", fmt.Errorf("no version directory (1/, 2/...) in %s", dir)
	}
	return best, nil
}

// readLabels reads a Triton label file: one label per line, line i+1 naming
// class i; a final newline is optional.
func readLabels(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	text := strings.TrimSuffix(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	if text == "" {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return strings.Split(text, "\n"), nil
}

// wireDatatype is the KServe datatype string of a configuration data type.
func wireDatatype(t inferencepb.DataType) string {
	switch t {
	case inferencepb.DataType_TYPE_STRING:
		return "BYTES"
	case inferencepb.DataType_TYPE_INVALID:
		return "INVALID"
	}
	return strings.TrimPrefix(t.String(), "TYPE_")
}

// elementSize is the size of one element of the input datatypes the gateway
// produces, 0 for others.
func elementSize(datatype string) int {
	switch datatype {
	case "FP32":
		return 4
	case "FP16":
		return 2
	case "UINT8":
		return 1
	}
	return 0
}

// elements is the number of elements of a tensor of the given dims; ok is
// false when a dimension is negative (variable) or the product overflows.
func elements(dims []int64) (n int64, ok bool) {
	n = 1
	for _, d := range dims {
		if d < 0 || (d > 0 && n > math.MaxInt64/d) {
			return 0, false
		}
		n *= d
	}
	return n, true
}

// classCount reads the number of classes from an item's output dims: exactly
// one dimension may differ from 1; all 1 means one class.
func classCount(dims []int64) (int, bool) {
	classes := int64(1)
	for _, d := range dims {
		switch {
		case d == 1:
		case d > 1 && classes == 1 && d <= math.MaxInt32:
			classes = d
		default:
			return 0, false
		}
	}
	return int(classes), true
}
