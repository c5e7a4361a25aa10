package breaker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sony/gobreaker/v2"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/internal/poll"
)

// The backend's answers, one of each kind the breaker sorts.
var (
	// Server faults: failures.
	unavailable = gateway.Errorf(gateway.KindUnavailable, "triton: connection refused")
	deadline    = gateway.Errorf(gateway.KindDeadline, "infer: deadline passed")
	internal    = gateway.Errorf(gateway.KindInternal, "infer: unexpected")
	plainError  = errors.New("boom") // no kind: KindInternal
	badGateway  = gateway.Errorf(gateway.KindBadGateway, "output has the wrong shape")
	overloaded  = gateway.Errorf(gateway.KindOverloaded, "backend queue full")
	ctxDeadline = fmt.Errorf("infer: %w", context.DeadlineExceeded)

	// Caller faults: successes.
	invalid       = gateway.Errorf(gateway.KindInvalid, "input has the wrong size")
	modelNotFound = gateway.Errorf(gateway.KindInvalid, "model %q not found", "fish")
	tooLarge      = gateway.Errorf(gateway.KindTooLarge, "batch too large")
	unsupported   = gateway.Errorf(gateway.KindUnsupportedMedia, "not an image")
	unprocessable = gateway.Errorf(gateway.KindUnprocessable, "corrupt image")

	// A client that went away: excluded.
	canceled    = gateway.Errorf(gateway.KindCanceled, "the request was canceled")
	ctxCanceled = fmt.Errorf("infer: %w", context.Canceled)
)

// clientLeft in a script is a call whose context is canceled before it starts
// and whose backend then answers internalAfterCancel, as an adapter might when
// its call is torn down.
var (
	clientLeft          = errors.New("script: the client goes away")
	internalAfterCancel = gateway.Errorf(gateway.KindInternal, "transport is closing")
)

// success in a script is a call the backend answers.
var success error

// backend is the state of the breaker's backend in a test: it counts the
// calls and answers what it is told; inferencer is the backend itself.
type backend struct {
	inferCalls, modelCalls, readyCalls atomic.Int64

	mu       sync.Mutex
	err      error               // Infer's answer
	pick     func(n int64) error // when set, Infer's answer to its nth call (from 1), instead of err
	held     chan error          // when set, Infer announces itself on entered, then answers what it receives here
	entered  chan struct{}       // see held
	readyErr error               // Ready's answer
	modelErr error               // Model's error
	model    gateway.ModelInfo   // Model's answer
}

func (f *backend) infer(ctx context.Context, in gateway.Batch) (gateway.Scores, error) {
	n := f.inferCalls.Add(1)
	f.mu.Lock()
	err, pick, held, entered := f.err, f.pick, f.held, f.entered
	f.mu.Unlock()
	if pick != nil {
		err = pick(n)
	}
	if held != nil {
		entered <- struct{}{}
		err = <-held
	}
	if err != nil {
		return gateway.Scores{}, err
	}
	return gateway.Scores{Size: in.Size, Classes: 1, Values: make([]float32, in.Size)}, nil
}

func (f *backend) describe(context.Context) (gateway.ModelInfo, error) {
	f.modelCalls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.model, f.modelErr
}

func (f *backend) ready(context.Context) error {
	f.readyCalls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.readyErr
}

// inferencer is the Inferencer the breaker wraps.
func (f *backend) inferencer() gateway.Inferencer {
	return gateway.InferencerFuncs{ModelFunc: f.describe, InferFunc: f.infer, ReadyFunc: f.ready}
}

func (f *backend) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// hold makes the next Infer calls wait: each signals on the returned channel when
// it has reached the backend, and answers the error passed to release.
func (f *backend) hold() (entered <-chan struct{}, release func(error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held, f.entered = make(chan error), make(chan struct{})
	return f.entered, func(err error) { f.held <- err }
}

var batch = gateway.Batch{Size: 1, Data: make([]byte, 4)}

// named is DefaultSettings with a name.
func named(name string) Settings {
	s := DefaultSettings()
	s.Name = name
	return s
}

func newBreaker(t *testing.T, s Settings) (*Breaker, *backend, *prometheus.Registry) {
	t.Helper()
	f := &backend{}
	reg := prometheus.NewRegistry()
	b, err := New(f.inferencer(), s, reg)
	if err != nil {
		t.Fatalf("New(%+v) = %v", s, err)
	}
	return b, f, reg
}

// play makes one Infer call per scripted answer and checks that the breaker
// hands each answer back unchanged while it lets calls through.
func play(t *testing.T, b *Breaker, f *backend, script ...error) {
	t.Helper()
	for i, answer := range script {
		ctx, cancel := context.WithCancel(context.Background())
		want := answer
		if answer == clientLeft {
			cancel()
			want = internalAfterCancel
		}
		f.setErr(want)
		before := f.inferCalls.Load()
		_, err := b.Infer(ctx, batch)
		cancel()
		if f.inferCalls.Load() == before {
			continue // refused; the caller checks the state
		}
		if err != want {
			t.Fatalf("call %d: Infer = %v (%T), want the backend's answer %v", i, err, err, want)
		}
	}
}

// repeat is n copies of err.
func repeat(err error, n int) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}

