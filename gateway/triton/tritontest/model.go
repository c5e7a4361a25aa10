package tritontest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/fish-classifier/fish-classifier/gateway/kserve"
)

// TensorSpec describes one tensor of the served model the way its configuration
// does: the batch dimension is never part of Dims.
type TensorSpec struct {
	// Name is the tensor's name in requests and responses ("input", "logits").
	Name string
	// Datatype is the wire name of the element type: "FP32", "FP16" or "UINT8"
	// for the input, "FP32" for the output.
	Datatype string
	// Dims are the tensor's dimensions without the batch dimension, all fixed
	// (no -1): [3, H, W] for an NCHW input, [H, W, 3] for NHWC, [classes] for
	// the output.
	Dims []int64
	// Format is the image layout of an input: ModelInput_FORMAT_NCHW or
	// ModelInput_FORMAT_NHWC. Outputs leave it FORMAT_NONE.
	Format kserve.ModelInput_Format
}

// Model is the one model a Server serves: its identity, its configuration as
// Triton would report it, and the shapes its deterministic scoring function
// (see Logits) works on. The input is always an image with 3 channels.
type Model struct {
	// Name and Version identify the model ("fish_classifier", "1"). A request
	// with an empty version means the served version, as in Triton.
	Name, Version string
	// Platform and Backend are reported by ModelMetadata and ModelConfig
	// ("onnxruntime_onnx", "onnxruntime").
	Platform, Backend string
	// MaxBatchSize > 0 gives every tensor a leading batch dimension of
	// 1..MaxBatchSize that Dims do not list (metadata shows it as -1), and
	// turns on dynamic batching in the configuration. 0 means no batching: a
	// request carries exactly one item and the shapes are Dims themselves.
	MaxBatchSize int
	// Input is the model's only input: a 3-channel image tensor.
	Input TensorSpec
	// Output is the model's only output: FP32 scores of shape [classes].
	Output TensorSpec
	// Labels names the classes, index = class. They are what Triton reads from
	// the output's label_filename ("labels.txt", see LabelFile) and what the
	// classification extension answers with. Empty means no label file: the
	// configuration then names none and classifications carry no labels.
	Labels []string
	// Parameters are ModelConfig.parameters (each a string_value); the gateway
	// reads its preprocessing contract from them.
	Parameters map[string]string
}

// LabelFileName is the label_filename the served configuration names for the
// output when the model has labels.
const LabelFileName = "labels.txt"

// DefaultModel returns the fish classifier the gateway expects in production:
// input "input" FP32 [3,224,224] NCHW, output "logits" FP32 [9] with the nine
// species of the Large-Scale Fish Dataset, MaxBatchSize 8, platform
// onnxruntime_onnx, and parameters giving the torchvision ImageNet
// preprocessing (resize the shorter side to 256, centre crop, ImageNet mean and
// std, RGB) in the gateway's contract, and logits as the output kind.
func DefaultModel() Model {
	return Model{
		Name:         "fish_classifier",
		Version:      "1",
		Platform:     "onnxruntime_onnx",
		Backend:      "onnxruntime",
		MaxBatchSize: 8,
		Input: TensorSpec{
			Name:     "input",
			Datatype: "FP32",
			Dims:     []int64{3, 224, 224},
			Format:   kserve.ModelInput_FORMAT_NCHW,
		},
		Output: TensorSpec{
			Name:     "logits",
			Datatype: "FP32",
			Dims:     []int64{9},
		},
		Labels: []string{
			"Black Sea Sprat",
			"Gilt-Head Bream",
			"Horse Mackerel",
			"Red Mullet",
			"Red Sea Bream",
			"Sea Bass",
			"Shrimp",
			"Striped Red Mullet",
			"Trout",
		},
		// The keys of the gateway's preprocessing contract (gateway.Param*),
		// spelled out: this package imports only the generated stubs.
		Parameters: map[string]string{
			"preprocess_resize":        "shorter_crop",
			"preprocess_shorter_side":  "256",
			"preprocess_filter":        "bilinear",
			"preprocess_scale":         "0.00392156862745098",
			"preprocess_mean":          "0.485,0.456,0.406",
			"preprocess_std":           "0.229,0.224,0.225",
			"preprocess_channel_order": "rgb",
			"output_kind":              "logits",
		},
	}
}

// LabelFile returns the content of the model's label file as Triton reads it:
// one label per line, the line number being the class index. Tests that build
// a model repository on disk write it as LabelFileName.
func (m Model) LabelFile() []byte {
	if len(m.Labels) == 0 {
		return nil
	}
	return []byte(strings.Join(m.Labels, "\n") + "\n")
}

// NumClasses is the number of scores the model produces per item.
func (m Model) NumClasses() int {
	if len(m.Output.Dims) != 1 {
		return 0
	}
	return int(m.Output.Dims[0])
}

// ItemSize is the number of bytes of one batch item of the input tensor.
func (m Model) ItemSize() int {
	return m.itemElements() * elementSize(m.Input.Datatype)
}

func (m Model) itemElements() int {
	n := 1
	for _, d := range m.Input.Dims {
		n *= int(d)
	}
	return n
}

// elementSize is the size in bytes of one element of a wire datatype this
// package serves, 0 for any other.
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

// maxItemElements keeps a mistyped test model from asking for gigabytes.
const maxItemElements = 1 << 26

