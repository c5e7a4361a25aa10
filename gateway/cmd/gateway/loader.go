package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/prom"
	"github.com/fish-classifier/fish-classifier/preprocess"
)

// modelLoader lets the gateway start before Triton has the model: until the model
// could be read it answers 503 "model not loaded" (and /ready says so), then it
// serves through the Classifier, re-reading the model periodically so a new
// version in Triton is picked up and model_loaded follows the backend.
type modelLoader struct {
	backend gateway.Inferencer
	// probe answers whether the model itself is ready, bypassing the breaker.
	probe  interface{ Ready(context.Context) error }
	limits preprocess.Limits
	opts   []gateway.ClassifierOption
	obs    *prom.Observer
	log    *slog.Logger

	classifier atomic.Pointer[gateway.Classifier]
	lastErr    atomic.Pointer[string]
}

func newModelLoader(backend gateway.Inferencer, probe interface{ Ready(context.Context) error }, limits preprocess.Limits, opts []gateway.ClassifierOption, obs *prom.Observer, log *slog.Logger) *modelLoader {
	m := &modelLoader{backend: backend, probe: probe, limits: limits, opts: opts, obs: obs, log: log}
	msg := "model not loaded yet"
	m.lastErr.Store(&msg)
	return m
}

// run loads the model, retrying with backoff, then refreshes it every interval
// until ctx ends.
func (m *modelLoader) run(ctx context.Context, interval time.Duration) {
	wait := 250 * time.Millisecond
	for {
		m.refresh(ctx)
		next := interval
		if m.classifier.Load() == nil {
			next, wait = wait, min(2*wait, interval)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

func (m *modelLoader) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c := m.classifier.Load()
	var err error
	if c == nil {
		c, err = gateway.NewClassifier(ctx, m.backend, m.limits, m.obs, m.opts...)
		if err == nil {
			m.classifier.Store(c)
		}
	} else {
		before := c.Model()
		if err = c.Reload(ctx); err == nil && c.Model().Version != before.Version {
			m.log.Info("model version changed", "model", before.Name, "from", before.Version, "to", c.Model().Version)
		}
	}
	if err == nil {
		err = m.probe.Ready(ctx)
	}
	if err != nil {
		// Clients see the public message only; transport details go to the log.
		msg := "model not loaded: " + gateway.PublicMessage(err)
		if prev := m.lastErr.Swap(&msg); prev == nil || *prev != msg {
			m.log.Warn("model unavailable", "err", err.Error())
		}
		m.obs.SetModelLost()
		return
	}
	if prev := m.lastErr.Swap(nil); prev != nil {
		mi := c.Model()
		m.log.Info("model loaded", "model", mi.Name, "version", mi.Version, "backend", mi.Backend, "classes", len(mi.Labels))
	}
	m.obs.SetModel(c.Model())
}

func (m *modelLoader) notLoaded() error {
	msg := "model not loaded yet"
	if p := m.lastErr.Load(); p != nil {
		msg = *p
	}
	return &gateway.Error{Kind: gateway.KindUnavailable, Message: msg, RetryAfter: 2 * time.Second}
}

func (m *modelLoader) Classify(ctx context.Context, image []byte, k int) (gateway.Result, error) {
	c := m.classifier.Load()
	if c == nil {
		return gateway.Result{}, m.notLoaded()
	}
	return c.Classify(ctx, image, k)
}

func (m *modelLoader) ClassifyBatch(ctx context.Context, images [][]byte, k int) ([]gateway.Result, []error) {
	c := m.classifier.Load()
	if c == nil {
		errs := make([]error, len(images))
		for i := range errs {
			errs[i] = m.notLoaded()
		}
		return make([]gateway.Result, len(images)), errs
	}
	return c.ClassifyBatch(ctx, images, k)
}

func (m *modelLoader) Model() gateway.ModelInfo {
	if c := m.classifier.Load(); c != nil {
		return c.Model()
	}
	return gateway.ModelInfo{}
}

// Ready is the backend's readiness once the model is loaded; before, the reason
// the model could not be read.
func (m *modelLoader) Ready(ctx context.Context) error {
	c := m.classifier.Load()
	if c == nil {
		return m.notLoaded()
	}
	return c.Ready(ctx)
}
