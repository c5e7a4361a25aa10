package tritontest

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fish-classifier/fish-classifier/gateway/kserve"
)

// ClassificationParameter is the requested-output parameter that asks for the
// classification extension: InferParameter{int64_param: N}, N ≥ 1.
const ClassificationParameter = "classification"

func (s *service) ServerLive(context.Context, *kserve.ServerLiveRequest) (*kserve.ServerLiveResponse, error) {
	return &kserve.ServerLiveResponse{Live: true}, nil
}

func (s *service) ServerReady(context.Context, *kserve.ServerReadyRequest) (*kserve.ServerReadyResponse, error) {
	return &kserve.ServerReadyResponse{Ready: !s.currentFault().ServerNotReady}, nil
}

func (s *service) ServerMetadata(context.Context, *kserve.ServerMetadataRequest) (*kserve.ServerMetadataResponse, error) {
	return &kserve.ServerMetadataResponse{
		Name:       ServerName,
		Version:    s.serverVersion,
		Extensions: slices.Clone(Extensions),
	}, nil
}

// ModelReady answers false, without error, for a model or version the server
// does not have: that is what Triton does (InferenceServer::ModelIsReady).
func (s *service) ModelReady(_ context.Context, req *kserve.ModelReadyRequest) (*kserve.ModelReadyResponse, error) {
	ready := s.lookup(req.GetName(), req.GetVersion()) == nil && !s.currentFault().ModelNotReady
	return &kserve.ModelReadyResponse{Ready: ready}, nil
}

func (s *service) ModelMetadata(_ context.Context, req *kserve.ModelMetadataRequest) (*kserve.ModelMetadataResponse, error) {
	if err := s.available(req.GetName(), req.GetVersion(), s.currentFault()); err != nil {
		return nil, err
	}
	return s.model.metadata(), nil
}

func (s *service) ModelConfig(_ context.Context, req *kserve.ModelConfigRequest) (*kserve.ModelConfigResponse, error) {
	if err := s.available(req.GetName(), req.GetVersion(), s.currentFault()); err != nil {
		return nil, err
	}
	return &kserve.ModelConfigResponse{Config: s.model.config()}, nil
}

// lookup fails with NOT_FOUND and Triton's message unless name and version
// (empty: the served one) designate the served model.
func (s *service) lookup(name, version string) error {
	if name != s.model.Name {
		return status.Errorf(codes.NotFound, "Request for unknown model: '%s' is not found", name)
	}
	if version != "" && version != s.model.Version {
		return status.Errorf(codes.NotFound, "Request for unknown model: '%s' version %s is not found", name, version)
	}
	return nil
}

// available is lookup, then NOT_FOUND when the model is not ready: the real
// Triton (2.51, checked by triton-ci/) answers an unloaded model's calls with
// NOT_FOUND "... has no available versions", not UNAVAILABLE.
func (s *service) available(name, version string, f Fault) error {
	if err := s.lookup(name, version); err != nil {
		return err
	}
	if f.ModelNotReady {
		return status.Errorf(codes.NotFound,
			"Request for unknown model: '%s' has no available versions", name)
	}
	return nil
}

