package monitoring_test

// The gateway against the real NVIDIA Triton Inference Server (2.51, from the
// nvidia-pytriton wheel, on the CPU: scripts/triton-ci.sh and triton-ci/), with
// the real Prometheus scraping both. What the test server (tritontest) stands
// in for elsewhere is checked here against the real thing: auto-configuration
// from Triton's metadata and config, labels through the classification
// extension, single and batched inference, /ready across an unload and a load
// (explicit model control), the breaker when Triton is killed and restarted,
// the fallback meanwhile, and Triton's own nv_* metrics behind the dashboard.

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/fish-classifier/fish-classifier/gateway/kserve"
	"github.com/fish-classifier/fish-classifier/gateway/modelconfig"
	"github.com/fish-classifier/fish-classifier/internal/testenv"
)

func TestRealTritonEndToEnd(t *testing.T) {
	prometheusBin := requireBinary(t, "prometheus")
	alertmanagerBin := requireAlertmanagerBinary(t)
	triton := testenv.StartTriton(t)
	gatewayBin := testenv.BuildGateway(t)
	ortLib := testenv.ONNXRuntimeLib(t)
	root := repoRoot(t)

	common := map[string]string{
		"BACKEND":                      "triton",
		"TRITON_URL":                   triton.GRPCAddr,
		"MODEL_NAME":                   "fish_classifier",
		"BREAKER_CONSECUTIVE_FAILURES": "3",
		"BREAKER_OPEN_TIMEOUT":         "1s",
		"MODEL_REFRESH_INTERVAL":       "1s",
		"REQUEST_TIMEOUT":              "10s",
		"TRITON_RETRY_BACKOFF":         "5ms",
		"TRITON_CONNECT_BACKOFF_MAX":   "200ms",
	}
	// direct reads everything from Triton: an empty model repository, so the
	// labels come through the classification extension.
	directEnv := map[string]string{"MODEL_REPOSITORY": t.TempDir()}
	// withFallback has the embedded ONNX Runtime behind Triton.
	fallbackEnv := map[string]string{
		"FALLBACK":         "onnx",
		"ONNXRUNTIME_LIB":  ortLib,
		"MODEL_REPOSITORY": filepath.Join(root, "triton-models"),
	}
	for k, v := range common {
		directEnv[k], fallbackEnv[k] = v, v
	}
	direct := startStackGateway(t, gatewayBin, directEnv)
	withFallback := startStackGateway(t, gatewayBin, fallbackEnv)

	hook := startWebhook(t)
	am := startAlertmanager(t, alertmanagerBin, hook.url)
	prom := startPrometheus(t, prometheusBin, map[string]string{
		"fish_api":     direct.addr,
		"triton":       triton.MetricsAddr,
		"cadvisor":     startStandInExporter(t, cadvisorStandIn(direct.pid)),
		"alertmanager": am,
	}, am)

	productionLabels, err := modelconfig.ReadLabels(filepath.Join(root, "triton-models", "fish_classifier", "labels.txt"))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("model configured from Triton's metadata, config and classification extension", func(t *testing.T) {
		status, body := direct.get(t, "/model")
		if status != http.StatusOK {
			t.Fatalf("/model: %d %s", status, body)
		}
		var m struct {
			Name, Version, Backend, Platform string
			MaxBatchSize                     int `json:"max_batch_size"`
			Input, Output                    struct {
				Name, Datatype string
				Shape          []int64
			}
			Labels         []string
			OutputIsLogits bool `json:"output_is_logits"`
			Preprocess     struct {
				Width, Height int
				Resize        string
				ShorterSide   int `json:"shorter_side"`
				Filter        string
				ChannelOrder  string `json:"channel_order"`
				Layout        string
			}
			Provenance struct{ SHA256, License string }
		}
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("/model: %v: %s", err, body)
		}
		checks := []struct {
			what      string
			got, want any
		}{
			{"name", m.Name, "fish_classifier"},
			{"version", m.Version, "1"},
			{"backend", m.Backend, "triton"},
			{"platform (the CI model runs on Triton's Python backend)", m.Platform, "python"},
			{"max_batch_size", m.MaxBatchSize, 32},
			{"input", fmt.Sprint(m.Input.Name, m.Input.Datatype, m.Input.Shape), fmt.Sprint("input", "FP32", []int64{3, 224, 224})},
			{"output", fmt.Sprint(m.Output.Name, m.Output.Datatype, m.Output.Shape), fmt.Sprint("logits", "FP32", []int64{int64(len(productionLabels))})},
			{"provenance (config.pbtxt parameters)", m.Provenance.SHA256 != "" && m.Provenance.License == "Apache-2.0", true},
			{"labels (classification extension)", fmt.Sprint(m.Labels), fmt.Sprint(productionLabels)},
			{"output is logits", m.OutputIsLogits, true},
			{"preprocess", fmt.Sprint(m.Preprocess.Width, m.Preprocess.Height, m.Preprocess.Resize, m.Preprocess.ShorterSide, m.Preprocess.Filter, m.Preprocess.ChannelOrder, m.Preprocess.Layout),
				fmt.Sprint(224, 224, "shorter_crop", 256, "bilinear", "rgb", "nchw")},
		}
		for _, c := range checks {
			if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
				t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
			}
		}
	})

	t.Run("the reference photo gives Pillow's answer", func(t *testing.T) {
		ref := readPillowReference(t)
		raw, err := os.ReadFile(filepath.Join(root, ref.Path))
		if err != nil {
			t.Fatal(err)
		}
		status, body := direct.post(t, "/predict?top_k=17", "image/jpeg", raw)
		p := decodePrediction(t, status, body)
		if p.Backend != "triton" {
			t.Errorf("backend %q, want triton", p.Backend)
		}
		if p.Predictions[0].Index != ref.Top1 {
			t.Errorf("top-1 index %d, want %d", p.Predictions[0].Index, ref.Top1)
		}
		for _, pr := range p.Predictions {
			if want := ref.Probabilities[pr.Index]; math.Abs(pr.Confidence-want) > ref.Tolerance {
				t.Errorf("class %d (%s): %.7f, Pillow+ONNX reference %.7f", pr.Index, pr.Label, pr.Confidence, want)
			}
			if pr.Label != productionLabels[pr.Index] {
				t.Errorf("class %d labelled %q, want %q", pr.Index, pr.Label, productionLabels[pr.Index])
			}
		}
	})

	t.Run("real photos are not fish", func(t *testing.T) {
		// reference.json's photos (a cat, a coffee, a rocket: CC0 and public
		// domain): EfficientNet-Lite0 on the real Triton answers "not a fish"
		// for each, with Pillow + the float64 reference's probabilities, as
		// the embedded backend does.
		tolerance := readPillowReference(t).Tolerance
		for _, ref := range readReferencePhotos(t) {
			raw, err := os.ReadFile(filepath.Join(root, ref.Path))
			if err != nil {
				t.Fatal(err)
			}
			status, body := direct.post(t, "/predict?top_k=17", "application/octet-stream", raw)
			p := decodePrediction(t, status, body)
			if p.Backend != "triton" || p.Predictions[0].Label != "not a fish" || p.Predictions[0].Index != ref.Top1 {
				t.Errorf("%s: backend %s, top predictions %+v; want triton and \"not a fish\" on top", ref.Path, p.Backend, p.Predictions)
			}
			for _, pr := range p.Predictions {
				if want := ref.Probabilities[pr.Index]; math.Abs(pr.Confidence-want) > tolerance {
					t.Errorf("%s: class %d (%s) %.7f, Pillow + reference forward %.7f", ref.Path, pr.Index, pr.Label, pr.Confidence, want)
				}
			}
		}
	})

	t.Run("batched inference; a bad item is reported in place", func(t *testing.T) {
		ct, body := multipartImages(t, photo(t, 320, 240, 1), gifImage(t), photo(t, 640, 480, 2), photo(t, 300, 300, 3))
		status, answer := direct.post(t, "/predict/batch", ct, body)
		if status != http.StatusOK {
			t.Fatalf("/predict/batch: %d %s", status, answer)
		}
		var b struct {
			Results []struct {
				Index       int
				Backend     string
				Predictions []struct{ Confidence float64 }
				Error       *struct{ Code string }
			}
		}
		if err := json.Unmarshal(answer, &b); err != nil {
			t.Fatal(err)
		}
		if len(b.Results) != 4 {
			t.Fatalf("%d results, want 4: %s", len(b.Results), answer)
		}
		for i, r := range b.Results {
			if i == 1 {
				if r.Error == nil || r.Error.Code != "unsupported_media_type" {
					t.Errorf("item 1 (GIF): %+v, want error unsupported_media_type", r)
				}
				continue
			}
			if r.Error != nil || len(r.Predictions) == 0 || r.Backend != "triton" {
				t.Errorf("item %d: %+v, want predictions from triton", i, r)
			}
		}
	})

	t.Run("Prometheus scrapes Triton's nv_* metrics; the dashboard's Triton panels return data", func(t *testing.T) {
		// Keep Triton busy across a few scrapes so its rates are not zero.
		for i := range 8 {
			status, body := direct.post(t, "/predict", "image/jpeg", photo(t, 320, 240, uint8(i)))
			if status != http.StatusOK {
				t.Fatalf("predict: %d %s", status, body)
			}
		}
		nonGPU := regexp.MustCompile(`\bnv_(inference|cpu)_`)
		gpuOnly := regexp.MustCompile(`\bnv_(gpu|energy)_`)
		var queries []stackQuery
		for _, q := range append(dashboardQueries(t), recordingRuleQueries(t)...) {
			// GPU panels excepted: without a GPU Triton exports no nv_gpu_*
			// and no nv_energy_consumption (covered by promtool unit tests and
			// by the stand-in exporter of TestStackEndToEnd).
			if gpuOnly.MatchString(q.expr) {
				continue
			}
			if nonGPU.MatchString(q.expr) || strings.Contains(q.expr, ":nv_inference") {
				queries = append(queries, q)
			}
		}
		if len(queries) < 8 {
			t.Fatalf("only %d Triton queries found in the dashboard and the recording rules", len(queries))
		}
		checkQueriesReturnData(t, prom, queries)
		// The batch-size rule reads Triton's own counters: it must say what the
		// dynamic batcher did (at least one inference per execution).
		checkQueriesReturnData(t, prom, []stackQuery{{"average batch size is at least 1", "instance_model:nv_inference_batch_size:avg_rate5m >= 1"}})
	})

	t.Run("ready follows an unload and a load; the fallback serves the unloaded model", func(t *testing.T) {
		repository(t, triton, "unload")
		waitUntil(t, "/ready 503 after the unload", func() bool {
			status, _ := direct.get(t, "/ready")
			return status == http.StatusServiceUnavailable
		})
		status, body := direct.post(t, "/predict", "image/jpeg", photo(t, 320, 240, 4))
		if status != http.StatusServiceUnavailable {
			t.Errorf("predict with the model unloaded: %d %s, want 503", status, body)
		}
		status, body = withFallback.post(t, "/predict", "image/jpeg", photo(t, 320, 240, 4))
		if p := decodePrediction(t, status, body); p.Backend != "onnxruntime" {
			t.Errorf("fallback gateway with the model unloaded: backend %q, want onnxruntime", p.Backend)
		}

		repository(t, triton, "load")
		waitUntil(t, "/ready 200 after the load", func() bool {
			status, _ := direct.get(t, "/ready")
			return status == http.StatusOK
		})
		waitUntil(t, "predictions from Triton after the load", func() bool {
			status, body := direct.post(t, "/predict", "image/jpeg", photo(t, 320, 240, 5))
			return status == http.StatusOK && decodePrediction(t, status, body).Backend == "triton"
		})
	})

	t.Run("killing Triton opens the breaker, the fallback serves, both recover", func(t *testing.T) {
		triton.Kill(t)
		img := photo(t, 320, 240, 6)
		waitUntil(t, "the breaker to open", func() bool {
			_, _ = direct.post(t, "/predict", "image/jpeg", img)
			return breakerState(t, direct) == 2
		})
		status, body := direct.post(t, "/predict", "image/jpeg", img)
		if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "unavailable") {
			t.Errorf("predict with Triton killed, no fallback: %d %s, want 503 unavailable", status, body)
		}
		if status, _ := direct.get(t, "/ready"); status != http.StatusServiceUnavailable {
			t.Errorf("/ready with Triton killed: %d, want 503", status)
		}
		for i := range 5 {
			status, body := withFallback.post(t, "/predict", "image/jpeg", img)
			if p := decodePrediction(t, status, body); p.Backend != "onnxruntime" {
				t.Fatalf("fallback request %d with Triton killed: backend %q", i, p.Backend)
			}
		}
		if status, _ := withFallback.get(t, "/ready"); status != http.StatusOK {
			t.Errorf("/ready of the fallback gateway with Triton killed: %d, want 200", status)
		}

		triton.Restart(t)
		for _, g := range []*stackGateway{direct, withFallback} {
			waitUntil(t, "answers from Triton again", func() bool {
				status, body := g.post(t, "/predict", "image/jpeg", img)
				return status == http.StatusOK && decodePrediction(t, status, body).Backend == "triton"
			})
			if s := breakerState(t, g); s != 0 {
				t.Errorf("breaker state %v after recovery, want 0 (closed)", s)
			}
		}
	})
}

