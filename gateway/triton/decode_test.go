package triton

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/kserve"
	"github.com/fish-classifier/fish-classifier/gateway/modelconfig"
	"github.com/fish-classifier/fish-classifier/preprocess"
)

// --- answers ---------------------------------------------------------------------

func fp32Bytes(v ...float32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func fp16Bytes(h ...uint16) []byte {
	var b []byte
	for _, x := range h {
		b = binary.LittleEndian.AppendUint16(b, x)
	}
	return b
}

func answer(name, datatype string, shape []int64, raw []byte) *kserve.ModelInferResponse {
	return &kserve.ModelInferResponse{
		Outputs:           []*kserve.ModelInferResponse_InferOutputTensor{{Name: name, Datatype: datatype, Shape: shape}},
		RawOutputContents: [][]byte{raw},
	}
}

func TestDecodeScores(t *testing.T) {
	batched := &modelTensors{modelconfig.Tensors{Batched: true, MaxBatch: 8, OutputName: "logits", Classes: 3}}
	unbatched := &modelTensors{modelconfig.Tensors{OutputName: "logits", Classes: 3}}
	six := fp32Bytes(1, 2, 3, 4, 5, 6)
	tests := []struct {
		name   string
		st     *modelTensors
		resp   *kserve.ModelInferResponse
		size   int
		want   []float32
		wantIn string // "" success
	}{
		{"[batch, classes]", batched, answer("logits", "FP32", []int64{2, 3}, six), 2, []float32{1, 2, 3, 4, 5, 6}, ""},
		{"[batch, 1, classes]", batched, answer("logits", "FP32", []int64{2, 1, 3}, six), 2, []float32{1, 2, 3, 4, 5, 6}, ""},
		{"[batch, classes, 1, 1]", batched, answer("logits", "FP32", []int64{2, 3, 1, 1}, six), 2, []float32{1, 2, 3, 4, 5, 6}, ""},
		{"unbatched [classes]", unbatched, answer("logits", "FP32", []int64{3}, six[:12]), 1, []float32{1, 2, 3}, ""},
		{"unbatched [1, classes]", unbatched, answer("logits", "FP32", []int64{1, 3}, six[:12]), 1, []float32{1, 2, 3}, ""},
		{"FP16 converted", batched, answer("logits", "FP16", []int64{1, 3}, fp16Bytes(0x3c00, 0xc000, 0x3555)), 1, []float32{1, -2, 0.333251953125}, ""},
		{"the output found by name among several", batched, &kserve.ModelInferResponse{
			Outputs: []*kserve.ModelInferResponse_InferOutputTensor{
				{Name: "features", Datatype: "FP32", Shape: []int64{1, 1}},
				{Name: "logits", Datatype: "FP32", Shape: []int64{1, 3}},
			},
			RawOutputContents: [][]byte{fp32Bytes(9), six[:12]},
		}, 1, []float32{1, 2, 3}, ""},
		{"typed fp32_contents", batched, &kserve.ModelInferResponse{
			Outputs: []*kserve.ModelInferResponse_InferOutputTensor{{
				Name: "logits", Datatype: "FP32", Shape: []int64{1, 3},
				Contents: &kserve.InferTensorContents{Fp32Contents: []float32{7, 8, 9}},
			}},
		}, 1, []float32{7, 8, 9}, ""},

		{"batch dimension missing", batched, answer("logits", "FP32", []int64{3}, six[:12]), 1, nil, "shape [3] for a batch of 1"},
		{"batch dimension wrong", batched, answer("logits", "FP32", []int64{3, 3}, six), 2, nil, "shape [3 3] for a batch of 2"},
		{"too many classes", batched, answer("logits", "FP32", []int64{2, 4}, six), 2, nil, "shape [2 4]: want [2, 3]"},
		{"two dimensions over 1", batched, answer("logits", "FP32", []int64{1, 3, 3}, six), 1, nil, "shape [1 3 3]"},
		{"a dimension of 0", batched, answer("logits", "FP32", []int64{1, 0, 3}, six), 1, nil, "shape [1 0 3]"},
		{"a negative dimension", batched, answer("logits", "FP32", []int64{1, -1, 3}, six), 1, nil, "shape [1 -1 3]"},
		{"empty shape", batched, answer("logits", "FP32", nil, six), 1, nil, "shape []"},
		{"raw bytes short", batched, answer("logits", "FP32", []int64{2, 3}, six[:20]), 2, nil, "20 bytes, want 24"},
		{"raw bytes long", batched, answer("logits", "FP32", []int64{1, 3}, six), 1, nil, "24 bytes, want 12"},
		{"FP16 bytes short", batched, answer("logits", "FP16", []int64{1, 3}, fp16Bytes(1, 2)), 1, nil, "4 bytes, want 6"},
		{"INT64", batched, answer("logits", "INT64", []int64{1, 3}, make([]byte, 24)), 1, nil, `datatype "INT64"`},
		{"BYTES", batched, answer("logits", "BYTES", []int64{1, 3}, make([]byte, 12)), 1, nil, `datatype "BYTES"`},
		{"no output of that name", batched, answer("probs", "FP32", []int64{1, 3}, six[:12]), 1, nil, `no output "logits" (1 outputs)`},
		{"no outputs", batched, &kserve.ModelInferResponse{}, 1, nil, "no output"},
		{"no raw contents", batched, &kserve.ModelInferResponse{
			Outputs: []*kserve.ModelInferResponse_InferOutputTensor{{Name: "logits", Datatype: "FP32", Shape: []int64{1, 3}}},
		}, 1, nil, "without contents"},
		{"raw contents for the first output only", batched, &kserve.ModelInferResponse{
			Outputs: []*kserve.ModelInferResponse_InferOutputTensor{
				{Name: "features", Datatype: "FP32", Shape: []int64{1, 3}},
				{Name: "logits", Datatype: "FP32", Shape: []int64{1, 3}},
			},
			RawOutputContents: [][]byte{six[:12]},
		}, 1, nil, "without contents"},
		{"typed contents of the wrong length", batched, &kserve.ModelInferResponse{
			Outputs: []*kserve.ModelInferResponse_InferOutputTensor{{
				Name: "logits", Datatype: "FP32", Shape: []int64{1, 3},
				Contents: &kserve.InferTensorContents{Fp32Contents: []float32{7}},
			}},
		}, 1, nil, "1 fp32_contents, want 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.st.decodeScores(tt.resp, tt.size)
			if tt.wantIn != "" {
				if err == nil {
					t.Fatalf("decodeScores = %v, want an error with %q", got, tt.wantIn)
				}
				wantKind(t, err, gateway.KindBadGateway, "inference server answered ", tt.wantIn)
				return
			}
			if err != nil {
				t.Fatalf("decodeScores: %v", err)
			}
			if got.Size != tt.size || got.Classes != tt.st.Classes || !slices.Equal(got.Values, tt.want) {
				t.Errorf("decodeScores = %+v, want %d×%d %v", got, tt.size, tt.st.Classes, tt.want)
			}
		})
	}
}

