package triton

// Tests against tritontest over real loopback sockets: they start gRPC
// servers, yet each takes milliseconds.

import (
	"bytes"
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/kserve"
	"github.com/fish-classifier/fish-classifier/gateway/modelconfig"
	"github.com/fish-classifier/fish-classifier/gateway/triton/tritontest"
	"github.com/fish-classifier/fish-classifier/preprocess"
)

// --- Model -------------------------------------------------------------------

func TestModelDescribesDefaultModel(t *testing.T) {
	e := startEnv(t, tritontest.DefaultModel(), nil)
	m := e.model

	// What DefaultModel's parameters describe: torchvision's ImageNet
	// preprocessing, written out field by field.
	wantSpec := preprocess.Spec{
		Width: 224, Height: 224,
		Resize: preprocess.ResizeShorterCrop, ShorterSide: 256,
		Filter: preprocess.FilterBilinear,
		Scale:  float32(0.00392156862745098),
		Mean:   [3]float32{0.485, 0.456, 0.406},
		Std:    [3]float32{0.229, 0.224, 0.225},
		Order:  preprocess.RGB, Layout: preprocess.NCHW, DataType: preprocess.FP32,
	}
	want := gateway.ModelInfo{
		Name:           "fish_classifier",
		Version:        "1",
		Backend:        "triton",
		Platform:       "onnxruntime_onnx",
		MaxBatchSize:   8,
		Input:          gateway.TensorInfo{Name: "input", Datatype: "FP32", Shape: []int64{3, 224, 224}},
		Output:         gateway.TensorInfo{Name: "logits", Datatype: "FP32", Shape: []int64{9}},
		Labels:         m.Labels, // through the classification extension
		OutputIsLogits: true,
		Preprocess:     wantSpec,
	}
	assertModelInfo(t, e.info, want)
	if len(e.info.Labels) != 9 || e.info.Labels[0] != "Black Sea Sprat" || e.info.Labels[8] != "Trout" {
		t.Errorf("Labels = %q, want the nine species in index order", e.info.Labels)
	}
}

func assertModelInfo(t *testing.T, got, want gateway.ModelInfo) {
	t.Helper()
	if got.Preprocess != want.Preprocess {
		t.Errorf("Preprocess = %+v\nwant         %+v", got.Preprocess, want.Preprocess)
	}
	if !slices.Equal(got.Labels, want.Labels) {
		t.Errorf("Labels = %q, want %q", got.Labels, want.Labels)
	}
	eqTensor := func(a, b gateway.TensorInfo) bool {
		return a.Name == b.Name && a.Datatype == b.Datatype && slices.Equal(a.Shape, b.Shape)
	}
	if got.Name != want.Name || got.Version != want.Version || got.Backend != want.Backend ||
		got.Platform != want.Platform || got.MaxBatchSize != want.MaxBatchSize ||
		!eqTensor(got.Input, want.Input) || !eqTensor(got.Output, want.Output) ||
		got.OutputIsLogits != want.OutputIsLogits {
		t.Errorf("ModelInfo = %+v\nwant        %+v", got, want)
	}
}

