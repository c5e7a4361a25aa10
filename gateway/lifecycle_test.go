package gateway

import (
	"context"
	"errors"
	"fmt"
	"image/color"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fish-classifier/fish-classifier/internal/poll"
	"github.com/fish-classifier/fish-classifier/preprocess"
)

// source is a backend whose model the test changes: Model answers model and
// err, Ready answers ready, Infer scores with scoreByRed and records the
// version of the description each batch came with.
type source struct {
	mu       sync.Mutex
	model    ModelInfo
	err      error
	ready    error
	versions []string
	// hold, when set, makes Infer of a batch for that version wait for
	// release, after announcing itself on entered.
	hold             string
	entered, release chan struct{}
}

func (s *source) set(m ModelInfo, err error) {
	s.mu.Lock()
	s.model, s.err = m, err
	s.mu.Unlock()
}

func (s *source) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.versions)
}

func (s *source) backend() InferencerFuncs {
	return InferencerFuncs{
		ModelFunc: func(context.Context) (ModelInfo, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.model, s.err
		},
		InferFunc: func(ctx context.Context, in Batch) (Scores, error) {
			s.mu.Lock()
			s.versions = append(s.versions, in.Model.Version)
			hold := s.hold != "" && s.hold == in.Model.Version
			s.mu.Unlock()
			if hold {
				s.entered <- struct{}{}
				<-s.release
			}
			return scoreByRed(ctx, in)
		},
		ReadyFunc: func(context.Context) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.ready
		},
	}
}

// wantNotLoaded fails unless err is the Classifier's "model not loaded"
// error with message msg.
func wantNotLoaded(t *testing.T, what string, err error, msg string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindUnavailable || e.Message != msg || e.RetryAfter != 2*time.Second {
		t.Errorf("%s: %#v, want KindUnavailable %q with Retry-After 2s", what, err, msg)
	}
}

// The Classifier starts without a model: until a load succeeds every image
// and Ready answer "model not loaded", first "yet", then with the public
// reason of the last failed load; the backend is never asked to infer.
func TestClassifierStartsUnloaded(t *testing.T) {
	down := Errorf(KindUnavailable, "inference server unavailable: connection refused")
	src := &source{err: down, ready: down}
	obs := &recordingObserver{}
	c := NewClassifier(src.backend(), preprocess.DefaultLimits(), obs)
	ctx := context.Background()
	img := solidPNG(t, color.NRGBA{1, 0, 0, 255})

	check := func(msg string) {
		t.Helper()
		_, err := c.Classify(ctx, img, 1)
		wantNotLoaded(t, "Classify", err, msg)
		_, errs := c.ClassifyBatch(ctx, [][]byte{img, []byte("not an image"), img}, 1)
		for i, err := range errs {
			wantNotLoaded(t, fmt.Sprintf("ClassifyBatch image %d", i), err, msg)
		}
		wantNotLoaded(t, "Ready", c.Ready(ctx), msg)
		if m := c.Model(); m.Name != "" || m.Labels != nil {
			t.Errorf("Model = %+v, want the zero ModelInfo", m)
		}
	}
	check("model not loaded yet")
	if got := obs.events(); got != nil {
		t.Errorf("NewClassifier reported %q, want nothing (it does no I/O)", got)
	}

	err := c.Load(ctx)
	if !errors.Is(err, down) {
		t.Fatalf("Load = %v, want the backend's error", err)
	}
	check("model not loaded: inference server unavailable: connection refused")
	if got := obs.events(); !slices.Equal(got, []string{"lost read model: inference server unavailable: connection refused"}) {
		t.Errorf("observer saw %q, want the loss", got)
	}
	// An internal failure's details stay out of the answer.
	src.set(ModelInfo{}, errors.New("dial tcp 10.0.0.7:8001: secret"))
	_ = c.Load(ctx)
	check("model not loaded: internal error")
	if n := len(src.seen()); n != 0 {
		t.Errorf("the backend was asked to infer %d times", n)
	}
}

// Run retries until the backend has the model, then serves it, and refreshes
// it quietly: a refresh that finds the same model reports nothing.
func TestRunLoadsOnceTheBackendIsUp(t *testing.T) {
	src := &source{err: Errorf(KindUnavailable, "model fish is not ready")}
	var reads atomic.Int64
	backend := src.backend()
	model := backend.ModelFunc
	backend.ModelFunc = func(ctx context.Context) (ModelInfo, error) { reads.Add(1); return model(ctx) }
	obs := &recordingObserver{}
	c := NewClassifier(backend, preprocess.DefaultLimits(), obs)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx, 20*time.Millisecond); close(done) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	}()

	waitUntil(t, "two failed loads", func() bool { return reads.Load() >= 3 }) // the third starts after two failed
	src.set(fishModel(4), nil)
	waitUntil(t, "the model to load", func() bool { return c.Ready(ctx) == nil })
	r, err := c.Classify(ctx, solidPNG(t, color.NRGBA{2, 0, 0, 255}), 1)
	if err != nil || r.Version != "3" || r.Predictions[0].Label != "eel" {
		t.Fatalf("Classify once loaded: %+v, %v", r, err)
	}
	after := reads.Load()
	waitUntil(t, "three refreshes", func() bool { return reads.Load() >= after+3 })

	got := obs.events()
	i := slices.Index(got, "loaded 3")
	if i < 2 || slices.ContainsFunc(got[:i], func(e string) bool { return !strings.HasPrefix(e, "lost ") }) || len(got) != i+1 {
		t.Errorf("observer saw %q, want losses, then one load and nothing more", got)
	}
}

