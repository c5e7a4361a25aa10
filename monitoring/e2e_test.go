package monitoring_test

// The monitoring stack end to end, on loopback, with the real servers: Debian's
// prometheus and alertmanager binaries load a rendering of the committed
// configuration (short intervals, loopback targets, webhooks aimed at this
// test), the gateway runs as a built binary in front of tritontest (the KServe
// v2 test server) with the embedded ONNX Runtime as its fallback, and traffic
// with errors goes through it. Then every query of the dashboard and every
// recording rule must return data, and an opening circuit breaker must reach
// the test's webhook through Prometheus and Alertmanager.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"
	"github.com/prometheus/procfs"
	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc/codes"

	"github.com/fish-classifier/fish-classifier/gateway/triton/tritontest"
	"github.com/fish-classifier/fish-classifier/internal/formdata"
	"github.com/fish-classifier/fish-classifier/internal/poll"
	"github.com/fish-classifier/fish-classifier/internal/testenv"
)

// Timings of the rendered stack. Production scrapes and evaluates every 15s;
// here every second, so the whole test stays under a minute.
const (
	stackInterval = "1s"
	// stackWait bounds each wait for something the stack should do within a
	// few intervals (a scrape, a rule evaluation, an alert notification).
	stackWait = 60 * time.Second
	// breakerAlert is the alert the end-to-end alert check follows.
	breakerAlert = "FishAPICircuitBreakerOpen"
)

// standInFamilies are the metric families that only Triton, a GPU or cAdvisor
// produce. Neither runs here (no GPU, no Docker), so two stand-in exporters
// serve them under their real names and label sets, scraped by the real
// Prometheus as the jobs "triton" and "cadvisor": the dashboard's Triton, GPU
// and container queries then run against real data paths too. Their values
// are synthetic except the container's CPU and memory, which are the gateway
// process's own. promtool unit tests (prometheus/tests/) cover the recording
// rules and alerts over these names; issue 7 replaces the Triton stand-in with
// the real server.
var standInFamilies = map[string]string{
	"nv_inference_request_success":            "Triton",
	"nv_inference_request_failure":            "Triton",
	"nv_inference_count":                      "Triton",
	"nv_inference_exec_count":                 "Triton",
	"nv_inference_pending_request_count":      "Triton",
	"nv_inference_request_duration_us":        "Triton",
	"nv_inference_queue_duration_us":          "Triton",
	"nv_inference_compute_input_duration_us":  "Triton",
	"nv_inference_compute_infer_duration_us":  "Triton",
	"nv_inference_compute_output_duration_us": "Triton",
	"nv_gpu_utilization":                      "a GPU through Triton",
	"nv_gpu_memory_total_bytes":               "a GPU through Triton",
	"nv_gpu_memory_used_bytes":                "a GPU through Triton",
	"nv_gpu_power_usage":                      "a GPU through Triton",
	"nv_gpu_power_limit":                      "a GPU through Triton",
	"nv_energy_consumption":                   "a GPU through Triton",
	"container_cpu_usage_seconds_total":       "cAdvisor (Docker)",
	"container_memory_working_set_bytes":      "cAdvisor (Docker)",
}

