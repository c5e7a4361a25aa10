//go:build cgo

package onnx

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	ort "github.com/yalue/onnxruntime_go"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/modelconfig"
)

// maxIdlePerSize bounds the idle tensor sets kept for one batch size: about
// the number of calls of that size expected to run at once.
const maxIdlePerSize = 4

// runtimeEnv is ONNX Runtime's process-wide environment: the binding loads one
// library into a process, once.
var runtimeEnv struct {
	mu      sync.Mutex
	path    string // the library loaded, "" until one is
	version string
}

// loadRuntime loads the library at path and initialises ONNX Runtime's
// environment, the first time; later calls must name the same library. A
// failed load can be retried (with the same or another path).
func loadRuntime(path string) (version string, err error) {
	howTo := "fetch it with `make onnxruntime` (scripts/fetch-onnxruntime.sh), which prints its path, and set ONNXRUNTIME_LIB to that path"
	if path == "" {
		return "", fmt.Errorf("onnx: no ONNX Runtime library given; %s", howTo)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("onnx: ONNX Runtime library %s: %w; %s", path, err, howTo)
	}
	if resolved, err := filepath.EvalSymlinks(abs); err == nil {
		abs = resolved
	}
	if st, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("onnx: ONNX Runtime library %s: %w; %s", path, err, howTo)
	} else if !st.Mode().IsRegular() {
		return "", fmt.Errorf("onnx: ONNX Runtime library %s is not a file; %s", path, howTo)
	}
	runtimeEnv.mu.Lock()
	defer runtimeEnv.mu.Unlock()
	if runtimeEnv.path != "" {
		if runtimeEnv.path != abs {
			return "", fmt.Errorf("onnx: ONNX Runtime is already loaded from %s in this process; cannot load %s as well", runtimeEnv.path, path)
		}
		return runtimeEnv.version, nil
	}
	ort.SetSharedLibraryPath(abs)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return "", fmt.Errorf("onnx: loading ONNX Runtime library %s (need version >= 1.24): %w; %s", path, err, howTo)
	}
	runtimeEnv.path, runtimeEnv.version = abs, ort.GetVersion()
	return runtimeEnv.version, nil
}

// Backend runs one model of a Triton model repository in process with ONNX
// Runtime. It is a gateway.Inferencer; its methods are safe for concurrent use.
type Backend struct {
	spec    *modelSpec
	dtype   ort.TensorElementDataType
	threads int
	metrics *metrics
	// runs bounds the inferences running at once (Config.MaxConcurrentRuns).
	runs *gateway.Slots

	mu      sync.RWMutex // Infer holds it shared, Close exclusively
	closed  bool
	opts    *ort.SessionOptions
	session *ort.DynamicAdvancedSession

	poolMu sync.Mutex
	idle   map[int][]*slot // by batch size

	tracer trace.Tracer // nil: no spans (WithTracerProvider)
}

// slot is the reusable state of one call of a batch size: the output tensor,
// the run options that cancel it, and, for input bytes that are not aligned
// for the element type, an input tensor to copy them into.
type slot struct {
	n       int
	shape   ort.Shape // input shape, batch included
	out     *ort.Tensor[float32]
	outputs []ort.Value
	run     *ort.RunOptions
	in      *ort.CustomDataTensor // lazily, for unaligned input only
	inBuf   []byte
}

func (s *slot) destroy() {
	if s.in != nil {
		s.in.Destroy()
	}
	if s.out != nil {
		s.out.Destroy()
	}
	if s.run != nil {
		s.run.Destroy()
	}
}

