package tritontest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/fish-classifier/fish-classifier/gateway/kserve"
	"github.com/fish-classifier/fish-classifier/gateway/triton/tritontest"
	"github.com/fish-classifier/fish-classifier/internal/poll"
)

// --- helpers ---------------------------------------------------------------

// dial connects a client to the server the way the gateway does, with a short
// reconnect backoff so that recovery tests are quick.
func dial(t testing.TB, addr string) kserve.GRPCInferenceServiceClient {
	t.Helper()
	conn := dialConn(t, addr)
	return kserve.NewGRPCInferenceServiceClient(conn)
}

func dialConn(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.6, MaxDelay: 100 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}),
	)
	if err != nil {
		t.Fatalf("grpc.NewClient(%s): %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// callCtx is the context of one call: a deadline well beyond what any passing
// call needs.
func callCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// inferRequest asks for the model's output on a batch of items.
func inferRequest(m tritontest.Model, items ...[]byte) *kserve.ModelInferRequest {
	shape := slices.Clone(m.Input.Dims)
	if m.MaxBatchSize > 0 {
		shape = append([]int64{int64(len(items))}, shape...)
	}
	return &kserve.ModelInferRequest{
		ModelName: m.Name,
		Id:        "req-1",
		Inputs: []*kserve.ModelInferRequest_InferInputTensor{{
			Name: m.Input.Name, Datatype: m.Input.Datatype, Shape: shape,
		}},
		Outputs:          []*kserve.ModelInferRequest_InferRequestedOutputTensor{{Name: m.Output.Name}},
		RawInputContents: [][]byte{bytes.Join(items, nil)},
	}
}

// randomItem is one item of noise: values in [-2, 2) for FP32, [0, 1) for FP16,
// any byte for UINT8.
func randomItem(m tritontest.Model, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 42))
	item := make([]byte, m.ItemSize())
	switch m.Input.Datatype {
	case "FP32":
		for i := 0; i < len(item); i += 4 {
			binary.LittleEndian.PutUint32(item[i:], math.Float32bits(rng.Float32()*4-2))
		}
	case "FP16":
		for i := 0; i < len(item); i += 2 {
			binary.LittleEndian.PutUint16(item[i:], uint16(rng.IntN(0x3c00))) // 0x3c00 is 1.0
		}
	default:
		for i := range item {
			item[i] = byte(rng.Uint32())
		}
	}
	return item
}

func decodeFP32(t testing.TB, raw []byte) []float32 {
	t.Helper()
	if len(raw)%4 != 0 {
		t.Fatalf("raw output of %d bytes is not a whole number of FP32", len(raw))
	}
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

// decodeBytes splits a BYTES tensor: 4-byte little-endian length, then bytes.
func decodeBytes(t testing.TB, raw []byte) []string {
	t.Helper()
	var out []string
	for len(raw) > 0 {
		if len(raw) < 4 {
			t.Fatalf("BYTES tensor: %d trailing bytes", len(raw))
		}
		n := int(binary.LittleEndian.Uint32(raw))
		if len(raw) < 4+n {
			t.Fatalf("BYTES element of %d bytes, %d left", n, len(raw)-4)
		}
		out = append(out, string(raw[4:4+n]))
		raw = raw[4+n:]
	}
	return out
}

func argmax(v []float32) int {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}

func wantCode(t testing.TB, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("status %v (%v), want %v", got, err, want)
	}
}

// waitUntil waits, a bounded time, for cond to hold.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, 5*time.Second, time.Millisecond, what, cond)
}

// waitServing waits until client reaches the server again: right after a
// restart, a call may still be sent on the connection the server closed, and
// fail UNAVAILABLE, before the client notices and reconnects.
func waitServing(t testing.TB, client kserve.GRPCInferenceServiceClient) {
	t.Helper()
	waitUntil(t, "the client to reconnect", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err := client.ServerLive(ctx, &kserve.ServerLiveRequest{}, grpc.WaitForReady(true))
		return err == nil
	})
}

// smallModel is DefaultModel on 4×4 images, for tests that run many calls.
func smallModel() tritontest.Model {
	m := tritontest.DefaultModel()
	m.Input.Dims = []int64{3, 4, 4}
	return m
}

// --- health, metadata, configuration ------------------------------------------

func TestServerHealthAndMetadata(t *testing.T) {
	srv := tritontest.Start(t, tritontest.DefaultModel())
	client := dial(t, srv.Addr())
	ctx := callCtx(t)

	live, err := client.ServerLive(ctx, &kserve.ServerLiveRequest{})
	if err != nil || !live.GetLive() {
		t.Errorf("ServerLive = %v, %v; want live", live, err)
	}
	ready, err := client.ServerReady(ctx, &kserve.ServerReadyRequest{})
	if err != nil || !ready.GetReady() {
		t.Errorf("ServerReady = %v, %v; want ready", ready, err)
	}
	md, err := client.ServerMetadata(ctx, &kserve.ServerMetadataRequest{})
	if err != nil {
		t.Fatalf("ServerMetadata: %v", err)
	}
	if md.GetName() != "triton" || md.GetVersion() == "" {
		t.Errorf("ServerMetadata name %q version %q, want triton and a version", md.GetName(), md.GetVersion())
	}
	for _, ext := range []string{"classification", "model_configuration", "binary_tensor_data"} {
		if !slices.Contains(md.GetExtensions(), ext) {
			t.Errorf("ServerMetadata extensions %v lack %q", md.GetExtensions(), ext)
		}
	}
}