func TestStackEndToEnd(t *testing.T) {
	testenv.RealServers(t, "runs the real Prometheus and Alertmanager on a gateway")
	t.Parallel() // beside TestModelLifecycle: each has its own servers on free ports
	prometheusBin := requireBinary(t, "prometheus")
	alertmanagerBin := requireAlertmanagerBinary(t)
	gatewayBin := testenv.BuildGateway(t)
	ortLib := testenv.ONNXRuntimeLib(t)

	// Triton serves the repository's model, as the embedded fallback does.
	triton := tritontest.Start(t, testenv.RepositoryModel(t))
	hook := startWebhook(t)
	am := startAlertmanager(t, alertmanagerBin, hook.url)
	gw := startStackGateway(t, gatewayBin, map[string]string{
		"BACKEND":                      "triton",
		"TRITON_URL":                   triton.Addr(),
		"FALLBACK":                     "onnx",
		"ONNXRUNTIME_LIB":              ortLib,
		"MODEL_REPOSITORY":             filepath.Join(repoRoot(t), "triton-models"),
		"MODEL_NAME":                   "fish_classifier",
		"BREAKER_CONSECUTIVE_FAILURES": "3",
		// Long enough that the breaker stays open while the alert travels.
		"BREAKER_OPEN_TIMEOUT":       "2m",
		"MAX_IN_FLIGHT":              "2",
		"REQUEST_TIMEOUT":            "10s",
		"TRITON_RETRY_BACKOFF":       "5ms",
		"TRITON_CONNECT_BACKOFF_MAX": "100ms",
		"MODEL_REFRESH_INTERVAL":     "1s",
	})
	tritonExporter := startStandInExporter(t, tritonStandIn())
	cadvisorExporter := startStandInExporter(t, cadvisorStandIn(gw.pid))
	prom := startPrometheus(t, prometheusBin, map[string]string{
		"fish_api":     gw.addr,
		"triton":       tritonExporter,
		"cadvisor":     cadvisorExporter,
		"alertmanager": am,
		// "prometheus" is filled in with its own address.
	}, am)

	driveTraffic(t, gw, triton)

	t.Run("every dashboard and recording-rule query returns data", func(t *testing.T) {
		queries := dashboardQueries(t)
		queries = append(queries, recordingRuleQueries(t)...)
		if len(queries) < 20 {
			t.Fatalf("only %d queries found in the dashboard and the recording rules", len(queries))
		}
		checkQueriesReturnData(t, prom, queries)
	})

	t.Run("breaker alert fires and reaches the webhook", func(t *testing.T) {
		if n := firingAlerts(t, prom, breakerAlert); n != 0 {
			t.Fatalf("%s firing with a healthy Triton (%d alerts)", breakerAlert, n)
		}
		triton.Stop()
		stopped := time.Now()
		// Past the breaker's threshold; the fallback answers every one.
		for i := range 5 {
			if status, body := gw.post(t, "/predict", "image/jpeg", photo(t, 320, 240, uint8(i))); status != http.StatusOK {
				t.Fatalf("predict %d with Triton down and FALLBACK=onnx: %d %s", i, status, body)
			}
		}
		waitUntil(t, breakerAlert+" firing in Prometheus", func() bool {
			return firingAlerts(t, prom, breakerAlert) > 0
		})
		n := hook.waitFor(t, breakerAlert)
		t.Logf("%s reached the webhook %.1fs after Triton stopped", breakerAlert, time.Since(stopped).Seconds())
		if n.Receiver != "pager" {
			t.Errorf("receiver %q, want pager (critical alerts page)", n.Receiver)
		}
		a := n.alert(breakerAlert)
		want := map[string]string{"alertname": breakerAlert, "severity": "critical", "job": "fish_api", "instance": gw.addr, "name": "triton"}
		for k, v := range want {
			if a.Labels[k] != v {
				t.Errorf("label %s = %q, want %q (labels %v)", k, a.Labels[k], v, a.Labels)
			}
		}
		for _, k := range []string{"summary", "description", "runbook_url"} {
			if a.Annotations[k] == "" {
				t.Errorf("annotation %s empty (annotations %v)", k, a.Annotations)
			}
		}
		if a.Status != "firing" {
			t.Errorf("status %q, want firing", a.Status)
		}
	})
}

// ---- traffic ---------------------------------------------------------------