// New loads ONNX Runtime from cfg.LibraryPath, reads the model's configuration,
// labels and preprocessing from the repository, creates a session (all graph
// optimisations, cfg.IntraOpThreads threads that do not spin), checks the
// model's inputs and outputs against config.pbtxt, and runs one warm-up
// inference before returning. reg, when not nil, receives the backend's
// metrics; it must not hold another Backend's (the gateway builds one Backend
// per registry): a second registration of the same metrics panics.
func New(cfg Config, reg prometheus.Registerer, opts ...Option) (*Backend, error) {
	if !littleEndian() {
		return nil, errors.New("onnx: the embedded backend needs a little-endian machine (the batch bytes are little-endian)")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	spec, err := readRepository(cfg)
	if err != nil {
		return nil, err
	}
	version, err := loadRuntime(cfg.LibraryPath)
	if err != nil {
		return nil, err
	}
	threads := cfg.IntraOpThreads
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	b := &Backend{spec: spec, dtype: ortType(spec.info.Input.Datatype), threads: threads, idle: make(map[int][]*slot),
		runs: gateway.NewSlots(cfg.MaxConcurrentRuns), tracer: o.tracer}

	// The model's signature does not depend on the optimisations: read it from
	// a cheap single-thread session without them.
	probeOpts, err := sessionOptions(1, ort.GraphOptimizationLevelDisableAll)
	if err != nil {
		return nil, err
	}
	ins, outs, err := ort.GetInputOutputInfoWithOptions(spec.modelPath, probeOpts)
	probeOpts.Destroy()
	if err != nil {
		return nil, fmt.Errorf("onnx: loading %s: %w", spec.modelPath, err)
	}
	if err := b.checkSignature(ins, outs); err != nil {
		return nil, fmt.Errorf("onnx: %s does not match config.pbtxt: %w", spec.modelPath, err)
	}

	if b.opts, err = sessionOptions(threads, ort.GraphOptimizationLevelEnableAll); err != nil {
		return nil, err
	}
	b.session, err = ort.NewDynamicAdvancedSession(spec.modelPath, []string{spec.InputName}, []string{spec.OutputName}, b.opts)
	if err != nil {
		b.opts.Destroy()
		return nil, fmt.Errorf("onnx: creating a session for %s: %w", spec.modelPath, err)
	}
	b.metrics = newMetrics(reg, spec.info, version, threads)
	// Warm up: the first run allocates and plans; pay for it before serving.
	if _, err := b.Infer(context.Background(), gateway.Batch{Size: 1, Data: make([]byte, spec.ItemBytes), Model: &spec.info}); err != nil {
		b.Close()
		return nil, fmt.Errorf("onnx: warm-up inference of %s: %w", spec.modelPath, err)
	}
	return b, nil
}

// sessionOptions are ONNX Runtime session options with the given intra-op
// threads and optimisation level, and worker threads that sleep rather than
// spin between inferences (spinning burns the cores the gateway's
// preprocessing needs).
func sessionOptions(threads int, level ort.GraphOptimizationLevel) (*ort.SessionOptions, error) {
	o, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("onnx: session options: %w", err)
	}
	for _, set := range []func() error{
		func() error { return o.SetGraphOptimizationLevel(level) },
		func() error { return o.SetExecutionMode(ort.ExecutionModeSequential) },
		func() error { return o.SetIntraOpNumThreads(threads) },
		func() error { return o.SetInterOpNumThreads(1) },
		func() error { return o.AddSessionConfigEntry("session.intra_op.allow_spinning", "0") },
		func() error { return o.AddSessionConfigEntry("session.inter_op.allow_spinning", "0") },
	} {
		if err := set(); err != nil {
			o.Destroy()
			return nil, fmt.Errorf("onnx: session options: %w", err)
		}
	}
	return o, nil
}

// checkSignature compares the model's inputs and outputs with config.pbtxt.
func (b *Backend) checkSignature(ins, outs []ort.InputOutputInfo) error {
	s := b.spec
	if len(ins) != 1 {
		return fmt.Errorf("the model has %d inputs, want 1 (%q)", len(ins), s.InputName)
	}
	if ins[0].Name != s.InputName {
		return fmt.Errorf("the model's input is %q, config.pbtxt names %q", ins[0].Name, s.InputName)
	}
	if err := checkTensor("input", ins[0], b.dtype, s.InputDims, s.Batched, s.MaxBatch); err != nil {
		return err
	}
	i := slices.IndexFunc(outs, func(o ort.InputOutputInfo) bool { return o.Name == s.OutputName })
	if i < 0 {
		names := make([]string, len(outs))
		for j, o := range outs {
			names[j] = o.Name
		}
		return fmt.Errorf("the model has no output %q (it has %q)", s.OutputName, names)
	}
	return checkTensor("output", outs[i], ort.TensorElementDataTypeFloat, s.OutputDims, s.Batched, s.MaxBatch)
}