// randomAnswer is an answer of random structure, often close to a valid
// one, so that every check is reached.
func randomAnswer(rng *rand.Rand) *kserve.ModelInferResponse {
	names := []string{"logits", "probs", ""}
	datatypes := []string{"FP32", "FP16", "INT64", "BYTES", "", "fp32"}
	dims := []int64{-1, 0, 1, 2, 3, 4, math.MaxInt64, math.MinInt64, 1 << 32}
	resp := &kserve.ModelInferResponse{}
	for range rng.IntN(3) {
		out := &kserve.ModelInferResponse_InferOutputTensor{
			Name:     names[rng.IntN(len(names))],
			Datatype: datatypes[rng.IntN(len(datatypes))],
		}
		for range rng.IntN(5) {
			out.Shape = append(out.Shape, dims[rng.IntN(len(dims))])
		}
		if rng.IntN(4) == 0 {
			out.Contents = &kserve.InferTensorContents{Fp32Contents: make([]float32, rng.IntN(20))}
		}
		resp.Outputs = append(resp.Outputs, out)
	}
	for range rng.IntN(3) {
		resp.RawOutputContents = append(resp.RawOutputContents, make([]byte, rng.IntN(50)))
	}
	return resp
}

func TestDecodeScoresNeverPanics(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	states := []*modelTensors{
		{modelconfig.Tensors{Batched: true, MaxBatch: 4, OutputName: "logits", Classes: 3}},
		{modelconfig.Tensors{OutputName: "logits", Classes: 3}},
		{modelconfig.Tensors{Batched: true, MaxBatch: 4, OutputName: "logits", Classes: 1}},
	}
	ok := 0
	for i := range 20000 {
		st := states[i%len(states)]
		resp := randomAnswer(rng)
		size := 1 + rng.IntN(3)
		scores, err := st.decodeScores(resp, size)
		if err != nil {
			if err.Kind != gateway.KindBadGateway {
				t.Fatalf("answer %v: kind %v", resp, err.Kind)
			}
			continue
		}
		ok++
		if scores.Size != size || len(scores.Values) != size*st.Classes {
			t.Fatalf("answer %v: accepted as %+v for a batch of %d", resp, scores, size)
		}
	}
	t.Logf("%d of 20000 random answers were valid", ok)
}