// driveTraffic sends what fills every gateway series the dashboard reads:
// single and batch predictions, each kind of client error, 5xx answers from a
// failing Triton, and requests shed by the in-flight limit.
func driveTraffic(t *testing.T, gw *stackGateway, triton *tritontest.Server) {
	t.Helper()
	expect := func(what string, want, got int, body []byte) {
		t.Helper()
		if got != want {
			t.Fatalf("%s: status %d, want %d: %s", what, got, want, body)
		}
	}
	for i := range 12 {
		status, body := gw.post(t, "/predict", "image/jpeg", photo(t, 320+8*i, 240, uint8(i)))
		expect("predict", http.StatusOK, status, body)
	}
	for i := range 3 {
		ct, body := multipartImages(t, photo(t, 256, 256, uint8(i)), photo(t, 300, 260, uint8(i+1)), photo(t, 400, 300, uint8(i+2)))
		status, answer := gw.post(t, "/predict/batch", ct, body)
		expect("predict/batch", http.StatusOK, status, answer)
	}

	// Client errors: each a 4xx with its code.
	status, body := gw.post(t, "/predict", "image/gif", gifImage(t))
	expect("GIF", http.StatusUnsupportedMediaType, status, body)
	truncated := photo(t, 320, 240, 1)
	status, body = gw.post(t, "/predict", "image/jpeg", truncated[:len(truncated)/3])
	expect("truncated JPEG", http.StatusUnprocessableEntity, status, body)
	status, body = gw.post(t, "/predict", "image/jpeg", nil)
	expect("empty body", http.StatusBadRequest, status, body)
	status, body = gw.get(t, "/no-such-route")
	expect("unknown route", http.StatusNotFound, status, body)

	// 5xx: Triton fails one call at a time, so the breaker (3 consecutive
	// failures) stays closed; the breaker alert must stay silent until the
	// test stops Triton.
	for range 2 {
		triton.SetFault(tritontest.Fault{Code: codes.Internal, FailCount: 1})
		status, body = gw.post(t, "/predict", "image/jpeg", photo(t, 320, 240, 9))
		expect("predict with Triton failing INTERNAL", http.StatusBadGateway, status, body)
		status, body = gw.post(t, "/predict", "image/jpeg", photo(t, 320, 240, 10))
		expect("predict after the failure", http.StatusOK, status, body)
	}

	// Shedding: with MAX_IN_FLIGHT=2 and a slow Triton, some of 6 concurrent
	// requests get 429.
	triton.SetFault(tritontest.Fault{Latency: 700 * time.Millisecond})
	statuses := make([]int, 6)
	var wg sync.WaitGroup
	img := photo(t, 320, 240, 3)
	for i := range statuses {
		wg.Go(func() { statuses[i], _ = gw.post(t, "/predict", "image/jpeg", img) })
	}
	wg.Wait()
	triton.SetFault(tritontest.Fault{})
	if !slices.Contains(statuses, http.StatusTooManyRequests) || !slices.Contains(statuses, http.StatusOK) {
		t.Fatalf("6 concurrent requests with MAX_IN_FLIGHT=2: statuses %v, want some 200 and some 429", statuses)
	}

	for _, path := range []string{"/health", "/ready", "/model"} {
		status, body = gw.get(t, path)
		expect(path, http.StatusOK, status, body)
	}
}