// checkTensor compares one model tensor with its configuration: same element
// type, a batch dimension when the configuration batches (variable, or 1 when
// max_batch_size is 1), and the configured dims, where the model may leave a
// dimension variable.
func checkTensor(what string, t ort.InputOutputInfo, dtype ort.TensorElementDataType, dims []int64, batched bool, maxBatch int) error {
	if t.OrtValueType != ort.ONNXTypeTensor {
		return fmt.Errorf("%s %q is a %v, want a tensor", what, t.Name, t.OrtValueType)
	}
	if t.DataType != dtype {
		return fmt.Errorf("%s %q holds %v, config.pbtxt says %v", what, t.Name, t.DataType, dtype)
	}
	want := dims
	if batched {
		want = append([]int64{-1}, dims...)
	}
	got := []int64(t.Dimensions)
	mismatch := func() error {
		b := ""
		if batched {
			b = " with the batch dimension first"
		}
		return fmt.Errorf("%s %q has shape %v, config.pbtxt says dims %v%s (max_batch_size %d)", what, t.Name, got, dims, b, maxBatch)
	}
	if len(got) != len(want) {
		return mismatch()
	}
	for k := range got {
		switch {
		case got[k] < 0: // variable in the model: the configuration fixes it
		case batched && k == 0:
			if !(maxBatch == 1 && got[k] == 1) {
				return fmt.Errorf("%s %q has a fixed batch dimension %d; max_batch_size %d needs a variable one", what, t.Name, got[k], maxBatch)
			}
		case got[k] != want[k]:
			return mismatch()
		}
	}
	return nil
}

// Model describes the model New loaded.
func (b *Backend) Model(ctx context.Context) (gateway.ModelInfo, error) {
	if err := b.Ready(ctx); err != nil {
		return gateway.ModelInfo{}, err
	}
	info := b.spec.info
	info.Labels = slices.Clone(info.Labels)
	info.Input.Shape = slices.Clone(info.Input.Shape)
	info.Output.Shape = slices.Clone(info.Output.Shape)
	return info, nil
}

// Ready is nil until Close.
func (b *Backend) Ready(context.Context) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return errClosed()
	}
	return nil
}

func errClosed() *gateway.Error {
	return &gateway.Error{Kind: gateway.KindUnavailable, Message: "the embedded ONNX backend is closed"}
}

// Infer runs the model once on the whole batch. The input tensor is a view of
// in.Data (no copy) unless its bytes are not aligned for the element type; the
// output tensors and run options are reused between calls of the same batch
// size. A context that ends during the run terminates it. The session is the
// backend's model: in.Model, the description the tensors were made for (the
// one Model returned, or, behind a fallback, Triton's), must agree with it
// (see checkModel). Errors: KindCanceled or KindDeadline when ctx ends,
// KindInternal for a batch without a description or one the model cannot take
// (a caller's bug) or a failed run, KindUnavailable for tensors made for
// another model and after Close.
func (b *Backend) Infer(ctx context.Context, in gateway.Batch) (gateway.Scores, error) {
	ctx, span := gateway.StartSpan(ctx, b.tracer, SpanRun)
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(gateway.AttrBatchSize.Int(in.Size), attrThreads.Int(b.threads))
	}
	scores, err := b.infer(ctx, in)
	if err != nil && span.IsRecording() {
		span.SetStatus(codes.Error, gateway.PublicMessage(err))
	}
	return scores, err
}

