// Package prom records the gateway's domain measurements in Prometheus: it
// implements gateway.Observer for the Classifier, which also tells it which
// model is loaded. Collectors are built from the Registerer main passes in;
// there is no global registry.
package prom

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/internal/exemplars"
	"github.com/fish-classifier/fish-classifier/preprocess"
)

// Observer is the Prometheus implementation of gateway.Observer.
type Observer struct {
	inference   *prometheus.HistogramVec
	batchSize   *prometheus.HistogramVec
	inferErrors *prometheus.CounterVec
	confidence  *prometheus.HistogramVec
	classes     *prometheus.CounterVec
	stages      *prometheus.HistogramVec
	images      *prometheus.CounterVec
	loaded      *prometheus.GaugeVec
	info        *prometheus.GaugeVec
	slotWait    *prometheus.HistogramVec

	mu      sync.Mutex
	current gateway.ModelInfo
}

// NewObserver builds the collectors and registers them with reg, which must
// not hold another Observer's: a second registration panics.
func NewObserver(reg prometheus.Registerer) *Observer {
	f := promauto.With(reg)
	return &Observer{
		// A small CNN on a GPU answers in a few milliseconds; on the embedded CPU
		// backend or with a queue in Triton it takes up to seconds.
		inference: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "model_inference_duration_seconds",
			Help:    "Time of one inference call to the backend, batch included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"model", "backend"}),
		// Powers of two: Triton's preferred batch sizes usually are.
		batchSize: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "model_inference_batch_size",
			Help:    "Images per inference call.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
		}, []string{"model", "backend"}),
		inferErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "model_inference_errors_total",
			Help: "Failed inference calls, by error kind.",
		}, []string{"model", "backend", "kind"}),
		// Finer near 1, where a classifier's top confidences bunch up.
		confidence: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "prediction_confidence",
			Help:    "Confidence of the top prediction of each image.",
			Buckets: []float64{.1, .2, .3, .4, .5, .6, .7, .8, .9, .95, .99, 1},
		}, []string{"model"}),
		// Bounded: classes come from the model's label file.
		classes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "predicted_class_total",
			Help: "Top predictions, by class.",
		}, []string{"model", "class"}),
		// Resize and normalise take tens of microseconds; a 12 MP decode ~100 ms.
		stages: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "preprocess_duration_seconds",
			Help:    "Time of each preprocessing stage of one image.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"stage"}),
		images: f.NewCounterVec(prometheus.CounterOpts{
			Name: "preprocess_images_total",
			Help: "Images decoded, by format.",
		}, []string{"format"}),
		loaded: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "model_loaded",
			Help: "1 while the model version is loaded and served, 0 once it was replaced or lost.",
		}, []string{"model", "version"}),
		info: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "model_info",
			Help: "The model served, always 1; model_sha256 is the sha256 of its weights file as its configuration declares it, mlflow_run_id and mlflow_model_version the MLflow run and registered version it was published from (each empty when undeclared).",
		}, []string{"model", "version", "backend", "model_sha256", "mlflow_run_id", "mlflow_model_version"}),
		// From no wait at all (the common case: first bucket) to the request
		// timeout's order: queueing under many connections.
		slotWait: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "classifier_slot_wait_seconds",
			Help:    "Time a request waited for an inference slot (MAX_CONCURRENT_INFERENCES), or an image for a decode slot (one per core).",
			Buckets: []float64{.0001, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"slot"}),
	}
}

// Preprocessed implements gateway.Observer.
func (o *Observer) Preprocessed(info preprocess.Info, _ int) {
	o.images.WithLabelValues(info.Format.String()).Inc()
	o.stages.WithLabelValues("decode").Observe(info.Stages.Decode.Seconds())
	o.stages.WithLabelValues("resize").Observe(info.Stages.Resize.Seconds())
	o.stages.WithLabelValues("normalize").Observe(info.Stages.Normalize.Seconds())
}

// Inferred implements gateway.Observer. Calls abandoned by the client are not
// timed: their duration says nothing about the backend.
func (o *Observer) Inferred(ctx context.Context, m gateway.ModelInfo, n int, d time.Duration, err error) {
	if err != nil {
		kind := gateway.KindOf(err)
		if kind == gateway.KindCanceled {
			return
		}
		o.inferErrors.WithLabelValues(m.Name, m.Backend, kind.String()).Inc()
		return
	}
	exemplars.Observe(ctx, o.inference.WithLabelValues(m.Name, m.Backend), d.Seconds())
	// A fallback backend that answers is a backend serving the model too.
	o.info.WithLabelValues(infoLabels(m)...).Set(1)
	o.batchSize.WithLabelValues(m.Name, m.Backend).Observe(float64(n))
}

// Waited implements gateway.Observer.
func (o *Observer) Waited(slot string, d time.Duration) {
	o.slotWait.WithLabelValues(slot).Observe(d.Seconds())
}

// Predicted implements gateway.Observer.
func (o *Observer) Predicted(m gateway.ModelInfo, top gateway.Prediction) {
	o.confidence.WithLabelValues(m.Name).Observe(top.Confidence)
	o.classes.WithLabelValues(m.Name, top.Label).Inc()
}

// ModelLoaded implements gateway.Observer: m is the model served, model_loaded
// 1 and model_info for it, model_loaded 0 for the version it replaces.
func (o *Observer) ModelLoaded(m gateway.ModelInfo) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.current.Name != "" && (o.current.Name != m.Name || o.current.Version != m.Version || o.current.Backend != m.Backend ||
		o.current.Provenance != m.Provenance) {
		o.loaded.WithLabelValues(o.current.Name, o.current.Version).Set(0)
		o.info.DeleteLabelValues(infoLabels(o.current)...)
	}
	o.current = m
	o.loaded.WithLabelValues(m.Name, m.Version).Set(1)
	o.info.WithLabelValues(infoLabels(m)...).Set(1)
	// Every class starts at zero so rate() and dashboards see it before its first hit.
	for _, label := range m.Labels {
		o.classes.WithLabelValues(m.Name, label)
	}
}

// infoLabels are model_info's label values for m.
func infoLabels(m gateway.ModelInfo) []string {
	p := m.Provenance
	return []string{m.Name, m.Version, m.Backend, p.SHA256, p.MLflowRunID, p.MLflowModelVersion}
}

// ModelLost implements gateway.Observer: the current model is marked not
// loaded (model_loaded 0) until the next ModelLoaded.
func (o *Observer) ModelLost(error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.current.Name != "" {
		o.loaded.WithLabelValues(o.current.Name, o.current.Version).Set(0)
	}
}

var _ gateway.Observer = (*Observer)(nil)