// photo is a JPEG of a smooth colour field, a different one per seed.
func photo(t testing.TB, w, h int, seed uint8) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x*255/w) + seed*40, uint8(y*255/h) + seed*20, 128 + seed*13, 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gifImage is a valid GIF, which the gateway does not accept.
func gifImage(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	img := image.NewPaletted(image.Rect(0, 0, 64, 64), color.Palette{color.Black, color.White})
	if err := gif.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// multipartImages is a /predict/batch body with one "files" part per image.
func multipartImages(t testing.TB, images ...[]byte) (contentType string, body []byte) {
	t.Helper()
	parts := make([]formdata.Part, len(images))
	for i, img := range images {
		parts[i] = formdata.File("files", fmt.Sprintf("fish-%d.jpg", i), img)
	}
	body, contentType, err := formdata.Encode(parts...)
	if err != nil {
		t.Fatal(err)
	}
	return contentType, body
}

// ---- queries ---------------------------------------------------------------

// stackQuery is one PromQL expression and where it comes from.
type stackQuery struct {
	source string // "dashboard panel \"...\"" or "recording rule ..."
	expr   string
}

// grafanaVariables are the dashboard's variables and Grafana's built-in ones,
// replaced the way Grafana would before sending a query.
var grafanaVariables = strings.NewReplacer(
	"${__rate_interval}", "1m", "$__rate_interval", "1m",
	"${__interval}", "15s", "$__interval", "15s",
	"${__range}", "5m", "$__range", "5m",
	"${instance:regex}", ".*", "${instance}", ".*", "$instance", ".*",
)

// Files of the generated dashboards under grafana/provisioning/dashboards.
const (
	mainDashboardFile  = "fish-api-dashboard.json"
	minioDashboardFile = "minio-dashboard.json" // the mlops profile's MinIO
	mysqlDashboardFile = "mysql-dashboard.json" // the mlops profile's MariaDB
)

// dashboardQueries returns the queries of the gateway's dashboard; see
// dashboardFileQueries.
func dashboardQueries(t *testing.T) []stackQuery {
	t.Helper()
	return dashboardFileQueries(t, mainDashboardFile)
}

// dashboardFileQueries returns, for the provisioned dashboard of that file
// name, the expression of every target of every panel, rows' nested panels
// included, and the selector inside each variable's label_values() query,
// with Grafana's variables replaced (grafanaVariables). Every dashboard has
// the same variables, so the MinIO and MySQL dashboards' queries come out
// ready to ask a Prometheus that scrapes those servers.
func dashboardFileQueries(t *testing.T, file string) []stackQuery {
	t.Helper()
	raw, err := os.ReadFile(monitoringPath(t, "grafana", "provisioning", "dashboards", file))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels     []dashboardPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var out []stackQuery
	var walk func([]dashboardPanel)
	walk = func(panels []dashboardPanel) {
		for _, p := range panels {
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q target %s has no expression", p.Title, tg.RefID)
					continue
				}
				out = append(out, stackQuery{fmt.Sprintf("%s panel %q (%s)", file, p.Title, tg.RefID), grafanaVariables.Replace(tg.Expr)})
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		if obj, ok := v.Query.(map[string]any); ok {
			q, _ = obj["query"].(string)
		}
		if m := labelValues.FindStringSubmatch(strings.TrimSpace(q)); m != nil {
			out = append(out, stackQuery{fmt.Sprintf("%s variable %q", file, v.Name), m[1]})
		} else {
			t.Errorf("dashboard variable %q: query %q is not label_values(selector, label)", v.Name, q)
		}
	}
	return out
}

type dashboardPanel struct {
	Title   string           `json:"title"`
	Panels  []dashboardPanel `json:"panels"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// recordingRuleQueries returns, for every recording rule, its expression and
// the series it records.
func recordingRuleQueries(t *testing.T) []stackQuery {
	t.Helper()
	files, err := filepath.Glob(monitoringPath(t, "prometheus", "rules", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files (%v)", err)
	}
	var out []stackQuery
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rf struct {
			Groups []struct {
				Rules []struct {
					Record string `yaml:"record"`
					Expr   string `yaml:"expr"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(raw, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Record == "" {
					continue
				}
				out = append(out,
					stackQuery{"recording rule " + r.Record + " (expression)", r.Expr},
					stackQuery{"recording rule " + r.Record + " (recorded series)", r.Record})
			}
		}
	}
	return out
}

// checkQueriesReturnData asks Prometheus every query, again each second, until
// each has returned at least one sample, and fails naming those that never did.
func checkQueriesReturnData(t *testing.T, api promv1.API, queries []stackQuery) {
	t.Helper()
	pending := map[int]string{}
	for i := range queries {
		pending[i] = "not asked yet"
	}
	start := time.Now()
	deadline := start.Add(stackWait)
	var slowest string
	var slowestAfter time.Duration
	for len(pending) > 0 && time.Now().Before(deadline) {
		for _, i := range slices.Sorted(maps.Keys(pending)) {
			q := queries[i]
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			v, _, _, err := api.Query(ctx, q.expr, time.Now())
			cancel()
			switch {
			case err != nil:
				pending[i] = "error: " + err.Error()
			case resultLen(v) == 0:
				pending[i] = "no data"
			default:
				delete(pending, i)
				if after := time.Since(start); after > slowestAfter {
					slowest, slowestAfter = q.source, after
				}
			}
		}
		if len(pending) > 0 {
			time.Sleep(time.Second)
		}
	}
	for _, i := range slices.Sorted(maps.Keys(pending)) {
		t.Errorf("%s: %s\n\t%s", queries[i].source, pending[i], queries[i].expr)
	}
	t.Logf("%d queries, %d returned data; the last, after %v: %s", len(queries), len(queries)-len(pending), slowestAfter.Round(time.Second), slowest)
}

func resultLen(v model.Value) int {
	switch r := v.(type) {
	case model.Vector:
		return len(r)
	case model.Matrix:
		return len(r)
	case *model.Scalar:
		return 1
	}
	return 0
}

// firingAlerts counts the firing alerts called name in Prometheus.
func firingAlerts(t *testing.T, api promv1.API, name string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := api.Alerts(ctx)
	if err != nil {
		t.Fatalf("Prometheus alerts: %v", err)
	}
	n := 0
	for _, a := range res.Alerts {
		if string(a.Labels["alertname"]) == name && a.State == promv1.AlertStateFiring {
			n++
		}
	}
	return n
}