func FuzzDecodeScores(f *testing.F) {
	seed, _ := proto.Marshal(answer("logits", "FP32", []int64{2, 1, 3}, fp32Bytes(1, 2, 3, 4, 5, 6)))
	f.Add(seed, uint8(2))
	f.Fuzz(func(t *testing.T, wire []byte, size uint8) {
		resp := &kserve.ModelInferResponse{}
		if proto.Unmarshal(wire, resp) != nil || size == 0 {
			return
		}
		st := &modelTensors{modelconfig.Tensors{Batched: true, MaxBatch: 255, OutputName: "logits", Classes: 3}}
		if scores, err := st.decodeScores(resp, int(size)); err == nil && len(scores.Values) != int(size)*3 {
			t.Fatalf("accepted %d values for %d×3", len(scores.Values), size)
		}
	})
}

// TestRandomAnswersOverTheWire sends calls to a server that answers at random:
// the client returns scores or KindBadGateway, never panics.
func TestRandomAnswersOverTheWire(t *testing.T) {
	meta, cfg := stubModel()
	rng := rand.New(rand.NewPCG(3, 4))
	answers := make(chan *kserve.ModelInferResponse, 1)
	addr := startStub(t, &stubServer{meta: meta, cfg: cfg, infer: func(*kserve.ModelInferRequest) (*kserve.ModelInferResponse, error) {
		return <-answers, nil
	}})
	c, _ := newTestClient(t, testConfig(addr, "stub"))
	answers <- &kserve.ModelInferResponse{} // the classification call: no labels
	info, err := c.Model(callCtx(t))
	if err != nil {
		t.Fatalf("Model: %v", err)
	}
	for range 200 {
		resp := randomAnswer(rng)
		for _, o := range resp.Outputs {
			if rng.IntN(2) == 0 {
				o.Name = "probs"
			}
		}
		answers <- resp
		scores, err := c.Infer(callCtx(t), gateway.Batch{Size: 1, Data: make([]byte, 48), Model: &info})
		if err != nil {
			wantKind(t, err, gateway.KindBadGateway)
		} else if scores.Size != 1 || scores.Classes != 3 || len(scores.Values) != 3 {
			t.Fatalf("answer %v accepted as %+v", resp, scores)
		}
	}
}

// --- the stub model: several outputs, FP16 scores, extra dimensions ----------------