func TestModelReady(t *testing.T) {
	srv := tritontest.Start(t, tritontest.DefaultModel())
	client := dial(t, srv.Addr())

	tests := []struct {
		name, model, version string
		want                 bool
	}{
		{"served model, latest version", "fish_classifier", "", true},
		{"served model, its version", "fish_classifier", "1", true},
		// Triton answers false, not an error, for what it does not serve.
		{"unknown version", "fish_classifier", "2", false},
		{"unknown model", "sardine", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := client.ModelReady(callCtx(t), &kserve.ModelReadyRequest{Name: tt.model, Version: tt.version})
			if err != nil {
				t.Fatalf("ModelReady: %v", err)
			}
			if resp.GetReady() != tt.want {
				t.Errorf("ModelReady(%q, %q) = %v, want %v", tt.model, tt.version, resp.GetReady(), tt.want)
			}
		})
	}
}

func TestModelMetadataAndConfig(t *testing.T) {
	noBatch := tritontest.DefaultModel()
	noBatch.MaxBatchSize = 0
	noBatch.Labels = nil
	noBatch.Parameters = nil
	noBatch.Input = tritontest.TensorSpec{Name: "image", Datatype: "UINT8", Dims: []int64{32, 32, 3}, Format: kserve.ModelInput_FORMAT_NHWC}

	def := tritontest.DefaultModel()
	params := map[string]*kserve.ModelParameter{}
	for k, v := range def.Parameters {
		params[k] = &kserve.ModelParameter{StringValue: v}
	}

	tests := []struct {
		name         string
		model        tritontest.Model
		wantMetadata *kserve.ModelMetadataResponse
		wantConfig   *kserve.ModelConfig
	}{
		{
			name:  "default model, batching",
			model: def,
			wantMetadata: &kserve.ModelMetadataResponse{
				Name: "fish_classifier", Versions: []string{"1"}, Platform: "onnxruntime_onnx",
				Inputs:  []*kserve.ModelMetadataResponse_TensorMetadata{{Name: "input", Datatype: "FP32", Shape: []int64{-1, 3, 224, 224}}},
				Outputs: []*kserve.ModelMetadataResponse_TensorMetadata{{Name: "logits", Datatype: "FP32", Shape: []int64{-1, 9}}},
			},
			wantConfig: &kserve.ModelConfig{
				Name: "fish_classifier", Platform: "onnxruntime_onnx", Backend: "onnxruntime", MaxBatchSize: 8,
				Input: []*kserve.ModelInput{{
					Name: "input", DataType: kserve.DataType_TYPE_FP32,
					Format: kserve.ModelInput_FORMAT_NCHW, Dims: []int64{3, 224, 224},
				}},
				Output: []*kserve.ModelOutput{{
					Name: "logits", DataType: kserve.DataType_TYPE_FP32, Dims: []int64{9}, LabelFilename: "labels.txt",
				}},
				SchedulingChoice: &kserve.ModelConfig_DynamicBatching{DynamicBatching: &kserve.ModelDynamicBatching{}},
				Parameters:       params,
			},
		},
		{
			name:  "no batching, UINT8 NHWC, no labels",
			model: noBatch,
			wantMetadata: &kserve.ModelMetadataResponse{
				Name: "fish_classifier", Versions: []string{"1"}, Platform: "onnxruntime_onnx",
				Inputs:  []*kserve.ModelMetadataResponse_TensorMetadata{{Name: "image", Datatype: "UINT8", Shape: []int64{32, 32, 3}}},
				Outputs: []*kserve.ModelMetadataResponse_TensorMetadata{{Name: "logits", Datatype: "FP32", Shape: []int64{9}}},
			},
			wantConfig: &kserve.ModelConfig{
				Name: "fish_classifier", Platform: "onnxruntime_onnx", Backend: "onnxruntime",
				Input: []*kserve.ModelInput{{
					Name: "image", DataType: kserve.DataType_TYPE_UINT8,
					Format: kserve.ModelInput_FORMAT_NHWC, Dims: []int64{32, 32, 3},
				}},
				Output: []*kserve.ModelOutput{{Name: "logits", DataType: kserve.DataType_TYPE_FP32, Dims: []int64{9}}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := tritontest.Start(t, tt.model)
			client := dial(t, srv.Addr())
			for _, version := range []string{"", "1"} {
				md, err := client.ModelMetadata(callCtx(t), &kserve.ModelMetadataRequest{Name: "fish_classifier", Version: version})
				if err != nil {
					t.Fatalf("ModelMetadata(version %q): %v", version, err)
				}
				if !proto.Equal(md, tt.wantMetadata) {
					t.Errorf("ModelMetadata(version %q)\n got: %v\nwant: %v", version, md, tt.wantMetadata)
				}
				cfg, err := client.ModelConfig(callCtx(t), &kserve.ModelConfigRequest{Name: "fish_classifier", Version: version})
				if err != nil {
					t.Fatalf("ModelConfig(version %q): %v", version, err)
				}
				if !proto.Equal(cfg.GetConfig(), tt.wantConfig) {
					t.Errorf("ModelConfig(version %q)\n got: %v\nwant: %v", version, cfg.GetConfig(), tt.wantConfig)
				}
			}
		})
	}
}

func TestUnknownModelIsNotFound(t *testing.T) {
	m := smallModel()
	srv := tritontest.Start(t, m)
	client := dial(t, srv.Addr())

	withModel := func(name, version string) *kserve.ModelInferRequest {
		req := inferRequest(m, tritontest.ItemForClass(m, 0))
		req.ModelName, req.ModelVersion = name, version
		return req
	}
	tests := []struct {
		name string
		call func(ctx context.Context) error
		want string
	}{
		{"metadata, unknown model", func(ctx context.Context) error {
			_, err := client.ModelMetadata(ctx, &kserve.ModelMetadataRequest{Name: "sardine"})
			return err
		}, "Request for unknown model: 'sardine' is not found"},
		{"metadata, unknown version", func(ctx context.Context) error {
			_, err := client.ModelMetadata(ctx, &kserve.ModelMetadataRequest{Name: m.Name, Version: "7"})
			return err
		}, "Request for unknown model: 'fish_classifier' version 7 is not found"},
		{"config, unknown model", func(ctx context.Context) error {
			_, err := client.ModelConfig(ctx, &kserve.ModelConfigRequest{Name: "sardine"})
			return err
		}, "Request for unknown model: 'sardine' is not found"},
		{"config, unknown version", func(ctx context.Context) error {
			_, err := client.ModelConfig(ctx, &kserve.ModelConfigRequest{Name: m.Name, Version: "7"})
			return err
		}, "version 7 is not found"},
		{"infer, unknown model", func(ctx context.Context) error {
			_, err := client.ModelInfer(ctx, withModel("sardine", ""))
			return err
		}, "Request for unknown model: 'sardine' is not found"},
		{"infer, unknown version", func(ctx context.Context) error {
			_, err := client.ModelInfer(ctx, withModel(m.Name, "7"))
			return err
		}, "version 7 is not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(callCtx(t))
			wantCode(t, err, codes.NotFound)
			if msg := status.Convert(err).Message(); !strings.Contains(msg, tt.want) {
				t.Errorf("message %q, want it to contain %q", msg, tt.want)
			}
		})
	}
}

