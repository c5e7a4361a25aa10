package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fish-classifier/fish-classifier/preprocess"
)

func TestKindOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Kind
	}{
		{"gateway error", Errorf(KindBadGateway, "shape"), KindBadGateway},
		{"wrapped gateway error", fmt.Errorf("call: %w", Errorf(KindUnavailable, "down")), KindUnavailable},
		{"deadline", fmt.Errorf("infer: %w", context.DeadlineExceeded), KindDeadline},
		{"canceled", context.Canceled, KindCanceled},
		{"empty image", preprocess.ErrEmpty, KindInvalid},
		{"big file", fmt.Errorf("x: %w", preprocess.ErrTooLarge), KindTooLarge},
		{"gif", preprocess.ErrUnsupportedFormat, KindUnsupportedMedia},
		{"huge", preprocess.ErrTooManyPixels, KindUnprocessable},
		{"tiny", preprocess.ErrTooSmall, KindUnprocessable},
		{"corrupt", preprocess.ErrCorrupt, KindUnprocessable},
		{"anything else", errors.New("boom"), KindInternal},
	}
	for _, tt := range tests {
		if got := KindOf(tt.err); got != tt.want {
			t.Errorf("%s: KindOf = %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := PublicMessage(errors.New("secret connection string")); got != "internal error" {
		t.Errorf("PublicMessage of an internal error = %q, want the generic phrase", got)
	}
	e := Errorf(KindUnavailable, "model %s not ready: %w", "fish", errors.New("loading"))
	if e.Message != "model fish not ready: loading" || !strings.Contains(e.Err.Error(), "loading") {
		t.Errorf("Errorf = %+v", e)
	}
	for _, k := range Kinds() {
		if k.String() == "" {
			t.Errorf("kind %d has no code", k)
		}
	}
}

func TestSoftmaxAndTopK(t *testing.T) {
	probs := make([]float64, 4)
	softmax([]float32{1000, 1001, 999, 1000}, probs) // large logits must not overflow
	sum := 0.0
	for _, p := range probs {
		sum += p
	}
	if math.Abs(sum-1) > 1e-12 || probs[1] <= probs[0] || probs[0] != probs[3] {
		t.Fatalf("softmax = %v", probs)
	}
	got := topK(probs, []string{"cod", "tuna", "eel"}, 10) // k clamped, missing label named
	if len(got) != 4 || got[0].Label != "tuna" || got[1].Label != "cod" || got[2].Label != "class_3" || got[3].Label != "eel" {
		t.Errorf("topK = %+v", got)
	}
	if got := topK(probs, nil, 0); len(got) != 1 || got[0].Index != 1 {
		t.Errorf("topK(k=0) = %+v, want the single best", got)
	}
}

// fishModel is the model of the package's tests: 8×8 UINT8 NHWC images and
// three classes (cod, tuna, eel) scored as logits, at most maxBatch images per
// call (0: no batch dimension).
func fishModel(maxBatch int) ModelInfo {
	spec := preprocess.Spec{Width: 8, Height: 8, Scale: 1, Std: [3]float32{1, 1, 1}, Layout: preprocess.NHWC, DataType: preprocess.UINT8}
	return ModelInfo{
		Name: "fish", Version: "3", Backend: "fake", MaxBatchSize: maxBatch,
		Labels: []string{"cod", "tuna", "eel"}, OutputIsLogits: true, Preprocess: spec,
		Output: TensorInfo{Name: "logits", Datatype: "FP32", Shape: []int64{3}},
	}
}

// scoreByRed scores each item by its first byte, the red of its top-left
// pixel: class red % 3 gets logit 10, the others 0, so tests can tell which
// image a row belongs to.
func scoreByRed(_ context.Context, in Batch) (Scores, error) {
	const classes = 3
	item := len(in.Data) / in.Size
	out := Scores{Size: in.Size, Classes: classes, Values: make([]float32, in.Size*classes)}
	for i := range in.Size {
		red := in.Data[i*item]
		out.Values[i*classes+int(red)%classes] = 10
	}
	return out, nil
}

// fishBackend serves fishModel(maxBatch) and scores with scoreByRed; sizes,
// when not nil, records the size of every batch.
func fishBackend(maxBatch int, sizes *batchSizes) InferencerFuncs {
	m := fishModel(maxBatch)
	return InferencerFuncs{
		ModelFunc: func(context.Context) (ModelInfo, error) { return m, nil },
		InferFunc: func(ctx context.Context, in Batch) (Scores, error) {
			sizes.add(in.Size)
			return scoreByRed(ctx, in)
		},
	}
}

// batchSizes records batch sizes; a nil *batchSizes records nothing.
type batchSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (b *batchSizes) add(n int) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.sizes = append(b.sizes, n)
	b.mu.Unlock()
}

func (b *batchSizes) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return fmt.Sprint(b.sizes)
}

// loadedClassifier is a Classifier of backend whose model is loaded.
func loadedClassifier(t testing.TB, backend Inferencer, obs Observer, opts ...ClassifierOption) *Classifier {
	t.Helper()
	c := NewClassifier(backend, preprocess.DefaultLimits(), obs, opts...)
	if err := c.Load(context.Background()); err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func solidPNG(t testing.TB, c color.NRGBA) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 16, 16))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type recordingObserver struct {
	mu         sync.Mutex
	pre, preds int
	batches    []int
	errs       []error
	// The model's lifecycle, in order: "loaded <version>" or "lost <error>".
	lifecycle []string
}

