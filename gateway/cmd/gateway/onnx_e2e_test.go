package main

import (
	"encoding/json"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/triton/tritontest"
	"github.com/fish-classifier/fish-classifier/internal/testenv"
)

// repoRoot is the module root, two levels above this package's parent.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// onnxRuntimeLib fetches (once, verified) and returns ONNX Runtime's library.
func onnxRuntimeLib(t testing.TB) string { return testenv.ONNXRuntimeLib(t) }

// The default ONNXRUNTIME_LIB is where the fetch script puts the version it pins.
func TestDefaultONNXRuntimeLibMatchesFetchScript(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(repoRoot(t), "scripts", "fetch-onnxruntime.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VERSION=(\S+)$`).FindSubmatch(script)
	if m == nil {
		t.Fatal("no VERSION= line in scripts/fetch-onnxruntime.sh")
	}
	if want := ".onnxruntime/" + string(m[1]) + "/libonnxruntime.so.1"; defaultONNXRuntimeLib != want {
		t.Errorf("defaultONNXRuntimeLib = %q, the script installs %q", defaultONNXRuntimeLib, want)
	}
}

// startEmbeddedGateway serves the gateway (runGateway) with its default
// backend, the embedded ONNX Runtime, on the committed model repository, and
// waits until /ready answers 200; env adds to or overrides its environment.
func startEmbeddedGateway(t *testing.T, env map[string]string) *e2eGateway {
	t.Helper()
	vars := map[string]string{
		"MODEL_REPOSITORY": filepath.Join(repoRoot(t), "triton-models"),
		"ONNXRUNTIME_LIB":  onnxRuntimeLib(t),
	}
	for k, v := range env {
		vars[k] = v
	}
	g := runGateway(t, vars)
	g.waitReady(t)
	return g
}

// The default backend end to end: the real ONNX Runtime library, the committed
// model repository, real HTTP.
func TestE2EEmbeddedONNX(t *testing.T) {
	root := repoRoot(t)
	g := startEmbeddedGateway(t, nil)

	labels, err := readLabels(filepath.Join(root, "triton-models"), "fish_classifier")
	if err != nil || len(labels) != 17 || labels[16] != "not a fish" {
		t.Fatalf("labels.txt: %q, %v", labels, err)
	}
	known := map[string]bool{}
	for _, l := range labels {
		known[l] = true
	}

	body, ct := multipartBody(t, part{Field: "file", Filename: "fish.jpg", Data: jpegOf(t, 320, 240, 7)})
	r := g.post(t, "/predict?top_k=17", body, ct)
	if r.Status != http.StatusOK {
		t.Fatalf("POST /predict: %s", r)
	}
	p := decodeJSON[predictBody](t, r)
	sum := 0.0
	for i, pr := range p.Predictions {
		if !known[pr.Label] {
			t.Errorf("label %q is not in labels.txt", pr.Label)
		}
		if i > 0 && pr.Confidence > p.Predictions[i-1].Confidence {
			t.Errorf("predictions not sorted: %+v", p.Predictions)
		}
		sum += pr.Confidence
	}
	if len(p.Predictions) != len(labels) || math.Abs(sum-1) > 1e-6 || p.Model != "fish_classifier" || p.Version != "1" || p.Backend != "onnxruntime" {
		t.Errorf("predict: model %s v%s, %d predictions summing to %v", p.Model, p.Version, len(p.Predictions), sum)
	}

	body, ct = multipartBody(t,
		part{Field: "files", Filename: "a.jpg", Data: jpegOf(t, 320, 240, 7)},
		part{Field: "files", Filename: "b.gif", Data: gifOf(t)},
		part{Field: "files", Filename: "c.jpg", Data: jpegOf(t, 200, 300, 9)})
	r = g.post(t, "/predict/batch?top_k=2", body, ct)
	if r.Status != http.StatusOK {
		t.Fatalf("POST /predict/batch: %s", r)
	}
	b := decodeJSON[batchBody](t, r)
	if len(b.Results) != 3 || b.Results[1].Error == nil || b.Results[1].Error.Code != "unsupported_media_type" {
		t.Fatalf("batch results: %s", r)
	}
	// The same image alone and inside a batch gets the same answer.
	if got, want := b.Results[0].Predictions[0], p.Predictions[0]; got.Index != want.Index || math.Abs(got.Confidence-want.Confidence) > 1e-5 {
		t.Errorf("batched top-1 %+v, single %+v", got, want)
	}
	if len(b.Results[2].Predictions) != 2 {
		t.Errorf("item 2: %+v", b.Results[2])
	}
	// The photo of reference.json: the gateway's Go preprocessing plus ONNX
	// Runtime give what Pillow's preprocessing plus the model's float64 reference
	// give.
	var ref struct {
		Pillow struct {
			Path          string    `json:"path"`
			Top1          int       `json:"top1"`
			Probabilities []float64 `json:"probabilities"`
			Tolerance     float64   `json:"probability_tolerance"`
		} `json:"pillow_image"`
	}
	raw, err := os.ReadFile(filepath.Join(root, "triton-models", "fish_classifier", "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &ref); err != nil || len(ref.Pillow.Probabilities) != len(labels) {
		t.Fatalf("reference.json pillow_image: %v", err)
	}
	photo, err := os.ReadFile(filepath.Join(root, ref.Pillow.Path))
	if err != nil {
		t.Fatal(err)
	}
	body, ct = multipartBody(t, part{Field: "file", Filename: "photo.jpg", Data: photo})
	r = g.post(t, "/predict?top_k=17", body, ct)
	if r.Status != http.StatusOK {
		t.Fatalf("POST /predict (reference photo): %s", r)
	}
	got := decodeJSON[predictBody](t, r)
	if got.Predictions[0].Index != ref.Pillow.Top1 {
		t.Errorf("reference photo: top-1 %d, Pillow + reference model say %d", got.Predictions[0].Index, ref.Pillow.Top1)
	}
	for _, pr := range got.Predictions {
		if d := math.Abs(pr.Confidence - ref.Pillow.Probabilities[pr.Index]); d > ref.Pillow.Tolerance {
			t.Errorf("reference photo: class %d confidence %.6f, Pillow + reference model %.6f (|diff| %.2g > %g)",
				pr.Index, pr.Confidence, ref.Pillow.Probabilities[pr.Index], d, ref.Pillow.Tolerance)
		}
	}

	if v, ok := metricValue(g.scrape(t), "model_info", map[string]string{"backend": "onnxruntime", "model": "fish_classifier"}); !ok || v != 1 {
		t.Errorf("model_info{backend=onnxruntime} = %v (present %v)", v, ok)
	}
}

// BACKEND=triton with FALLBACK=onnx: when Triton goes away the embedded backend
// answers (and says so); when Triton is back and the breaker closes, Triton
// answers again.
func TestE2EFallbackToEmbeddedONNX(t *testing.T) {
	root := repoRoot(t)
	g := startGateway(t,
		// Triton serves the repository's model: its classes and preprocessing.
		withModel(func(m *tritontest.Model) { *m = testenv.RepositoryModel(t) }),
		withEnv("FALLBACK", "onnx"),
		withEnv("ONNXRUNTIME_LIB", onnxRuntimeLib(t)),
		withEnv("MODEL_REPOSITORY", filepath.Join(root, "triton-models")),
		withEnv("TRITON_CONNECT_BACKOFF_MAX", "100ms"))
	img := jpegOf(t, 64, 48, 11)
	backendOf := func() string {
		t.Helper()
		r := g.predictFile(t, "", img)
		if r.Status != http.StatusOK {
			t.Fatalf("predict: %s", r)
		}
		return decodeJSON[predictBody](t, r).Backend
	}
	if b := backendOf(); b != "triton" {
		t.Fatalf("healthy: answered by %q, want triton", b)
	}

	g.Triton.Stop()
	for i := range e2eFailures + 2 { // past the breaker's threshold: open breaker falls back too
		if b := backendOf(); b != "onnxruntime" {
			t.Fatalf("request %d with Triton down: answered by %q, want onnxruntime", i, b)
		}
	}
	if r := g.get(t, "/ready"); r.Status != http.StatusOK {
		t.Errorf("/ready with a working fallback: %s", r)
	}
	fam := g.scrape(t)
	if v, ok := metricValue(fam, "model_inference_duration_seconds", map[string]string{"backend": "onnxruntime"}); !ok || v < 1 {
		t.Errorf("model_inference_duration_seconds{backend=onnxruntime} count %v (present %v)", v, ok)
	}
	if v, ok := metricValue(fam, "model_info", map[string]string{"backend": "onnxruntime"}); !ok || v != 1 {
		t.Errorf("model_info{backend=onnxruntime} = %v (present %v)", v, ok)
	}
	if v, _ := metricValue(fam, "inference_fallback_total", map[string]string{"outcome": "ok"}); v < float64(e2eFailures+2) {
		t.Errorf("inference_fallback_total{outcome=ok} = %v", v)
	}

	g.Triton.Restart()
	waitFor(t, "Triton to answer again once the breaker closes", func() bool { return backendOf() == "triton" })
	if s := g.breakerState(t); s != 0 {
		t.Errorf("circuit_breaker_state %v after recovery, want 0", s)
	}
}

// TestE2ERealPhotosAreNotFish: real photographs (testdata/photos: a cat, a
// coffee, a rocket) through HTTP and the embedded backend: the served
// EfficientNet-Lite0 with its fish head answers "not a fish" for each, alone
// and in one batch, with the probabilities that Pillow's preprocessing and the
// float64 reference forward give (reference.json's photos).
func TestE2ERealPhotosAreNotFish(t *testing.T) {
	g := startEmbeddedGateway(t, nil)
	photos := referencePhotos(t)
	var parts []part
	for _, p := range photos {
		r := g.predictFile(t, "?top_k=17", p.data)
		if r.Status != http.StatusOK {
			t.Fatalf("%s: %s", p.Path, r)
		}
		p.check(t, p.Path, decodeJSON[predictBody](t, r).Predictions)
		parts = append(parts, part{Field: "files", Filename: filepath.Base(p.Path), Data: p.data})
	}
	body, ct := multipartBody(t, parts...)
	r := g.post(t, "/predict/batch?top_k=17", body, ct)
	if r.Status != http.StatusOK {
		t.Fatalf("batch: %s", r)
	}
	for i, item := range decodeJSON[batchBody](t, r).Results {
		photos[i].check(t, "batch item "+photos[i].Path, item.Predictions)
	}
}

// referencePhoto is one of reference.json's photos, with its bytes.
type referencePhoto struct {
	Path          string    `json:"path"`
	Top1          int       `json:"top1"`
	Probabilities []float64 `json:"probabilities"`
	tolerance     float64
	data          []byte
}

// referencePhotos reads reference.json's photos (see testdata/photos/README.md
// for their licences); there must be some.
func referencePhotos(t *testing.T) []referencePhoto {
	t.Helper()
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "triton-models", "fish_classifier", "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Pillow struct {
			Tolerance float64 `json:"probability_tolerance"`
		} `json:"pillow_image"`
		Photos []referencePhoto `json:"photos"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil || len(ref.Photos) == 0 || ref.Pillow.Tolerance == 0 {
		t.Fatalf("reference.json photos: %v (%d photos)", err, len(ref.Photos))
	}
	for i := range ref.Photos {
		p := &ref.Photos[i]
		if p.data, err = os.ReadFile(filepath.Join(root, p.Path)); err != nil {
			t.Fatal(err)
		}
		p.tolerance = ref.Pillow.Tolerance
	}
	return ref.Photos
}

// check asserts an answer for the photo: "not a fish" on top (none of them
// shows one of the 16 species), the reference's top-1, and every probability
// within the tolerance of the reference's.
func (p referencePhoto) check(t *testing.T, what string, preds []gateway.Prediction) {
	t.Helper()
	if len(preds) != len(p.Probabilities) || preds[0].Label != "not a fish" || preds[0].Index != p.Top1 {
		t.Errorf("%s: predictions %+v, want all %d classes with \"not a fish\" (index %d) on top", what, preds, len(p.Probabilities), p.Top1)
		return
	}
	for _, pr := range preds {
		if d := math.Abs(pr.Confidence - p.Probabilities[pr.Index]); d > p.tolerance {
			t.Errorf("%s: class %d (%s) %.6f, Pillow + reference forward %.6f", what, pr.Index, pr.Label, pr.Confidence, p.Probabilities[pr.Index])
		}
	}
}