// --- inference ----------------------------------------------------------------

func TestInferScoresEachItem(t *testing.T) {
	def := tritontest.DefaultModel()
	fp16 := smallModel()
	fp16.Input.Datatype = "FP16"
	uint8NHWC := smallModel()
	uint8NHWC.Input = tritontest.TensorSpec{Name: "image", Datatype: "UINT8", Dims: []int64{5, 7, 3}, Format: kserve.ModelInput_FORMAT_NHWC}
	noBatch := smallModel()
	noBatch.MaxBatchSize = 0

	type testCase struct {
		name  string
		model tritontest.Model
		items func(m tritontest.Model) [][]byte
		// aimed[i] >= 0 is the class item i was built for.
		aimed []int
	}
	aimAt := func(classes ...int) func(m tritontest.Model) [][]byte {
		return func(m tritontest.Model) [][]byte {
			var items [][]byte
			for _, k := range classes {
				items = append(items, tritontest.ItemForClass(m, k))
			}
			return items
		}
	}
	tests := []testCase{
		{"default model, single item", def, aimAt(3), []int{3}},
		{"default model, batch of 3", def, aimAt(0, 4, 8), []int{0, 4, 8}},
		{"default model, full batch of 8 (over 4 MiB)", def, aimAt(1, 2, 3, 4, 5, 6, 7, 8), []int{1, 2, 3, 4, 5, 6, 7, 8}},
		{"default model, noise", def, func(m tritontest.Model) [][]byte {
			return [][]byte{randomItem(m, 1), randomItem(m, 2), randomItem(m, 3)}
		}, []int{-1, -1, -1}},
		{"FP16, every class", fp16, aimAt(0, 1, 2, 3, 4, 5, 6, 7), []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{"FP16, noise", fp16, func(m tritontest.Model) [][]byte {
			return [][]byte{randomItem(m, 4), randomItem(m, 5)}
		}, []int{-1, -1}},
		{"UINT8 NHWC, every class", uint8NHWC, aimAt(8, 7, 6, 5, 4, 3, 2, 1), []int{8, 7, 6, 5, 4, 3, 2, 1}},
		{"UINT8 NHWC, noise", uint8NHWC, func(m tritontest.Model) [][]byte {
			return [][]byte{randomItem(m, 6), randomItem(m, 7), randomItem(m, 8)}
		}, []int{-1, -1, -1}},
		{"no batching", noBatch, aimAt(5), []int{5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := tritontest.Start(t, tt.model)
			client := dial(t, srv.Addr())
			items := tt.items(tt.model)
			resp, err := client.ModelInfer(callCtx(t), inferRequest(tt.model, items...))
			if err != nil {
				t.Fatalf("ModelInfer: %v", err)
			}

			if resp.GetModelName() != "fish_classifier" || resp.GetModelVersion() != "1" || resp.GetId() != "req-1" {
				t.Errorf("response model %q version %q id %q, want fish_classifier, 1, req-1",
					resp.GetModelName(), resp.GetModelVersion(), resp.GetId())
			}
			if len(resp.GetOutputs()) != 1 || len(resp.GetRawOutputContents()) != 1 {
				t.Fatalf("%d outputs, %d raw contents; want 1 and 1", len(resp.GetOutputs()), len(resp.GetRawOutputContents()))
			}
			out := resp.GetOutputs()[0]
			wantShape := []int64{int64(len(items)), 9}
			if tt.model.MaxBatchSize == 0 {
				wantShape = []int64{9}
			}
			if out.GetName() != "logits" || out.GetDatatype() != "FP32" || !slices.Equal(out.GetShape(), wantShape) {
				t.Errorf("output %q %s %v, want logits FP32 %v", out.GetName(), out.GetDatatype(), out.GetShape(), wantShape)
			}
			got := decodeFP32(t, resp.GetRawOutputContents()[0])
			if len(got) != 9*len(items) {
				t.Fatalf("%d scores for %d items of 9 classes", len(got), len(items))
			}
			for i, item := range items {
				scores := got[9*i : 9*(i+1)]
				if want := tritontest.Logits(tt.model, item); !slices.Equal(scores, want) {
					t.Errorf("item %d: scores %v, want Logits %v", i, scores, want)
				}
				if k := tt.aimed[i]; k >= 0 && argmax(scores) != k {
					t.Errorf("item %d aimed at class %d landed on %d (scores %v)", i, k, argmax(scores), scores)
				}
			}
		})
	}
}

func TestInferRejectsInvalidRequests(t *testing.T) {
	m := smallModel()
	srv := tritontest.Start(t, m)
	client := dial(t, srv.Addr())
	item := tritontest.ItemForClass(m, 2)

	tests := []struct {
		name   string
		mutate func(r *kserve.ModelInferRequest)
		want   string // part of the message
	}{
		{"no input", func(r *kserve.ModelInferRequest) { r.Inputs = nil }, "expected 1 inputs but got 0"},
		{"two inputs", func(r *kserve.ModelInferRequest) {
			r.Inputs = append(r.Inputs, proto.CloneOf(r.Inputs[0]))
			r.RawInputContents = append(r.RawInputContents, r.RawInputContents[0])
		}, "expected 1 inputs but got 2"},
		{"wrong input name", func(r *kserve.ModelInferRequest) { r.Inputs[0].Name = "images" }, "unexpected inference input 'images'"},
		{"wrong datatype", func(r *kserve.ModelInferRequest) { r.Inputs[0].Datatype = "FP16" }, "data-type is 'FP16', but model 'fish_classifier' expects 'FP32'"},
		{"shape without batch dimension", func(r *kserve.ModelInferRequest) { r.Inputs[0].Shape = []int64{3, 4, 4} }, "Expected [-1,3,4,4], got [3,4,4]"},
		{"wrong spatial size", func(r *kserve.ModelInferRequest) { r.Inputs[0].Shape = []int64{1, 3, 4, 5} }, "unexpected shape for input 'input'"},
		{"NHWC shape for an NCHW model", func(r *kserve.ModelInferRequest) { r.Inputs[0].Shape = []int64{1, 4, 4, 3} }, "got [1,4,4,3]"},
		{"batch 0", func(r *kserve.ModelInferRequest) {
			r.Inputs[0].Shape[0] = 0
			r.RawInputContents = [][]byte{{}}
		}, "batch-size must be in [1, 8]"},
		{"batch over max_batch_size", func(r *kserve.ModelInferRequest) {
			r.Inputs[0].Shape[0] = 9
			r.RawInputContents = [][]byte{bytes.Repeat(item, 9)}
		}, "batch-size must be in [1, 8]"},
		{"no raw contents", func(r *kserve.ModelInferRequest) { r.RawInputContents = nil }, "expected 1 raw_input_contents"},
		{"two raw contents", func(r *kserve.ModelInferRequest) {
			r.RawInputContents = append(r.RawInputContents, r.RawInputContents[0])
		}, "expected 1 raw_input_contents"},
		{"raw contents too short", func(r *kserve.ModelInferRequest) {
			r.RawInputContents[0] = r.RawInputContents[0][:len(item)-1]
		}, fmt.Sprintf("unexpected total byte size %d for input 'input', expecting %d", len(item)-1, len(item))},
		{"raw contents too long", func(r *kserve.ModelInferRequest) {
			r.RawInputContents[0] = append(slices.Clone(item), 0, 0, 0, 0)
		}, "unexpected total byte size"},
		{"batch 2 declared, 1 item sent", func(r *kserve.ModelInferRequest) { r.Inputs[0].Shape[0] = 2 }, "unexpected total byte size"},
		{"FP16 element size for an FP32 tensor", func(r *kserve.ModelInferRequest) {
			r.RawInputContents[0] = r.RawInputContents[0][:len(item)/2]
		}, "unexpected total byte size"},
		{"typed contents beside raw", func(r *kserve.ModelInferRequest) {
			r.Inputs[0].Contents = &kserve.InferTensorContents{Fp32Contents: []float32{1}}
		}, "contents field must not be specified when using raw_input_contents"},
		{"typed contents only", func(r *kserve.ModelInferRequest) {
			r.Inputs[0].Contents = &kserve.InferTensorContents{Fp32Contents: make([]float32, 48)}
			r.RawInputContents = nil
		}, "raw_input_contents only"},
		{"unknown requested output", func(r *kserve.ModelInferRequest) { r.Outputs[0].Name = "probs" }, "unexpected inference output 'probs'"},
		{"output requested twice", func(r *kserve.ModelInferRequest) {
			r.Outputs = append(r.Outputs, &kserve.ModelInferRequest_InferRequestedOutputTensor{Name: "logits"})
		}, "requested more than once"},
		{"classification 0", func(r *kserve.ModelInferRequest) {
			r.Outputs[0].Parameters = map[string]*kserve.InferParameter{
				"classification": {ParameterChoice: &kserve.InferParameter_Int64Param{Int64Param: 0}},
			}
		}, "must be an int64_param >= 1"},
		{"classification as a string", func(r *kserve.ModelInferRequest) {
			r.Outputs[0].Parameters = map[string]*kserve.InferParameter{
				"classification": {ParameterChoice: &kserve.InferParameter_StringParam{StringParam: "3"}},
			}
		}, "must be an int64_param >= 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := inferRequest(m, item)
			tt.mutate(req)
			_, err := client.ModelInfer(callCtx(t), req)
			wantCode(t, err, codes.InvalidArgument)
			if msg := status.Convert(err).Message(); !strings.Contains(msg, tt.want) {
				t.Errorf("message %q, want it to contain %q", msg, tt.want)
			}
		})
	}

	t.Run("no requested outputs means all outputs", func(t *testing.T) {
		req := inferRequest(m, item)
		req.Outputs = nil
		resp, err := client.ModelInfer(callCtx(t), req)
		if err != nil {
			t.Fatalf("ModelInfer: %v", err)
		}
		if got := resp.GetOutputs(); len(got) != 1 || got[0].GetName() != "logits" {
			t.Errorf("outputs %v, want logits", got)
		}
	})
}