// ---- the real Triton -------------------------------------------------------

// repository loads or unloads fish_classifier through Triton's model
// repository extension (explicit model control).
func repository(t *testing.T, tr *testenv.Triton, action string) {
	t.Helper()
	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Post("http://"+tr.HTTPAddr+"/v2/repository/models/fish_classifier/"+action, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("%s: %v", action, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: status %d", action, resp.StatusCode)
	}
}

// ---- answers -----------------------------------------------------------------

type predictAnswer struct {
	Backend     string
	Predictions []struct {
		Label      string
		Index      int
		Confidence float64
	}
}

// decodePrediction fails the test unless status is 200 with predictions.
func decodePrediction(t *testing.T, status int, body []byte) predictAnswer {
	t.Helper()
	var p predictAnswer
	if status != http.StatusOK {
		t.Fatalf("predict: %d %s", status, body)
	}
	if err := json.Unmarshal(body, &p); err != nil || len(p.Predictions) == 0 {
		t.Fatalf("predict: %v: %s", err, body)
	}
	return p
}

// pillowReference is reference.json's answer for a photo preprocessed by Pillow.
type pillowReference struct {
	Path          string    `json:"path"`
	Top1          int       `json:"top1"`
	Probabilities []float64 `json:"probabilities"`
	Tolerance     float64   `json:"probability_tolerance"`
}

// readReferencePhotos is reference.json's photos: real photographs and the
// model's answers for them (Pillow preprocessing, float64 forward).
func readReferencePhotos(t *testing.T) []pillowReference {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "triton-models", "fish_classifier", "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Photos []pillowReference `json:"photos"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil || len(ref.Photos) == 0 {
		t.Fatalf("reference.json photos: %v %+v", err, ref.Photos)
	}
	return ref.Photos
}

