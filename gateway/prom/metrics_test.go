package prom

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/preprocess"
)

func newTestObserver(t *testing.T) (*Observer, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return NewObserver(reg), reg
}

func TestObserverExposition(t *testing.T) {
	o, reg := newTestObserver(t)
	v1 := gateway.ModelInfo{Name: "fish", Version: "1", Backend: "triton", Labels: []string{"cod", "eel"},
		Provenance: gateway.Provenance{SHA256: strings.Repeat("a", 64)}}
	o.ModelLoaded(v1)
	o.Preprocessed(preprocess.Info{Format: preprocess.FormatJPEG, Stages: preprocess.Stages{Decode: 3 * time.Millisecond, Resize: 200 * time.Microsecond, Normalize: 50 * time.Microsecond}}, 1000)
	o.Inferred(context.Background(), v1, 4, 20*time.Millisecond, nil)
	o.Inferred(context.Background(), v1, 4, time.Second, gateway.Errorf(gateway.KindUnavailable, "down"))
	o.Inferred(context.Background(), v1, 4, time.Second, gateway.Errorf(gateway.KindCanceled, "gone")) // not counted
	o.Predicted(v1, gateway.Prediction{Label: "eel", Index: 1, Confidence: 0.97})
	o.Waited(gateway.SlotInference, 0)
	o.Waited(gateway.SlotDecode, 30*time.Millisecond)

	v2 := v1
	v2.Version = "2"
	v2.Provenance.SHA256 = strings.Repeat("b", 64)
	o.ModelLoaded(v2)
	// Version 2 published again from another MLflow run: one model_info.
	v2.Provenance.MLflowRunID, v2.Provenance.MLflowModelVersion = strings.Repeat("c", 32), "7"
	o.ModelLoaded(v2)

	want := `
# HELP model_inference_errors_total Failed inference calls, by error kind.
# TYPE model_inference_errors_total counter
model_inference_errors_total{backend="triton",kind="unavailable",model="fish"} 1
# HELP model_info The model served, always 1; model_sha256 is the sha256 of its weights file as its configuration declares it, mlflow_run_id and mlflow_model_version the MLflow run and registered version it was published from (each empty when undeclared).
# TYPE model_info gauge
model_info{backend="triton",mlflow_model_version="7",mlflow_run_id="cccccccccccccccccccccccccccccccc",model="fish",model_sha256="bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",version="2"} 1
# HELP model_loaded 1 while the model version is loaded and served, 0 once it was replaced or lost.
# TYPE model_loaded gauge
model_loaded{model="fish",version="1"} 0
model_loaded{model="fish",version="2"} 1
# HELP predicted_class_total Top predictions, by class.
# TYPE predicted_class_total counter
predicted_class_total{class="cod",model="fish"} 0
predicted_class_total{class="eel",model="fish"} 1
# HELP preprocess_images_total Images decoded, by format.
# TYPE preprocess_images_total counter
preprocess_images_total{format="jpeg"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"model_inference_errors_total", "model_info", "model_loaded", "predicted_class_total", "preprocess_images_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(o.inference); n != 1 {
		t.Errorf("model_inference_duration_seconds has %d series, want 1 (failures are not timed)", n)
	}
	if n := testutil.CollectAndCount(o.confidence); n != 1 {
		t.Errorf("prediction_confidence has %d series, want 1", n)
	}
	if n := testutil.CollectAndCount(o.slotWait); n != 2 {
		t.Errorf("classifier_slot_wait_seconds has %d series, want one per slot", n)
	}
	if n := testutil.CollectAndCount(o.stages); n != 3 {
		t.Errorf("preprocess_duration_seconds has %d series, want one per stage", n)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestModelLost(t *testing.T) {
	o, reg := newTestObserver(t)
	o.ModelLoaded(gateway.ModelInfo{Name: "fish", Version: "7", Backend: "onnxruntime"})
	o.ModelLost(gateway.Errorf(gateway.KindUnavailable, "model fish is not ready"))
	want := `
# HELP model_loaded 1 while the model version is loaded and served, 0 once it was replaced or lost.
# TYPE model_loaded gauge
model_loaded{model="fish",version="7"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "model_loaded"); err != nil {
		t.Error(err)
	}
}