// A new version is swapped in and reported; a request that started with the
// old one finishes with it, its batch described as the old one.
func TestLoadSwapsANewVersion(t *testing.T) {
	v3 := fishModel(4)
	src := &source{model: v3, entered: make(chan struct{}), release: make(chan struct{})}
	obs := &recordingObserver{}
	c := loadedClassifier(t, src.backend(), obs)
	if got := obs.events(); !slices.Equal(got, []string{"loaded 3"}) {
		t.Fatalf("first load reported %q", got)
	}
	ctx := context.Background()
	img := solidPNG(t, color.NRGBA{1, 0, 0, 255}) // class 1

	src.mu.Lock()
	src.hold = "3"
	src.mu.Unlock()
	type answer struct {
		r   Result
		err error
	}
	old := make(chan answer, 1)
	go func() { r, err := c.Classify(ctx, img, 1); old <- answer{r, err} }()
	<-src.entered // the request holds version 3's state

	v4 := fishModel(4)
	v4.Version, v4.Labels = "4", []string{"pike", "perch", "carp"}
	src.set(v4, nil)
	if err := c.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if got := obs.events(); !slices.Equal(got, []string{"loaded 4"}) {
		t.Errorf("the new version reported %q, want loaded 4", got)
	}
	if m := c.Model(); m.Version != "4" {
		t.Errorf("Model().Version = %q, want 4", m.Version)
	}
	r, err := c.Classify(ctx, img, 1)
	if err != nil || r.Version != "4" || r.Predictions[0].Label != "perch" {
		t.Errorf("a request after the swap: %+v, %v; want version 4's perch", r, err)
	}
	close(src.release)
	a := <-old
	if a.err != nil || a.r.Version != "3" || a.r.Predictions[0].Label != "tuna" {
		t.Errorf("the request in flight: %+v, %v; want version 3's tuna", a.r, a.err)
	}
	if got := src.seen(); !slices.Equal(got, []string{"3", "4"}) {
		t.Errorf("batches described as versions %q, want [3 4]", got)
	}
	// The same description again is no news.
	err = c.Load(ctx)
	if got := obs.events(); err != nil || got != nil {
		t.Errorf("a refresh that found the same model: %v, reported %q", err, got)
	}
}

// A refresh that fails reports the loss, each time, and the Classifier keeps
// serving the model it has; the next success reports it loaded again.
func TestFailedRefreshKeepsServing(t *testing.T) {
	src := &source{model: fishModel(4)}
	obs := &recordingObserver{}
	c := loadedClassifier(t, src.backend(), obs)
	obs.events()
	ctx := context.Background()

	gone := Errorf(KindUnavailable, "model fish is not ready")
	src.set(ModelInfo{}, gone)
	for range 2 {
		if err := c.Load(ctx); !errors.Is(err, gone) {
			t.Fatalf("Load = %v, want %v", err, gone)
		}
	}
	if got := obs.events(); !slices.Equal(got, []string{"lost read model: model fish is not ready", "lost read model: model fish is not ready"}) {
		t.Errorf("observer saw %q, want the loss twice", got)
	}
	r, err := c.Classify(ctx, solidPNG(t, color.NRGBA{0, 0, 0, 255}), 1)
	if err != nil || r.Version != "3" || r.Predictions[0].Label != "cod" {
		t.Errorf("Classify after the loss: %+v, %v; want the model it had", r, err)
	}
	if err := c.Ready(ctx); err != nil {
		t.Errorf("Ready after the loss = %v, want the backend's answer (nil)", err)
	}

	src.set(fishModel(4), nil)
	if err := c.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if got := obs.events(); !slices.Equal(got, []string{"loaded 3"}) {
		t.Errorf("back after the loss: observer saw %q, want loaded 3", got)
	}
}

// Load asks WithReadyProbe whether the model is served: a model that is read
// but not ready is served anyway (the backend decides per call) and reported
// lost; Ready stays the backend's answer.
func TestReadyProbe(t *testing.T) {
	src := &source{model: fishModel(4)}
	notReady := Errorf(KindUnavailable, "inference server: model fish is not ready")
	var probeErr atomic.Pointer[Error]
	probeErr.Store(notReady)
	probe := func(context.Context) error {
		if e := probeErr.Load(); e != nil {
			return e
		}
		return nil
	}
	obs := &recordingObserver{}
	c := NewClassifier(src.backend(), preprocess.DefaultLimits(), obs, WithReadyProbe(probe))
	ctx := context.Background()
	if err := c.Load(ctx); err != notReady {
		t.Fatalf("Load = %v, want the probe's %v", err, notReady)
	}
	if got := obs.events(); !slices.Equal(got, []string{"lost inference server: model fish is not ready"}) {
		t.Errorf("observer saw %q", got)
	}
	if r, err := c.Classify(ctx, solidPNG(t, color.NRGBA{1, 0, 0, 255}), 1); err != nil || r.Version != "3" {
		t.Errorf("Classify with the model read but not ready: %+v, %v; want an answer", r, err)
	}
	if err := c.Ready(ctx); err != nil {
		t.Errorf("Ready = %v, want the backend's (nil), not the probe's", err)
	}
	probeErr.Store(nil)
	if err := c.Load(ctx); err != nil || !slices.Equal(obs.events(), []string{"loaded 3"}) {
		t.Errorf("Load once ready: %v", err)
	}
}

// waitUntil polls cond for up to 5 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, 5*time.Second, 2*time.Millisecond, what, cond)
}