// concat joins scripts.
func concat(scripts ...[]error) []error {
	var out []error
	for _, s := range scripts {
		out = append(out, s...)
	}
	return out
}

// halfOpenBreaker is a breaker that one server fault opened and whose 20 ms
// OpenTimeout has passed, allowing that many half-open probes; call it in a
// synctest bubble, where that wait takes no time.
func halfOpenBreaker(t *testing.T, probes int) (*Breaker, *backend) {
	t.Helper()
	b, f, _ := newBreaker(t, Settings{Name: "test", ConsecutiveFailures: 1, OpenTimeout: 20 * time.Millisecond, HalfOpenMaxRequests: probes})
	play(t, b, f, unavailable)
	waitForState(t, b, "half-open")
	return b, f
}

// waitForState polls the breaker's state until it is want, failing after a few
// seconds.
func waitForState(t *testing.T, b *Breaker, want string) {
	t.Helper()
	poll.Until(t, 5*time.Second, time.Millisecond, "state "+want, func() bool { return b.State() == want })
}

// checkOpenError checks that err is the refusal of an open breaker, with a
// RetryAfter between minRetry and maxRetry.
func checkOpenError(t *testing.T, err error, minRetry, maxRetry time.Duration) {
	t.Helper()
	var e *gateway.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v (%T), want a *gateway.Error", err, err)
	}
	if e.Kind != gateway.KindUnavailable {
		t.Errorf("error kind = %v, want %v", e.Kind, gateway.KindUnavailable)
	}
	if e.Message != openMessage {
		t.Errorf("error message = %q, want %q", e.Message, openMessage)
	}
	if got := gateway.RetryAfter(err); got < minRetry || got > maxRetry {
		t.Errorf("RetryAfter = %v, want between %v and %v", got, minRetry, maxRetry)
	}
}

func transitionCount(b *Breaker, from, to string) float64 {
	return testutil.ToFloat64(b.metrics.transitions.WithLabelValues(from, to))
}