func TestModelLabels(t *testing.T) {
	mine := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i"}
	t.Run("configured labels win, and no classification call is made", func(t *testing.T) {
		srv := tritontest.Start(t, smallModel())
		cfg := testConfig(srv.Addr(), "fish_classifier")
		cfg.Labels = mine
		c, _ := newTestClient(t, cfg)
		info, err := c.Model(callCtx(t))
		if err != nil {
			t.Fatalf("Model: %v", err)
		}
		if !slices.Equal(info.Labels, mine) {
			t.Errorf("Labels = %q, want %q", info.Labels, mine)
		}
		if n := srv.InferCount(); n != 0 {
			t.Errorf("InferCount = %d, want 0", n)
		}
	})
	t.Run("configured label count must match the classes", func(t *testing.T) {
		srv := tritontest.Start(t, smallModel())
		cfg := testConfig(srv.Addr(), "fish_classifier")
		cfg.Labels = mine[:8]
		c, _ := newTestClient(t, cfg)
		_, err := c.Model(callCtx(t))
		wantKind(t, err, gateway.KindBadGateway, "8 labels", "9 output classes")
	})
	t.Run("a model without a label file has no labels", func(t *testing.T) {
		m := smallModel()
		m.Labels = nil
		e := startEnv(t, m, nil)
		if e.info.Labels != nil {
			t.Errorf("Labels = %q, want none", e.info.Labels)
		}
	})
	t.Run("the classification call is sent as the extension wants", func(t *testing.T) {
		m := smallModel()
		srv := tritontest.Start(t, m)
		c, _ := newTestClient(t, testConfig(srv.Addr(), m.Name))
		if _, err := c.Model(callCtx(t)); err != nil {
			t.Fatalf("Model: %v", err)
		}
		rec, ok := srv.LastRequest()
		if !ok {
			t.Fatal("no ModelInfer call recorded")
		}
		out := rec.Request.GetOutputs()
		if len(out) != 1 || out[0].GetName() != "logits" || out[0].GetParameters()["classification"].GetInt64Param() != 9 {
			t.Errorf("requested outputs %v, want logits with classification = 9", out)
		}
		if raw := rec.Request.GetRawInputContents(); len(raw) != 1 || len(raw[0]) != m.ItemSize() || bytes.ContainsFunc(raw[0], func(r rune) bool { return r != 0 }) {
			t.Errorf("classification input is not one zero item")
		}
	})
	t.Run("a server gone during the classification call fails Model", func(t *testing.T) {
		m := smallModel()
		srv := tritontest.Start(t, m, tritontest.WithFault(tritontest.Fault{Code: codes.Unavailable}))
		c, _ := newTestClient(t, testConfig(srv.Addr(), m.Name))
		_, err := c.Model(callCtx(t))
		wantKind(t, err, gateway.KindUnavailable)
	})
	t.Run("a server that rejects the classification call leaves labels empty", func(t *testing.T) {
		m := smallModel()
		srv := tritontest.Start(t, m, tritontest.WithFault(tritontest.Fault{Code: codes.InvalidArgument}))
		c, _ := newTestClient(t, testConfig(srv.Addr(), m.Name))
		info, err := c.Model(callCtx(t))
		if err != nil {
			t.Fatalf("Model: %v", err)
		}
		if info.Labels != nil {
			t.Errorf("Labels = %q, want none", info.Labels)
		}
	})
}

func TestModelVariants(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*tritontest.Model)
		check  func(t *testing.T, info gateway.ModelInfo)
		itemOK bool
	}{
		{
			name: "NHWC",
			edit: func(m *tritontest.Model) {
				m.Input.Dims = []int64{224, 224, 3}
				m.Input.Format = kserve.ModelInput_FORMAT_NHWC
			},
			check: func(t *testing.T, info gateway.ModelInfo) {
				s := info.Preprocess
				if s.Layout != preprocess.NHWC || s.Width != 224 || s.Height != 224 {
					t.Errorf("Preprocess layout %v %dx%d, want NHWC 224x224", s.Layout, s.Width, s.Height)
				}
				if !slices.Equal(info.Input.Shape, []int64{224, 224, 3}) {
					t.Errorf("Input.Shape = %v", info.Input.Shape)
				}
			},
		},
		{
			name: "UINT8 input, probabilities",
			edit: func(m *tritontest.Model) {
				m.Input.Datatype = "UINT8"
				m.Parameters = map[string]string{"preprocess_resize": "stretch", "output_kind": "probabilities"}
			},
			check: func(t *testing.T, info gateway.ModelInfo) {
				want := preprocess.Spec{
					Width: 224, Height: 224, Resize: preprocess.ResizeStretch, Filter: preprocess.FilterBilinear,
					Scale: 1, Std: [3]float32{1, 1, 1}, Order: preprocess.RGB, Layout: preprocess.NCHW, DataType: preprocess.UINT8,
				}
				if info.Preprocess != want {
					t.Errorf("Preprocess = %+v, want %+v", info.Preprocess, want)
				}
				if info.Input.Datatype != "UINT8" || info.OutputIsLogits {
					t.Errorf("Input.Datatype %q, OutputIsLogits %v; want UINT8, false", info.Input.Datatype, info.OutputIsLogits)
				}
			},
		},
		{
			name: "FP16 input",
			edit: func(m *tritontest.Model) { m.Input.Datatype = "FP16" },
			check: func(t *testing.T, info gateway.ModelInfo) {
				if info.Preprocess.DataType != preprocess.FP16 || info.Input.Datatype != "FP16" {
					t.Errorf("datatype %v / %q, want FP16", info.Preprocess.DataType, info.Input.Datatype)
				}
			},
		},
		{
			name: "no batching",
			edit: func(m *tritontest.Model) { m.MaxBatchSize = 0 },
			check: func(t *testing.T, info gateway.ModelInfo) {
				if info.MaxBatchSize != 0 || !slices.Equal(info.Input.Shape, []int64{3, 224, 224}) {
					t.Errorf("MaxBatchSize %d, Input.Shape %v; want 0, [3 224 224]", info.MaxBatchSize, info.Input.Shape)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tritontest.DefaultModel()
			tt.edit(&m)
			e := startEnv(t, m, nil)
			tt.check(t, e.info)
			if !slices.Equal(e.info.Labels, m.Labels) {
				t.Errorf("Labels = %q, want %q", e.info.Labels, m.Labels)
			}
			// And inference works in that variant: every class is recognised.
			for k := range m.NumClasses() {
				item := tritontest.ItemForClass(m, k)
				scores, err := e.client.Infer(callCtx(t), batchOf(&e.info, item))
				if err != nil {
					t.Fatalf("Infer class %d: %v", k, err)
				}
				if !slices.Equal(scores.Values, tritontest.Logits(m, item)) {
					t.Errorf("class %d: scores %v, want %v", k, scores.Values, tritontest.Logits(m, item))
				}
			}
			rec, _ := e.srv.LastRequest()
			wantShape := m.Input.Dims
			if m.MaxBatchSize > 0 {
				wantShape = append([]int64{1}, wantShape...)
			}
			if got := rec.Request.GetInputs()[0].GetShape(); !slices.Equal(got, wantShape) {
				t.Errorf("sent shape %v, want %v", got, wantShape)
			}
			if got := rec.Request.GetInputs()[0].GetDatatype(); got != m.Input.Datatype {
				t.Errorf("sent datatype %q, want %q", got, m.Input.Datatype)
			}
		})
	}
}

