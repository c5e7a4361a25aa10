// Package breaker is a circuit breaker (sony/gobreaker) around any
// gateway.Inferencer, and an Inferencer itself: while the backend is failing,
// inference calls are refused at once with a 503 and a Retry-After instead of
// queueing on a backend that cannot answer.
//
// # States
//
// Closed, calls go through and their outcomes are counted. After
// Settings.ConsecutiveFailures server faults in a row, or, when FailureRatio is
// set, once failures make up that share of at least MinRequests counted calls,
// the breaker opens. Open, every Infer is refused without calling the backend,
// with a KindUnavailable error whose RetryAfter is the time left until the next
// probe, and Ready reports the same error. After Settings.OpenTimeout it is
// half-open: up to HalfOpenMaxRequests probes go through (further calls are
// refused as if open); that many successes in a row close it, any failure opens
// it again. Model is never counted nor refused.
//
// gobreaker moves from open to half-open lazily, when it is next asked (a call,
// State, Ready or a metrics scrape); the OpenTimeout is measured on the wall
// clock, which gobreaker does not let anyone inject.
//
// # What counts
//
// The backend's errors are sorted by gateway.KindOf:
//
//   - Failures (server faults): KindUnavailable (including the backend's "model
//     not found", which the Triton adapter maps to unavailable: the model is
//     missing or unloaded there), KindDeadline, KindInternal (including any error
//     without a kind), KindBadGateway, KindOverloaded (the backend shedding load),
//     and any kind not listed here.
//   - Successes: no error, and caller faults — KindInvalid (including the
//     backend's invalid-argument answer), KindTooLarge, KindUnsupportedMedia,
//     KindUnprocessable. The backend answered; the request was at fault.
//   - Excluded: a client that went away — KindCanceled (context.Canceled), or
//     any error at all from a call whose context was canceled, since a backend
//     may report a torn-down call as internal or unavailable. A deadline that
//     passed is not excluded: it is a failure.
//
// An excluded call is neither a success nor a failure. In gobreaker v2.4.0 it
// adds to Counts.Requests and Counts.TotalExclusions only: in the closed state
// it neither trips the breaker nor resets a run of consecutive failures (F F X F
// is three in a row), and it does not count toward MinRequests or the failure
// ratio. In the half-open state it frees its probe slot (gobreaker counts probes
// as Requests − TotalExclusions) and leaves the state as it was. Outcomes of
// calls that started before a state change are ignored.
package breaker

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/attribute"

	"github.com/fish-classifier/fish-classifier/gateway"
)

// EventRejected is the span event of a call the breaker refused without
// trying it (open, or half-open with its probes taken); its attributes name
// the breaker and its state.
const EventRejected = "breaker rejected"

// The attributes of EventRejected.
const (
	attrBreaker = attribute.Key("fish.breaker.name")
	attrState   = attribute.Key("fish.breaker.state")
)

// openMessage is the client-safe message of a refused call.
const openMessage = "circuit breaker open: the inference backend is failing"

// minRetryAfter is the least Retry-After a refusal carries: HTTP counts it in
// whole seconds, and a half-open breaker whose probe is in flight cannot tell
// when it will decide.
const minRetryAfter = time.Second

// Breaker is a circuit breaker around an Inferencer. It is safe for concurrent
// use.
type Breaker struct {
	next        gateway.Inferencer
	cb          *gobreaker.CircuitBreaker[gateway.Scores]
	openTimeout time.Duration
	// probeAt is when the open state ends (Unix nanoseconds), set on entering it.
	probeAt atomic.Int64
	metrics *metrics
}

var _ gateway.Inferencer = (*Breaker)(nil)