func TestClassification(t *testing.T) {
	const n = 3
	tests := []struct {
		name      string
		script    []error
		wantState string
		// wantCounts, when set, are gobreaker's counts after the script (only
		// meaningful while closed: a state change clears them).
		wantCounts *gobreaker.Counts
	}{
		{name: "N unavailable trip it", script: repeat(unavailable, n), wantState: "open"},
		{name: "N deadlines trip it", script: repeat(deadline, n), wantState: "open"},
		{name: "N context deadlines trip it", script: repeat(ctxDeadline, n), wantState: "open"},
		{name: "N internal errors trip it", script: repeat(internal, n), wantState: "open"},
		{name: "N errors without a kind trip it", script: repeat(plainError, n), wantState: "open"},
		{name: "N bad gateways trip it", script: repeat(badGateway, n), wantState: "open"},
		{name: "N overloaded trip it", script: repeat(overloaded, n), wantState: "open"},
		{name: "N mixed server faults trip it", script: []error{unavailable, deadline, badGateway}, wantState: "open"},
		{
			name: "N-1 server faults leave it closed", script: repeat(unavailable, n-1), wantState: "closed",
			wantCounts: &gobreaker.Counts{Requests: 2, TotalFailures: 2, ConsecutiveFailures: 2},
		},
		{
			name: "a success ends the run", script: []error{unavailable, unavailable, success, unavailable, unavailable}, wantState: "closed",
			wantCounts: &gobreaker.Counts{Requests: 5, TotalSuccesses: 1, TotalFailures: 4, ConsecutiveFailures: 2},
		},
		{
			name: "a caller fault ends the run", script: []error{unavailable, unavailable, invalid, unavailable, unavailable}, wantState: "closed",
			wantCounts: &gobreaker.Counts{Requests: 5, TotalSuccesses: 1, TotalFailures: 4, ConsecutiveFailures: 2},
		},
		{
			name: "N+10 invalid never trip it", script: repeat(invalid, n+10), wantState: "closed",
			wantCounts: &gobreaker.Counts{Requests: n + 10, TotalSuccesses: n + 10, ConsecutiveSuccesses: n + 10},
		},
		{name: "N+10 model not found never trip it", script: repeat(modelNotFound, n+10), wantState: "closed"},
		{name: "N+10 too large never trip it", script: repeat(tooLarge, n+10), wantState: "closed"},
		{name: "N+10 unsupported media never trip it", script: repeat(unsupported, n+10), wantState: "closed"},
		{name: "N+10 unprocessable never trip it", script: repeat(unprocessable, n+10), wantState: "closed"},
		{
			name: "N+10 canceled never trip it, counted as exclusions only", script: repeat(canceled, n+10), wantState: "closed",
			wantCounts: &gobreaker.Counts{Requests: n + 10, TotalExclusions: n + 10},
		},
		{
			name: "N+10 context.Canceled never trip it", script: repeat(ctxCanceled, n+10), wantState: "closed",
			wantCounts: &gobreaker.Counts{Requests: n + 10, TotalExclusions: n + 10},
		},
		{
			name: "an internal error after the client left is excluded", script: repeat(clientLeft, n+10), wantState: "closed",
			wantCounts: &gobreaker.Counts{Requests: n + 10, TotalExclusions: n + 10},
		},
		{
			name: "canceled calls keep the run of failures", script: []error{unavailable, unavailable, canceled, ctxCanceled, clientLeft}, wantState: "closed",
			wantCounts: &gobreaker.Counts{Requests: 5, TotalFailures: 2, TotalExclusions: 3, ConsecutiveFailures: 2},
		},
		{name: "canceled calls between failures do not reset the run", script: []error{unavailable, canceled, unavailable, clientLeft, ctxCanceled, unavailable}, wantState: "open"},
		{
			name: "canceled calls do not end a run of successes", script: []error{success, success, canceled, success}, wantState: "closed",
			wantCounts: &gobreaker.Counts{Requests: 4, TotalSuccesses: 3, TotalExclusions: 1, ConsecutiveSuccesses: 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, f, _ := newBreaker(t, Settings{Name: "test", ConsecutiveFailures: n, OpenTimeout: time.Hour, HalfOpenMaxRequests: 1})
			play(t, b, f, tt.script...)
			if got := b.State(); got != tt.wantState {
				t.Errorf("state = %q, want %q", got, tt.wantState)
			}
			if got := f.inferCalls.Load(); got != int64(len(tt.script)) {
				t.Errorf("backend calls = %d, want %d", got, len(tt.script))
			}
			if tt.wantCounts != nil {
				if got := b.cb.Counts(); got != *tt.wantCounts {
					t.Errorf("counts = %+v, want %+v", got, *tt.wantCounts)
				}
			}
		})
	}
}

func TestOpenRefusesWithoutCallingBackend(t *testing.T) {
	const timeout = time.Minute
	b, f, _ := newBreaker(t, Settings{Name: "test", ConsecutiveFailures: 3, OpenTimeout: timeout, HalfOpenMaxRequests: 1})
	play(t, b, f, repeat(unavailable, 3)...)
	if got := b.State(); got != "open" {
		t.Fatalf("state after 3 server faults = %q, want open", got)
	}
	f.setErr(nil)
	const refused = 5
	for i := range refused {
		scores, err := b.Infer(context.Background(), batch)
		checkOpenError(t, err, timeout-10*time.Second, timeout)
		if scores.Values != nil {
			t.Errorf("call %d: scores = %+v, want none", i, scores)
		}
	}
	if got := f.inferCalls.Load(); got != 3 {
		t.Errorf("backend calls = %d, want 3 (none while open)", got)
	}
	if got := testutil.ToFloat64(b.metrics.rejected); got != refused {
		t.Errorf("rejected = %v, want %d", got, refused)
	}
	if got := gateway.PublicMessage(func() error { _, err := b.Infer(context.Background(), batch); return err }()); got != openMessage {
		t.Errorf("public message = %q, want %q", got, openMessage)
	}
}