// ---- stand-in exporters ------------------------------------------------------

// standInSeries is one series of a stand-in exporter.
type standInSeries struct {
	name, help string
	counter    bool
	labels     prometheus.Labels
	value      func() float64
}

// startStandInExporter serves series on a loopback port and returns its address.
func startStandInExporter(t *testing.T, series []standInSeries) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	f := promauto.With(reg)
	for _, s := range series {
		if _, ok := standInFamilies[s.name]; !ok {
			t.Fatalf("stand-in series %s is not listed in standInFamilies", s.name)
		}
		opts := prometheus.Opts{Name: s.name, Help: s.help, ConstLabels: s.labels}
		if s.counter {
			f.NewCounterFunc(prometheus.CounterOpts(opts), s.value)
		} else {
			f.NewGaugeFunc(prometheus.GaugeOpts(opts), s.value)
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return lis.Addr().String()
}

// tritonStandIn is what Triton with one GPU would export for fish_classifier:
// counters growing with the time since start at a steady 50 requests/s in
// batches of 4, 2 ms queued and 6 ms computing per request.
func tritonStandIn() []standInSeries {
	start := time.Now()
	perSecond := func(rate float64) func() float64 {
		return func() float64 { return rate * time.Since(start).Seconds() }
	}
	constant := func(v float64) func() float64 { return func() float64 { return v } }
	model := prometheus.Labels{"model": "fish_classifier", "version": "1"}
	gpu := prometheus.Labels{"gpu_uuid": "GPU-00000000-0000-0000-0000-000000000000"}
	series := []standInSeries{
		{"nv_inference_request_success", "Successful requests.", true, model, perSecond(50)},
		{"nv_inference_count", "Inferences performed.", true, model, perSecond(50)},
		{"nv_inference_exec_count", "Model executions.", true, model, perSecond(12.5)},
		{"nv_inference_pending_request_count", "Requests awaiting execution.", false, model, constant(3)},
		{"nv_inference_request_duration_us", "Cumulative request time.", true, model, perSecond(50 * 8500)},
		{"nv_inference_queue_duration_us", "Cumulative queue time.", true, model, perSecond(50 * 2000)},
		{"nv_inference_compute_input_duration_us", "Cumulative input time.", true, model, perSecond(50 * 300)},
		{"nv_inference_compute_infer_duration_us", "Cumulative compute time.", true, model, perSecond(50 * 6000)},
		{"nv_inference_compute_output_duration_us", "Cumulative output time.", true, model, perSecond(50 * 200)},
		{"nv_gpu_utilization", "GPU utilisation (0..1).", false, gpu, constant(0.42)},
		{"nv_gpu_memory_total_bytes", "GPU memory.", false, gpu, constant(16e9)},
		{"nv_gpu_memory_used_bytes", "GPU memory used.", false, gpu, constant(3.2e9)},
		{"nv_gpu_power_usage", "GPU power (W).", false, gpu, constant(71)},
		{"nv_gpu_power_limit", "GPU power limit (W).", false, gpu, constant(300)},
		{"nv_energy_consumption", "GPU energy since start (J).", true, gpu, perSecond(71)},
	}
	for reason, rate := range map[string]float64{"REJECTED": 0, "CANCELED": 0, "BACKEND": 0.5, "OTHER": 0} {
		series = append(series, standInSeries{"nv_inference_request_failure", "Failed requests.", true,
			prometheus.Labels{"model": "fish_classifier", "version": "1", "reason": reason}, perSecond(rate)})
	}
	return series
}

// cadvisorStandIn is what cAdvisor exports for the gateway's container under
// docker compose, with the gateway process's real CPU time and memory.
func cadvisorStandIn(pid int) []standInSeries {
	labels := prometheus.Labels{
		"id":    "/system.slice/docker-0123456789ab.scope",
		"name":  "fish_api",
		"image": "fish-classifier-fish_api",
		"container_label_com_docker_compose_service": "fish_api",
		"container_label_com_docker_compose_project": "fish-classifier",
	}
	stat := func() procfs.ProcStat {
		p, err := procfs.NewProc(pid)
		if err != nil {
			return procfs.ProcStat{}
		}
		s, _ := p.Stat()
		return s
	}
	return []standInSeries{
		{"container_cpu_usage_seconds_total", "Cumulative CPU time consumed (s).", true, labels, func() float64 { return stat().CPUTime() }},
		{"container_memory_working_set_bytes", "Working set (bytes).", false, labels, func() float64 { return float64(stat().ResidentMemory()) }},
	}
}

// ---- webhook -----------------------------------------------------------------

// webhook receives Alertmanager's notifications.
type webhook struct {
	url string

	mu            sync.Mutex
	notifications []webhookNotification
}

// webhookNotification is the part of Alertmanager's webhook payload the test reads.
type webhookNotification struct {
	Receiver string         `json:"receiver"`
	Status   string         `json:"status"`
	Alerts   []webhookAlert `json:"alerts"`
}

// webhookAlert is one alert of a notification.
type webhookAlert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// alert returns the notification's alert called name (zero if none).
func (n webhookNotification) alert(name string) webhookAlert {
	for _, a := range n.Alerts {
		if a.Labels["alertname"] == name {
			return a
		}
	}
	return webhookAlert{}
}

func startWebhook(t *testing.T) *webhook {
	t.Helper()
	h := &webhook{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n webhookNotification
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.notifications = append(h.notifications, n)
		h.mu.Unlock()
	})}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	h.url = "http://" + lis.Addr().String()
	return h
}