// infer is Infer without its span.
func (b *Backend) infer(ctx context.Context, in gateway.Batch) (gateway.Scores, error) {
	if err := ctx.Err(); err != nil {
		return gateway.Scores{}, ctxError(err)
	}
	if err := b.checkModel(in.Model); err != nil {
		return gateway.Scores{}, err
	}
	s := b.spec
	if err := modelconfig.CheckBatch("onnx", s.info.Name, s.Batched, s.MaxBatch, s.ItemBytes, in); err != nil {
		return gateway.Scores{}, err
	}
	if _, err := b.runs.Acquire(ctx); err != nil {
		return gateway.Scores{}, ctxError(err)
	}
	defer b.runs.Release()

	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return gateway.Scores{}, errClosed()
	}
	sl, err := b.getSlot(in.Size)
	if err != nil {
		return gateway.Scores{}, gateway.Errorf(gateway.KindInternal, "onnx: %w", err)
	}
	reuse := true
	defer func() {
		if reuse {
			b.putSlot(sl)
		} else {
			sl.destroy()
		}
	}()

	var input ort.Value
	if aligned(in.Data, modelconfig.ElementSize(s.info.Input.Datatype)) {
		t, err := ort.NewCustomDataTensor(sl.shape, in.Data, b.dtype)
		if err != nil {
			return gateway.Scores{}, gateway.Errorf(gateway.KindInternal, "onnx: input tensor: %w", err)
		}
		defer t.Destroy()
		input = t
	} else {
		if sl.in == nil {
			sl.inBuf = alignedBytes(len(in.Data))
			if sl.in, err = ort.NewCustomDataTensor(sl.shape, sl.inBuf, b.dtype); err != nil {
				return gateway.Scores{}, gateway.Errorf(gateway.KindInternal, "onnx: input tensor: %w", err)
			}
		}
		copy(sl.inBuf, in.Data)
		input = sl.in
	}

	start := time.Now()
	var terminated chan struct{}
	var stop func() bool
	if ctx.Done() != nil {
		terminated = make(chan struct{})
		stop = context.AfterFunc(ctx, func() {
			sl.run.Terminate()
			close(terminated)
		})
	}
	err = b.session.RunWithOptions([]ort.Value{input}, sl.outputs, sl.run)
	if stop != nil && !stop() {
		<-terminated
		if uErr := sl.run.UnsetTerminate(); uErr != nil {
			reuse = false
		}
	}
	elapsed := time.Since(start)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			b.metrics.observe(outcomeCanceled, elapsed)
			return gateway.Scores{}, ctxError(ctxErr)
		}
		b.metrics.observe(outcomeError, elapsed)
		return gateway.Scores{}, gateway.Errorf(gateway.KindInternal, "onnx: running %s on a batch of %d: %w", s.info.Name, in.Size, err)
	}
	b.metrics.observe(outcomeOK, elapsed)
	values := slices.Clone(sl.out.GetData()[:in.Size*s.Classes])
	return gateway.Scores{Size: in.Size, Classes: s.Classes, Values: values, Backend: BackendName}, nil
}

// checkModel compares m, the description a batch was made for, with the
// model the session runs: the same input (name, datatype, dimensions) and the
// same output (name, dimensions). A batch without one is the caller's bug
// (KindInternal). Tensors made for another model (a Triton that serves
// another version than the repository the fallback reads) are refused with
// KindUnavailable rather than scored as if they were this model's: the
// backend cannot serve that model now; the session is never asked.
func (b *Backend) checkModel(m *gateway.ModelInfo) error {
	if m == nil {
		return gateway.Errorf(gateway.KindInternal, "onnx: a batch without its model's description (Batch.Model)")
	}
	s := b.spec
	if m.Input.Name == s.InputName && m.Input.Datatype == s.info.Input.Datatype && slices.Equal(m.Input.Shape, s.InputDims) &&
		m.Output.Name == s.OutputName && slices.Equal(m.Output.Shape, s.OutputDims) {
		return nil
	}
	return gateway.Errorf(gateway.KindUnavailable,
		"the embedded ONNX backend runs model %q version %s (input %q %s %v, output %q %v), not the batch's model %q version %s (input %q %s %v, output %q %v)",
		s.info.Name, s.info.Version, s.InputName, s.info.Input.Datatype, s.InputDims, s.OutputName, s.OutputDims,
		m.Name, m.Version, m.Input.Name, m.Input.Datatype, m.Input.Shape, m.Output.Name, m.Output.Shape)
}

// ctxError is the gateway error of a context that ended.
func ctxError(err error) *gateway.Error {
	k := gateway.KindOf(err)
	msg := "the request was canceled"
	if k == gateway.KindDeadline {
		msg = "the request's deadline passed"
	}
	return &gateway.Error{Kind: k, Message: msg, Err: err}
}