func TestClassificationExtension(t *testing.T) {
	m := smallModel()
	unlabelled := smallModel()
	unlabelled.Labels = nil

	classify := func(n int64) func(r *kserve.ModelInferRequest) {
		return func(r *kserve.ModelInferRequest) {
			r.Outputs[0].Parameters = map[string]*kserve.InferParameter{
				"classification": {ParameterChoice: &kserve.InferParameter_Int64Param{Int64Param: n}},
			}
		}
	}
	tests := []struct {
		name    string
		model   tritontest.Model
		classes []int
		n       int64
		wantN   int
	}{
		{"top 3 of one item", m, []int{4}, 3, 3},
		{"top 1 of a batch of 2", m, []int{0, 8}, 1, 1},
		{"more than there are classes", m, []int{6}, 50, 9},
		{"no labels", unlabelled, []int{2, 7}, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := tritontest.Start(t, tt.model)
			client := dial(t, srv.Addr())
			var items [][]byte
			for _, k := range tt.classes {
				items = append(items, tritontest.ItemForClass(tt.model, k))
			}
			req := inferRequest(tt.model, items...)
			classify(tt.n)(req)
			resp, err := client.ModelInfer(callCtx(t), req)
			if err != nil {
				t.Fatalf("ModelInfer: %v", err)
			}
			out := resp.GetOutputs()[0]
			if wantShape := []int64{int64(len(items)), int64(tt.wantN)}; out.GetDatatype() != "BYTES" || !slices.Equal(out.GetShape(), wantShape) {
				t.Fatalf("output %s %v, want BYTES %v", out.GetDatatype(), out.GetShape(), wantShape)
			}
			got := decodeBytes(t, resp.GetRawOutputContents()[0])
			if len(got) != len(items)*tt.wantN {
				t.Fatalf("%d elements, want %d", len(got), len(items)*tt.wantN)
			}
			for i, item := range items {
				logits := tritontest.Logits(tt.model, item)
				order := make([]int, len(logits))
				for j := range order {
					order[j] = j
				}
				slices.SortStableFunc(order, func(a, b int) int {
					if logits[a] > logits[b] {
						return -1
					}
					if logits[a] < logits[b] {
						return 1
					}
					return 0
				})
				for j := range tt.wantN {
					idx := order[j]
					want := fmt.Sprintf("%f:%d", logits[idx], idx)
					if tt.model.Labels != nil {
						want += ":" + tt.model.Labels[idx]
					}
					if g := got[i*tt.wantN+j]; g != want {
						t.Errorf("item %d, rank %d: %q, want %q", i, j, g, want)
					}
				}
				if top := strings.Split(got[i*tt.wantN], ":"); top[1] != fmt.Sprint(tt.classes[i]) {
					t.Errorf("item %d aimed at class %d: top element %q", i, tt.classes[i], top)
				}
			}
		})
	}
}