// waitFor waits for a notification of a firing alert called name.
func (h *webhook) waitFor(t *testing.T, name string) webhookNotification {
	t.Helper()
	var found webhookNotification
	waitUntil(t, name+" notified at the webhook", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, n := range h.notifications {
			if a := n.alert(name); a.Status == "firing" {
				found = n
				return true
			}
		}
		return false
	})
	return found
}

// ---- servers -----------------------------------------------------------------

// requireAlertmanagerBinary finds Alertmanager: Debian names it
// prometheus-alertmanager, upstream alertmanager.
func requireAlertmanagerBinary(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"prometheus-alertmanager", "alertmanager"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return requireBinary(t, "prometheus-alertmanager")
}

// startAlertmanager runs Alertmanager on the committed configuration with
// every webhook aimed at hookURL (the receiver's name as path) and every
// group_wait and group_interval shortened; it returns its address.
func startAlertmanager(t *testing.T, bin, hookURL string) string {
	t.Helper()
	cfg := readYAML(t, monitoringPath(t, "alertmanager", "alertmanager.yml"))
	receivers, _ := cfg["receivers"].([]any)
	hooks := 0
	for _, r := range receivers {
		r := r.(map[string]any)
		configs, _ := r["webhook_configs"].([]any)
		for _, c := range configs {
			c.(map[string]any)["url"] = hookURL + "/" + fmt.Sprint(r["name"])
			hooks++
		}
	}
	if hooks == 0 {
		t.Fatal("alertmanager.yml has no webhook receiver to aim at the test")
	}
	var shorten func(route map[string]any)
	shorten = func(route map[string]any) {
		route["group_wait"], route["group_interval"] = "1s", "1s"
		children, _ := route["routes"].([]any)
		for _, c := range children {
			shorten(c.(map[string]any))
		}
	}
	route, ok := cfg["route"].(map[string]any)
	if !ok {
		t.Fatal("alertmanager.yml has no route")
	}
	shorten(route)
	dir := t.TempDir()
	path := writeYAML(t, dir, "alertmanager.yml", cfg)
	addr := testenv.FreeLoopbackAddr(t)
	startProcess(t, "alertmanager", bin, nil,
		"--config.file="+path,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--cluster.listen-address=", // one instance, no gossip port
		"--log.level=warn")
	waitHTTPOK(t, "http://"+addr+"/-/ready")
	return addr
}