// getSlot takes an idle slot for batch size n, or makes one.
func (b *Backend) getSlot(n int) (*slot, error) {
	b.poolMu.Lock()
	if list := b.idle[n]; len(list) > 0 {
		sl := list[len(list)-1]
		b.idle[n] = list[:len(list)-1]
		b.poolMu.Unlock()
		return sl, nil
	}
	b.poolMu.Unlock()

	s := b.spec
	sl := &slot{n: n}
	if s.Batched {
		sl.shape = ort.NewShape(append([]int64{int64(n)}, s.InputDims...)...)
	} else {
		sl.shape = ort.NewShape(s.InputDims...)
	}
	outShape := slices.Clone(s.OutputDims)
	if s.Batched {
		outShape = append([]int64{int64(n)}, outShape...)
	}
	var err error
	if sl.out, err = ort.NewEmptyTensor[float32](ort.NewShape(outShape...)); err != nil {
		return nil, fmt.Errorf("output tensor: %w", err)
	}
	sl.outputs = []ort.Value{sl.out}
	if sl.run, err = ort.NewRunOptions(); err != nil {
		sl.destroy()
		return nil, fmt.Errorf("run options: %w", err)
	}
	return sl, nil
}

// putSlot keeps sl for the next call of its size, or frees it when enough are
// idle. Callers hold b.mu shared, so Close cannot run meanwhile.
func (b *Backend) putSlot(sl *slot) {
	b.poolMu.Lock()
	if len(b.idle[sl.n]) < maxIdlePerSize {
		b.idle[sl.n] = append(b.idle[sl.n], sl)
		sl = nil
	}
	b.poolMu.Unlock()
	if sl != nil {
		sl.destroy()
	}
}

// Close waits for running inferences, then frees the session and the tensors.
// The runtime's environment stays loaded for the process. Close is idempotent.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.poolMu.Lock()
	for n, list := range b.idle {
		for _, sl := range list {
			sl.destroy()
		}
		delete(b.idle, n)
	}
	b.poolMu.Unlock()
	var err error
	if b.session != nil {
		err = b.session.Destroy()
	}
	if b.opts != nil {
		err = errors.Join(err, b.opts.Destroy())
	}
	return err
}

// ortType is the ONNX element type of a KServe datatype the backend accepts.
func ortType(datatype string) ort.TensorElementDataType {
	switch datatype {
	case "FP16":
		return ort.TensorElementDataTypeFloat16
	case "UINT8":
		return ort.TensorElementDataTypeUint8
	}
	return ort.TensorElementDataTypeFloat
}

// aligned says whether b's first byte is aligned for elements of size n.
func aligned(b []byte, n int) bool {
	return n <= 1 || uintptr(unsafe.Pointer(unsafe.SliceData(b)))%uintptr(n) == 0
}

// alignedBytes is n zero bytes aligned for any element type the backend uses.
func alignedBytes(n int) []byte {
	words := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), n)
}

func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

// The outcome label values of onnxruntime_run_duration_seconds.
const (
	outcomeOK       = "ok"
	outcomeError    = "error"
	outcomeCanceled = "canceled"
)

// metrics are the backend's collectors.
type metrics struct {
	run *prometheus.HistogramVec
}

// newMetrics builds the backend's collectors and registers them with reg (none
// when reg is nil); a registry holds one backend's: a second registration
// panics.
func newMetrics(reg prometheus.Registerer, info gateway.ModelInfo, version string, threads int) *metrics {
	f := promauto.With(reg)
	run := f.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "onnxruntime_run_duration_seconds",
		Help:    "Duration of one ONNX Runtime session run of the embedded backend (a whole batch), by outcome (ok, error, canceled).",
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10},
	}, []string{"outcome"})
	runtimeInfo := f.NewGaugeVec(prometheus.GaugeOpts{
		Name: "onnxruntime_info",
		Help: "The embedded backend's ONNX Runtime version, model and intra-op threads; always 1.",
	}, []string{"ort_version", "model", "version", "intra_op_threads"})
	for _, o := range []string{outcomeOK, outcomeError, outcomeCanceled} {
		run.WithLabelValues(o)
	}
	runtimeInfo.WithLabelValues(version, info.Name, info.Version, strconv.Itoa(threads)).Set(1)
	return &metrics{run: run}
}

func (m *metrics) observe(outcome string, d time.Duration) {
	if m != nil {
		m.run.WithLabelValues(outcome).Observe(d.Seconds())
	}
}