func TestOutputNamedByParameterWithFP16Scores(t *testing.T) {
	meta, cfg := stubModel()
	var last atomic.Pointer[kserve.ModelInferRequest]
	addr := startStub(t, &stubServer{meta: meta, cfg: cfg, infer: func(req *kserve.ModelInferRequest) (*kserve.ModelInferResponse, error) {
		last.Store(req)
		if req.GetOutputs()[0].GetParameters()["classification"] != nil {
			return &kserve.ModelInferResponse{
				Outputs:           []*kserve.ModelInferResponse_InferOutputTensor{{Name: "probs", Datatype: "BYTES", Shape: []int64{1, 3}}},
				RawOutputContents: [][]byte{bytesTensor("0.5:2:pike", "0.3:0:eel: the long one", "0.2:1:carp")},
			}, nil
		}
		n := req.GetInputs()[0].GetShape()[0]
		raw := slices.Repeat(fp16Bytes(0x3800, 0x3400, 0x3000), int(n)) // 0.5, 0.25, 0.125
		return answer("probs", "FP16", []int64{n, 1, 3}, raw), nil
	}})
	c, _ := newTestClient(t, testConfig(addr, "stub"))
	info, err := c.Model(callCtx(t))
	if err != nil {
		t.Fatalf("Model: %v", err)
	}
	if info.Output.Name != "probs" || info.Output.Datatype != "FP16" || !slices.Equal(info.Output.Shape, []int64{1, 3}) {
		t.Errorf("Output = %+v, want probs FP16 [1 3]", info.Output)
	}
	if info.Version != "7" || info.Platform != "onnxruntime_onnx" || info.OutputIsLogits || info.MaxBatchSize != 4 {
		t.Errorf("ModelInfo = %+v", info)
	}
	if want := []string{"eel: the long one", "carp", "pike"}; !slices.Equal(info.Labels, want) {
		t.Errorf("Labels = %q, want %q", info.Labels, want)
	}
	scores, err := c.Infer(callCtx(t), gateway.Batch{Size: 2, Data: make([]byte, 96), Model: &info})
	if err != nil {
		t.Fatalf("Infer: %v", err)
	}
	if want := []float32{0.5, 0.25, 0.125, 0.5, 0.25, 0.125}; !slices.Equal(scores.Values, want) {
		t.Errorf("scores %v, want %v", scores.Values, want)
	}
	if out := last.Load().GetOutputs(); len(out) != 1 || out[0].GetName() != "probs" {
		t.Errorf("requested %v, want probs", out)
	}
	if in := last.Load().GetInputs()[0]; in.GetName() != "pixels" || !slices.Equal(in.GetShape(), []int64{2, 3, 2, 2}) {
		t.Errorf("sent input %q %v", in.GetName(), in.GetShape())
	}
}

