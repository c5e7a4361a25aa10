// Package promreg registers Prometheus collectors that may be built more than
// once against the same registry (a backend re-created on reload, two clients
// of one process): the second registration reuses the first collector.
package promreg

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c with reg, or returns the identical collector already
// registered there; any other registration error is returned with c.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, same := are.ExistingCollector.(C); same {
			return existing, nil
		}
	}
	return c, err
}