// validate reports every reason the server could not serve m.
func (m Model) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if m.Name == "" {
		bad("Name is empty")
	}
	if m.Version == "" {
		bad("Version is empty")
	}
	if m.MaxBatchSize < 0 {
		bad("MaxBatchSize %d is negative", m.MaxBatchSize)
	}
	in := m.Input
	if in.Name == "" {
		bad("Input.Name is empty")
	}
	if elementSize(in.Datatype) == 0 {
		bad("Input.Datatype %q is not FP32, FP16 or UINT8", in.Datatype)
	}
	if len(in.Dims) != 3 || slices.ContainsFunc(in.Dims, func(d int64) bool { return d < 1 || d > maxItemElements }) {
		bad("Input.Dims %v: want 3 positive dimensions", in.Dims)
	} else {
		switch {
		case in.Format == kserve.ModelInput_FORMAT_NCHW && in.Dims[0] != 3:
			bad("Input.Dims %v: NCHW wants 3 channels first", in.Dims)
		case in.Format == kserve.ModelInput_FORMAT_NHWC && in.Dims[2] != 3:
			bad("Input.Dims %v: NHWC wants 3 channels last", in.Dims)
		case in.Format != kserve.ModelInput_FORMAT_NCHW && in.Format != kserve.ModelInput_FORMAT_NHWC:
			bad("Input.Format %v is not NCHW or NHWC", in.Format)
		case m.itemElements() > maxItemElements:
			bad("Input.Dims %v: more than %d elements", in.Dims, maxItemElements)
		}
	}
	out := m.Output
	if out.Name == "" {
		bad("Output.Name is empty")
	}
	if out.Name == in.Name && out.Name != "" {
		bad("Output.Name %q is also the input's name", out.Name)
	}
	if out.Datatype != "FP32" {
		bad("Output.Datatype %q is not FP32", out.Datatype)
	}
	if len(out.Dims) != 1 || out.Dims[0] < 1 || out.Dims[0] > 1<<20 {
		bad("Output.Dims %v: want [classes]", out.Dims)
	} else if len(m.Labels) != 0 && len(m.Labels) != int(out.Dims[0]) {
		bad("%d Labels for %d classes", len(m.Labels), out.Dims[0])
	}
	return errors.Join(errs...)
}

// clone returns a deep copy, so that the server never shares slices or maps
// with the test that configured it.
func (m Model) clone() Model {
	m.Input.Dims = slices.Clone(m.Input.Dims)
	m.Output.Dims = slices.Clone(m.Output.Dims)
	m.Labels = slices.Clone(m.Labels)
	m.Parameters = maps.Clone(m.Parameters)
	return m
}

// withBatch returns dims preceded by the batch dimension b when the model
// batches, dims alone otherwise.
func (m Model) withBatch(b int64, dims []int64) []int64 {
	if m.MaxBatchSize == 0 {
		return slices.Clone(dims)
	}
	return append([]int64{b}, dims...)
}

// configDataType maps a wire datatype to the configuration's enum.
func configDataType(datatype string) kserve.DataType {
	switch datatype {
	case "FP32":
		return kserve.DataType_TYPE_FP32
	case "FP16":
		return kserve.DataType_TYPE_FP16
	case "UINT8":
		return kserve.DataType_TYPE_UINT8
	}
	return kserve.DataType_TYPE_INVALID
}

// metadata is what ModelMetadata answers: wire datatypes, batch dimension -1.
func (m Model) metadata() *kserve.ModelMetadataResponse {
	return &kserve.ModelMetadataResponse{
		Name:     m.Name,
		Versions: []string{m.Version},
		Platform: m.Platform,
		Inputs: []*kserve.ModelMetadataResponse_TensorMetadata{{
			Name:     m.Input.Name,
			Datatype: m.Input.Datatype,
			Shape:    m.withBatch(-1, m.Input.Dims),
		}},
		Outputs: []*kserve.ModelMetadataResponse_TensorMetadata{{
			Name:     m.Output.Name,
			Datatype: m.Output.Datatype,
			Shape:    m.withBatch(-1, m.Output.Dims),
		}},
	}
}

// config is what ModelConfig answers: enum datatypes, dims without batch.
func (m Model) config() *kserve.ModelConfig {
	c := &kserve.ModelConfig{
		Name:         m.Name,
		Platform:     m.Platform,
		Backend:      m.Backend,
		MaxBatchSize: int32(m.MaxBatchSize),
		Input: []*kserve.ModelInput{{
			Name:     m.Input.Name,
			DataType: configDataType(m.Input.Datatype),
			Format:   m.Input.Format,
			Dims:     slices.Clone(m.Input.Dims),
		}},
		Output: []*kserve.ModelOutput{{
			Name:     m.Output.Name,
			DataType: configDataType(m.Output.Datatype),
			Dims:     slices.Clone(m.Output.Dims),
		}},
	}
	if len(m.Labels) > 0 {
		c.Output[0].LabelFilename = LabelFileName
	}
	if m.MaxBatchSize > 0 {
		c.SchedulingChoice = &kserve.ModelConfig_DynamicBatching{
			DynamicBatching: &kserve.ModelDynamicBatching{},
		}
	}
	if len(m.Parameters) > 0 {
		c.Parameters = make(map[string]*kserve.ModelParameter, len(m.Parameters))
		for k, v := range m.Parameters {
			c.Parameters[k] = &kserve.ModelParameter{StringValue: v}
		}
	}
	return c
}
