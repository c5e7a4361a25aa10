// Package modelconfig reads a Triton model configuration (the ModelConfig
// message of config.pbtxt, or Triton's ModelConfig RPC) into what the gateway
// needs: the model's tensors, batching, output classes and the preprocessing
// contract of its parameters. Both inference backends read the same model
// repository, the Triton client over gRPC and the embedded ONNX Runtime from
// disk, so the checks live here once and neither adapter imports the other.
package modelconfig

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/prototext"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/kserve"
)

// Description is a model configuration checked and read for the gateway.
type Description struct {
	// Info has everything but Name, Version and Backend, which the caller knows
	// better (Triton's metadata, the repository's directories); Platform is the
	// configuration's platform, else its backend.
	Info gateway.ModelInfo
	// Input
	InputName, InputDatatype string
	InputDims                []int64 // without the batch dimension
	ItemBytes                int     // one item's tensor
	Batched                  bool    // max_batch_size > 0: tensors carry a batch dimension
	MaxBatch                 int
	// Output: the first, or the one the output_name parameter names.
	Output     *kserve.ModelOutput
	OutputName string
	OutputDims []int64 // without the batch dimension
	Classes    int
}

// Describe checks mc and reads it: exactly one input (the image) of fixed
// dimensions and a datatype the gateway produces, at least one output whose
// scores are FP32 or FP16 with one non-1 dimension (the classes), a
// non-negative max_batch_size, and a preprocessing contract
// (ContractFromParameters) that holds.
func Describe(mc *kserve.ModelConfig) (*Description, error) {
	if mc == nil {
		return nil, errors.New("no model configuration")
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
	inDatatype := WireDatatype(in.GetDataType())
	input := gateway.TensorInfo{Name: in.GetName(), Datatype: inDatatype, Shape: slices.Clone(in.GetDims())}
	var layout InputLayout
	switch in.GetFormat() {
	case kserve.ModelInput_FORMAT_NCHW:
		layout = LayoutNCHW
	case kserve.ModelInput_FORMAT_NHWC:
		layout = LayoutNHWC
	}
	spec, logits, err := ContractFromParameters(input, layout, params)
	if err != nil {
		return nil, err
	}
	provenance, err := ProvenanceFromParameters(params)
	if err != nil {
		return nil, err
	}
	itemElems, ok := Elements(in.GetDims())
	if !ok || itemElems == 0 || itemElems > math.MaxInt32 {
		return nil, fmt.Errorf("input %q has dims %v: want fixed positive dimensions", in.GetName(), in.GetDims())
	}
	size := ElementSize(inDatatype)
	if size == 0 {
		return nil, fmt.Errorf("input %q is %s, want FP32, FP16 or UINT8", in.GetName(), inDatatype)
	}

	out := mc.GetOutput()[0]
	if name := params[ParamOutputName]; name != "" {
		i := slices.IndexFunc(mc.GetOutput(), func(o *kserve.ModelOutput) bool { return o.GetName() == name })
		if i < 0 {
			return nil, fmt.Errorf("parameter %s names output %q, which the model does not have", ParamOutputName, name)
		}
		out = mc.GetOutput()[i]
	}
	outDatatype := WireDatatype(out.GetDataType())
	if outDatatype != "FP32" && outDatatype != "FP16" {
		return nil, fmt.Errorf("output %q is %s, want FP32 or FP16 scores", out.GetName(), outDatatype)
	}
	classes, ok := ClassCount(out.GetDims())
	if !ok {
		return nil, fmt.Errorf("output %q has dims %v: want [classes], other dimensions being 1", out.GetName(), out.GetDims())
	}
	platform := mc.GetPlatform()
	if platform == "" {
		platform = mc.GetBackend()
	}
	return &Description{
		Info: gateway.ModelInfo{
			Platform:       platform,
			MaxBatchSize:   int(mc.GetMaxBatchSize()),
			Input:          input,
			Output:         gateway.TensorInfo{Name: out.GetName(), Datatype: outDatatype, Shape: slices.Clone(out.GetDims())},
			OutputIsLogits: logits,
			Preprocess:     spec,
			Provenance:     provenance,
		},
		InputName:     in.GetName(),
		InputDatatype: inDatatype,
		InputDims:     slices.Clone(in.GetDims()),
		ItemBytes:     int(itemElems) * size,
		Batched:       mc.GetMaxBatchSize() > 0,
		MaxBatch:      int(mc.GetMaxBatchSize()),
		Output:        out,
		OutputName:    out.GetName(),
		OutputDims:    slices.Clone(out.GetDims()),
		Classes:       classes,
	}, nil
}

// ReadFile reads a model configuration file (config.pbtxt: the protobuf text
// of Triton's ModelConfig). Triton's full message has fields the gateway's
// subset lacks (instance_group, version_policy, model_warmup...): they are
// skipped. A missing file's error wraps os.ErrNotExist.
func ReadFile(path string) (*kserve.ModelConfig, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	mc := new(kserve.ModelConfig)
	if err := (prototext.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(text, mc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return mc, nil
}

// ReadLabels reads a Triton label file: one label per line, line i+1 naming
// class i. CRLF line ends, surrounding spaces and trailing empty lines are
// ignored; an empty file is an error.
func ReadLabels(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	labels := strings.Split(string(b), "\n")
	for i := range labels {
		labels[i] = strings.TrimSpace(labels[i])
	}
	for len(labels) > 0 && labels[len(labels)-1] == "" {
		labels = labels[:len(labels)-1]
	}
	if len(labels) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return labels, nil
}

// WireDatatype is the KServe datatype string of a configuration data type
// (TYPE_FP32 → "FP32", TYPE_STRING → "BYTES").
func WireDatatype(t kserve.DataType) string {
	switch t {
	case kserve.DataType_TYPE_STRING:
		return "BYTES"
	case kserve.DataType_TYPE_INVALID:
		return "INVALID"
	}
	return strings.TrimPrefix(t.String(), "TYPE_")
}

// ElementSize is the size of one element of the datatypes the gateway sends or
// reads (FP32, FP16, UINT8), 0 for others.
func ElementSize(datatype string) int {
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

// Elements is the number of elements of a tensor of the given dims; ok is false
// when a dimension is negative (variable) or the product overflows.
func Elements(dims []int64) (n int64, ok bool) {
	n = 1
	for _, d := range dims {
		if d < 0 || (d > 0 && n > math.MaxInt64/d) {
			return 0, false
		}
		n *= d
	}
	return n, true
}

// ClassCount reads the number of classes from an item's output dims: exactly
// one dimension may differ from 1 ([9], [1, 9], [9, 1, 1]); all 1 means one
// class.
func ClassCount(dims []int64) (int, bool) {
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

// CheckBatch rejects a batch a model cannot take: no items, several for a model
// without a batch dimension (batched false), more than maxBatch, or data that is
// not size items of itemBytes. The Classifier never builds one, so the error is
// KindInternal, a bug in the caller; adapter and model name it.
func CheckBatch(adapter, model string, batched bool, maxBatch, itemBytes int, in gateway.Batch) error {
	switch {
	case in.Size < 1:
		return gateway.Errorf(gateway.KindInternal, "%s: batch of %d items", adapter, in.Size)
	case !batched && in.Size != 1:
		return gateway.Errorf(gateway.KindInternal, "%s: batch of %d items for model %q, which takes no batch dimension (one item per call)", adapter, in.Size, model)
	case batched && in.Size > maxBatch:
		return gateway.Errorf(gateway.KindInternal, "%s: batch of %d items exceeds model %q's max_batch_size %d", adapter, in.Size, model, maxBatch)
	case len(in.Data) != in.Size*itemBytes:
		return gateway.Errorf(gateway.KindInternal, "%s: batch of %d items holds %d bytes, want %d (%d per item)", adapter, in.Size, len(in.Data), in.Size*itemBytes, itemBytes)
	}
	return nil
}

// Tensors is what an adapter needs of a model's tensors to send a batch and read
// its scores: the one description both adapters use (TensorsOf derives it from
// the ModelInfo a batch carries).
type Tensors struct {
	Name                     string // the model's, for messages
	InputName, InputDatatype string
	InputDims                []int64 // without the batch dimension
	ItemBytes                int     // one item's tensor
	Batched                  bool    // max_batch_size > 0: tensors carry a batch dimension
	MaxBatch                 int
	OutputName               string
	OutputDims               []int64 // without the batch dimension
	Classes                  int
}

// TensorsOf derives the Tensors of m, the description a backend's Model
// returned. It fails (KindInternal, from adapter: the caller's bug) when there is
// none or when its tensors are not ones the gateway sends and reads, which no
// description from Model is.
func TensorsOf(adapter string, m *gateway.ModelInfo) (Tensors, error) {
	if m == nil {
		return Tensors{}, gateway.Errorf(gateway.KindInternal, "%s: a batch without its model's description (Batch.Model)", adapter)
	}
	elems, ok := Elements(m.Input.Shape)
	size := ElementSize(m.Input.Datatype)
	if !ok || elems == 0 || elems > math.MaxInt32 || size == 0 {
		return Tensors{}, gateway.Errorf(gateway.KindInternal, "%s: model %q's input %q is %s %v: not a tensor the gateway sends", adapter, m.Name, m.Input.Name, m.Input.Datatype, m.Input.Shape)
	}
	classes, ok := ClassCount(m.Output.Shape)
	if !ok {
		return Tensors{}, gateway.Errorf(gateway.KindInternal, "%s: model %q's output %q has shape %v: not one row of classes", adapter, m.Name, m.Output.Name, m.Output.Shape)
	}
	return Tensors{
		Name:          m.Name,
		InputName:     m.Input.Name,
		InputDatatype: m.Input.Datatype,
		InputDims:     m.Input.Shape,
		ItemBytes:     int(elems) * size,
		Batched:       m.MaxBatchSize > 0,
		MaxBatch:      m.MaxBatchSize,
		OutputName:    m.Output.Name,
		OutputDims:    m.Output.Shape,
		Classes:       classes,
	}, nil
}

// CheckBatch is CheckBatch for these tensors.
func (t Tensors) CheckBatch(adapter string, in gateway.Batch) error {
	return CheckBatch(adapter, t.Name, t.Batched, t.MaxBatch, t.ItemBytes, in)
}