func TestDefaults(t *testing.T) {
	d := DefaultSettings()
	if d != (Settings{ConsecutiveFailures: 5, OpenTimeout: 10 * time.Second, HalfOpenMaxRequests: 1, Interval: time.Minute}) {
		t.Errorf("DefaultSettings() = %+v", d)
	}
	b, f, _ := newBreaker(t, named("test"))
	play(t, b, f, repeat(unavailable, d.ConsecutiveFailures-1)...)
	if got := b.State(); got != "closed" {
		t.Fatalf("state after %d server faults = %q, want closed", d.ConsecutiveFailures-1, got)
	}
	play(t, b, f, unavailable)
	if got := b.State(); got != "open" {
		t.Fatalf("state after %d server faults = %q, want open", d.ConsecutiveFailures, got)
	}
	_, err := b.Infer(context.Background(), batch)
	checkOpenError(t, err, d.OpenTimeout-5*time.Second, d.OpenTimeout)
}

func TestHalfOpenProbe(t *testing.T) {
	tests := []struct {
		name  string
		probe error
		// wantState is the state after the probe. The tests run in synctest
		// bubbles, where the 20 ms OpenTimeout passes only when every goroutine
		// waits: no state changes behind a check's back.
		wantState string
	}{
		{"a successful probe closes it", success, "closed"},
		{"a caller fault closes it", invalid, "closed"},
		{"a server fault opens it again", unavailable, "open"},
		{"a deadline opens it again", deadline, "open"},
		{"a canceled probe leaves it half-open", canceled, "half-open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b, f := halfOpenBreaker(t, 1)

				entered, release := f.hold()
				probe := make(chan error, 1)
				go func() {
					_, err := b.Infer(context.Background(), batch)
					probe <- err
				}()
				select {
				case <-entered:
				case <-time.After(5 * time.Second):
					t.Fatal("the half-open probe did not reach the backend")
				}

				// The probe is in flight: the quota of one is used, so the next call
				// is refused, with the least Retry-After since the breaker cannot
				// tell when it will decide.
				_, err := b.Infer(context.Background(), batch)
				checkOpenError(t, err, minRetryAfter, minRetryAfter)
				if got := f.inferCalls.Load(); got != 2 {
					t.Errorf("backend calls = %d, want 2 (the trip and the probe)", got)
				}
				if got := testutil.ToFloat64(b.metrics.rejected); got != 1 {
					t.Errorf("rejected = %v, want 1", got)
				}

				release(tt.probe)
				if err := <-probe; err != tt.probe {
					t.Errorf("probe's Infer = %v, want the backend's answer %v", err, tt.probe)
				}
				switch tt.wantState {
				case "open":
					if got := transitionCount(b, "half-open", "open"); got != 1 {
						t.Errorf("half-open→open transitions = %v, want 1", got)
					}
				}
				if got := b.State(); got != tt.wantState {
					t.Errorf("state after the probe = %q, want %q", got, tt.wantState)
				}
				if tt.wantState != "half-open" {
					return
				}
				// An excluded probe frees its slot: the next call is a probe.
				f.mu.Lock()
				f.held = nil
				f.mu.Unlock()
				play(t, b, f, success)
				if got := f.inferCalls.Load(); got != 3 {
					t.Errorf("backend calls = %d, want 3 (a second probe after the canceled one)", got)
				}
				if got := b.State(); got != "closed" {
					t.Errorf("state after the second probe = %q, want closed", got)
				}
			})
		})
	}
}

func TestHalfOpenMaxRequests(t *testing.T) {
	tests := []struct {
		name      string
		probes    []error
		wantState string
	}{
		{"one success of two leaves it half-open", []error{success}, "half-open"},
		{"two successes close it", []error{success, success}, "closed"},
		{"a success and a caller fault close it", []error{success, modelNotFound}, "closed"},
		{"a failure after a success opens it", []error{success, unavailable}, "open"},
		{"an excluded probe does not use the quota", []error{success, canceled, success}, "closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b, f := halfOpenBreaker(t, 2)
				play(t, b, f, tt.probes...)
				if got := f.inferCalls.Load(); got != int64(1+len(tt.probes)) {
					t.Errorf("backend calls = %d, want %d (every probe let through)", got, 1+len(tt.probes))
				}
				if tt.wantState == "open" {
					if got := transitionCount(b, "half-open", "open"); got != 1 {
						t.Errorf("half-open→open transitions = %v, want 1", got)
					}
				}
				if got := b.State(); got != tt.wantState {
					t.Errorf("state = %q, want %q", got, tt.wantState)
				}
			})
		})
	}
	t.Run("a third probe is refused", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b, f := halfOpenBreaker(t, 2)
			entered, release := f.hold()
			done := make(chan error, 2)
			for range 2 {
				go func() {
					_, err := b.Infer(context.Background(), batch)
					done <- err
				}()
				<-entered
			}
			_, err := b.Infer(context.Background(), batch)
			checkOpenError(t, err, minRetryAfter, minRetryAfter)
			release(success)
			release(success)
			for range 2 {
				if err := <-done; err != nil {
					t.Errorf("probe = %v, want success", err)
				}
			}
			if got := b.State(); got != "closed" {
				t.Errorf("state after two successful probes = %q, want closed", got)
			}
		})
	})
}

