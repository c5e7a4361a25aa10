package triton

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/triton/inferencepb"
)

// Backend is the ModelInfo.Backend of this adapter.
const Backend = "triton"

// ParamOutputName is the model configuration parameter that names the output
// the gateway reads, when the model has several; without it, the first output.
const ParamOutputName = "output_name"

// classificationParameter is the requested-output parameter of Triton's
// classification extension: InferParameter{int64_param: N} answers the top N
// classes as BYTES "<value>:<index>[:<label>]".
const classificationParameter = "classification"

// modelState is what Infer needs of the model Model read last.
type modelState struct {
	info gateway.ModelInfo
	// input
	inputName, inputDatatype string
	inputDims                []int64 // without batch
	itemBytes                int
	batched                  bool // max_batch_size > 0: tensors have a batch dimension
	maxBatch                 int
	// output
	outputName string
	classes    int
}

// Model reads the model's metadata and configuration from Triton and returns
// its description; labels come from Config.Labels, or else from Triton's
// classification extension (empty when Triton has none). Infer uses the
// description read last. Errors: the call's (see mapError), or KindBadGateway
// for a model the gateway cannot serve, saying why.
func (c *Client) Model(ctx context.Context) (gateway.ModelInfo, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	meta, err := call(ctx, c, rpcModelMetadata, func(ctx context.Context) (*inferencepb.ModelMetadataResponse, error) {
		return c.api.ModelMetadata(ctx, &inferencepb.ModelMetadataRequest{Name: c.cfg.Model, Version: c.cfg.Version})
	})
	if err != nil {
		return gateway.ModelInfo{}, err
	}
	cfgResp, err := call(ctx, c, rpcModelConfig, func(ctx context.Context) (*inferencepb.ModelConfigResponse, error) {
		return c.api.ModelConfig(ctx, &inferencepb.ModelConfigRequest{Name: c.cfg.Model, Version: c.cfg.Version})
	})
	if err != nil {
		return gateway.ModelInfo{}, err
	}
	st, err := describe(c.cfg, meta, cfgResp.GetConfig())
	if err != nil {
		return gateway.ModelInfo{}, &gateway.Error{
			Kind:    gateway.KindBadGateway,
			Message: fmt.Sprintf("%s cannot be served: %v", c.modelName(), err),
			Err:     err,
		}
	}
	switch {
	case len(c.cfg.Labels) > 0:
		if len(c.cfg.Labels) != st.classes {
			return gateway.ModelInfo{}, &gateway.Error{
				Kind:    gateway.KindBadGateway,
				Message: fmt.Sprintf("%s: %d labels configured for %d output classes", c.modelName(), len(c.cfg.Labels), st.classes),
			}
		}
		st.info.Labels = slices.Clone(c.cfg.Labels)
	default:
		labels, err := c.classificationLabels(ctx, st)
		if err != nil {
			// The server did not answer: the labels are unknown, not absent.
			// Returning no model beats serving class_N until the next reload.
			return gateway.ModelInfo{}, err
		}
		st.info.Labels = labels
	}
	c.model.Store(st)
	info := st.info
	info.Labels = slices.Clone(st.info.Labels)
	info.Input.Shape = slices.Clone(st.info.Input.Shape)
	info.Output.Shape = slices.Clone(st.info.Output.Shape)
	return info, nil
}