func TestModelVersion(t *testing.T) {
	m := smallModel()
	srv := tritontest.Start(t, m)
	t.Run("pinned", func(t *testing.T) {
		cfg := testConfig(srv.Addr(), m.Name)
		cfg.Version = "1"
		c, _ := newTestClient(t, cfg)
		info, err := c.Model(callCtx(t))
		if err != nil || info.Version != "1" {
			t.Fatalf("Model = version %q, %v; want 1", info.Version, err)
		}
		if _, err := c.Infer(callCtx(t), batchOf(&info, tritontest.ItemForClass(m, 1))); err != nil {
			t.Fatalf("Infer: %v", err)
		}
		if rec, _ := srv.LastRequest(); rec.ModelVersion != "1" || rec.ModelName != m.Name {
			t.Errorf("sent model %q version %q, want %q version 1", rec.ModelName, rec.ModelVersion, m.Name)
		}
	})
	t.Run("unpinned sends no version", func(t *testing.T) {
		c, _ := newTestClient(t, testConfig(srv.Addr(), m.Name))
		info, err := c.Model(callCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Infer(callCtx(t), batchOf(&info, tritontest.ItemForClass(m, 1))); err != nil {
			t.Fatalf("Infer: %v", err)
		}
		if rec, _ := srv.LastRequest(); rec.ModelVersion != "" {
			t.Errorf("sent version %q, want \"\" (Triton's choice)", rec.ModelVersion)
		}
	})
	// An unknown model or version is the gateway's configuration (MODEL_NAME,
	// MODEL_VERSION), or a model Triton has not loaded: unavailable, never the
	// HTTP client's fault.
	t.Run("unknown version is unavailable", func(t *testing.T) {
		cfg := testConfig(srv.Addr(), m.Name)
		cfg.Version = "2"
		c, _ := newTestClient(t, cfg)
		_, err := c.Model(callCtx(t))
		wantKind(t, err, gateway.KindUnavailable, "not available", "version 2 is not found")
	})
	t.Run("unknown model", func(t *testing.T) {
		c, _ := newTestClient(t, testConfig(srv.Addr(), "salmon"))
		_, err := c.Model(callCtx(t))
		wantKind(t, err, gateway.KindUnavailable, "'salmon' is not found")
		wantKind(t, c.Ready(callCtx(t)), gateway.KindUnavailable, `model "salmon" is not ready`)
	})
}

// --- Infer ---------------------------------------------------------------------

func TestInferSendsTheBatchAndReadsEachItemsScores(t *testing.T) {
	e := startEnv(t, tritontest.DefaultModel(), nil)
	m := e.model
	for _, size := range []int{1, 3, 8} {
		items := make([][]byte, size)
		for i := range items {
			items[i] = tritontest.ItemForClass(m, (i*5+2)%m.NumClasses())
		}
		in := batchOf(&e.info, items...)
		scores, err := e.client.Infer(callCtx(t), in)
		if err != nil {
			t.Fatalf("Infer(%d items): %v", size, err)
		}
		if scores.Size != size || scores.Classes != 9 || len(scores.Values) != size*9 {
			t.Fatalf("scores %d×%d (%d values), want %d×9", scores.Size, scores.Classes, len(scores.Values), size)
		}
		for i, item := range items {
			if got, want := scores.Row(i), tritontest.Logits(m, item); !slices.Equal(got, want) {
				t.Errorf("batch %d item %d: scores %v, want %v", size, i, got, want)
			}
			if got, want := argmax(scores.Row(i)), (i*5+2)%9; got != want {
				t.Errorf("batch %d item %d: class %d, want %d", size, i, got, want)
			}
		}

		rec, ok := e.srv.LastRequest()
		if !ok {
			t.Fatal("no request recorded")
		}
		req := rec.Request
		if len(req.GetInputs()) != 1 || len(req.GetRawInputContents()) != 1 {
			t.Fatalf("sent %d inputs, %d raw contents; want 1, 1", len(req.GetInputs()), len(req.GetRawInputContents()))
		}
		input := req.GetInputs()[0]
		if input.GetName() != "input" || input.GetDatatype() != "FP32" || !slices.Equal(input.GetShape(), []int64{int64(size), 3, 224, 224}) {
			t.Errorf("sent input %q %q %v, want \"input\" FP32 [%d 3 224 224]", input.GetName(), input.GetDatatype(), input.GetShape(), size)
		}
		if input.GetContents() != nil {
			t.Error("sent typed contents besides raw_input_contents")
		}
		if !bytes.Equal(req.GetRawInputContents()[0], in.Data) {
			t.Errorf("the server received other bytes than the batch")
		}
		if out := req.GetOutputs(); len(out) != 1 || out[0].GetName() != "logits" || len(out[0].GetParameters()) != 0 {
			t.Errorf("requested outputs %v, want logits alone, without parameters", out)
		}
	}
}

func TestInferRequestSharesTheBatchBytes(t *testing.T) {
	st := &modelTensors{modelconfig.Tensors{InputName: "input", InputDatatype: "FP32", InputDims: []int64{3, 2, 2}, ItemBytes: 48, Batched: true, MaxBatch: 4, OutputName: "out", Classes: 2}}
	c := &Client{cfg: Config{Model: "m"}}
	data := make([]byte, 96)
	msg := c.inferRequest(st, gateway.Batch{Size: 2, Data: data}, "")
	if len(msg.raw) != 1 || len(msg.req.GetRawInputContents()) != 0 {
		t.Fatalf("%d raw contents beside the request, %d inside; want 1, 0", len(msg.raw), len(msg.req.GetRawInputContents()))
	}
	if raw := msg.raw[0]; &raw[0] != &data[0] || len(raw) != len(data) {
		t.Error("raw_input_contents[0] is a copy of the batch, want the batch's own bytes")
	}
	if got := msg.req.GetInputs()[0].GetShape(); !slices.Equal(got, []int64{2, 3, 2, 2}) {
		t.Errorf("shape %v, want [2 3 2 2]", got)
	}
}

func TestInferRequestID(t *testing.T) {
	e := startEnv(t, smallModel(), nil)
	item := tritontest.ItemForClass(e.model, 3)

	t.Run("the context's id as the request's id and x-request-id", func(t *testing.T) {
		ctx := gateway.WithRequestID(callCtx(t), "req-42")
		if _, err := e.client.Infer(ctx, batchOf(&e.info, item, item)); err != nil {
			t.Fatal(err)
		}
		rec, _ := e.srv.LastRequest()
		if rec.ID != "req-42" {
			t.Errorf("request id %q, want req-42", rec.ID)
		}
		if got := rec.Metadata.Get(RequestIDHeader); !slices.Equal(got, []string{"req-42"}) {
			t.Errorf("x-request-id metadata %v, want [req-42]", got)
		}
	})
	t.Run("none without one in the context", func(t *testing.T) {
		if _, err := e.client.Infer(callCtx(t), batchOf(&e.info, item)); err != nil {
			t.Fatal(err)
		}
		rec, _ := e.srv.LastRequest()
		if rec.ID != "" || len(rec.Metadata.Get(RequestIDHeader)) != 0 {
			t.Errorf("request id %q, x-request-id %v; want none", rec.ID, rec.Metadata.Get(RequestIDHeader))
		}
	})
	t.Run("an answer for another id is refused", func(t *testing.T) {
		e.srv.SetFault(tritontest.Fault{WrongID: true})
		t.Cleanup(func() { e.srv.SetFault(tritontest.Fault{}) })
		_, err := e.client.Infer(gateway.WithRequestID(callCtx(t), "req-43"), batchOf(&e.info, item))
		wantKind(t, err, gateway.KindBadGateway, `id "req-43-crossed" for request "req-43"`)
	})
}

func TestInferRejectsBatchesTheModelCannotTake(t *testing.T) {
	item := tritontest.ItemForClass(smallModel(), 0)
	batched := startEnv(t, smallModel(), nil)
	unbatchedModel := smallModel()
	unbatchedModel.MaxBatchSize = 0
	unbatched := startEnv(t, unbatchedModel, nil)
	tests := []struct {
		name string
		e    *env
		in   gateway.Batch
		want string
	}{
		{"empty", batched, gateway.Batch{Model: &batched.info}, "batch of 0 items"},
		{"over max_batch_size", batched, batchOf(&batched.info, slices.Repeat([][]byte{item}, 9)...), "exceeds"},
		{"bytes short of the size", batched, gateway.Batch{Size: 2, Data: item, Model: &batched.info}, "want 384"},
		{"two items without batching", unbatched, batchOf(&unbatched.info, item, item), "no batch dimension"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.e.client.Infer(callCtx(t), tt.in)
			wantKind(t, err, gateway.KindInternal, tt.want)
			if n := tt.e.srv.InferCount(); n != 1 { // the classification call only
				t.Errorf("InferCount = %d, want nothing sent", n-1)
			}
		})
	}
	t.Run("one item without batching has no batch dimension", func(t *testing.T) {
		if _, err := unbatched.client.Infer(callCtx(t), batchOf(&unbatched.info, item)); err != nil {
			t.Fatal(err)
		}
		rec, _ := unbatched.srv.LastRequest()
		if got := rec.Request.GetInputs()[0].GetShape(); !slices.Equal(got, []int64{3, 4, 4}) {
			t.Errorf("shape %v, want [3 4 4]", got)
		}
	})
}

