package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/trace"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/httpapi"
	"github.com/fish-classifier/fish-classifier/internal/formdata"
	"github.com/fish-classifier/fish-classifier/preprocess"
)

// fakeClassifier is a scripted Classifier: each image's outcome is chosen by its
// bytes, and it records every call (copies of the images, k, the deadline it was
// given). Channels let a test hold calls inside it.
type fakeClassifier struct {
	model gateway.ModelInfo
	// errs maps an image's bytes to the error it gets; other images succeed.
	errs map[string]error
	// panicOn makes the call panic for an image with these bytes.
	panicOn string
	// entered, when set, receives one value per call on entry.
	entered chan struct{}
	// release, when set, holds each call until it is closed or ctx ends.
	release chan struct{}
	// waitForDeadline holds each call until its ctx ends and returns ctx.Err().
	waitForDeadline bool
	// left, when set, receives the error of each call that ended because its
	// ctx did (ctx.Err()), as the call returns.
	left chan error
	// readyWait makes Ready signal entered, then block until its ctx ends and
	// return (and send to left) ctx.Err().
	readyWait bool
	readyErr  error

	mu    sync.Mutex
	calls []fakeCall
}

// fakeCall is what the fake saw of one Classify or ClassifyBatch call.
type fakeCall struct {
	batch       bool
	images      [][]byte
	k           int
	hasDeadline bool
	remaining   time.Duration // time left before the deadline, on entry
	// span is the span context the call's ctx carried (the server span).
	span trace.SpanContext
}

func newFake() *fakeClassifier {
	spec := preprocess.ImageNetSpec()
	return &fakeClassifier{
		model: gateway.ModelInfo{
			Name: "fish", Version: "3", Backend: "onnxruntime", Platform: "onnxruntime_onnx",
			MaxBatchSize:   8,
			Input:          gateway.TensorInfo{Name: "input", Datatype: "FP32", Shape: []int64{3, 224, 224}},
			Output:         gateway.TensorInfo{Name: "logits", Datatype: "FP32", Shape: []int64{3}},
			Labels:         []string{"cod", "tuna", "eel"},
			OutputIsLogits: true,
			Preprocess:     spec,
			Provenance:     gateway.Provenance{SHA256: strings.Repeat("ab", 32), Source: "test weights", License: "MIT"},
		},
		errs: map[string]error{},
	}
}

func (f *fakeClassifier) Classify(ctx context.Context, image []byte, k int) (gateway.Result, error) {
	results, errs := f.classify(ctx, false, [][]byte{image}, k)
	return results[0], errs[0]
}

func (f *fakeClassifier) ClassifyBatch(ctx context.Context, images [][]byte, k int) ([]gateway.Result, []error) {
	return f.classify(ctx, true, images, k)
}

func (f *fakeClassifier) classify(ctx context.Context, batch bool, images [][]byte, k int) ([]gateway.Result, []error) {
	call := fakeCall{batch: batch, k: k, span: trace.SpanContextFromContext(ctx)}
	if d, ok := ctx.Deadline(); ok {
		call.hasDeadline, call.remaining = true, time.Until(d)
	}
	for _, img := range images {
		call.images = append(call.images, bytes.Clone(img)) // the API reuses its buffers
	}
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()

	results := make([]gateway.Result, len(images))
	errs := make([]error, len(images))
	fail := func(err error) ([]gateway.Result, []error) {
		for i := range errs {
			errs[i] = err
		}
		if f.left != nil {
			f.left <- err
		}
		return results, errs
	}
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
	if f.waitForDeadline {
		<-ctx.Done()
		return fail(ctx.Err())
	}
	for i, img := range images {
		if f.panicOn != "" && string(img) == f.panicOn {
			panic("fake classifier: " + f.panicOn)
		}
		if err, ok := f.errs[string(img)]; ok {
			errs[i] = err
			continue
		}
		n := max(1, min(k, len(f.model.Labels)))
		preds := make([]gateway.Prediction, n)
		for j := range preds {
			preds[j] = gateway.Prediction{Label: f.model.Labels[j], Index: j, Confidence: 0.5 / float64(j+1)}
		}
		results[i] = gateway.Result{
			Model: f.model.Name, Version: f.model.Version, Predictions: preds,
			Timings: gateway.Timings{Decode: time.Millisecond, Resize: 2 * time.Millisecond, Normalize: 3 * time.Millisecond, Inference: 4 * time.Millisecond, Postprocess: 5 * time.Microsecond},
		}
	}
	return results, errs
}

func (f *fakeClassifier) Model() gateway.ModelInfo { return f.model }

