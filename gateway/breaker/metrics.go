package breaker

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sony/gobreaker/v2"
)

// metrics are one breaker's collectors. Every series carries the breaker's name
// as a constant label, so several breakers (one per backend) can share a
// registry: each registers its own collectors, told apart by that label (two
// breakers of one name on one registry panic at the second's registration).
//
// Cardinality: name has one value per breaker, and a process builds one breaker
// per backend (one or two). from/to take the four transitions gobreaker makes
// (closed→open, open→half-open, half-open→closed, half-open→open). At most six
// series per breaker.
type metrics struct {
	state       prometheus.GaugeFunc
	transitions *prometheus.CounterVec
	rejected    prometheus.Counter
}

// transitions lists every state change gobreaker makes, so each series exists
// (at 0) from the start and rate() and increase() see the first one.
var transitions = [...][2]gobreaker.State{
	{gobreaker.StateClosed, gobreaker.StateOpen},
	{gobreaker.StateOpen, gobreaker.StateHalfOpen},
	{gobreaker.StateHalfOpen, gobreaker.StateClosed},
	{gobreaker.StateHalfOpen, gobreaker.StateOpen},
}

// newMetrics builds the collectors of the breaker called name and registers
// them with reg (none when reg is nil); state is read at every scrape.
func newMetrics(reg prometheus.Registerer, name string, state func() gobreaker.State) *metrics {
	f := promauto.With(reg)
	labels := prometheus.Labels{"name": name}
	m := &metrics{
		// A function of the breaker's state rather than a gauge set on each
		// change: gobreaker moves from open to half-open lazily, when it is next
		// asked, and the scrape asks, so the gauge never shows a stale "open".
		state: f.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "circuit_breaker_state",
			Help:        "State of the circuit breaker in front of the inference backend: 0 closed, 1 half-open, 2 open.",
			ConstLabels: labels,
		}, func() float64 { return stateValue(state()) }),
		transitions: f.NewCounterVec(prometheus.CounterOpts{
			Name:        "circuit_breaker_transitions_total",
			Help:        "State changes of the circuit breaker in front of the inference backend, by the state left and the state entered.",
			ConstLabels: labels,
		}, []string{"from", "to"}),
		rejected: f.NewCounter(prometheus.CounterOpts{
			Name:        "circuit_breaker_rejected_total",
			Help:        "Inference calls the circuit breaker refused without calling the backend, because it was open or its half-open probes were taken.",
			ConstLabels: labels,
		}),
	}
	for _, t := range transitions {
		m.transitions.WithLabelValues(t[0].String(), t[1].String())
	}
	return m
}

func (m *metrics) transition(from, to gobreaker.State) {
	m.transitions.WithLabelValues(from.String(), to.String()).Inc()
}

// stateValue is the gauge's encoding of a state, fixed here rather than taken
// from gobreaker's constants so that an upgrade cannot change what dashboards
// read.
func stateValue(s gobreaker.State) float64 {
	switch s {
	case gobreaker.StateClosed:
		return 0
	case gobreaker.StateHalfOpen:
		return 1
	default:
		return 2
	}
}