// A batch without the description it was made for is the caller's bug, and
// the server is not asked.
func TestInferWithoutDescription(t *testing.T) {
	e := startEnv(t, smallModel(), nil)
	before := e.srv.InferCount()
	_, err := e.client.Infer(callCtx(t), batchOf(nil, tritontest.ItemForClass(e.model, 0)))
	wantKind(t, err, gateway.KindInternal, "Batch.Model")
	if n := e.srv.InferCount() - before; n != 0 {
		t.Errorf("%d ModelInfer calls, want none", n)
	}
}

// --- faults ------------------------------------------------------------------

func TestInferFaults(t *testing.T) {
	tests := []struct {
		name      string
		fault     tritontest.Fault
		wantKind  gateway.Kind // -1: success
		wantIn    []string
		wantCalls int64
	}{
		{"UNAVAILABLE twice, then success", tritontest.Fault{Code: codes.Unavailable, FailCount: 2}, -1, nil, 3},
		{"UNAVAILABLE beyond the retries", tritontest.Fault{Code: codes.Unavailable, FailCount: 5}, gateway.KindUnavailable, []string{"inference server unavailable"}, 3},
		{"model not ready (NOT_FOUND, not retried)", tritontest.Fault{ModelNotReady: true}, gateway.KindUnavailable, []string{"model not available on the inference server", "has no available versions"}, 1},
		{"INTERNAL is not retried", tritontest.Fault{Code: codes.Internal, Message: "CUDA out of memory"}, gateway.KindBadGateway, []string{"inference server failed", "Internal"}, 1},
		{"UNKNOWN", tritontest.Fault{Code: codes.Unknown}, gateway.KindBadGateway, nil, 1},
		{"INVALID_ARGUMENT", tritontest.Fault{Code: codes.InvalidArgument, Message: "unexpected shape"}, gateway.KindInvalid, []string{"the inference server rejected the request: unexpected shape"}, 1},
		{"NOT_FOUND", tritontest.Fault{Code: codes.NotFound, Message: "unknown model"}, gateway.KindUnavailable, []string{"model not available on the inference server: unknown model"}, 1},
		{"RESOURCE_EXHAUSTED", tritontest.Fault{Code: codes.ResourceExhausted, Message: "queue full"}, gateway.KindOverloaded, []string{"overloaded"}, 1},
		{"wrong shape", tritontest.Fault{WrongShape: true}, gateway.KindBadGateway, []string{"inference server answered", "shape [1 10]"}, 1},
		{"wrong datatype", tritontest.Fault{WrongDatatype: true}, gateway.KindBadGateway, []string{"inference server answered", `"INT64"`}, 1},
		{"missing output", tritontest.Fault{MissingOutput: true}, gateway.KindBadGateway, []string{"inference server answered", `no output "logits"`}, 1},
		{"short raw output", tritontest.Fault{ShortRawOutput: true}, gateway.KindBadGateway, []string{"inference server answered", "32 bytes, want 36"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startEnv(t, smallModel(), nil)
			e.srv.SetFault(tt.fault)
			item := tritontest.ItemForClass(e.model, 4)
			scores, err := e.client.Infer(callCtx(t), batchOf(&e.info, item))
			if tt.wantKind < 0 {
				if err != nil {
					t.Fatalf("Infer: %v", err)
				}
				if !slices.Equal(scores.Values, tritontest.Logits(e.model, item)) {
					t.Errorf("scores %v, want %v", scores.Values, tritontest.Logits(e.model, item))
				}
			} else {
				ge := wantKind(t, err, tt.wantKind, tt.wantIn...)
				if (tt.wantKind == gateway.KindUnavailable || tt.wantKind == gateway.KindOverloaded) && ge.RetryAfter != time.Second {
					t.Errorf("RetryAfter %v, want 1s", ge.RetryAfter)
				}
				if tt.fault.Message != "" && !strings.Contains(err.Error(), tt.fault.Message) {
					t.Errorf("error %q lost the server's message %q (for the log)", err, tt.fault.Message)
				}
			}
			if n := e.srv.InferCount() - 1; n != tt.wantCalls {
				t.Errorf("%d ModelInfer calls, want %d", n, tt.wantCalls)
			}
			wantRetries := float64(min(tt.wantCalls-1, 2))
			if got := testutil.ToFloat64(e.client.metrics.retries.WithLabelValues("ModelInfer")); got != wantRetries {
				t.Errorf("triton_retries_total{rpc=ModelInfer} = %v, want %v", got, wantRetries)
			}
		})
	}
}