// startPrometheus runs Prometheus on the committed prometheus.yml and rules,
// with every job's target replaced by targets[job] (the prometheus job by
// Prometheus itself), the Alertmanager at am, and 1s intervals. A job that
// finds its service by DNS (the mlops profile's) is dropped when targets has
// none for it, as it has no target when the profile is not running; given
// one, it scrapes that address under the job's metrics path.
func startPrometheus(t *testing.T, bin string, targets map[string]string, am string) promv1.API {
	t.Helper()
	addr := testenv.FreeLoopbackAddr(t)
	targets = maps.Clone(targets)
	targets["prometheus"] = addr
	cfg := readYAML(t, monitoringPath(t, "prometheus.yml"))
	global, _ := cfg["global"].(map[string]any)
	if global == nil {
		t.Fatal("prometheus.yml has no global section")
	}
	global["scrape_interval"], global["evaluation_interval"] = stackInterval, stackInterval
	seen := map[string]bool{}
	var kept []any
	jobs, _ := cfg["scrape_configs"].([]any)
	for _, j := range jobs {
		j := j.(map[string]any)
		name := fmt.Sprint(j["job_name"])
		_, byDNS := j["dns_sd_configs"]
		target, ok := targets[name]
		if !ok && byDNS {
			continue
		}
		if !ok {
			t.Fatalf("prometheus.yml job %q: the test has no target for it", name)
		}
		delete(j, "scrape_interval")
		if byDNS {
			// Its relabelling names the instance after the DNS name.
			delete(j, "dns_sd_configs")
			delete(j, "relabel_configs")
		}
		j["static_configs"] = []any{map[string]any{"targets": []any{target}}}
		seen[name] = true
		kept = append(kept, j)
	}
	cfg["scrape_configs"] = kept
	for job := range targets {
		if !seen[job] {
			t.Errorf("prometheus.yml has no job %q", job)
		}
	}
	var ruleFiles []any
	rules, _ := cfg["rule_files"].([]any)
	for _, r := range rules {
		ruleFiles = append(ruleFiles, monitoringPath(t, fmt.Sprint(r)))
	}
	if len(ruleFiles) == 0 {
		t.Fatal("prometheus.yml loads no rule files")
	}
	cfg["rule_files"] = ruleFiles
	cfg["alerting"] = map[string]any{"alertmanagers": []any{
		map[string]any{"static_configs": []any{map[string]any{"targets": []any{am}}}},
	}}
	dir := t.TempDir()
	path := writeYAML(t, dir, "prometheus.yml", cfg)
	startProcess(t, "prometheus", bin, nil,
		"--config.file="+path,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		// As in docker-compose.yml: the gateway's latency histograms carry
		// trace ids as exemplars.
		"--enable-feature=exemplar-storage",
		"--log.level=warn")
	waitHTTPOK(t, "http://"+addr+"/-/ready")
	client, err := promapi.NewClient(promapi.Config{Address: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	return promv1.NewAPI(client)
}

// stackGateway is the gateway binary serving on a loopback port.
type stackGateway struct {
	addr   string
	pid    int
	client *http.Client
}

func startStackGateway(t *testing.T, bin string, env map[string]string) *stackGateway {
	t.Helper()
	addr := testenv.FreeLoopbackAddr(t)
	env = maps.Clone(env)
	env["GATEWAY_LISTEN_ADDR"] = addr
	pid := startProcess(t, "gateway", bin, env)
	g := &stackGateway{addr: addr, pid: pid, client: &http.Client{Timeout: 30 * time.Second}}
	waitHTTPOK(t, "http://"+addr+"/ready")
	return g
}

func (g *stackGateway) post(t testing.TB, path, contentType string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := g.client.Post("http://"+g.addr+path, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (g *stackGateway) get(t testing.TB, path string) (int, []byte) {
	t.Helper()
	resp, err := g.client.Get("http://" + g.addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// startProcess starts bin with args (and, when env is not nil, exactly that
// environment plus PATH and HOME), logging to a file whose tail is printed if
// the test fails. At cleanup it is sent SIGTERM, then killed after 5s.
func startProcess(t *testing.T, name, bin string, env map[string]string, args ...string) int {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if env != nil {
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
		keys := slices.Collect(maps.Keys(env))
		sort.Strings(keys)
		for _, k := range keys {
			cmd.Env = append(cmd.Env, k+"="+env[k])
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		_ = logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				t.Logf("--- %s log (tail) ---\n%s", name, b)
			}
		}
	})
	return cmd.Process.Pid
}

// waitHTTPOK waits until url answers 200.
func waitHTTPOK(t *testing.T, url string) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	waitUntil(t, url+" to answer 200", func() bool {
		resp, err := client.Get(url)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// waitUntil polls cond every 250 ms until it holds, failing after stackWait.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, stackWait, 250*time.Millisecond, what, cond)
}

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

func writeYAML(t *testing.T, dir, name string, v any) string {
	t.Helper()
	raw, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