// Infer builds each call from the description that comes with its batch:
// two descriptions used in turn give two kinds of request, and neither is
// remembered for the next call.
func TestInferTakesTheModelFromTheBatch(t *testing.T) {
	meta, cfg := stubModel()
	var mu sync.Mutex
	var got []*kserve.ModelInferRequest
	addr := startStub(t, &stubServer{meta: meta, cfg: cfg, infer: func(req *kserve.ModelInferRequest) (*kserve.ModelInferResponse, error) {
		mu.Lock()
		got = append(got, req)
		mu.Unlock()
		items, shape := int64(1), []int64{3} // one item, no batch dimension
		if s := req.GetInputs()[0].GetShape(); len(s) == 4 {
			items, shape = s[0], []int64{s[0], 3}
		}
		return answer(req.GetOutputs()[0].GetName(), "FP32", shape, make([]byte, 4*3*items)), nil
	}})
	c, _ := newTestClient(t, testConfig(addr, "stub"))
	a, err := c.Model(callCtx(t)) // pixels FP32 [3 2 2], batches of up to 4, output probs
	if err != nil {
		t.Fatalf("Model: %v", err)
	}
	// Another model, described by another backend: UINT8 [3 1 1] images, one
	// per call, output features.
	b := a
	b.MaxBatchSize, b.Backend = 0, "onnxruntime"
	b.Input = gateway.TensorInfo{Name: "image", Datatype: "UINT8", Shape: []int64{3, 1, 1}}
	b.Output = gateway.TensorInfo{Name: "features", Datatype: "FP32", Shape: []int64{3}}
	mu.Lock()
	got = nil // the classification call of Model
	mu.Unlock()

	calls := []struct {
		in                   gateway.Batch
		input, dtype, output string
		shape                []int64
	}{
		{gateway.Batch{Size: 2, Data: make([]byte, 96), Model: &a}, "pixels", "FP32", "probs", []int64{2, 3, 2, 2}},
		{gateway.Batch{Size: 1, Data: make([]byte, 3), Model: &b}, "image", "UINT8", "features", []int64{3, 1, 1}},
		{gateway.Batch{Size: 1, Data: make([]byte, 48), Model: &a}, "pixels", "FP32", "probs", []int64{1, 3, 2, 2}},
	}
	for i, call := range calls {
		scores, err := c.Infer(callCtx(t), call.in)
		if err != nil || scores.Size != call.in.Size || scores.Classes != 3 || scores.Backend != "triton" {
			t.Fatalf("call %d: %+v, %v", i, scores, err)
		}
		mu.Lock()
		req := got[len(got)-1]
		mu.Unlock()
		in := req.GetInputs()[0]
		if in.GetName() != call.input || in.GetDatatype() != call.dtype || !slices.Equal(in.GetShape(), call.shape) || req.GetOutputs()[0].GetName() != call.output {
			t.Errorf("call %d sent %s %s %v for output %s, want %s %s %v for %s", i,
				in.GetName(), in.GetDatatype(), in.GetShape(), req.GetOutputs()[0].GetName(), call.input, call.dtype, call.shape, call.output)
		}
	}
	// The batch is checked against its own description too.
	_, err = c.Infer(callCtx(t), gateway.Batch{Size: 2, Data: make([]byte, 6), Model: &b})
	wantKind(t, err, gateway.KindInternal, "no batch dimension")
	if _, err := c.Infer(callCtx(t), gateway.Batch{Size: 2, Data: make([]byte, 96), Model: &a}); err != nil {
		t.Errorf("a batch of 2 for the batching model: %v", err)
	}
}

func bytesTensor(elems ...string) []byte {
	var b []byte
	for _, e := range elems {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e)))
		b = append(b, e...)
	}
	return b
}

func TestParseClassification(t *testing.T) {
	st := &modelTensors{modelconfig.Tensors{OutputName: "logits", Classes: 3}}
	bytesAnswer := func(raw []byte) *kserve.ModelInferResponse {
		return answer("logits", "BYTES", []int64{1, 3}, raw)
	}
	tests := []struct {
		name string
		resp *kserve.ModelInferResponse
		want []string
	}{
		{"every class labelled", bytesAnswer(bytesTensor("-0.1:1:b", "-0.2:0:a", "-3.5:2:c")), []string{"a", "b", "c"}},
		{"a label with colons", bytesAnswer(bytesTensor("1:0:a:b", "0:1:c", "0:2:d")), []string{"a:b", "c", "d"}},
		{"some unlabelled", bytesAnswer(bytesTensor("1:0:a", "0:1", "0:2:")), []string{"a", "", ""}},
		{"none labelled", bytesAnswer(bytesTensor("1:0", "0:1", "0:2")), nil},
		{"a class missing", bytesAnswer(bytesTensor("1:0:a", "0:1:b")), nil},
		{"a class twice", bytesAnswer(bytesTensor("1:0:a", "0:1:b", "0:1:b")), nil},
		{"index out of range", bytesAnswer(bytesTensor("1:0:a", "0:1:b", "0:3:c")), nil},
		{"negative index", bytesAnswer(bytesTensor("1:0:a", "0:1:b", "0:-1:c")), nil},
		{"index not a number", bytesAnswer(bytesTensor("1:0:a", "0:1:b", "0:two:c")), nil},
		{"no colon", bytesAnswer(bytesTensor("1:0:a", "0:1:b", "c")), nil},
		{"truncated length", bytesAnswer(append(bytesTensor("1:0:a", "0:1:b", "0:2:c"), 1, 0)), nil},
		{"length past the end", bytesAnswer(binary.LittleEndian.AppendUint32(nil, math.MaxUint32)), nil},
		{"scores instead of strings", answer("logits", "FP32", []int64{1, 3}, fp32Bytes(1, 2, 3)), nil},
		{"another output", answer("probs", "BYTES", []int64{1, 3}, bytesTensor("1:0:a", "0:1:b", "0:2:c")), nil},
		{"no raw contents", &kserve.ModelInferResponse{Outputs: bytesAnswer(nil).Outputs}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseClassification(tt.resp, st); !slices.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
				t.Errorf("parseClassification = %q, want %q", got, tt.want)
			}
		})
	}
}