// --- faults -----------------------------------------------------------------------

func TestFaults(t *testing.T) {
	m := smallModel()
	srv := tritontest.Start(t, m)
	client := dial(t, srv.Addr())
	item := tritontest.ItemForClass(m, 1)

	tests := []struct {
		name  string
		fault tritontest.Fault
		code  codes.Code
		// check inspects a successful response.
		check func(t *testing.T, resp *kserve.ModelInferResponse)
	}{
		{name: "unavailable", fault: tritontest.Fault{Code: codes.Unavailable}, code: codes.Unavailable},
		{name: "internal", fault: tritontest.Fault{Code: codes.Internal, Message: "onnxruntime exploded"}, code: codes.Internal},
		{name: "invalid argument", fault: tritontest.Fault{Code: codes.InvalidArgument}, code: codes.InvalidArgument},
		{name: "not found", fault: tritontest.Fault{Code: codes.NotFound}, code: codes.NotFound},
		{name: "resource exhausted", fault: tritontest.Fault{Code: codes.ResourceExhausted}, code: codes.ResourceExhausted},
		{name: "model not ready", fault: tritontest.Fault{ModelNotReady: true}, code: codes.NotFound},
		{name: "wrong shape", fault: tritontest.Fault{WrongShape: true}, check: func(t *testing.T, resp *kserve.ModelInferResponse) {
			out := resp.GetOutputs()[0]
			if !slices.Equal(out.GetShape(), []int64{1, 10}) || out.GetDatatype() != "FP32" || len(resp.GetRawOutputContents()[0]) != 36 {
				t.Errorf("got %s %v with %d bytes, want FP32 [1 10] with 36 bytes", out.GetDatatype(), out.GetShape(), len(resp.GetRawOutputContents()[0]))
			}
		}},
		{name: "wrong datatype", fault: tritontest.Fault{WrongDatatype: true}, check: func(t *testing.T, resp *kserve.ModelInferResponse) {
			out := resp.GetOutputs()[0]
			if out.GetDatatype() != "INT64" || !slices.Equal(out.GetShape(), []int64{1, 9}) || len(resp.GetRawOutputContents()[0]) != 36 {
				t.Errorf("got %s %v with %d bytes, want INT64 [1 9] with 36 bytes", out.GetDatatype(), out.GetShape(), len(resp.GetRawOutputContents()[0]))
			}
		}},
		{name: "missing output", fault: tritontest.Fault{MissingOutput: true}, check: func(t *testing.T, resp *kserve.ModelInferResponse) {
			if len(resp.GetOutputs()) != 0 || len(resp.GetRawOutputContents()) != 0 {
				t.Errorf("got %d outputs and %d raw contents, want none", len(resp.GetOutputs()), len(resp.GetRawOutputContents()))
			}
		}},
		{name: "wrong id", fault: tritontest.Fault{WrongID: true}, check: func(t *testing.T, resp *kserve.ModelInferResponse) {
			if resp.GetId() != "req-1-crossed" || len(resp.GetOutputs()) != 1 {
				t.Errorf("got id %q with %d outputs, want \"req-1-crossed\" with 1", resp.GetId(), len(resp.GetOutputs()))
			}
		}},
		{name: "short raw output", fault: tritontest.Fault{ShortRawOutput: true}, check: func(t *testing.T, resp *kserve.ModelInferResponse) {
			out := resp.GetOutputs()[0]
			if out.GetDatatype() != "FP32" || !slices.Equal(out.GetShape(), []int64{1, 9}) || len(resp.GetRawOutputContents()[0]) != 32 {
				t.Errorf("got %s %v with %d bytes, want FP32 [1 9] with 32 bytes", out.GetDatatype(), out.GetShape(), len(resp.GetRawOutputContents()[0]))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.SetFault(tt.fault)
			t.Cleanup(func() { srv.SetFault(tritontest.Fault{}) })
			resp, err := client.ModelInfer(callCtx(t), inferRequest(m, item))
			wantCode(t, err, tt.code)
			if tt.fault.Message != "" && status.Convert(err).Message() != tt.fault.Message {
				t.Errorf("message %q, want %q", status.Convert(err).Message(), tt.fault.Message)
			}
			if tt.check != nil {
				tt.check(t, resp)
			}
		})
	}

	t.Run("healed", func(t *testing.T) {
		if _, err := client.ModelInfer(callCtx(t), inferRequest(m, item)); err != nil {
			t.Fatalf("ModelInfer after SetFault(Fault{}): %v", err)
		}
	})
}

func TestFailCountThenSuccess(t *testing.T) {
	m := smallModel()
	srv := tritontest.Start(t, m, tritontest.WithFault(tritontest.Fault{Code: codes.Unavailable, FailCount: 2}))
	client := dial(t, srv.Addr())

	want := []codes.Code{codes.Unavailable, codes.Unavailable, codes.OK, codes.OK}
	for i, code := range want {
		_, err := client.ModelInfer(callCtx(t), inferRequest(m, tritontest.ItemForClass(m, 0)))
		if got := status.Code(err); got != code {
			t.Errorf("call %d: %v (%v), want %v", i+1, got, err, code)
		}
	}
	if got := srv.InferCount(); got != int64(len(want)) {
		t.Errorf("InferCount = %d, want %d", got, len(want))
	}

	// SetFault starts the countdown again.
	srv.SetFault(tritontest.Fault{Code: codes.Internal, FailCount: 1})
	_, err := client.ModelInfer(callCtx(t), inferRequest(m, tritontest.ItemForClass(m, 0)))
	wantCode(t, err, codes.Internal)
	_, err = client.ModelInfer(callCtx(t), inferRequest(m, tritontest.ItemForClass(m, 0)))
	wantCode(t, err, codes.OK)
}

func TestLatency(t *testing.T) {
	m := smallModel()
	srv := tritontest.Start(t, m)
	client := dial(t, srv.Addr())
	req := inferRequest(m, tritontest.ItemForClass(m, 0))
	// Connect first, so that the short deadlines below are not spent dialling.
	if _, err := client.ServerLive(callCtx(t), &kserve.ServerLiveRequest{}); err != nil {
		t.Fatalf("ServerLive: %v", err)
	}

	t.Run("answers after the latency", func(t *testing.T) {
		const latency = 30 * time.Millisecond
		srv.SetFault(tritontest.Fault{Latency: latency})
		start := time.Now()
		if _, err := client.ModelInfer(callCtx(t), req); err != nil {
			t.Fatalf("ModelInfer: %v", err)
		}
		if elapsed := time.Since(start); elapsed < latency {
			t.Errorf("answered after %v, before the latency %v", elapsed, latency)
		}
	})

	t.Run("client deadline shorter than the latency", func(t *testing.T) {
		srv.SetFault(tritontest.Fault{Latency: time.Hour})
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		_, err := client.ModelInfer(ctx, req)
		wantCode(t, err, codes.DeadlineExceeded)
		waitUntil(t, "the handler to return", func() bool { return srv.InFlight() == 0 })
		last, _ := srv.LastRequest()
		if !last.Finished || (last.Code != codes.DeadlineExceeded && last.Code != codes.Canceled) {
			t.Errorf("server side: finished %v with %v, want DeadlineExceeded or Canceled", last.Finished, last.Code)
		}
	})
	srv.SetFault(tritontest.Fault{})
}

func TestHang(t *testing.T) {
	m := smallModel()
	srv := tritontest.Start(t, m, tritontest.WithFault(tritontest.Fault{Hang: true}))
	client := dial(t, srv.Addr())
	req := inferRequest(m, tritontest.ItemForClass(m, 0))

	// Connect first, so that the short deadline below is not spent dialling.
	if _, err := client.ServerLive(callCtx(t), &kserve.ServerLiveRequest{}); err != nil {
		t.Fatalf("ServerLive: %v", err)
	}

	t.Run("until the deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		_, err := client.ModelInfer(ctx, req)
		wantCode(t, err, codes.DeadlineExceeded)
		waitUntil(t, "the handler to return", func() bool { return srv.InFlight() == 0 })
		last, ok := srv.LastRequest()
		if !ok || !last.Finished || (last.Code != codes.DeadlineExceeded && last.Code != codes.Canceled) {
			t.Errorf("server side: received %v, finished %v with %v; want DeadlineExceeded or Canceled", ok, last.Finished, last.Code)
		}
	})

	t.Run("until the client cancels", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, err := client.ModelInfer(ctx, req)
			done <- err
		}()
		waitUntil(t, "the call to reach the server", func() bool { return srv.InFlight() == 1 })
		cancel()
		wantCode(t, <-done, codes.Canceled)
		waitUntil(t, "the handler to return", func() bool { return srv.InFlight() == 0 })
		last, _ := srv.LastRequest()
		if last.Code != codes.Canceled {
			t.Errorf("server side code %v, want Canceled", last.Code)
		}
	})
}

