package gateway

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/fish-classifier/fish-classifier/preprocess"
)

// Classifier is the use case: image bytes in, labelled predictions out, each
// stage timed and observed. It is safe for concurrent use.
type Classifier struct {
	backend Inferencer
	limits  preprocess.Limits
	obs     Observer
	state   atomic.Pointer[classifierState]
	// decodeSlots bounds the images being preprocessed at once, across all
	// requests, to the cores. Decoding is CPU-bound, so more at once only
	// adds memory (a decoded picture is 2.4 MB for 1024x768). Requests beyond
	// wait here holding only their bytes.
	decodeSlots *Slots
	// tensorSlots bounds the requests that hold a batch buffer (preprocessing
	// into it or waiting on the backend with it) to MaxConcurrentInferences;
	// nil: no bound. Each holds 602 KB per image for a 224x224 FP32 model,
	// plus the gRPC message built from it.
	tensorSlots *Slots
	// memory, when set, lends the batch buffers (WithTensorMemory).
	memory TensorMemory
}

// ClassifierOption changes a Classifier made by NewClassifier.
type ClassifierOption func(*Classifier)

// WithMaxConcurrentInferences lets at most n requests hold tensors at once
// (n <= 0: no bound). The others wait, in arrival order, holding only their
// uploaded bytes, until a slot frees or their context ends. Beyond what the
// backend batches at once (Triton's max_batch_size), more concurrency adds
// only memory and queueing inside the backend.
func WithMaxConcurrentInferences(n int) ClassifierOption {
	return func(c *Classifier) { c.tensorSlots = NewSlots(n) }
}

// WithTensorMemory has images preprocessed into memory m lends (the Triton
// client's shared-memory regions) whenever it has some free; otherwise into
// the Classifier's own buffers.
func WithTensorMemory(m TensorMemory) ClassifierOption {
	return func(c *Classifier) { c.memory = m }
}

// classifierState is everything derived from one version of the model; Reload
// swaps it whole.
type classifierState struct {
	model     ModelInfo
	pre       *preprocess.Preprocessor
	itemBytes int
	buffers   sync.Pool // *[]byte batch buffers
}