func TestFailureRatio(t *testing.T) {
	tests := []struct {
		name      string
		script    []error
		wantState string
	}{
		{"failures below MinRequests leave it closed", repeat(unavailable, 3), "closed"},
		{"failures reaching MinRequests trip it", repeat(unavailable, 4), "open"},
		{"half failures at MinRequests trip it", []error{success, unavailable, success, unavailable}, "open"},
		{"a quarter of failures leaves it closed", []error{success, success, success, unavailable}, "closed"},
		{"two of five leaves it closed", []error{success, success, success, unavailable, unavailable}, "closed"},
		{"three of six trips it", []error{success, success, success, unavailable, unavailable, unavailable}, "open"},
		{"caller faults count as successes", []error{invalid, tooLarge, unavailable, unavailable}, "open"},
		{"caller faults dilute the ratio", []error{invalid, tooLarge, unprocessable, unavailable}, "closed"},
		{"excluded calls do not count toward MinRequests", []error{canceled, ctxCanceled, clientLeft, unavailable}, "closed"},
		{"excluded calls do not dilute the ratio", []error{success, canceled, canceled, canceled, unavailable, success, unavailable}, "open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, f, _ := newBreaker(t, Settings{Name: "test", ConsecutiveFailures: 100, FailureRatio: 0.5, MinRequests: 4, OpenTimeout: time.Hour, HalfOpenMaxRequests: 1})
			play(t, b, f, tt.script...)
			if got := b.State(); got != tt.wantState {
				t.Errorf("state = %q, want %q (counts before a trip: see script)", got, tt.wantState)
			}
		})
	}
	t.Run("consecutive failures still trip it", func(t *testing.T) {
		b, f, _ := newBreaker(t, Settings{Name: "test", ConsecutiveFailures: 3, FailureRatio: 0.9, MinRequests: 100, OpenTimeout: time.Hour, HalfOpenMaxRequests: 1})
		play(t, b, f, success, success, success, unavailable, unavailable, unavailable)
		if got := b.State(); got != "open" {
			t.Errorf("state = %q, want open", got)
		}
	})
}

func TestIntervalResetsCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, f, _ := newBreaker(t, Settings{Name: "test", ConsecutiveFailures: 3, Interval: 20 * time.Millisecond, OpenTimeout: time.Hour, HalfOpenMaxRequests: 1})
		play(t, b, f, unavailable, unavailable)
		// Wait for the window to turn: gobreaker clears the counts when next asked.
		deadline := time.Now().Add(5 * time.Second)
		for b.State(); b.cb.Counts().Requests != 0; b.State() {
			if time.Now().After(deadline) {
				t.Fatalf("counts = %+v after 5s, want them cleared", b.cb.Counts())
			}
			time.Sleep(time.Millisecond)
		}
		play(t, b, f, unavailable)
		if got := b.State(); got != "closed" {
			t.Fatalf("state after 2 faults, a new window and 1 fault = %q, want closed", got)
		}
		play(t, b, f, unavailable, unavailable)
		if got := b.State(); got != "open" {
			t.Errorf("state after 3 faults in one window = %q, want open", got)
		}
	})
}

