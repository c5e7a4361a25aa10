package gateway

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fish-classifier/fish-classifier/preprocess"
)

// Classifier is the use case: image bytes in, labelled predictions out, each
// stage timed and observed. It is safe for concurrent use.
type Classifier struct {
	backend Inferencer
	limits  preprocess.Limits
	obs     Observer
	state   atomic.Pointer[classifierState]
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
func NewClassifier(ctx context.Context, backend Inferencer, limits preprocess.Limits, obs Observer) (*Classifier, error) {
	if obs == nil {
		obs = NopObserver{}
	}
	c := &Classifier{backend: backend, limits: limits, obs: obs}
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
// MaxBatchSize. The returned slices are as long as images.
func (c *Classifier) ClassifyBatch(ctx context.Context, images [][]byte, k int) ([]Result, []error) {
	st := c.state.Load()
	results := make([]Result, len(images))
	errs := make([]error, len(images))

	chunk := max(1, st.model.MaxBatchSize)
	bufp := st.buffer(min(chunk, len(images)))
	defer st.buffers.Put(bufp)

	// Preprocess into consecutive slots of the batch buffer; flush to the backend
	// whenever it is full.
	var pending []int // indices of images in the buffer
	flush := func() {
		if len(pending) == 0 {
			return
		}
		c.infer(ctx, st, (*bufp)[:len(pending)*st.itemBytes], pending, k, results, errs)
		pending = pending[:0]
	}
	for i, img := range images {
		if err := ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		slot := (*bufp)[len(pending)*st.itemBytes : (len(pending)+1)*st.itemBytes]
		info, err := st.pre.Process(img, slot)
		if err != nil {
			errs[i] = &Error{Kind: KindOf(err), Message: fmt.Sprintf("image %d: %v", i, err), Err: err}
			continue
		}
		c.obs.Preprocessed(info, len(img))
		results[i].Timings.Decode = info.Stages.Decode
		results[i].Timings.Resize = info.Stages.Resize
		results[i].Timings.Normalize = info.Stages.Normalize
		pending = append(pending, i)
		if len(pending) == chunk {
			flush()
		}
	}
	flush()
	return results, errs
}

// infer runs one backend call for the images at idx, whose tensors fill data, and
// fills their results or errors.
func (c *Classifier) infer(ctx context.Context, st *classifierState, data []byte, idx []int, k int, results []Result, errs []error) {
	start := time.Now()
	scores, err := c.backend.Infer(ctx, Batch{Size: len(idx), Data: data})
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
