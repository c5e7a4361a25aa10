package main

import (
	"log/slog"
	"sync"

	"github.com/fish-classifier/fish-classifier/gateway"
)

// modelLog is the Classifier's observer with the model's lifecycle written to
// the log: "model loaded" when the model is served, at first and again after a
// loss; "model version changed"; "model unavailable" once for each new reason
// the model could not be loaded. Every observation then goes on to Observer
// (the Prometheus one).
type modelLog struct {
	gateway.Observer
	log *slog.Logger

	mu      sync.Mutex
	serving bool
	current gateway.ModelInfo // the model last loaded
	reason  string            // the public message of the last loss, "" once loaded
}

func (o *modelLog) ModelLoaded(m gateway.ModelInfo) {
	o.mu.Lock()
	if o.current.Name != "" && o.current.Version != m.Version {
		o.log.Info("model version changed", "model", o.current.Name, "from", o.current.Version, "to", m.Version)
	}
	if !o.serving {
		o.log.Info("model loaded", "model", m.Name, "version", m.Version, "backend", m.Backend, "classes", len(m.Labels))
	}
	o.serving, o.current, o.reason = true, m, ""
	o.mu.Unlock()
	o.Observer.ModelLoaded(m)
}

func (o *modelLog) ModelLost(err error) {
	// Clients see the public message only; the log has the details.
	reason := gateway.PublicMessage(err)
	o.mu.Lock()
	if reason != o.reason {
		o.log.Warn("model unavailable", "err", err.Error())
	}
	o.serving, o.reason = false, reason
	o.mu.Unlock()
	o.Observer.ModelLost(err)
}