func TestRetriesStopBeforeTheDeadline(t *testing.T) {
	e := startEnv(t, smallModel(), func(c *Config) {
		c.RetryBackoff = 200 * time.Millisecond
		c.Retries = 5
	})
	e.srv.SetFault(tritontest.Fault{Code: codes.Unavailable})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.client.Infer(ctx, batchOf(&e.info, tritontest.ItemForClass(e.model, 0)))
	elapsed := time.Since(start)
	wantKind(t, err, gateway.KindUnavailable)
	if elapsed > 80*time.Millisecond {
		t.Errorf("gave up after %v: a backoff of ~200ms cannot fit in 100ms, want no wait", elapsed)
	}
	if n := e.srv.InferCount() - 1; n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

func TestRetriesDisabled(t *testing.T) {
	e := startEnv(t, smallModel(), func(c *Config) { c.Retries = 0 })
	e.srv.SetFault(tritontest.Fault{Code: codes.Unavailable, FailCount: 1})
	_, err := e.client.Infer(callCtx(t), batchOf(&e.info, tritontest.ItemForClass(e.model, 0)))
	wantKind(t, err, gateway.KindUnavailable)
	if n := e.srv.InferCount() - 1; n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

func TestDeadlines(t *testing.T) {
	const budget = 150 * time.Millisecond
	const slack = 250 * time.Millisecond // -race and loaded CI machines
	for _, tt := range []struct {
		name  string
		fault tritontest.Fault
	}{
		{"latency", tritontest.Fault{Latency: time.Hour}},
		{"hang", tritontest.Fault{Hang: true}},
	} {
		t.Run(tt.name+" with the caller's deadline", func(t *testing.T) {
			e := startEnv(t, smallModel(), nil)
			e.srv.SetFault(tt.fault)
			ctx, cancel := context.WithTimeout(t.Context(), budget)
			defer cancel()
			start := time.Now()
			_, err := e.client.Infer(ctx, batchOf(&e.info, tritontest.ItemForClass(e.model, 0)))
			elapsed := time.Since(start)
			wantKind(t, err, gateway.KindDeadline)
			if elapsed > budget+slack {
				t.Errorf("returned after %v, want about %v", elapsed, budget)
			}
			rec, ok := e.srv.LastRequest()
			if !ok || !rec.HasDeadline || rec.Timeout <= 0 || rec.Timeout > budget {
				t.Errorf("server saw deadline %v, timeout %v; want a timeout in (0, %v]", rec.HasDeadline, rec.Timeout, budget)
			}
			waitUntil(t, "the server to see the call end", func() bool { return e.srv.InFlight() == 0 })
		})
	}
	t.Run("CallTimeout when the caller has no deadline", func(t *testing.T) {
		e := startEnv(t, smallModel(), func(c *Config) { c.CallTimeout = budget })
		e.srv.SetFault(tritontest.Fault{Hang: true})
		start := time.Now()
		_, err := e.client.Infer(context.Background(), batchOf(&e.info, tritontest.ItemForClass(e.model, 0)))
		elapsed := time.Since(start)
		wantKind(t, err, gateway.KindDeadline)
		if elapsed > budget+slack {
			t.Errorf("returned after %v, want about %v", elapsed, budget)
		}
		if rec, _ := e.srv.LastRequest(); !rec.HasDeadline || rec.Timeout > budget {
			t.Errorf("server saw deadline %v, timeout %v; want ≤ %v", rec.HasDeadline, rec.Timeout, budget)
		}
	})
	t.Run("a deadline already passed", func(t *testing.T) {
		e := startEnv(t, smallModel(), nil)
		ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
		defer cancel()
		_, err := e.client.Infer(ctx, batchOf(&e.info, tritontest.ItemForClass(e.model, 0)))
		wantKind(t, err, gateway.KindDeadline)
	})
}

func TestCanceled(t *testing.T) {
	e := startEnv(t, smallModel(), nil)
	e.srv.SetFault(tritontest.Fault{Hang: true})
	ctx, cancel := context.WithCancel(callCtx(t))
	done := make(chan error, 1)
	go func() {
		_, err := e.client.Infer(ctx, batchOf(&e.info, tritontest.ItemForClass(e.model, 0)))
		done <- err
	}()
	waitUntil(t, "the call to reach the server", func() bool { return e.srv.InFlight() == 1 })
	cancel()
	select {
	case err := <-done:
		wantKind(t, err, gateway.KindCanceled)
	case <-time.After(5 * time.Second):
		t.Fatal("Infer did not return after cancel")
	}
	waitUntil(t, "the server to see the cancellation", func() bool { return e.srv.InFlight() == 0 })
	if rec, _ := e.srv.LastRequest(); rec.Code != codes.Canceled {
		t.Errorf("server finished with %v, want Canceled", rec.Code)
	}
}

func TestMaxRecvMsgBytes(t *testing.T) {
	// 5000 classes: 20 kB of scores per item, well over the limit, while the
	// metadata and configuration fit in it.
	m := smallModel()
	m.Output.Dims = []int64{5000}
	m.Labels = nil
	e := startEnv(t, m, func(c *Config) { c.MaxRecvMsgBytes = 4096 })
	_, err := e.client.Infer(callCtx(t), batchOf(&e.info, tritontest.ItemForClass(m, 0)))
	wantKind(t, err, gateway.KindBadGateway, "MaxRecvMsgBytes")
}

// --- readiness and lifecycle ----------------------------------------------------------

func TestReady(t *testing.T) {
	tests := []struct {
		name   string
		fault  tritontest.Fault
		wantIn string // "" ready
	}{
		{"healthy", tritontest.Fault{}, ""},
		{"server not ready", tritontest.Fault{ServerNotReady: true}, "inference server is not ready"},
		{"model not ready", tritontest.Fault{ModelNotReady: true}, `model "fish_classifier" is not ready`},
		{"both: the server is named", tritontest.Fault{ServerNotReady: true, ModelNotReady: true}, "inference server is not ready"},
		{"infer faults do not matter", tritontest.Fault{Code: codes.Internal, Hang: true}, ""},
	}
	e := startEnv(t, smallModel(), nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.srv.SetFault(tt.fault)
			err := e.client.Ready(callCtx(t))
			if tt.wantIn == "" {
				if err != nil {
					t.Fatalf("Ready: %v", err)
				}
				return
			}
			wantKind(t, err, gateway.KindUnavailable, tt.wantIn)
		})
	}
	t.Run("pinned version", func(t *testing.T) {
		e.srv.SetFault(tritontest.Fault{})
		for version, ready := range map[string]bool{"1": true, "3": false} {
			cfg := testConfig(e.srv.Addr(), "fish_classifier")
			cfg.Version = version
			c, _ := newTestClient(t, cfg)
			err := c.Ready(callCtx(t))
			if ready && err != nil {
				t.Errorf("version %s: Ready: %v", version, err)
			}
			if !ready {
				wantKind(t, err, gateway.KindUnavailable, `model "fish_classifier" version 3 is not ready`)
			}
		}
	})
}

