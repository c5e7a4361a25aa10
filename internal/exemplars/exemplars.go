// Package exemplars links the gateway's latency histograms to traces: an
// observation made while a sampled span is in the context carries the span's
// trace id as its exemplar (label gateway.ExemplarLabel), which the OpenMetrics
// exposition shows and Prometheus stores with --enable-feature=exemplar-storage,
// so that a Grafana latency panel jumps from a slow point to its trace.
package exemplars

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fish-classifier/fish-classifier/gateway"
)

// Observe records v in h, with the trace id of ctx's sampled span, if any, as
// its exemplar. Without one (tracing off, the request not sampled) it is
// h.Observe(v).
func Observe(ctx context.Context, h prometheus.Observer, v float64) {
	if id, ok := gateway.TraceID(ctx); ok {
		if e, ok := h.(prometheus.ExemplarObserver); ok {
			e.ObserveWithExemplar(v, prometheus.Labels{gateway.ExemplarLabel: id})
			return
		}
	}
	h.Observe(v)
}