func (f *fakeClassifier) Ready(ctx context.Context) error {
	if !f.readyWait {
		return f.readyErr
	}
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	<-ctx.Done()
	if f.left != nil {
		f.left <- ctx.Err()
	}
	return ctx.Err()
}

// recorded returns the calls so far.
func (f *fakeClassifier) recorded() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.calls...)
}

// syncBuffer is an io.Writer for the access log that tests may read while
// requests run.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the access log lines, decoded.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// waitFor waits up to 5 s for the access log line of the request with id,
// asserts its route, and returns it.
func (b *syncBuffer) waitFor(t *testing.T, id, route string) map[string]any {
	t.Helper()
	var found map[string]any
	waitUntil(t, 5*time.Second, "the access log line of "+id, func() bool {
		for _, line := range b.lines(t) {
			if line["request_id"] == id && line["msg"] == "http request" {
				found = line
				return true
			}
		}
		return false
	})
	if found["route"] != route {
		t.Errorf("request %s logged with route %v, want %s: %v", id, found["route"], route, found)
	}
	return found
}

// testServer is a Server over a fake, with its own registry and log.
type testServer struct {
	*httpapi.Server
	fake *fakeClassifier
	reg  *prometheus.Registry
	log  *syncBuffer
}

// testConfig is DefaultConfig with small, test-friendly limits.
func testConfig() httpapi.Config {
	cfg := httpapi.DefaultConfig()
	cfg.DefaultTopK = 2
	cfg.MaxBatchItems = 4
	cfg.MaxInFlight = 4
	cfg.BodyLimit = 64 << 10
	cfg.RequestTimeout = 2 * time.Second
	return cfg
}

func newTestServer(t *testing.T, cfg httpapi.Config, fake *fakeClassifier, opts ...httpapi.Option) *testServer {
	t.Helper()
	if fake == nil {
		fake = newFake()
	}
	reg := prometheus.NewRegistry()
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := httpapi.New(fake, cfg, reg, reg, log, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &testServer{Server: srv, fake: fake, reg: reg, log: logs}
}

// response is an answered request, body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends req through app.Test, with a timeout that a hung handler cannot
// exceed unnoticed.
func (s *testServer) do(t *testing.T, req *http.Request) response {
	t.Helper()
	resp, err := s.App().Test(req, 5000)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// listen serves s on a real listener on 127.0.0.1 until the test ends and
// returns its base URL, for what app.Test cannot show (fasthttp's own
// refusals, timeouts, shutdown).
func (s *testServer) listen(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// send sends req to a real listener at base.
func send(t *testing.T, base string, req *http.Request) response {
	t.Helper()
	u, err := url.Parse(base + req.URL.RequestURI())
	if err != nil {
		t.Fatal(err)
	}
	req.URL, req.Host, req.RequestURI = u, u.Host, ""
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// decode unmarshals the body into v.
func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
}

// errorBody is the JSON of an error answer, as a client reads it.
type errorBody struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	} `json:"error"`
}

// checkError asserts an error answer: status, code, a message, the request id
// of the header in the body, JSON content type.
func (r response) checkError(t *testing.T, status int, code string) errorBody {
	t.Helper()
	var e errorBody
	r.decode(t, &e)
	if r.status != status || e.Error.Code != code {
		t.Errorf("got %d %q, want %d %q (body %s)", r.status, e.Error.Code, status, code, r.body)
	}
	if e.Error.Message == "" {
		t.Errorf("error without a message: %s", r.body)
	}
	if id := r.header.Get("X-Request-ID"); id == "" || e.Error.RequestID != id {
		t.Errorf("request_id %q in the body, %q in the header", e.Error.RequestID, id)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want JSON", ct)
	}
	return e
}

// part is one part of a multipart body.
type part struct {
	field, filename string
	data            string
}

// multipartRequest builds a multipart/form-data POST.
func multipartRequest(t *testing.T, target string, parts ...part) *http.Request {
	t.Helper()
	fd := make([]formdata.Part, len(parts))
	for i, p := range parts {
		fd[i] = formdata.Part{Field: p.field, Filename: p.filename, Data: []byte(p.data)}
	}
	body, contentType, err := formdata.Encode(fd...)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	return req
}

// rawRequest builds a POST whose body is data with the given Content-Type.
func rawRequest(target, contentType, data string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(data))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

// metricValue returns the value of the counter or gauge name with exactly the
// given labels, or of a histogram's sample count; 0 when absent.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !sameLabels(m.GetLabel(), labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

func sameLabels(got []*dto.LabelPair, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, l := range got {
		if want[l.GetName()] != l.GetValue() {
			return false
		}
	}
	return true
}

var errBoom = errors.New("boom: connection string postgres://admin:hunter2@db")