// describe builds the model's state from Triton's metadata and configuration,
// reporting what makes the model unusable.
func describe(cfg Config, meta *inferencepb.ModelMetadataResponse, mc *inferencepb.ModelConfig) (*modelState, error) {
	if mc == nil {
		return nil, errors.New("ModelConfig answered no configuration")
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

	out := mc.GetOutput()[0]
	if name := params[ParamOutputName]; name != "" {
		i := slices.IndexFunc(mc.GetOutput(), func(o *inferencepb.ModelOutput) bool { return o.GetName() == name })
		if i < 0 {
			return nil, fmt.Errorf("parameter %s names output %q, which the model does not have", ParamOutputName, name)
		}
		out = mc.GetOutput()[i]
	}
	if dt := wireDatatype(out.GetDataType()); dt != "FP32" && dt != "FP16" {
		return nil, fmt.Errorf("output %q is %s, want FP32 or FP16 scores", out.GetName(), dt)
	}
	classes, ok := classCount(out.GetDims())
	if !ok {
		return nil, fmt.Errorf("output %q has dims %v: want [classes], other dimensions being 1", out.GetName(), out.GetDims())
	}

	version := cfg.Version
	if version == "" {
		version = servedVersion(meta.GetVersions())
	}
	platform := meta.GetPlatform()
	if platform == "" {
		platform = mc.GetPlatform()
	}
	if platform == "" {
		platform = mc.GetBackend()
	}
	name := meta.GetName()
	if name == "" {
		name = cfg.Model
	}
	return &modelState{
		info: gateway.ModelInfo{
			Name:           name,
			Version:        version,
			Backend:        Backend,
			Platform:       platform,
			MaxBatchSize:   int(mc.GetMaxBatchSize()),
			Input:          input,
			Output:         gateway.TensorInfo{Name: out.GetName(), Datatype: wireDatatype(out.GetDataType()), Shape: slices.Clone(out.GetDims())},
			OutputIsLogits: logits,
			Preprocess:     spec,
		},
		inputName:     in.GetName(),
		inputDatatype: inDatatype,
		inputDims:     slices.Clone(in.GetDims()),
		itemBytes:     int(itemElems) * elementSize(inDatatype),
		batched:       mc.GetMaxBatchSize() > 0,
		maxBatch:      int(mc.GetMaxBatchSize()),
		outputName:    out.GetName(),
		classes:       classes,
	}, nil
}

// servedVersion is the version Triton serves for an unpinned request: the
// highest of the ready versions ModelMetadata lists (usually just one).
func servedVersion(versions []string) string {
	if len(versions) == 0 {
		return ""
	}
	best, bestN := versions[0], int64(-1)
	for _, v := range versions {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > bestN {
			best, bestN = v, n
		}
	}
	return best
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

// elementSize is the size of one element of the datatypes the gateway sends
// or reads, 0 for others.
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
// one dimension may differ from 1 ([9], [1, 9], [9, 1, 1]); all 1 means one
// class.
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

// classificationLabels asks Triton for every class of a zero tensor through
// the classification extension and reads the labels out of the answer:
// "<value>:<index>:<label>" for each class. A server that answers without
// labels, or with something else, leaves them empty (nil, nil): the gateway
// then names classes class_N. An error is returned only when the call itself
// failed for want of a server or of time (unavailable, deadline, canceled).
func (c *Client) classificationLabels(ctx context.Context, st *modelState) ([]string, error) {
	req := c.inferRequest(ctx, st, gateway.Batch{Size: 1, Data: make([]byte, st.itemBytes)})
	req.Outputs[0].Parameters = map[string]*inferencepb.InferParameter{
		classificationParameter: {ParameterChoice: &inferencepb.InferParameter_Int64Param{Int64Param: int64(st.classes)}},
	}
	resp, err := call(ctx, c, rpcModelInfer, func(ctx context.Context) (*inferencepb.ModelInferResponse, error) {
		return c.api.ModelInfer(ctx, req)
	})
	if err != nil {
		switch gateway.KindOf(err) {
		case gateway.KindUnavailable, gateway.KindDeadline, gateway.KindCanceled:
			return nil, err
		}
		return nil, nil
	}
	return parseClassification(resp, st), nil
}

// parseClassification reads labels by index from a classification answer for
// one item; nil unless it names every class exactly once and at least one
// label. Classes the answer leaves unlabelled get "".
func parseClassification(resp *inferencepb.ModelInferResponse, st *modelState) []string {
	i := slices.IndexFunc(resp.GetOutputs(), func(o *inferencepb.ModelInferResponse_InferOutputTensor) bool {
		return o.GetName() == st.outputName
	})
	if i < 0 || i >= len(resp.GetRawOutputContents()) || resp.GetOutputs()[i].GetDatatype() != "BYTES" {
		return nil
	}
	raw := resp.GetRawOutputContents()[i]
	labels := make([]string, st.classes)
	seen := make([]bool, st.classes)
	count, labelled := 0, false
	for len(raw) > 0 {
		if len(raw) < 4 {
			return nil
		}
		n := binary.LittleEndian.Uint32(raw)
		if uint64(n) > uint64(len(raw)-4) {
			return nil
		}
		elem := string(raw[4 : 4+n])
		raw = raw[4+n:]
		parts := strings.SplitN(elem, ":", 3) // a label may hold colons
		if len(parts) < 2 {
			return nil
		}
		idx, err := strconv.Atoi(parts[1])
		if err != nil || idx < 0 || idx >= st.classes || seen[idx] {
			return nil
		}
		seen[idx] = true
		count++
		if len(parts) == 3 {
			labels[idx] = parts[2]
			labelled = labelled || parts[2] != ""
		}
	}
	if count != st.classes || !labelled {
		return nil
	}
	return labels
}
