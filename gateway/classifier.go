package gateway

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/fish-classifier/fish-classifier/preprocess"
)

// Classifier is the use case: image bytes in, labelled predictions out, each
// stage timed and observed. It owns the model's lifecycle too: it starts
// unloaded, loads the model from the backend and keeps it fresh (Load, Run),
// answers "model not loaded" until it has one, and reports loads and losses to
// its Observer. It is safe for concurrent use.
type Classifier struct {
	backend Inferencer
	// ready says whether the model is served, asked by Load once the model
	// is read: the backend's Ready unless WithReadyProbe.
	ready  func(context.Context) error
	limits preprocess.Limits
	obs    Observer
	// state is the model in use and what is derived from it: nil until the
	// first load, then swapped whole by Load; a request keeps the one it
	// started with.
	state atomic.Pointer[classifierState]
	// unloaded is the error requests get while state is nil.
	unloaded atomic.Pointer[Error]
	// loading serialises Load; served, under it, is the model last reported
	// by Observer.ModelLoaded, nil before the first and after a loss.
	loading sync.Mutex
	served  *ModelInfo
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
	// tracer records the stages as spans (WithTracerProvider); nil: none.
	tracer trace.Tracer
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

// WithReadyProbe has Load ask ready, instead of the backend's Ready, whether
// the model it read is served. main passes the Triton client's own Ready,
// under the circuit breaker and the fallback: an open breaker is not a lost
// model, and a fallback that can answer does not make Triton's model ready.
func WithReadyProbe(ready func(context.Context) error) ClassifierOption {
	return func(c *Classifier) { c.ready = ready }
}

// classifierState is everything derived from one description of the model;
// Load swaps it whole.
type classifierState struct {
	model     ModelInfo
	pre       *preprocess.Preprocessor
	itemBytes int
	buffers   sync.Pool // *[]byte batch buffers
}

// newClassifierState prepares model's preprocessing, checking its labels
// against its output's classes.
func newClassifierState(model ModelInfo, limits preprocess.Limits) (*classifierState, error) {
	pre, err := preprocess.New(model.Preprocess, limits)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", model.Name, err)
	}
	if model.Output.Shape != nil && len(model.Labels) > 0 {
		if n := model.Output.Shape[len(model.Output.Shape)-1]; n > 0 && int(n) != len(model.Labels) {
			return nil, fmt.Errorf("model %s: %d labels for %d output classes", model.Name, len(model.Labels), n)
		}
	}
	return &classifierState{model: model, pre: pre, itemBytes: pre.TensorBytes()}, nil
}

// notLoadedRetryAfter is the Retry-After of "model not loaded".
const notLoadedRetryAfter = 2 * time.Second

// NewClassifier returns a Classifier of backend's model that has no model yet:
// it does no I/O. Until Load (or Run) succeeds it answers every image, and
// Ready, with a KindUnavailable "model not loaded" error. obs may be nil.
func NewClassifier(backend Inferencer, limits preprocess.Limits, obs Observer, opts ...ClassifierOption) *Classifier {
	if obs == nil {
		obs = NopObserver{}
	}
	c := &Classifier{backend: backend, ready: backend.Ready, limits: limits, obs: obs, decodeSlots: NewSlots(runtime.GOMAXPROCS(0))}
	for _, o := range opts {
		o(c)
	}
	c.unloaded.Store(&Error{Kind: KindUnavailable, Message: "model not loaded yet", RetryAfter: notLoadedRetryAfter})
	return c
}

// Load makes one attempt at loading the model: it reads the description from
// the backend, prepares its preprocessing (checking the labels against the
// output's classes), swaps it in when it differs from the one in use, and asks
// whether the model is served (WithReadyProbe, else the backend's Ready).
// Requests in flight finish with the state they started with.
//
// On success it reports Observer.ModelLoaded when the model is new to the
// observer: the first load, another description (a new version), or the first
// success after a loss. On failure it reports Observer.ModelLost and returns
// the error; the Classifier keeps serving the model it has, if any (a
// description read and prepared is served even when the readiness check
// fails: the backend's breaker and fallback decide per call). While it has
// none, requests are refused with "model not loaded: " and the failure's
// public message.
func (c *Classifier) Load(ctx context.Context) error {
	c.loading.Lock()
	defer c.loading.Unlock()
	st, err := c.load(ctx)
	if err != nil {
		if c.state.Load() == nil {
			c.unloaded.Store(&Error{Kind: KindUnavailable, Message: "model not loaded: " + PublicMessage(err), RetryAfter: notLoadedRetryAfter})
		}
		c.served = nil
		c.obs.ModelLost(err)
		return err
	}
	if c.served == nil || !reflect.DeepEqual(*c.served, st.model) {
		m := st.model
		c.served = &m
		c.obs.ModelLoaded(m)
	}
	return nil
}

// load is one attempt of Load; the caller holds c.loading.
func (c *Classifier) load(ctx context.Context) (*classifierState, error) {
	model, err := c.backend.Model(ctx)
	if err != nil {
		return nil, fmt.Errorf("read model: %w", err)
	}
	st := c.state.Load()
	if st == nil || !reflect.DeepEqual(st.model, model) {
		if st, err = newClassifierState(model, c.limits); err != nil {
			return nil, err
		}
		c.state.Store(st)
	}
	if err := c.ready(ctx); err != nil {
		return nil, err
	}
	return st, nil
}

