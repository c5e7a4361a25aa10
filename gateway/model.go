package gateway

import (
	"context"
	"time"

	"github.com/fish-classifier/fish-classifier/preprocess"
)

// Inferencer is an inference backend: Triton over gRPC, ONNX Runtime in process,
// or a decorator around either (the circuit breaker).
type Inferencer interface {
	// Model describes the served model: its tensors, labels, batching and the
	// preprocessing it was trained with. The Classifier asks at start and again
	// every refresh, so a new model version is picked up without a restart.
	Model(ctx context.Context) (ModelInfo, error)
	// Infer runs the model on a batch of preprocessed inputs and returns one score
	// vector per item. The batch carries the description it was made for
	// (Batch.Model): a backend keeps no "last read" model. Errors are *Error
	// values with a kind.
	Infer(ctx context.Context, in Batch) (Scores, error)
	// Ready returns nil when the backend can serve the model now, or an error
	// saying why not.
	Ready(ctx context.Context) error
}

// InferencerFuncs is an Inferencer made of functions, one per method: the
// adapter for tests and for decorators that change one method and pass the
// others on. A nil ModelFunc or InferFunc answers a KindInternal error that
// names it; a nil ReadyFunc answers nil (ready).
type InferencerFuncs struct {
	ModelFunc func(ctx context.Context) (ModelInfo, error)
	InferFunc func(ctx context.Context, in Batch) (Scores, error)
	ReadyFunc func(ctx context.Context) error
}

var _ Inferencer = InferencerFuncs{}

// Model calls ModelFunc.
func (f InferencerFuncs) Model(ctx context.Context) (ModelInfo, error) {
	if f.ModelFunc == nil {
		return ModelInfo{}, Errorf(KindInternal, "gateway.InferencerFuncs: no ModelFunc")
	}
	return f.ModelFunc(ctx)
}

// Infer calls InferFunc.
func (f InferencerFuncs) Infer(ctx context.Context, in Batch) (Scores, error) {
	if f.InferFunc == nil {
		return Scores{}, Errorf(KindInternal, "gateway.InferencerFuncs: no InferFunc")
	}
	return f.InferFunc(ctx, in)
}

// Ready calls ReadyFunc.
func (f InferencerFuncs) Ready(ctx context.Context) error {
	if f.ReadyFunc == nil {
		return nil
	}
	return f.ReadyFunc(ctx)
}

// Batch is the input of one inference call: Size tensors back to back, each in the
// model input's layout, data type and little-endian byte order (what KServe's
// raw_input_contents carries).
type Batch struct {
	Size int
	Data []byte
	// Model is the description the tensors were made for: what the backend's
	// Model returned and the Classifier loaded. A backend builds its call from
	// it (input, output, batching) rather than from a model it read before, and
	// a decorator passes it on. Shared by concurrent calls: read-only. nil is a
	// caller's bug (KindInternal).
	Model *ModelInfo
}

// Scores are a model's outputs for a batch: Size rows of Classes values.
type Scores struct {
	Size, Classes int
	Values        []float32
	// Backend names the backend that answered: the adapters name themselves,
	// and a fallback names the secondary when it answered; "" means the one
	// Batch.Model names. (A description can reach another backend than the one
	// it came from: Triton, back up, is sent the embedded backend's until the
	// next refresh.)
	Backend string
}

// Row returns item i's scores.
func (s Scores) Row(i int) []float32 { return s.Values[i*s.Classes : (i+1)*s.Classes] }

// TensorInfo describes one model input or output, without the batch dimension.
type TensorInfo struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"` // KServe v2 name: "FP32", "FP16", "UINT8"
	Shape    []int64 `json:"shape"`
}

// ModelInfo is what the gateway knows about the model it serves.
type ModelInfo struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Backend  string `json:"backend"`  // "triton" or "onnxruntime"
	Platform string `json:"platform"` // e.g. "onnxruntime_onnx"
	// MaxBatchSize is the most items one Infer call may carry; 0 means the model
	// takes no batch dimension, so every item is its own call.
	MaxBatchSize int        `json:"max_batch_size"`
	Input        TensorInfo `json:"input"`
	Output       TensorInfo `json:"output"`
	Labels       []string   `json:"labels"`
	// OutputIsLogits says the model's scores need a softmax to become
	// probabilities.
	OutputIsLogits bool            `json:"output_is_logits"`
	Preprocess     preprocess.Spec `json:"-"`
	// Provenance says where the weights come from, as the model's
	// configuration declares it.
	Provenance Provenance `json:"provenance"`
}

// Provenance is where a model's weights come from (config.pbtxt parameters
// model_sha256, model_source, model_license, and mlflow_run_id and
// mlflow_model_version for a model published from MLflow's registry); a field
// the configuration does not declare is empty.
type Provenance struct {
	// SHA256 is the hex sha256 of the model file; the embedded backend refuses
	// a file that does not match it.
	SHA256  string `json:"sha256,omitempty"`
	Source  string `json:"source,omitempty"`
	License string `json:"license,omitempty"`
	// MLflowRunID is the MLflow run that logged the weights and
	// MLflowModelVersion the registered model's version they were published
	// as (make publish-model).
	MLflowRunID        string `json:"mlflow_run_id,omitempty"`
	MLflowModelVersion string `json:"mlflow_model_version,omitempty"`
}

// Prediction is one class of a result, with its probability.
type Prediction struct {
	Label      string  `json:"label"`
	Index      int     `json:"index"`
	Confidence float64 `json:"confidence"`
}

// Timings are the time one image spent in each stage.
type Timings struct {
	Decode      time.Duration
	Resize      time.Duration
	Normalize   time.Duration
	Inference   time.Duration
	Postprocess time.Duration
}

// Result is the answer for one image.
type Result struct {
	Model   string
	Version string
	// Backend is the backend that answered ("triton", "onnxruntime").
	Backend     string
	Predictions []Prediction
	Timings     Timings
}

// TensorMemory lends a backend's own memory for the tensors of a batch, so
// that preprocessing writes them where the backend reads them: the Triton
// client's system shared-memory regions, which Triton reads without the
// tensor travelling in the request.
type TensorMemory interface {
	// AllocTensor returns n bytes and the function that gives them back,
	// called once after the last Infer with them; ok is false when there is
	// no such memory free now, and the caller uses its own. The bytes are not
	// zeroed: the caller writes every byte it sends.
	AllocTensor(n int) (buf []byte, free func(), ok bool)
}