func (r *recordingObserver) Preprocessed(preprocess.Info, int) { r.mu.Lock(); r.pre++; r.mu.Unlock() }
func (r *recordingObserver) Inferred(_ context.Context, _ ModelInfo, n int, _ time.Duration, err error) {
	r.mu.Lock()
	r.batches = append(r.batches, n)
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}
func (r *recordingObserver) Predicted(ModelInfo, Prediction) { r.mu.Lock(); r.preds++; r.mu.Unlock() }
func (r *recordingObserver) Waited(string, time.Duration)    {}
func (r *recordingObserver) ModelLoaded(m ModelInfo) {
	r.mu.Lock()
	r.lifecycle = append(r.lifecycle, "loaded "+m.Version)
	r.mu.Unlock()
}
func (r *recordingObserver) ModelLost(err error) {
	r.mu.Lock()
	r.lifecycle = append(r.lifecycle, "lost "+err.Error())
	r.mu.Unlock()
}

// events returns the lifecycle reported so far and forgets it.
func (r *recordingObserver) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.lifecycle
	r.lifecycle = nil
	return out
}

func TestClassifyBatchChunksAndKeepsOrder(t *testing.T) {
	sizes := &batchSizes{}
	backend := fishBackend(2, sizes)
	obs := &recordingObserver{}
	c := loadedClassifier(t, backend, obs)
	images := [][]byte{
		solidPNG(t, color.NRGBA{1, 0, 0, 255}), // red 1 → tuna
		[]byte("<html>not an image</html>"),
		solidPNG(t, color.NRGBA{2, 0, 0, 255}), // eel
		solidPNG(t, color.NRGBA{0, 0, 0, 255}), // cod
		solidPNG(t, color.NRGBA{4, 0, 0, 255}), // 4 % 3 = 1 → tuna
	}
	results, errs := c.ClassifyBatch(context.Background(), images, 2)
	wantTop := []string{"tuna", "", "eel", "cod", "tuna"}
	for i, want := range wantTop {
		if want == "" {
			if KindOf(errs[i]) != KindUnsupportedMedia || !strings.Contains(errs[i].Error(), "image 1") {
				t.Errorf("item %d: error %v, want unsupported media naming the item", i, errs[i])
			}
			continue
		}
		if errs[i] != nil {
			t.Fatalf("item %d: %v", i, errs[i])
		}
		r := results[i]
		if r.Predictions[0].Label != want || len(r.Predictions) != 2 || r.Model != "fish" || r.Version != "3" {
			t.Errorf("item %d: %+v, want top %s", i, r, want)
		}
		if p := r.Predictions[0].Confidence; math.Abs(p-math.Exp(10)/(math.Exp(10)+2)) > 1e-9 {
			t.Errorf("item %d: confidence %v is not the softmax of the logits", i, p)
		}
	}
	if sizes.String() != "[2 2]" {
		t.Errorf("backend calls = %v, want two batches of 2 (4 good images, max batch 2)", sizes)
	}
	if obs.pre != 4 || obs.preds != 4 || fmt.Sprint(obs.batches) != "[2 2]" {
		t.Errorf("observer saw %d preprocessed, %d predictions, batches %v", obs.pre, obs.preds, obs.batches)
	}
}

func TestClassifyBackendFailures(t *testing.T) {
	img := solidPNG(t, color.NRGBA{1, 2, 3, 255})
	t.Run("error kind passes through", func(t *testing.T) {
		b := fishBackend(4, nil)
		b.InferFunc = func(context.Context, Batch) (Scores, error) { return Scores{}, Errorf(KindUnavailable, "triton down") }
		c := loadedClassifier(t, b, nil)
		if _, err := c.Classify(context.Background(), img, 1); KindOf(err) != KindUnavailable {
			t.Errorf("error = %v, want unavailable", err)
		}
	})
	t.Run("wrong row count is a bad gateway", func(t *testing.T) {
		b := fishBackend(4, nil)
		b.InferFunc = func(ctx context.Context, in Batch) (Scores, error) {
			s, err := scoreByRed(ctx, in)
			s.Size-- // one row short
			return s, err
		}
		c := loadedClassifier(t, b, nil)
		if _, err := c.Classify(context.Background(), img, 1); KindOf(err) != KindBadGateway {
			t.Errorf("error = %v, want bad gateway", err)
		}
	})
	t.Run("canceled before start", func(t *testing.T) {
		c := loadedClassifier(t, fishBackend(4, nil), nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := c.Classify(ctx, img, 1); KindOf(err) != KindCanceled {
			t.Errorf("error = %v, want canceled", err)
		}
	})
	t.Run("labels must match the output", func(t *testing.T) {
		m := fishModel(4)
		m.Output.Shape = []int64{5}
		b := InferencerFuncs{ModelFunc: func(context.Context) (ModelInfo, error) { return m, nil }}
		c := NewClassifier(b, preprocess.DefaultLimits(), nil)
		if err := c.Load(context.Background()); err == nil || !strings.Contains(err.Error(), "3 labels for 5") {
			t.Errorf("Load = %v, want a label count error", err)
		}
	})
}

func TestClassifyWithoutBatching(t *testing.T) {
	sizes := &batchSizes{}
	b := fishBackend(0, sizes) // the model takes no batch dimension
	c := loadedClassifier(t, b, nil)
	imgs := [][]byte{solidPNG(t, color.NRGBA{0, 0, 0, 255}), solidPNG(t, color.NRGBA{1, 0, 0, 255}), solidPNG(t, color.NRGBA{2, 0, 0, 255})}
	_, errs := c.ClassifyBatch(context.Background(), imgs, 1)
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if sizes.String() != "[1 1 1]" {
		t.Errorf("calls = %v, want one call per image", sizes)
	}
}