// The timing of Run.
const (
	// firstRetry is Run's wait after its first failed load; it doubles after
	// each failure, up to Run's interval, until the model is loaded.
	firstRetry = 250 * time.Millisecond
	// loadTimeout bounds one Load of Run.
	loadTimeout = 10 * time.Second
)

// Run loads the model and keeps it fresh until ctx ends. It calls Load (each
// call within 10 s) until the Classifier has a model, waiting 250 ms after the
// first failure and twice as long after each next one, up to every; from then
// on it calls Load once per interval every, so that a new version is picked up
// without a restart. every must be positive.
func (c *Classifier) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		panic("gateway: Classifier.Run with a non-positive interval")
	}
	wait := firstRetry
	for ctx.Err() == nil {
		attempt, cancel := context.WithTimeout(ctx, loadTimeout)
		_ = c.Load(attempt) // reported to the Observer
		cancel()
		next := every
		if c.state.Load() == nil {
			next, wait = min(wait, every), min(2*wait, every)
		}
		timer := time.NewTimer(next)
		select {
		case <-ctx.Done():
			timer.Stop()
		case <-timer.C:
		}
	}
}

// notLoaded is the error of a request while the Classifier has no model.
func (c *Classifier) notLoaded() error {
	e := *c.unloaded.Load()
	return &e
}

// Model returns the model in use; before the first load, the zero ModelInfo.
func (c *Classifier) Model() ModelInfo {
	if st := c.state.Load(); st != nil {
		return st.model
	}
	return ModelInfo{}
}

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
// MaxBatchSize. Several images are decoded in parallel, one per core. Before
// the first load every image gets the "model not loaded" error. The returned
// slices are as long as images.
func (c *Classifier) ClassifyBatch(ctx context.Context, images [][]byte, k int) ([]Result, []error) {
	st := c.state.Load()
	results := make([]Result, len(images))
	errs := make([]error, len(images))
	if st == nil {
		for i := range errs {
			errs[i] = c.notLoaded()
		}
		return results, errs
	}
	if c.tensorSlots != nil {
		_, span := StartSpan(ctx, c.tracer, SpanWaitInferenceSlot)
		waited, err := c.tensorSlots.Acquire(ctx)
		span.End()
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
		ctx, span := StartSpan(ctx, c.tracer, SpanPreprocess)
		defer span.End()
		if span.IsRecording() {
			span.SetAttributes(AttrImageIndex.Int(i), AttrImageBytes.Int(len(images[i])))
		}
		_, wait := StartSpan(ctx, c.tracer, SpanWaitDecodeSlot)
		waited, err := c.decodeSlots.Acquire(ctx)
		wait.End()
		if err != nil {
			errs[i] = err
			failSpan(span, err)
			return
		}
		defer c.decodeSlots.Release()
		c.obs.Waited(SlotDecode, waited)
		if err := ctx.Err(); err != nil {
			errs[i] = err
			failSpan(span, err)
			return
		}
		start := time.Now()
		info, err := st.pre.Process(images[i], buf[i*st.itemBytes:(i+1)*st.itemBytes])
		if err != nil {
			errs[i] = &Error{Kind: KindOf(err), Message: fmt.Sprintf("image %d: %v", i, err), Err: err}
			failSpan(span, errs[i])
			return
		}
		if span.IsRecording() {
			span.SetAttributes(AttrImageFormat.String(info.Format.String()), AttrImageWidth.Int(info.Width), AttrImageHeight.Int(info.Height))
			recordStages(ctx, c.tracer, start, info)
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
	ctx, span := StartSpan(ctx, c.tracer, SpanInfer)
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(AttrModel.String(st.model.Name), AttrVersion.String(st.model.Version), AttrBatchSize.Int(len(idx)))
	}
	start := time.Now()
	scores, err := c.backend.Infer(ctx, Batch{Size: len(idx), Data: data, Model: &st.model})
	elapsed := time.Since(start)
	if err == nil && (scores.Size != len(idx) || scores.Classes < 1 || len(scores.Values) != scores.Size*scores.Classes) {
		err = Errorf(KindBadGateway, "backend returned %d×%d scores (%d values) for %d images", scores.Size, scores.Classes, len(scores.Values), len(idx))
	}
	if err != nil {
		failSpan(span, err)
		c.obs.Inferred(ctx, st.model, len(idx), elapsed, err)
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
	if span.IsRecording() {
		span.SetAttributes(AttrBackend.String(answered.Backend), AttrFallback.Bool(answered.Backend != st.model.Backend))
	}
	c.obs.Inferred(ctx, answered, len(idx), elapsed, nil)
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

// Ready returns nil when the Classifier can serve now: before the first load,
// the "model not loaded" error; then the backend's answer (through its
// decorators: an open breaker is not ready, a fallback that can answer is).
func (c *Classifier) Ready(ctx context.Context) error {
	if c.state.Load() == nil {
		return c.notLoaded()
	}
	return c.backend.Ready(ctx)
}

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
