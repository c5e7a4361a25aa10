// Package fallback serves inference from a secondary backend while the primary
// cannot: with Triton as the primary (behind its circuit breaker) and the
// embedded ONNX Runtime as the secondary, an open breaker, a Triton that is down
// or a model that is not ready yields a degraded answer from the CPU instead of a
// 503. Both backends serve the same model repository, so they agree on the
// model's inputs, labels and preprocessing.
//
// Only KindUnavailable from the primary falls back: a deadline, a malformed
// answer or a caller fault is the primary's real answer and is returned as it
// is. The Scores say which backend answered (Scores.Backend), and the gateway
// reports it in the response and in the backend label of its metrics.
package fallback

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.opentelemetry.io/otel/attribute"

	"github.com/fish-classifier/fish-classifier/gateway"
)

// EventFallback is the span event of a call the secondary serves because the
// primary could not (attribute fish.fallback.reason: the primary's error); the
// Classifier's infer span then says which backend answered.
const EventFallback = "fallback"

// Fallback is a gateway.Inferencer that tries primary, then secondary.
type Fallback struct {
	primary, secondary gateway.Inferencer
	served             *prometheus.CounterVec
}

var _ gateway.Inferencer = (*Fallback)(nil)

// New returns a Fallback whose metrics are registered with reg (none when reg
// is nil); reg must not hold another Fallback's: a second registration panics.
func New(primary, secondary gateway.Inferencer, reg prometheus.Registerer) (*Fallback, error) {
	if primary == nil || secondary == nil {
		return nil, errors.New("fallback: both backends are required")
	}
	f := &Fallback{
		primary: primary, secondary: secondary,
		served: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "inference_fallback_total",
			Help: "Inference calls the secondary backend answered because the primary was unavailable, by outcome (ok or error).",
		}, []string{"outcome"}),
	}
	f.served.WithLabelValues("ok")
	f.served.WithLabelValues("error")
	return f, nil
}

// Model describes the primary's model, or the secondary's while the primary
// cannot say (so a gateway started while Triton is down still serves).
func (f *Fallback) Model(ctx context.Context) (gateway.ModelInfo, error) {
	m, err := f.primary.Model(ctx)
	if err == nil || gateway.KindOf(err) != gateway.KindUnavailable {
		return m, err
	}
	return f.secondary.Model(ctx)
}

// Infer asks the primary; when it is unavailable, the secondary answers and the
// Scores name it.
func (f *Fallback) Infer(ctx context.Context, in gateway.Batch) (gateway.Scores, error) {
	s, err := f.primary.Infer(ctx, in)
	if err == nil || gateway.KindOf(err) != gateway.KindUnavailable || ctx.Err() != nil {
		return s, err
	}
	gateway.AddSpanEvent(ctx, EventFallback, attribute.String("fish.fallback.reason", gateway.PublicMessage(err)))
	m, merr := f.secondary.Model(ctx)
	if merr != nil {
		f.served.WithLabelValues("error").Inc()
		return s, err // the primary's error says more than the secondary's
	}
	s, serr := f.secondary.Infer(ctx, in)
	if serr != nil {
		f.served.WithLabelValues("error").Inc()
		return s, serr
	}
	f.served.WithLabelValues("ok").Inc()
	s.Backend = m.Backend
	return s, nil
}

// Ready is nil when either backend can serve.
func (f *Fallback) Ready(ctx context.Context) error {
	err := f.primary.Ready(ctx)
	if err == nil {
		return nil
	}
	if f.secondary.Ready(ctx) == nil {
		return nil
	}
	return err
}