func (s *service) ModelInfer(ctx context.Context, req *kserve.ModelInferRequest) (resp *kserve.ModelInferResponse, err error) {
	s.inFlight.Add(1)
	rec, fault, fail := s.arrive(ctx, req)
	defer func() {
		s.finish(rec, status.Code(err))
		s.inFlight.Add(-1)
	}()

	if fault.Hang {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if fault.Latency > 0 {
		timer := time.NewTimer(fault.Latency)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	if err := s.available(req.GetModelName(), req.GetModelVersion(), fault); err != nil {
		return nil, err
	}
	if fail {
		msg := fault.Message
		if msg == "" {
			msg = fmt.Sprintf("tritontest: injected %s failure", fault.Code)
		}
		return nil, status.Error(fault.Code, msg)
	}
	batch, classify, input, where, err := s.validate(req)
	if err != nil {
		return nil, err
	}
	s.received(rec, input, where)
	resp = s.infer(req, input, batch, classify)
	malform(resp, fault)
	return resp, nil
}

// validate checks a request against the model with Triton's rules and
// INVALID_ARGUMENT messages. It returns the batch size, the number of classes
// asked for by the classification extension (0: raw scores) and the input
// tensor's bytes, from raw_input_contents or from the shared-memory region
// the input names (where says which).
func (s *service) validate(req *kserve.ModelInferRequest) (batch int, classify int64, input []byte, where *SharedMemoryInput, err error) {
	m := s.model
	invalid := func(format string, args ...any) (int, int64, []byte, *SharedMemoryInput, error) {
		return 0, 0, nil, nil, status.Errorf(codes.InvalidArgument, format, args...)
	}

	if len(req.GetInputs()) != 1 {
		return invalid("expected 1 inputs but got %d inputs for model '%s'", len(req.GetInputs()), m.Name)
	}
	in := req.GetInputs()[0]
	if in.GetName() != m.Input.Name {
		return invalid("unexpected inference input '%s' for model '%s'", in.GetName(), m.Name)
	}
	if in.GetDatatype() != m.Input.Datatype {
		return invalid("inference input '%s' data-type is '%s', but model '%s' expects '%s'",
			in.GetName(), in.GetDatatype(), m.Name, m.Input.Datatype)
	}

	shape, want := in.GetShape(), m.withBatch(-1, m.Input.Dims)
	if len(shape) != len(want) || !slices.Equal(shape[len(shape)-len(m.Input.Dims):], m.Input.Dims) {
		return invalid("unexpected shape for input '%s' for model '%s'. Expected %s, got %s",
			in.GetName(), m.Name, formatShape(want), formatShape(shape))
	}
	batch = 1
	if m.MaxBatchSize > 0 {
		if shape[0] < 1 || shape[0] > int64(m.MaxBatchSize) {
			return invalid("inference request batch-size must be in [1, %d] for '%s', got %d",
				m.MaxBatchSize, m.Name, shape[0])
		}
		batch = int(shape[0])
	}

	raw := req.GetRawInputContents()
	shared, where, isShared, err := s.sharedInput(in, batch*m.ItemSize())
	if err != nil {
		return 0, 0, nil, nil, err
	}
	// Stricter than Triton 2.51, which accepts raw contents beside a region
	// (and reads one of the two): a client that sends both has a bug.
	if isShared && (len(raw) > 0 || in.GetContents() != nil) {
		return invalid("input '%s' for model '%s' names a shared memory region and also carries contents", in.GetName(), m.Name)
	}
	input = shared
	if !isShared && in.GetContents() != nil {
		if len(raw) > 0 {
			return invalid("contents field must not be specified when using raw_input_contents for '%s' for model '%s'",
				in.GetName(), m.Name)
		}
		return invalid("input '%s' for model '%s' carries typed contents: this server accepts raw_input_contents only",
			in.GetName(), m.Name)
	}
	if !isShared {
		if len(raw) != 1 {
			return invalid("expected 1 raw_input_contents (one per input) but got %d for model '%s'", len(raw), m.Name)
		}
		if wantBytes := batch * m.ItemSize(); len(raw[0]) != wantBytes {
			return invalid("unexpected total byte size %d for input '%s', expecting %d for model '%s'",
				len(raw[0]), in.GetName(), wantBytes, m.Name)
		}
		input = raw[0]
	}

	seen := map[string]bool{}
	for _, out := range req.GetOutputs() {
		if out.GetName() != m.Output.Name {
			return invalid("unexpected inference output '%s' for model '%s'", out.GetName(), m.Name)
		}
		if seen[out.GetName()] {
			return invalid("output '%s' requested more than once for model '%s'", out.GetName(), m.Name)
		}
		seen[out.GetName()] = true
		if p, ok := out.GetParameters()[ClassificationParameter]; ok {
			n, isInt := p.GetParameterChoice().(*kserve.InferParameter_Int64Param)
			if !isInt || n.Int64Param < 1 {
				return invalid("parameter '%s' of output '%s' must be an int64_param >= 1 for model '%s'",
					ClassificationParameter, out.GetName(), m.Name)
			}
			classify = n.Int64Param
		}
	}
	return batch, classify, input, where, nil
}

// formatShape writes a shape the way Triton's messages do: [-1,3,224,224].
func formatShape(shape []int64) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = strconv.FormatInt(d, 10)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// infer runs the deterministic model on a validated request.
func (s *service) infer(req *kserve.ModelInferRequest, raw []byte, batch int, classify int64) *kserve.ModelInferResponse {
	m := s.model
	size := m.ItemSize()
	scores := make([][]float32, batch)
	for b := range batch {
		scores[b] = Logits(m, raw[b*size:(b+1)*size])
	}

	out := &kserve.ModelInferResponse_InferOutputTensor{Name: m.Output.Name}
	var data []byte
	if classify > 0 {
		n := min(classify, int64(m.NumClasses()))
		out.Datatype, out.Shape = "BYTES", m.withBatch(int64(batch), []int64{n})
		for _, item := range scores {
			for _, e := range classifications(item, int(n), m.Labels) {
				data = binary.LittleEndian.AppendUint32(data, uint32(len(e)))
				data = append(data, e...)
			}
		}
	} else {
		out.Datatype, out.Shape = m.Output.Datatype, m.withBatch(int64(batch), m.Output.Dims)
		data = make([]byte, 0, batch*m.NumClasses()*4)
		for _, item := range scores {
			for _, v := range item {
				data = binary.LittleEndian.AppendUint32(data, math.Float32bits(v))
			}
		}
	}
	return &kserve.ModelInferResponse{
		ModelName:         m.Name,
		ModelVersion:      m.Version,
		Id:                req.GetId(),
		Outputs:           []*kserve.ModelInferResponse_InferOutputTensor{out},
		RawOutputContents: [][]byte{data},
	}
}

// classifications returns the classification extension's top-n elements for one
// item: "<value>:<index>:<label>" ("<value>:<index>" without labels), highest
// raw score first, ties by index; value is printed as Triton's std::to_string
// prints a float.
func classifications(scores []float32, n int, labels []string) []string {
	order := make([]int, len(scores))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case scores[a] > scores[b]:
			return -1
		case scores[a] < scores[b]:
			return 1
		}
		return 0
	})
	out := make([]string, n)
	for i, idx := range order[:n] {
		out[i] = fmt.Sprintf("%f:%d", float64(scores[idx]), idx)
		if idx < len(labels) {
			out[i] += ":" + labels[idx]
		}
	}
	return out
}

// malform applies the malformed-response faults to a successful answer.
func malform(resp *kserve.ModelInferResponse, f Fault) {
	out := resp.Outputs[0]
	if f.WrongShape {
		out.Shape[len(out.Shape)-1]++
	}
	if f.WrongDatatype {
		out.Datatype = "INT64"
	}
	if f.ShortRawOutput {
		raw := resp.RawOutputContents[0]
		resp.RawOutputContents[0] = raw[:max(0, len(raw)-4)]
	}
	if f.MissingOutput {
		resp.Outputs, resp.RawOutputContents = nil, nil
	}
	if f.WrongID {
		resp.Id += "-crossed"
	}
}