func TestServerStopAndRestart(t *testing.T) {
	e := startEnv(t, smallModel(), nil)
	item := batchOf(&e.info, tritontest.ItemForClass(e.model, 2))
	if err := e.client.Ready(callCtx(t)); err != nil {
		t.Fatalf("Ready before Stop: %v", err)
	}

	e.srv.Stop()
	_, err := e.client.Infer(callCtx(t), item)
	wantKind(t, err, gateway.KindUnavailable, "inference server unavailable")
	wantKind(t, e.client.Ready(callCtx(t)), gateway.KindUnavailable)
	_, err = e.client.Model(callCtx(t))
	wantKind(t, err, gateway.KindUnavailable)

	e.srv.Restart()
	waitUntil(t, "Ready after Restart", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		return e.client.Ready(ctx) == nil
	})
	if _, err := e.client.Infer(callCtx(t), item); err != nil {
		t.Fatalf("Infer after Restart: %v", err)
	}
}

func TestClose(t *testing.T) {
	e := startEnv(t, smallModel(), nil)
	if err := e.client.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := e.client.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_, err := e.client.Infer(callCtx(t), batchOf(&e.info, tritontest.ItemForClass(e.model, 0)))
	wantKind(t, err, gateway.KindUnavailable, "closed")
	wantKind(t, e.client.Ready(callCtx(t)), gateway.KindUnavailable, "closed")
}