// NewClassifier reads the model from backend and prepares its preprocessing.
func NewClassifier(ctx context.Context, backend Inferencer, limits preprocess.Limits, obs Observer, opts ...ClassifierOption) (*Classifier, error) {
	if obs == nil {
		obs = NopObserver{}
	}
	c := &Classifier{backend: backend, limits: limits, obs: obs, decodeSlots: NewSlots(runtime.GOMAXPROCS(0))}
	for _, o := range opts {
		o(c)
	}
	if err := c.Reload(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads the model description from the backend again and switches to it;
// requests in flight finish with the state they started with.
func (c *Classifier) Reload(ctx context.Context) error {
	model, err := c.backend.Model(ctx)
	if err != nil {
		return fmt.Errorf("read model: %w", err)
	}
	pre, err := preprocess.New(model.Preprocess, c.limits)
	if err != nil {
		return fmt.Errorf("model %s: %w", model.Name, err)
	}
	if model.Output.Shape != nil && len(model.Labels) > 0 {
		if n := model.Output.Shape[len(model.Output.Shape)-1]; n > 0 && int(n) != len(model.Labels) {
			return fmt.Errorf("model %s: %d labels for %d output classes", model.Name, len(model.Labels), n)
		}
	}
	c.state.Store(&classifierState{model: model, pre: pre, itemBytes: pre.TensorBytes()})
	return nil
}

// Model returns the model in use.
func (c *Classifier) Model() ModelInfo { return c.state.Load().model }

// Classify predicts the top k classes of one image.
func (c *Classifier) Classify(ctx context.Context, image []byte, k int) (Result, error) {
	results, errs := c.ClassifyBatch(ctx, [][]byte{image}, k)
	if errs[0] != nil {
		return Result{}, errs[0]
	}
	return results[0], nil
}

// ClassifyBatch predicts the top k classes of each image, in order. An image that
// cannot be decoded gets its own error and does not spoil the others; the good
// ones go to the backend together, in calls of at most the model's
// MaxBatchSize. Several images are decoded in parallel, one per core. The
// returned slices are as long as images.
func (c *Classifier) ClassifyBatch(ctx context.Context, images [][]byte, k int) ([]Result, []error) {
	st := c.state.Load()
	results := make([]Result, len(images))
	errs := make([]error, len(images))
	if c.tensorSlots != nil {
		waited, err := c.tensorSlots.Acquire(ctx)
		if err != nil {
			err := &Error{Kind: KindOf(err), Message: "waiting for an inference slot: " + err.Error(), Err: err}
			for i := range errs {
				errs[i] = err
			}
			return results, errs
		}
		defer c.tensorSlots.Release()
		c.obs.Waited(SlotInference, waited)
	}
	buf, release := c.batchBuffer(st, len(images))
	defer release()

	// Image i is preprocessed into slot i.
	preprocess := func(i int) {
		waited, err := c.decodeSlots.Acquire(ctx)
		if err != nil {
			errs[i] = err
			return
		}
		defer c.decodeSlots.Release()
		c.obs.Waited(SlotDecode, waited)
		if err := ctx.Err(); err != nil {
			errs[i] = err
			return
		}
		info, err := st.pre.Process(images[i], buf[i*st.itemBytes:(i+1)*st.itemBytes])
		if err != nil {
			errs[i] = &Error{Kind: KindOf(err), Message: fmt.Sprintf("image %d: %v", i, err), Err: err}
			return
		}
		c.obs.Preprocessed(info, len(images[i]))
		results[i].Timings.Decode = info.Stages.Decode
		results[i].Timings.Resize = info.Stages.Resize
		results[i].Timings.Normalize = info.Stages.Normalize
	}
	if len(images) == 1 {
		preprocess(0)
	} else {
		// One goroutine per core at most; decodeSlots bounds all requests together.
		var g errgroup.Group
		g.SetLimit(runtime.GOMAXPROCS(0))
		for i := range images {
			g.Go(func() error { preprocess(i); return nil })
		}
		_ = g.Wait() // each image's error is in errs
	}

	// Move the good tensors to the front, in order (each moves down or stays),
	// and send them in calls of at most MaxBatchSize.
	var good []int
	for i := range images {
		if errs[i] != nil {
			continue
		}
		if n := len(good); n != i {
			copy(buf[n*st.itemBytes:(n+1)*st.itemBytes], buf[i*st.itemBytes:(i+1)*st.itemBytes])
		}
		good = append(good, i)
	}
	chunk := max(1, st.model.MaxBatchSize)
	for from := 0; from < len(good); from += chunk {
		to := min(from+chunk, len(good))
		c.infer(ctx, st, buf[from*st.itemBytes:to*st.itemBytes], good[from:to], k, results, errs)
	}
	return results, errs
}

// infer runs one backend call for the images at idx, whose tensors fill data, and
// fills their results or errors.
func (c *Classifier) infer(ctx context.Context, st *classifierState, data []byte, idx []int, k int, results []Result, errs []error) {
	start := time.Now()
	scores, err := c.backend.Infer(ctx, Batch{Size: len(idx), Data: data, Model: &st.model})
	elapsed := time.Since(start)
	if err == nil && (scores.Size != len(idx) || scores.Classes < 1 || len(scores.Values) != scores.Size*scores.Classes) {
		err = Errorf(KindBadGateway, "backend returned %d×%d scores (%d values) for %d images", scores.Size, scores.Classes, len(scores.Values), len(idx))
	}
	if err != nil {
		c.obs.Inferred(st.model, len(idx), elapsed, err)
		if ctxErr := ctx.Err(); ctxErr != nil && KindOf(err) == KindInternal {
			err = ctxErr
		}
		for _, i := range idx {
			errs[i] = err
		}
		return
	}
	// The observer and the result name the backend that answered, which a
	// fallback may have changed.
	answered := st.model
	if scores.Backend != "" {
		answered.Backend = scores.Backend
	}
	c.obs.Inferred(answered, len(idx), elapsed, nil)
	probs := make([]float64, scores.Classes)
	for row, i := range idx {
		post := time.Now()
		raw := scores.Row(row)
		if st.model.OutputIsLogits {
			softmax(raw, probs)
		} else {
			for j, v := range raw {
				probs[j] = float64(v)
			}
		}
		preds := topK(probs, st.model.Labels, k)
		c.obs.Predicted(answered, preds[0])
		results[i] = Result{
			Model:       st.model.Name,
			Version:     st.model.Version,
			Backend:     answered.Backend,
			Predictions: preds,
			Timings:     results[i].Timings,
		}
		results[i].Timings.Inference = elapsed
		results[i].Timings.Postprocess = time.Since(post)
	}
}

// batchBuffer returns a buffer for n tensors, from the backend's memory
// when it lends some, else from the pool, and the function that gives it back.
func (c *Classifier) batchBuffer(st *classifierState, n int) ([]byte, func()) {
	if c.memory != nil {
		if buf, free, ok := c.memory.AllocTensor(n * st.itemBytes); ok {
			return buf, free
		}
	}
	bufp := st.buffer(n)
	return *bufp, func() { st.buffers.Put(bufp) }
}

// buffer returns a pooled buffer for n tensors.
func (st *classifierState) buffer(n int) *[]byte {
	need := n * st.itemBytes
	if p, ok := st.buffers.Get().(*[]byte); ok && cap(*p) >= need {
		*p = (*p)[:need]
		return p
	}
	b := make([]byte, need)
	return &b
}

// Ready reports whether the backend can serve now.
func (c *Classifier) Ready(ctx context.Context) error { return c.backend.Ready(ctx) }

// ReleaseMemory returns to the operating system the memory that classifying
// freed: the Go heap's (two collections, since a sync.Pool keeps what it held
// through one, then debug.FreeOSMemory) and the C decoders'
// (preprocess.ReleaseMemory). It costs collections and walks: call it when
// idle after a burst of images, not per request.
func ReleaseMemory() {
	runtime.GC()
	debug.FreeOSMemory()
	preprocess.ReleaseMemory()
}