// New wraps next in a breaker configured by s, whose metrics are registered with
// reg (nil registers none). It fails if s is invalid; a second breaker of the
// same name on one registry panics (its metrics would be registered twice).
func New(next gateway.Inferencer, s Settings, reg prometheus.Registerer) (*Breaker, error) {
	if next == nil {
		return nil, errors.New("breaker: no Inferencer to wrap")
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	b := &Breaker{next: next, openTimeout: s.OpenTimeout}
	b.cb = gobreaker.NewCircuitBreaker[gateway.Scores](gobreaker.Settings{
		Name:          s.Name,
		MaxRequests:   uint32(s.HalfOpenMaxRequests),
		Interval:      s.Interval,
		Timeout:       s.OpenTimeout,
		ReadyToTrip:   s.readyToTrip,
		OnStateChange: b.onStateChange,
		IsSuccessful:  isSuccessful,
		IsExcluded:    isExcluded,
	})
	b.metrics = newMetrics(reg, s.Name, b.cb.State)
	return b, nil
}

// Infer calls the backend unless the breaker is open (or half-open with its
// probes taken), in which case it returns a KindUnavailable error with a
// RetryAfter at once.
func (b *Breaker) Infer(ctx context.Context, in gateway.Batch) (gateway.Scores, error) {
	called := false
	scores, err := b.cb.Execute(func() (gateway.Scores, error) {
		called = true
		scores, err := b.next.Infer(ctx, in)
		if err != nil && errors.Is(ctx.Err(), context.Canceled) {
			return scores, clientGone{err}
		}
		return scores, err
	})
	if !called {
		// gobreaker.ErrOpenState or ErrTooManyRequests: the only errors Execute
		// returns without running the call.
		b.metrics.rejected.Inc()
		gateway.AddSpanEvent(ctx, EventRejected, attrBreaker.String(b.Name()), attrState.String(b.State()))
		return gateway.Scores{}, b.openError()
	}
	if gone, ok := err.(clientGone); ok {
		err = gone.err
	}
	return scores, err
}

// Model asks the backend; it is neither counted nor refused, so the model stays
// readable while the breaker is open.
func (b *Breaker) Model(ctx context.Context) (gateway.ModelInfo, error) {
	return b.next.Model(ctx)
}

// Ready returns the open breaker's KindUnavailable error while it is open, and
// the backend's answer otherwise. It is not counted.
func (b *Breaker) Ready(ctx context.Context) error {
	if b.cb.State() == gobreaker.StateOpen {
		return b.openError()
	}
	return b.next.Ready(ctx)
}

// State is the breaker's state: "closed", "half-open" or "open".
func (b *Breaker) State() string { return b.cb.State().String() }

// Name is the breaker's name, as in Settings.
func (b *Breaker) Name() string { return b.cb.Name() }

// openError is the error of a refused call.
func (b *Breaker) openError() error {
	return &gateway.Error{
		Kind:       gateway.KindUnavailable,
		Message:    openMessage,
		RetryAfter: max(time.Until(time.Unix(0, b.probeAt.Load())), minRetryAfter),
	}
}

// onStateChange is gobreaker's OnStateChange. gobreaker calls it with its lock
// held, so it must not call back into b.cb.
func (b *Breaker) onStateChange(_ string, from, to gobreaker.State) {
	if to == gobreaker.StateOpen {
		// gobreaker took its own clock reading a moment ago, so this is no
		// earlier than the real end of the open state: Retry-After never
		// invites a client back too soon.
		b.probeAt.Store(time.Now().Add(b.openTimeout).UnixNano())
	}
	b.metrics.transition(from, to)
}

// clientGone marks the error of a call whose client went away, for isExcluded;
// Infer unwraps it before returning.
type clientGone struct{ err error }

func (e clientGone) Error() string { return e.err.Error() }
func (e clientGone) Unwrap() error { return e.err }

// isExcluded is gobreaker's IsExcluded: calls whose client went away.
func isExcluded(err error) bool {
	if err == nil {
		return false
	}
	if _, ok := err.(clientGone); ok {
		return true
	}
	return gateway.KindOf(err) == gateway.KindCanceled
}

// isSuccessful is gobreaker's IsSuccessful: no error, or a caller fault.
// gobreaker asks it only about calls that are not excluded.
func isSuccessful(err error) bool {
	if err == nil {
		return true
	}
	switch gateway.KindOf(err) {
	case gateway.KindInvalid, gateway.KindTooLarge, gateway.KindUnsupportedMedia, gateway.KindUnprocessable:
		return true
	}
	return false
}