// --- models the gateway cannot serve --------------------------------------------------

func TestDescribeRejects(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*kserve.ModelConfig)
		wantIn string
	}{
		{"no input", func(c *kserve.ModelConfig) { c.Input = nil }, "0 inputs, want exactly 1"},
		{"two inputs", func(c *kserve.ModelConfig) { c.Input = append(c.Input, c.Input[0]) }, "2 inputs"},
		{"no output", func(c *kserve.ModelConfig) { c.Output = nil }, "no output"},
		{"output_name names no output", func(c *kserve.ModelConfig) {
			c.Parameters[modelconfig.ParamOutputName] = &kserve.ModelParameter{StringValue: "scores"}
		}, `output_name names output "scores"`},
		{"output of two dimensions", func(c *kserve.ModelConfig) { c.Output[1].Dims = []int64{3, 3} }, "dims [3 3]"},
		{"variable output", func(c *kserve.ModelConfig) { c.Output[1].Dims = []int64{-1} }, "dims [-1]"},
		{"integer output", func(c *kserve.ModelConfig) { c.Output[1].DataType = kserve.DataType_TYPE_INT64 }, "is INT64"},
		{"variable input", func(c *kserve.ModelConfig) { c.Input[0].Dims = []int64{3, -1, -1} }, "Width -1"},
		{"input of 4 channels", func(c *kserve.ModelConfig) { c.Input[0].Dims = []int64{4, 2, 2} }, "4 channels"},
		{"string input", func(c *kserve.ModelConfig) { c.Input[0].DataType = kserve.DataType_TYPE_STRING }, `"BYTES"`},
		{"bad preprocessing parameter", func(c *kserve.ModelConfig) {
			c.Parameters["preprocess_filter"] = &kserve.ModelParameter{StringValue: "lanczos"}
		}, "preprocess_filter"},
		{"negative max_batch_size", func(c *kserve.ModelConfig) { c.MaxBatchSize = -1 }, "max_batch_size -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			meta, cfg := stubModel()
			tt.edit(cfg)
			_, err := describe(Config{Model: "stub"}, meta, cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("describe: %v, want an error with %q", err, tt.wantIn)
			}
		})
	}
	t.Run("over the wire the error is KindBadGateway and names the model", func(t *testing.T) {
		meta, cfg := stubModel()
		cfg.Output = nil
		addr := startStub(t, &stubServer{meta: meta, cfg: cfg})
		c, _ := newTestClient(t, testConfig(addr, "stub"))
		_, err := c.Model(callCtx(t))
		wantKind(t, err, gateway.KindBadGateway, `model "stub" cannot be served`, "no output")
	})
}