func readPillowReference(t *testing.T) pillowReference {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "triton-models", "fish_classifier", "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Pillow pillowReference `json:"pillow_image"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil || ref.Pillow.Path == "" || len(ref.Pillow.Probabilities) != 17 {
		t.Fatalf("reference.json pillow_image: %v %+v", err, ref.Pillow)
	}
	return ref.Pillow
}

// breakerStateLine is the breaker's sample in the gateway's exposition.
var breakerStateLine = regexp.MustCompile(`(?m)^circuit_breaker_state\{name="triton"\} (\S+)$`)

// breakerState reads circuit_breaker_state from the gateway's /metrics.
func breakerState(t *testing.T, g *stackGateway) float64 {
	t.Helper()
	_, body := g.get(t, "/metrics")
	m := breakerStateLine.FindSubmatch(body)
	if m == nil {
		t.Fatal("no circuit_breaker_state{name=\"triton\"} in /metrics")
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The CI-only model repository differs from production's only where the CPU
// Triton of PyPI forces it (triton-ci/README.md): the Python backend instead
// of onnxruntime, CPU instances instead of GPU ones. Everything the gateway
// configures itself from is equal.
func TestTritonCIModelConfigMatchesProduction(t *testing.T) {
	root := repoRoot(t)
	// Our ModelConfig message holds the fields the gateway reads; instance
	// groups are not among them and are checked in the text.
	read := func(path string) (*kserve.ModelConfig, string) {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Fatal(err)
		}
		var c kserve.ModelConfig
		if err := (prototext.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, &c); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return &c, string(raw)
	}
	prod, prodText := read("triton-models/fish_classifier/config.pbtxt")
	ci, ciText := read("triton-ci/models/fish_classifier/config.pbtxt")

	if prod.GetBackend() != "onnxruntime" || prod.GetPlatform() != "onnxruntime_onnx" {
		t.Errorf("production backend %q platform %q, want onnxruntime / onnxruntime_onnx", prod.GetBackend(), prod.GetPlatform())
	}
	if ci.GetBackend() != "python" || ci.GetPlatform() != "" {
		t.Errorf("CI backend %q platform %q, want python and no platform", ci.GetBackend(), ci.GetPlatform())
	}
	kinds := regexp.MustCompile(`(?m)^\s*kind:\s*(KIND_\w+)`)
	for _, c := range []struct{ name, text, want string }{{"production", prodText, "KIND_GPU"}, {"CI", ciText, "KIND_CPU"}} {
		got := kinds.FindAllStringSubmatch(c.text, -1)
		if len(got) != 1 || got[0][1] != c.want {
			t.Errorf("%s instance group kinds %v, want exactly one %s", c.name, got, c.want)
		}
	}
	prod.Backend, prod.Platform, ci.Backend, ci.Platform = "", "", "", ""
	if !proto.Equal(prod, ci) {
		t.Errorf("the CI model configuration differs from production's beyond backend and instances:\nproduction: %v\nCI:         %v",
			prototext.Format(prod), prototext.Format(ci))
	}
}