func TestReadyAndModel(t *testing.T) {
	b, f, _ := newBreaker(t, Settings{Name: "test", ConsecutiveFailures: 2, OpenTimeout: time.Hour, HalfOpenMaxRequests: 1})
	f.model = gateway.ModelInfo{Name: "fish", Version: "1"}
	notReady := gateway.Errorf(gateway.KindUnavailable, "model fish not ready")
	ctx := context.Background()

	// Closed: both pass through, and neither counts.
	if err := b.Ready(ctx); err != nil {
		t.Errorf("closed, ready backend: Ready = %v, want nil", err)
	}
	f.readyErr = notReady
	f.modelErr = unavailable
	for range 10 {
		if err := b.Ready(ctx); err != notReady {
			t.Errorf("closed, backend not ready: Ready = %v, want %v", err, notReady)
		}
		if _, err := b.Model(ctx); err != unavailable {
			t.Errorf("closed: Model error = %v, want %v", err, unavailable)
		}
	}
	if got := b.State(); got != "closed" {
		t.Errorf("state after 10 failing Ready and Model calls = %q, want closed (they are not counted)", got)
	}
	f.readyErr, f.modelErr = nil, nil

	// Open: Ready reports the breaker without asking the backend; Model still
	// passes through.
	play(t, b, f, unavailable, unavailable)
	readyCalls, modelCalls := f.readyCalls.Load(), f.modelCalls.Load()
	checkOpenError(t, b.Ready(ctx), time.Hour-10*time.Second, time.Hour)
	if got := f.readyCalls.Load(); got != readyCalls {
		t.Errorf("open: backend Ready calls = %d, want %d", got, readyCalls)
	}
	m, err := b.Model(ctx)
	if err != nil || m.Name != "fish" || m.Version != "1" {
		t.Errorf("open: Model = %+v, %v, want the backend's model", m, err)
	}
	if got := f.modelCalls.Load(); got != modelCalls+1 {
		t.Errorf("open: backend Model calls = %d, want %d", got, modelCalls+1)
	}
	if got := testutil.ToFloat64(b.metrics.rejected); got != 0 {
		t.Errorf("rejected = %v, want 0 (Ready and Model are not Infer calls)", got)
	}
}

func TestMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// exposition is the expected text of all three metrics.
		exposition := func(rejected, state int, closedOpen, halfOpenClosed, halfOpenOpen, openHalfOpen int) *strings.Reader {
			return strings.NewReader(fmt.Sprintf(`
	# HELP circuit_breaker_rejected_total Inference calls the circuit breaker refused without calling the backend, because it was open or its half-open probes were taken.
	# TYPE circuit_breaker_rejected_total counter
	circuit_breaker_rejected_total{name="triton"} %d
	# HELP circuit_breaker_state State of the circuit breaker in front of the inference backend: 0 closed, 1 half-open, 2 open.
	# TYPE circuit_breaker_state gauge
	circuit_breaker_state{name="triton"} %d
	# HELP circuit_breaker_transitions_total State changes of the circuit breaker in front of the inference backend, by the state left and the state entered.
	# TYPE circuit_breaker_transitions_total counter
	circuit_breaker_transitions_total{from="closed",name="triton",to="open"} %d
	circuit_breaker_transitions_total{from="half-open",name="triton",to="closed"} %d
	circuit_breaker_transitions_total{from="half-open",name="triton",to="open"} %d
	circuit_breaker_transitions_total{from="open",name="triton",to="half-open"} %d
	`, rejected, state, closedOpen, halfOpenClosed, halfOpenOpen, openHalfOpen))
		}
		const timeout = 200 * time.Millisecond

		b, f, reg := newBreaker(t, Settings{Name: "triton", ConsecutiveFailures: 2, OpenTimeout: timeout, HalfOpenMaxRequests: 1})
		if err := testutil.GatherAndCompare(reg, exposition(0, 0, 0, 0, 0, 0)); err != nil {
			t.Errorf("after New:\n%v", err)
		}

		play(t, b, f, unavailable, unavailable)
		for range 3 {
			_, err := b.Infer(context.Background(), batch)
			checkOpenError(t, err, minRetryAfter, minRetryAfter) // OpenTimeout < 1s: the floor
		}
		if err := testutil.GatherAndCompare(reg, strings.NewReader(`
	# HELP circuit_breaker_state State of the circuit breaker in front of the inference backend: 0 closed, 1 half-open, 2 open.
	# TYPE circuit_breaker_state gauge
	circuit_breaker_state{name="triton"} 2
	`), "circuit_breaker_state"); err != nil {
			t.Errorf("while open:\n%v", err)
		}

		waitForState(t, b, "half-open")
		if err := testutil.GatherAndCompare(reg, strings.NewReader(`
	# HELP circuit_breaker_state State of the circuit breaker in front of the inference backend: 0 closed, 1 half-open, 2 open.
	# TYPE circuit_breaker_state gauge
	circuit_breaker_state{name="triton"} 1
	`), "circuit_breaker_state"); err != nil {
			t.Errorf("while half-open:\n%v", err)
		}

		play(t, b, f, success)
		if err := testutil.GatherAndCompare(reg, exposition(3, 0, 1, 1, 0, 1)); err != nil {
			t.Errorf("after closed→open→half-open→closed:\n%v", err)
		}

		problems, err := testutil.GatherAndLint(reg)
		if err != nil {
			t.Fatalf("GatherAndLint: %v", err)
		}
		for _, p := range problems {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	})
}

func TestMetricsRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(gateway.InferencerFuncs{}, named("triton"), reg); err != nil {
		t.Fatalf("first breaker: %v", err)
	}
	if _, err := New(gateway.InferencerFuncs{}, named("onnx"), reg); err != nil {
		t.Fatalf("a second breaker with another name on the same registry: %v", err)
	}
	panicked := func() (panicked bool) {
		defer func() { panicked = recover() != nil }()
		_, _ = New(gateway.InferencerFuncs{}, named("triton"), reg)
		return false
	}()
	if !panicked {
		t.Fatal("a second breaker named triton on the same registry did not panic")
	}
	// Two breakers' worth of series, no more.
	if got, err := testutil.GatherAndCount(reg); err != nil || got != 2*6 {
		t.Errorf("series = %d, %v, want %d", got, err, 2*6)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) > 0 {
		t.Errorf("lint = %v, %v, want no problems", problems, err)
	}
	if _, err := New(gateway.InferencerFuncs{}, named("unregistered"), nil); err != nil {
		t.Errorf("nil registry: New = %v, want no error", err)
	}
}

func TestConcurrentInfer(t *testing.T) {
	b, f, reg := newBreaker(t, Settings{Name: "test", ConsecutiveFailures: 3, OpenTimeout: time.Millisecond, HalfOpenMaxRequests: 2, FailureRatio: 0.5, MinRequests: 10})
	answers := []error{success, unavailable, invalid, unavailable, canceled, deadline, success}
	f.pick = func(n int64) error { return answers[n%int64(len(answers))] }

	const workers, calls = 16, 200
	var wg sync.WaitGroup
	stop := make(chan struct{})
	go func() { // readers alongside the callers
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = b.State()
			_ = b.Ready(context.Background())
			_, _ = b.Model(context.Background())
			if _, err := reg.Gather(); err != nil {
				t.Errorf("Gather: %v", err)
				return
			}
		}
	}()
	var refused atomic.Int64
	for range workers {
		wg.Go(func() {
			for range calls {
				_, err := b.Infer(context.Background(), batch)
				if e := (*gateway.Error)(nil); errors.As(err, &e) && e.Message == openMessage {
					refused.Add(1)
					if e.RetryAfter < minRetryAfter {
						t.Errorf("RetryAfter = %v, want at least %v", e.RetryAfter, minRetryAfter)
					}
					continue
				}
				if !isAnswer(err, answers) {
					t.Errorf("Infer = %v, want one of the backend's answers", err)
				}
			}
		})
	}
	wg.Wait()
	close(stop)

	if got, want := f.inferCalls.Load()+refused.Load(), int64(workers*calls); got != want {
		t.Errorf("backend calls %d + refused %d = %d, want every call: %d", f.inferCalls.Load(), refused.Load(), got, want)
	}
	if got := testutil.ToFloat64(b.metrics.rejected); got != float64(refused.Load()) {
		t.Errorf("rejected metric = %v, want %d", got, refused.Load())
	}
	t.Logf("%d calls: %d reached the backend, %d refused; %v closed→open transitions",
		workers*calls, f.inferCalls.Load(), refused.Load(), transitionCount(b, "closed", "open"))
}