func TestReadinessFaults(t *testing.T) {
	m := smallModel()
	srv := tritontest.Start(t, m)
	client := dial(t, srv.Addr())
	ctx := callCtx(t)

	serverReady := func() bool {
		t.Helper()
		r, err := client.ServerReady(ctx, &kserve.ServerReadyRequest{})
		if err != nil {
			t.Fatalf("ServerReady: %v", err)
		}
		return r.GetReady()
	}
	modelReady := func() bool {
		t.Helper()
		r, err := client.ModelReady(ctx, &kserve.ModelReadyRequest{Name: m.Name})
		if err != nil {
			t.Fatalf("ModelReady: %v", err)
		}
		return r.GetReady()
	}
	infer := func() error {
		_, err := client.ModelInfer(ctx, inferRequest(m, tritontest.ItemForClass(m, 0)))
		return err
	}

	srv.SetFault(tritontest.Fault{ModelNotReady: true})
	if !serverReady() || modelReady() {
		t.Errorf("ModelNotReady: server ready %v, model ready %v; want true, false", serverReady(), modelReady())
	}
	err := infer()
	wantCode(t, err, codes.NotFound)
	if !strings.Contains(status.Convert(err).Message(), "has no available versions") {
		t.Errorf("ModelInfer message %q is not Triton's for an unloaded model", status.Convert(err).Message())
	}
	_, err = client.ModelMetadata(ctx, &kserve.ModelMetadataRequest{Name: m.Name})
	wantCode(t, err, codes.NotFound)

	srv.SetFault(tritontest.Fault{ServerNotReady: true})
	if serverReady() || !modelReady() {
		t.Errorf("ServerNotReady: server ready %v, model ready %v; want false, true", serverReady(), modelReady())
	}
	live, err := client.ServerLive(ctx, &kserve.ServerLiveRequest{})
	if err != nil || !live.GetLive() {
		t.Errorf("ServerNotReady: ServerLive = %v, %v; want live", live, err)
	}
	if err := infer(); err != nil {
		t.Errorf("ServerNotReady: ModelInfer: %v", err)
	}

	srv.SetFault(tritontest.Fault{})
	if !serverReady() || !modelReady() {
		t.Errorf("healed: server ready %v, model ready %v; want both", serverReady(), modelReady())
	}
}

