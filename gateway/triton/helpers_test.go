package triton

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/kserve"
	"github.com/fish-classifier/fish-classifier/gateway/modelconfig"
	"github.com/fish-classifier/fish-classifier/gateway/triton/tritontest"
	"github.com/fish-classifier/fish-classifier/internal/poll"
)

// testConfig is the configuration of a client of addr in tests: the defaults
// with quick reconnection and short retry waits.
func testConfig(addr, model string) Config {
	c := DefaultConfig()
	c.Address, c.Model = addr, model
	c.RetryBackoff = 2 * time.Millisecond
	c.ConnectBackoffMax = 100 * time.Millisecond
	return c
}

// newTestClient makes a client of cfg with its own (pedantic) registry.
func newTestClient(t testing.TB, cfg Config) (*Client, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	c, err := New(cfg, reg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, reg
}

// env is a tritontest server and a client whose Model was read.
type env struct {
	srv    *tritontest.Server
	model  tritontest.Model
	client *Client
	reg    *prometheus.Registry
	info   gateway.ModelInfo
}

// startEnv serves m and reads it with a client configured by edit (may be nil).
func startEnv(t testing.TB, m tritontest.Model, edit func(*Config)) *env {
	t.Helper()
	srv := tritontest.Start(t, m)
	cfg := testConfig(srv.Addr(), m.Name)
	if edit != nil {
		edit(&cfg)
	}
	c, reg := newTestClient(t, cfg)
	info, err := c.Model(callCtx(t))
	if err != nil {
		t.Fatalf("Model: %v", err)
	}
	srv.ResetRequests() // forget the classification call
	return &env{srv: srv, model: srv.Model(), client: c, reg: reg, info: info}
}

// callCtx is the context of one call: a deadline well beyond what any passing
// call needs.
func callCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// smallModel is DefaultModel on 4×4 images, for tests that run many calls.
func smallModel() tritontest.Model {
	m := tritontest.DefaultModel()
	m.Input.Dims = []int64{3, 4, 4}
	m.Parameters["preprocess_shorter_side"] = "5"
	return m
}

// batchOf joins items, made for the model m describes, into a batch.
func batchOf(m *gateway.ModelInfo, items ...[]byte) gateway.Batch {
	return gateway.Batch{Size: len(items), Data: bytes.Join(items, nil), Model: m}
}

// wantKind fails unless err is a *gateway.Error of kind want whose message
// contains every one of wantIn.
func wantKind(t testing.TB, err error, want gateway.Kind, wantIn ...string) *gateway.Error {
	t.Helper()
	var e *gateway.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want a *gateway.Error of kind %v", err, err, want)
	}
	if e.Kind != want {
		t.Fatalf("kind %v (%v), want %v", e.Kind, err, want)
	}
	for _, s := range wantIn {
		if !strings.Contains(e.Message, s) {
			t.Errorf("message %q does not contain %q", e.Message, s)
		}
	}
	return e
}

// waitUntil waits, a bounded time, for cond to hold.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, 5*time.Second, 2*time.Millisecond, what, cond)
}

// stubServer serves fixed metadata and configuration and answers ModelInfer
// with infer, for answers tritontest never gives.
type stubServer struct {
	kserve.UnimplementedGRPCInferenceServiceServer
	meta  *kserve.ModelMetadataResponse
	cfg   *kserve.ModelConfig
	infer func(*kserve.ModelInferRequest) (*kserve.ModelInferResponse, error)
}

func (s *stubServer) ModelMetadata(context.Context, *kserve.ModelMetadataRequest) (*kserve.ModelMetadataResponse, error) {
	return s.meta, nil
}

func (s *stubServer) ModelConfig(context.Context, *kserve.ModelConfigRequest) (*kserve.ModelConfigResponse, error) {
	return &kserve.ModelConfigResponse{Config: s.cfg}, nil
}

func (s *stubServer) ModelInfer(_ context.Context, req *kserve.ModelInferRequest) (*kserve.ModelInferResponse, error) {
	return s.infer(req)
}

// startStub serves s on a loopback port until the test ends.
func startStub(t testing.TB, s *stubServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	gs := grpc.NewServer()
	kserve.RegisterGRPCInferenceServiceServer(gs, s)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

// stubModel is a small model with two outputs, of which the parameter
// output_name picks the second, "probs" of dims [1, 3].
func stubModel() (*kserve.ModelMetadataResponse, *kserve.ModelConfig) {
	meta := &kserve.ModelMetadataResponse{Name: "stub", Versions: []string{"7"}, Platform: "onnxruntime_onnx"}
	cfg := &kserve.ModelConfig{
		Name:         "stub",
		Backend:      "onnxruntime",
		MaxBatchSize: 4,
		Input: []*kserve.ModelInput{{
			Name: "pixels", DataType: kserve.DataType_TYPE_FP32,
			Format: kserve.ModelInput_FORMAT_NCHW, Dims: []int64{3, 2, 2},
		}},
		Output: []*kserve.ModelOutput{
			{Name: "features", DataType: kserve.DataType_TYPE_FP32, Dims: []int64{16}},
			{Name: "probs", DataType: kserve.DataType_TYPE_FP16, Dims: []int64{1, 3}},
		},
		Parameters: map[string]*kserve.ModelParameter{
			modelconfig.ParamOutputName: {StringValue: "probs"},
			"output_kind":               {StringValue: "probabilities"},
		},
	}
	return meta, cfg
}