func isAnswer(err error, answers []error) bool {
	for _, a := range answers {
		if err == a {
			return true
		}
	}
	return false
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name       string
		edit       func(*Settings) // of named("t")
		wantFields []string        // named in the error, one problem each; none: valid
	}{
		{"the defaults", func(*Settings) {}, nil},
		{"everything set", func(s *Settings) {
			*s = Settings{Name: "triton", ConsecutiveFailures: 3, FailureRatio: 0.5, MinRequests: 20, OpenTimeout: time.Second, HalfOpenMaxRequests: 2, Interval: time.Minute}
		}, nil},
		{"ratio of 1", func(s *Settings) { s.FailureRatio, s.MinRequests = 1, 1 }, nil},
		{"never reset", func(s *Settings) { s.Interval = 0 }, nil},
		{"no name", func(s *Settings) { s.Name = "" }, []string{"Name"}},
		// Zero is not "the default": settings built field by field must say
		// every value.
		{"the zero Settings", func(s *Settings) { *s = Settings{} }, []string{"Name", "ConsecutiveFailures", "HalfOpenMaxRequests", "OpenTimeout"}},
		{"zero consecutive failures", func(s *Settings) { s.ConsecutiveFailures = 0 }, []string{"ConsecutiveFailures"}},
		{"negative consecutive failures", func(s *Settings) { s.ConsecutiveFailures = -1 }, []string{"ConsecutiveFailures"}},
		{"too many consecutive failures", func(s *Settings) { s.ConsecutiveFailures = math.MaxUint32 + 1 }, []string{"ConsecutiveFailures"}},
		{"zero half-open requests", func(s *Settings) { s.HalfOpenMaxRequests = 0 }, []string{"HalfOpenMaxRequests"}},
		{"negative half-open requests", func(s *Settings) { s.HalfOpenMaxRequests = -2 }, []string{"HalfOpenMaxRequests"}},
		{"ratio above 1", func(s *Settings) { s.FailureRatio, s.MinRequests = 1.5, 10 }, []string{"FailureRatio"}},
		{"negative ratio", func(s *Settings) { s.FailureRatio, s.MinRequests = -0.1, 10 }, []string{"FailureRatio"}},
		{"NaN ratio", func(s *Settings) { s.FailureRatio, s.MinRequests = math.NaN(), 10 }, []string{"FailureRatio"}},
		{"ratio without MinRequests", func(s *Settings) { s.FailureRatio = 0.5 }, []string{"MinRequests"}},
		{"MinRequests without ratio", func(s *Settings) { s.MinRequests = 10 }, []string{"FailureRatio"}},
		{"negative MinRequests", func(s *Settings) { s.MinRequests = -1 }, []string{"MinRequests"}},
		{"zero open timeout", func(s *Settings) { s.OpenTimeout = 0 }, []string{"OpenTimeout"}},
		{"negative open timeout", func(s *Settings) { s.OpenTimeout = -time.Second }, []string{"OpenTimeout"}},
		{"negative interval", func(s *Settings) { s.Interval = -time.Second }, []string{"Interval"}},
		{
			"every problem at once",
			func(s *Settings) {
				*s = Settings{ConsecutiveFailures: -1, HalfOpenMaxRequests: -1, FailureRatio: 2, MinRequests: -1, OpenTimeout: -1, Interval: -1}
			},
			[]string{"Name", "ConsecutiveFailures", "HalfOpenMaxRequests", "MinRequests", "FailureRatio", "OpenTimeout", "Interval"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			settings := named("t")
			tt.edit(&settings)
			err := settings.Validate()
			if len(tt.wantFields) == 0 {
				if err != nil {
					t.Errorf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want problems with %v", tt.wantFields)
			}
			msg := err.Error()
			for _, field := range tt.wantFields {
				if !strings.Contains(msg, " "+field+": ") {
					t.Errorf("Validate = %q, want it to name %s", msg, field)
				}
			}
			if got := strings.Count(msg, "\n") + 1; got != len(tt.wantFields) {
				t.Errorf("Validate reported %d problems, want %d:\n%s", got, len(tt.wantFields), msg)
			}
			if _, err := New(gateway.InferencerFuncs{}, settings, nil); err == nil {
				t.Errorf("New accepted settings that Validate rejects")
			}
		})
	}
	if _, err := New(nil, named("t"), nil); err == nil {
		t.Errorf("New(nil, ...) = nil error, want one")
	}
}

func TestRejectionIsAnEventOfTheCallersSpan(t *testing.T) {
	b, f, _ := newBreaker(t, Settings{Name: "triton", ConsecutiveFailures: 1, OpenTimeout: time.Minute, HalfOpenMaxRequests: 1})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, span := tp.Tracer("test").Start(context.Background(), "infer")
	play(t, b, f, unavailable) // the call that opens it: no rejection
	_, _ = b.Infer(ctx, batch)
	span.End()

	events := rec.Ended()[0].Events()
	if len(events) != 1 || events[0].Name != EventRejected {
		t.Fatalf("events %+v, want one %q", events, EventRejected)
	}
	got := map[string]string{}
	for _, kv := range events[0].Attributes {
		got[string(kv.Key)] = kv.Value.AsString()
	}
	if got["fish.breaker.name"] != "triton" || got["fish.breaker.state"] != "open" {
		t.Errorf("event attributes %v, want the breaker's name and state", got)
	}
}