// --- lifecycle ---------------------------------------------------------------------

func TestStopAndRestartOnTheSameAddress(t *testing.T) {
	m := smallModel()
	srv := tritontest.Start(t, m)
	addr := srv.Addr()
	client := dial(t, addr)
	req := inferRequest(m, tritontest.ItemForClass(m, 0))

	if _, err := client.ModelInfer(callCtx(t), req); err != nil {
		t.Fatalf("ModelInfer before Stop: %v", err)
	}

	// A call in progress when the server goes down fails UNAVAILABLE.
	srv.SetFault(tritontest.Fault{Hang: true})
	done := make(chan error, 1)
	go func() {
		_, err := client.ModelInfer(callCtx(t), req)
		done <- err
	}()
	waitUntil(t, "the call to reach the server", func() bool { return srv.InFlight() == 1 })
	srv.Stop()
	if n := srv.InFlight(); n != 0 {
		t.Errorf("InFlight = %d after Stop, want 0", n)
	}
	wantCode(t, <-done, codes.Unavailable)
	srv.SetFault(tritontest.Fault{})
	srv.Stop() // idempotent

	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("dial %s after Stop: connected, want refused", addr)
	}
	_, err := client.ModelInfer(callCtx(t), req)
	wantCode(t, err, codes.Unavailable)
	_, err = client.ServerLive(callCtx(t), &kserve.ServerLiveRequest{})
	wantCode(t, err, codes.Unavailable)

	srv.Restart()
	if srv.Addr() != addr {
		t.Fatalf("Addr after Restart = %s, want %s", srv.Addr(), addr)
	}
	// The same client connection reconnects on its own; WaitForReady lets the
	// call wait for that instead of failing fast.
	if _, err := client.ModelInfer(callCtx(t), req, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("ModelInfer after Restart: %v", err)
	}
	srv.Restart() // no-op while running
	if _, err := client.ModelInfer(callCtx(t), req); err != nil {
		t.Fatalf("ModelInfer after a second Restart: %v", err)
	}
	if got := srv.InferCount(); got != 4 {
		t.Errorf("InferCount = %d, want 4 (counters survive a restart)", got)
	}
}

// TestStopLeavesNoGoroutines runs a server through calls, a hang cancelled by
// a deadline, Stop and Restart, and checks that every goroutine it started is
// gone afterwards. Not parallel: it counts the process's goroutines.
func TestStopLeavesNoGoroutines(t *testing.T) {
	m := smallModel()
	cycle := func() {
		t.Helper()
		srv := tritontest.Start(t, m)
		conn := dialConn(t, srv.Addr())
		client := kserve.NewGRPCInferenceServiceClient(conn)
		req := inferRequest(m, tritontest.ItemForClass(m, 0))
		if _, err := client.ModelInfer(callCtx(t), req); err != nil {
			t.Fatalf("ModelInfer: %v", err)
		}
		srv.SetFault(tritontest.Fault{Hang: true})
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		_, err := client.ModelInfer(ctx, req)
		cancel()
		wantCode(t, err, codes.DeadlineExceeded)
		srv.Stop()
		srv.Restart()
		waitServing(t, client)
		srv.SetFault(tritontest.Fault{Latency: time.Hour})
		ctx, cancel = context.WithTimeout(t.Context(), 50*time.Millisecond)
		_, err = client.ModelInfer(ctx, req, grpc.WaitForReady(true))
		cancel()
		wantCode(t, err, codes.DeadlineExceeded)
		srv.Stop()
		if err := conn.Close(); err != nil {
			t.Fatalf("close client: %v", err)
		}
	}
	cycle() // lets grpc start its process-wide goroutines, once
	before := runtime.NumGoroutine()
	cycle()

	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			var stacks strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			t.Fatalf("%d goroutines after Stop, %d before Start:\n%s", runtime.NumGoroutine(), before, stacks.String())
		}
		time.Sleep(time.Millisecond)
	}
}