func TestDescribeLayoutAndVersion(t *testing.T) {
	meta, cfg := stubModel()
	cfg.Input[0].Format = kserve.ModelInput_FORMAT_NONE
	cfg.Input[0].Dims = []int64{5, 6, 3} // inferred NHWC
	meta.Versions = []string{"2", "10", "9"}
	meta.Platform = ""
	info, err := describe(Config{Model: "stub"}, meta, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s := info.Preprocess; s.Width != 6 || s.Height != 5 || s.Layout != preprocess.NHWC {
		t.Errorf("Preprocess %+v, want NHWC 6×5", s)
	}
	if info.Version != "10" {
		t.Errorf("Version %q, want the highest ready version, 10", info.Version)
	}
	if info.Platform != "onnxruntime" {
		t.Errorf("Platform %q, want the backend when no platform is named", info.Platform)
	}
	if st, err := tensorsOf(&info); err != nil || st.ItemBytes != 5*6*3*4 {
		t.Errorf("tensorsOf: itemBytes %d, %v", st.ItemBytes, err)
	}
	info, _ = describe(Config{Model: "stub", Version: "2"}, meta, cfg)
	if info.Version != "2" {
		t.Errorf("pinned Version %q, want 2", info.Version)
	}
	if got := servedVersion(nil); got != "" {
		t.Errorf("servedVersion(nil) = %q", got)
	}
}

// --- error mapping -------------------------------------------------------------------

func TestMapError(t *testing.T) {
	live := context.Background()
	expired, cancelExpired := context.WithDeadline(live, time.Now().Add(-time.Second))
	defer cancelExpired()
	canceled, cancel := context.WithCancel(live)
	cancel()
	tests := []struct {
		name       string
		ctx        context.Context
		err        error
		want       gateway.Kind
		wantIn     string
		retryAfter time.Duration
	}{
		{"UNAVAILABLE", live, status.Error(codes.Unavailable, "connection refused 10.0.0.7"), gateway.KindUnavailable, "inference server unavailable: ModelInfer failed", time.Second},
		{"DEADLINE_EXCEEDED", live, status.Error(codes.DeadlineExceeded, "deadline"), gateway.KindDeadline, "deadline", 0},
		{"CANCELED", live, status.Error(codes.Canceled, "canceled"), gateway.KindCanceled, "canceled", 0},
		{"INVALID_ARGUMENT", live, status.Error(codes.InvalidArgument, "bad shape"), gateway.KindInvalid, "the inference server rejected the request: bad shape", 0},
		{"NOT_FOUND", live, status.Error(codes.NotFound, "no model"), gateway.KindUnavailable, "model not available on the inference server: no model", time.Second},
		{"RESOURCE_EXHAUSTED", live, status.Error(codes.ResourceExhausted, "queue full"), gateway.KindOverloaded, "overloaded: queue full", time.Second},
		{"receive limit", live, status.Error(codes.ResourceExhausted, "grpc: received message larger than max (9 vs. 8)"), gateway.KindBadGateway, "MaxRecvMsgBytes", 0},
		{"send limit", live, status.Error(codes.ResourceExhausted, "grpc: trying to send message larger than max (9 vs. 8)"), gateway.KindInternal, "send limit", 0},
		{"INTERNAL", live, status.Error(codes.Internal, "CUDA"), gateway.KindBadGateway, "inference server failed: ModelInfer answered Internal", 0},
		{"UNKNOWN", live, status.Error(codes.Unknown, "?"), gateway.KindBadGateway, "answered Unknown", 0},
		{"UNIMPLEMENTED", live, status.Error(codes.Unimplemented, "?"), gateway.KindBadGateway, "answered Unimplemented", 0},
		{"FAILED_PRECONDITION", live, status.Error(codes.FailedPrecondition, "?"), gateway.KindBadGateway, "", 0},
		{"UNAVAILABLE once the deadline passed", expired, status.Error(codes.Unavailable, "x"), gateway.KindDeadline, "", 0},
		{"UNAVAILABLE once the caller left", canceled, status.Error(codes.Unavailable, "x"), gateway.KindCanceled, "", 0},
		{"a bare context error", expired, context.DeadlineExceeded, gateway.KindDeadline, "", 0},
		{"a gateway error passes", live, &gateway.Error{Kind: gateway.KindTooLarge, Message: "m"}, gateway.KindTooLarge, "m", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mapError(tt.ctx, "ModelInfer", tt.err)
			wantKind(t, got, tt.want, tt.wantIn)
			if got.RetryAfter != tt.retryAfter {
				t.Errorf("RetryAfter %v, want %v", got.RetryAfter, tt.retryAfter)
			}
			if !errors.Is(got, tt.err) && got != tt.err {
				t.Errorf("the cause %v is not kept for the log", tt.err)
			}
			if tt.name == "UNAVAILABLE" && strings.Contains(gateway.PublicMessage(got), "10.0.0.7") {
				t.Errorf("public message %q shows a transport detail", gateway.PublicMessage(got))
			}
		})
	}
	if mapError(live, "x", nil) != nil {
		t.Error("mapError(nil) is not nil")
	}
}