// --- metrics -------------------------------------------------------------------

func TestMetrics(t *testing.T) {
	e := startEnv(t, smallModel(), nil)
	e.srv.SetFault(tritontest.Fault{Code: codes.Unavailable, FailCount: 2})
	if _, err := e.client.Infer(callCtx(t), batchOf(&e.info, tritontest.ItemForClass(e.model, 0))); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP triton_retries_total gRPC calls to Triton attempted again after an UNAVAILABLE answer, by method.
# TYPE triton_retries_total counter
triton_retries_total{rpc="ModelConfig"} 0
triton_retries_total{rpc="ModelInfer"} 2
triton_retries_total{rpc="ModelMetadata"} 0
triton_retries_total{rpc="ModelReady"} 0
triton_retries_total{rpc="ServerReady"} 0
`
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(want), "triton_retries_total"); err != nil {
		t.Error(err)
	}
	// Every attempt is observed under its own code; Model made one call of
	// each kind, the classification call among the ModelInfer OK.
	wantCounts := map[[2]string]uint64{
		{"ModelMetadata", "OK"}: 1, {"ModelConfig", "OK"}: 1,
		{"ModelInfer", "OK"}: 2, {"ModelInfer", "Unavailable"}: 2,
	}
	families, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[[2]string]uint64{}
	for _, f := range families {
		if f.GetName() != "triton_rpc_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			var key [2]string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "rpc":
					key[0] = l.GetValue()
				case "code":
					key[1] = l.GetValue()
				}
			}
			got[key] = m.GetHistogram().GetSampleCount()
			if n := len(m.GetHistogram().GetBucket()); n != len(rpcDurationBuckets) {
				t.Errorf("%v: %d buckets, want %d", key, n, len(rpcDurationBuckets))
			}
		}
	}
	if len(got) != len(wantCounts) {
		t.Errorf("duration series %v, want %v", got, wantCounts)
	}
	for k, n := range wantCounts {
		if got[k] != n {
			t.Errorf("triton_rpc_duration_seconds%v count = %d, want %d", k, got[k], n)
		}
	}
	problems, err := testutil.GatherAndLint(e.reg)
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// TestOneClientPerRegistry: clients on their own registries count apart; a
// second client on a registry that holds one's metrics panics at New (promauto)
// instead of sharing its counters unseen.
func TestOneClientPerRegistry(t *testing.T) {
	e := startEnv(t, smallModel(), nil)
	other, otherReg := newTestClient(t, testConfig(e.srv.Addr(), e.model.Name))
	e.srv.SetFault(tritontest.Fault{Code: codes.Unavailable, FailCount: 1})
	if _, err := e.client.Infer(callCtx(t), batchOf(&e.info, tritontest.ItemForClass(e.model, 0))); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(e.client.metrics.retries.WithLabelValues(rpcModelInfer)); got != 1 {
		t.Errorf("the first client's ModelInfer retries = %v, want 1", got)
	}
	if got := testutil.ToFloat64(other.metrics.retries.WithLabelValues(rpcModelInfer)); got != 0 {
		t.Errorf("the second client's ModelInfer retries = %v, want 0: the clients share a counter", got)
	}
	if n, err := testutil.GatherAndCount(otherReg, "triton_retries_total"); err != nil || n != len(rpcNames) {
		t.Errorf("the second registry holds %d triton_retries_total series (%v), want %d", n, err, len(rpcNames))
	}
	panicked := func() (panicked bool) {
		defer func() { panicked = recover() != nil }()
		if c, err := New(testConfig(e.srv.Addr(), e.model.Name), e.reg); err == nil {
			_ = c.Close()
		}
		return false
	}()
	if !panicked {
		t.Error("a second client on the first client's registry did not panic")
	}
}

func argmax(v []float32) int {
	best := 0
	for i := range v {
		if v[i] > v[best] || math.IsNaN(float64(v[best])) {
			best = i
		}
	}
	return best
}