// --- recording and concurrency -----------------------------------------------------------

func TestRequestsRecordWhatTheClientSent(t *testing.T) {
	m := smallModel()
	srv := tritontest.Start(t, m)
	client := dial(t, srv.Addr())
	items := [][]byte{tritontest.ItemForClass(m, 3), tritontest.ItemForClass(m, 5)}

	req := inferRequest(m, items...)
	req.Id = "abc-123"
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", "abc-123")
	if _, err := client.ModelInfer(ctx, req); err != nil {
		t.Fatalf("ModelInfer: %v", err)
	}
	_, err := client.ModelInfer(context.Background(), inferRequest(m, items[0]))
	if err != nil {
		t.Fatalf("ModelInfer without deadline: %v", err)
	}

	reqs := srv.Requests()
	if len(reqs) != 2 || srv.InferCount() != 2 {
		t.Fatalf("%d requests recorded, InferCount %d; want 2 and 2", len(reqs), srv.InferCount())
	}
	r := reqs[0]
	in := r.Request.GetInputs()[0]
	if r.ModelName != "fish_classifier" || r.ID != "abc-123" || in.GetDatatype() != "FP32" ||
		!slices.Equal(in.GetShape(), []int64{2, 3, 4, 4}) {
		t.Errorf("recorded model %q id %q input %s %v; want fish_classifier abc-123 FP32 [2 3 4 4]",
			r.ModelName, r.ID, in.GetDatatype(), in.GetShape())
	}
	if raw := r.Request.GetRawInputContents(); len(raw) != 1 || !bytes.Equal(raw[0], bytes.Join(items, nil)) {
		t.Errorf("recorded raw input differs from what was sent")
	}
	if !r.HasDeadline || r.Timeout <= 0 || r.Timeout > 3*time.Second {
		t.Errorf("recorded timeout %v (deadline %v), want in (0, 3s]", r.Timeout, r.HasDeadline)
	}
	if got := r.Metadata.Get("x-request-id"); !slices.Equal(got, []string{"abc-123"}) {
		t.Errorf("recorded x-request-id %v, want [abc-123]", got)
	}
	if !r.Finished || r.Code != codes.OK {
		t.Errorf("recorded outcome finished %v code %v, want true OK", r.Finished, r.Code)
	}
	if reqs[1].HasDeadline || reqs[1].Timeout != 0 {
		t.Errorf("call without deadline recorded timeout %v (deadline %v)", reqs[1].Timeout, reqs[1].HasDeadline)
	}

	srv.ResetRequests()
	if _, ok := srv.LastRequest(); ok || srv.InferCount() != 2 {
		t.Errorf("after ResetRequests: a last request remains (%v) or InferCount changed (%d)", ok, srv.InferCount())
	}
}

func TestConcurrentCallsAndFaultSwitches(t *testing.T) {
	m := smallModel()
	srv := tritontest.Start(t, m)
	client := dial(t, srv.Addr())

	const workers, calls = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*calls)
	for w := range workers {
		wg.Go(func() {
			for i := range calls {
				k := (w + i) % 9
				item := tritontest.ItemForClass(m, k)
				resp, err := client.ModelInfer(callCtx(t), inferRequest(m, item))
				if err != nil {
					errs <- err
					continue
				}
				// WrongShape is switched on and off meanwhile; the scores stay right.
				raw := resp.GetRawOutputContents()[0]
				if len(raw) != 36 {
					errs <- fmt.Errorf("worker %d call %d: %d bytes of scores, want 36", w, i, len(raw))
					continue
				}
				if got := decodeFP32(t, raw); argmax(got) != k {
					errs <- fmt.Errorf("worker %d call %d: class %d, want %d", w, i, argmax(got), k)
				}
			}
		})
	}
	stop := make(chan struct{})
	switched := make(chan struct{})
	go func() {
		defer close(switched)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			srv.SetFault(tritontest.Fault{WrongShape: i%2 == 0})
			_ = srv.Requests()
			runtime.Gosched()
		}
	}()
	wg.Wait()
	close(stop)
	<-switched
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := srv.InferCount(); got != workers*calls {
		t.Errorf("InferCount = %d, want %d", got, workers*calls)
	}
}

func TestStartRejectsModelsItCannotServe(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(m *tritontest.Model)
		want   string
	}{
		{"no name", func(m *tritontest.Model) { m.Name = "" }, "Name is empty"},
		{"BF16 input", func(m *tritontest.Model) { m.Input.Datatype = "BF16" }, "Input.Datatype"},
		{"4 channels", func(m *tritontest.Model) { m.Input.Dims = []int64{4, 8, 8} }, "3 channels"},
		{"variable dims", func(m *tritontest.Model) { m.Input.Dims = []int64{3, -1, -1} }, "Input.Dims"},
		{"labels do not match classes", func(m *tritontest.Model) { m.Labels = m.Labels[:3] }, "3 Labels for 9 classes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := smallModel()
			tt.mutate(&m)
			ft := &fatalRecorder{TB: t}
			func() {
				defer func() { _ = recover() }()
				tritontest.Start(ft, m)
			}()
			if !strings.Contains(ft.msg, tt.want) {
				t.Errorf("Start failed with %q, want it to mention %q", ft.msg, tt.want)
			}
		})
	}
}

// fatalRecorder catches Fatalf, so that a test can check that Start refuses.
type fatalRecorder struct {
	testing.TB
	msg string
}

var errFatal = errors.New("Fatalf called")

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(errFatal)
}
