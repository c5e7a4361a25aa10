package main

// Helpers of the end-to-end tests (e2e_test.go, shutdown_e2e_test.go): the real
// gateway, started through run() (or as a built binary), in front of a
// tritontest server, both on real loopback sockets, driven with net/http.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/kserve"
	"github.com/fish-classifier/fish-classifier/gateway/modelconfig"
	"github.com/fish-classifier/fish-classifier/gateway/triton/tritontest"
	"github.com/fish-classifier/fish-classifier/internal/formdata"
	"github.com/fish-classifier/fish-classifier/internal/poll"
	"github.com/fish-classifier/fish-classifier/internal/testenv"
	"github.com/fish-classifier/fish-classifier/preprocess"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if gatewayBinary.dir != "" {
		_ = os.RemoveAll(gatewayBinary.dir)
	}
	os.Exit(code)
}

// Timings of the e2e environment. They are far from what a passing test needs
// on a loaded 2-core machine with the race detector, and short enough that the
// whole package stays well under a minute.
const (
	// e2eOpenTimeout is BREAKER_OPEN_TIMEOUT: long enough to assert what an
	// open breaker does before it turns half-open.
	e2eOpenTimeout = 800 * time.Millisecond
	// e2eFailures is BREAKER_CONSECUTIVE_FAILURES.
	e2eFailures = 3
	// e2eWait bounds every condition loop that waits for the gateway to reach a
	// state it should reach at once or after one of the timeouts above.
	e2eWait = 10 * time.Second
)

// e2eSetup is what startGateway builds; options change it.
type e2eSetup struct {
	env          map[string]string
	startFault   tritontest.Fault
	labels       []string // written to MODEL_REPOSITORY/fish_classifier/labels.txt
	noLabelsFile bool     // write no labels.txt
	waitReady    bool
	// model edits tritontest's model before it starts.
	model func(*tritontest.Model)
}

type e2eOption func(*e2eSetup)

// withEnv sets (or, with "", unsets) an environment variable of the gateway.
func withEnv(name, value string) e2eOption {
	return func(s *e2eSetup) {
		if value == "" {
			delete(s.env, name)
			return
		}
		s.env[name] = value
	}
}

// withStartFault starts tritontest with f already set; the gateway is then not
// waited for until /ready (only /health).
func withStartFault(f tritontest.Fault) e2eOption {
	return func(s *e2eSetup) { s.startFault, s.waitReady = f, false }
}

// withModel edits the model tritontest serves (its labels become the
// repository's labels.txt, unless withLabels says otherwise).
func withModel(edit func(*tritontest.Model)) e2eOption {
	return func(s *e2eSetup) { s.model = edit }
}

// withLabels writes labels as the model repository's labels.txt.
func withLabels(labels []string) e2eOption {
	return func(s *e2eSetup) { s.labels = labels }
}

// withoutLabelsFile leaves the model repository empty: the gateway then asks
// Triton for the labels through the classification extension.
func withoutLabelsFile() e2eOption {
	return func(s *e2eSetup) { s.noLabelsFile = true }
}

// e2eGateway is a gateway served by run() in this process, in front of a
// tritontest server.
type e2eGateway struct {
	URL    string // "http://127.0.0.1:port"
	Addr   string // "127.0.0.1:port"
	Triton *tritontest.Server
	Model  tritontest.Model
	Labels []string // the labels the gateway serves

	client  *http.Client
	logPath string
}

// baseEnv is the environment every e2e gateway starts from.
func baseEnv() map[string]string {
	return map[string]string{
		"BACKEND":                      "triton",
		"GATEWAY_LOG_LEVEL":            "debug",
		"BREAKER_CONSECUTIVE_FAILURES": fmt.Sprint(e2eFailures),
		"BREAKER_OPEN_TIMEOUT":         e2eOpenTimeout.String(),
		"REQUEST_TIMEOUT":              "5s",
		"MODEL_REFRESH_INTERVAL":       "1s",
		"SHUTDOWN_TIMEOUT":             "5s",
		"TRITON_RETRY_BACKOFF":         "5ms",
	}
}

// prepare starts tritontest and writes the model repository; it returns the
// gateway's environment, without GATEWAY_LISTEN_ADDR.
func prepare(t *testing.T, opts []e2eOption) (*e2eSetup, *tritontest.Server, map[string]string, []string) {
	t.Helper()
	m := tritontest.DefaultModel()
	s := &e2eSetup{env: baseEnv(), waitReady: true}
	for _, o := range opts {
		o(s)
	}
	if s.model != nil {
		s.model(&m)
	}
	if s.labels == nil {
		s.labels = m.Labels
	}
	srv := tritontest.Start(t, m, tritontest.WithFault(s.startFault))
	repo := t.TempDir()
	labels := m.Labels
	if !s.noLabelsFile {
		labels = s.labels
		dir := filepath.Join(repo, m.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		file := []byte(strings.Join(s.labels, "\n") + "\n")
		if slices.Equal(s.labels, m.Labels) {
			file = m.LabelFile() // what Triton's own repository holds
		}
		if err := os.WriteFile(filepath.Join(dir, "labels.txt"), file, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{
		"TRITON_URL":       srv.Addr(),
		"MODEL_REPOSITORY": repo,
		"MODEL_NAME":       m.Name,
	}
	for k, v := range s.env {
		env[k] = v
	}
	return s, srv, env, labels
}

// startGateway starts tritontest and the gateway in front of it (runGateway)
// and, unless the tritontest server starts with a fault, waits until /ready is
// 200.
func startGateway(t *testing.T, opts ...e2eOption) *e2eGateway {
	t.Helper()
	s, srv, env, labels := prepare(t, opts)
	g := runGateway(t, env)
	g.Triton, g.Model, g.Labels = srv, srv.Model(), labels
	if s.waitReady {
		g.waitReady(t)
	}
	return g
}

// runGateway is the one builder of the in-process e2e gateways: it serves the
// gateway configured by env (run, in a goroutine, on a free loopback port it
// sets as GATEWAY_LISTEN_ADDR) and waits until /health answers 200. At the end
// of the test the gateway's context is cancelled and run must return nil;
// when the test failed (or E2E_DUMP is set in the test's environment), the
// tail of the gateway's log is printed.
func runGateway(t *testing.T, env map[string]string) *e2eGateway {
	t.Helper()
	logFile, err := os.Create(filepath.Join(t.TempDir(), "gateway.log"))
	if err != nil {
		t.Fatal(err)
	}
	g := &e2eGateway{logPath: logFile.Name()}

	// A free port can be taken by someone else between Close and run's Listen:
	// try again with another one when run fails to listen.
	g.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 30 * time.Second}
	env = cloneEnv(env)
	var done chan error
	var cancel context.CancelFunc
	for attempt := 0; ; attempt++ {
		g.Addr = freeAddr(t)
		env["GATEWAY_LISTEN_ADDR"] = g.Addr
		lookup := lookupFrom(cloneEnv(env))
		var ctx context.Context
		ctx, cancel = context.WithCancel(context.Background())
		done = make(chan error, 1)
		go func() { done <- run(ctx, lookup, logFile) }()
		g.URL = "http://" + g.Addr
		err := g.waitHealthy(t, done)
		if err == nil {
			break
		}
		cancel()
		if attempt < 2 && strings.Contains(err.Error(), "GATEWAY_LISTEN_ADDR") {
			continue
		}
		g.dumpLog(t)
		t.Fatalf("gateway did not start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run returned %v, want nil after its context was cancelled", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("run did not return within 15s of its context being cancelled")
		}
		g.client.CloseIdleConnections()
		_ = logFile.Close()
		if t.Failed() || os.Getenv("E2E_DUMP") != "" {
			g.dumpLog(t)
		}
	})
	return g
}

// waitHealthy polls /health until it answers 200, run returns, or e2eWait
// passes.
func (g *e2eGateway) waitHealthy(t *testing.T, done <-chan error) error {
	t.Helper()
	deadline := time.Now().Add(e2eWait)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			return fmt.Errorf("run returned early: %w", err)
		default:
		}
		resp, err := g.client.Get(g.URL + "/health")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("/health did not answer 200 within %v", e2eWait)
}

// waitReady waits until /ready answers 200.
func (g *e2eGateway) waitReady(t *testing.T) {
	t.Helper()
	waitFor(t, "GET /ready to answer 200", func() bool {
		return g.get(t, "/ready").Status == http.StatusOK
	})
}

func (g *e2eGateway) dumpLog(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile(g.logPath)
	if err != nil {
		t.Logf("gateway log: %v", err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 80 {
		lines = lines[len(lines)-80:]
	}
	t.Logf("gateway log (last %d lines):\n%s", len(lines), strings.Join(lines, "\n"))
}

func cloneEnv(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t testing.TB) string { return testenv.FreeLoopbackAddr(t) }

// waitFor polls cond every few milliseconds until it holds, failing the test
// after e2eWait.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitForWithin(t, e2eWait, what, cond)
}

func waitForWithin(t testing.TB, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return poll.Until(t, limit, 10*time.Millisecond, what, cond)
}

// procGateway is the gateway binary running with an environment of the
// test's, in a process of its own.
type procGateway struct {
	*e2eGateway
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// startProcGateway is the one builder of the e2e gateways that run as a
// process (buildGateway's binary): it runs the binary with env and nothing
// else of the test's environment (GATEWAY_LISTEN_ADDR is picked here) and
// waits until /ready answers 200. srv, when not nil, is the tritontest server
// it talks to. At cleanup a process still running is killed; the log is
// printed when the test failed.
func startProcGateway(t *testing.T, env map[string]string, srv *tritontest.Server) *procGateway {
	t.Helper()
	bin := buildGateway(t)
	for attempt := 0; ; attempt++ {
		addr := freeAddr(t)
		logPath := filepath.Join(t.TempDir(), "gateway.log")
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin)
		cmd.Env = []string{"GATEWAY_LISTEN_ADDR=" + addr}
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			t.Fatalf("start the gateway binary: %v", err)
		}
		p := &procGateway{
			e2eGateway: &e2eGateway{URL: "http://" + addr, Addr: addr, Triton: srv, logPath: logPath,
				client: &http.Client{Timeout: 60 * time.Second}},
			cmd: cmd, exited: make(chan struct{}),
		}
		if srv != nil {
			p.Model = srv.Model()
		}
		go func() { p.waitErr = cmd.Wait(); _ = logFile.Close(); close(p.exited) }()
		t.Cleanup(func() {
			if p.running() {
				_ = cmd.Process.Kill()
				<-p.exited
			}
			if t.Failed() {
				p.dumpLog(t)
			}
		})
		deadline := time.Now().Add(60 * time.Second)
		for p.running() && time.Now().Before(deadline) {
			if r := p.doNoFatal(mustGet(t, p.URL+"/ready")); r.Status == http.StatusOK {
				return p
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !p.running() {
			log, _ := os.ReadFile(logPath)
			if attempt < 2 && bytes.Contains(log, []byte("GATEWAY_LISTEN_ADDR")) {
				continue // the port was taken meanwhile
			}
			t.Fatalf("the gateway exited before it was ready: %v\n%s", p.waitErr, log)
		}
		p.dumpLog(t)
		t.Fatalf("the gateway was not ready within 60s")
	}
}

func (p *procGateway) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *procGateway) pid() int { return p.cmd.Process.Pid }

// terminate sends SIGTERM and waits for the process, which must exit 0.
func (p *procGateway) terminate(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(45 * time.Second):
		t.Fatal("the gateway did not exit within 45s of SIGTERM")
	}
	if p.waitErr != nil {
		t.Errorf("the gateway exited with %v after SIGTERM, want 0", p.waitErr)
	}
}

// kill ends the process with SIGKILL, like a crash or the OOM killer.
func (p *procGateway) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

// --- HTTP --------------------------------------------------------------------

// response is an answer read whole.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) String() string {
	return fmt.Sprintf("%d %s", r.Status, bytes.TrimSpace(r.Body))
}

// do sends req with the gateway's client and reads the answer.
func (g *e2eGateway) do(t testing.TB, req *http.Request) response {
	t.Helper()
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

func (g *e2eGateway) get(t testing.TB, path string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, g.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return g.do(t, req)
}

// post sends body with its content type to path (which may carry a query).
func (g *e2eGateway) post(t testing.TB, path string, body []byte, contentType string) response {
	t.Helper()
	return g.postCtx(t, context.Background(), path, body, contentType)
}

func (g *e2eGateway) postCtx(t testing.TB, ctx context.Context, path string, body []byte, contentType string) response {
	t.Helper()
	req := newPost(t, ctx, g.URL+path, body, contentType)
	return g.do(t, req)
}

func newPost(t testing.TB, ctx context.Context, url string, body []byte, contentType string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	return req
}

// predictFile posts one image as the multipart field "file" of /predict.
func (g *e2eGateway) predictFile(t testing.TB, query string, img []byte) response {
	t.Helper()
	body, ct := multipartBody(t, part{Field: "file", Filename: "fish.jpg", Data: img})
	return g.post(t, "/predict"+query, body, ct)
}

// part is one part of a multipart/form-data body.
type part struct {
	Field, Filename, ContentType string
	Data                         []byte
}

// multipartBody encodes parts; a part without ContentType is sent as
// image/jpeg, whatever it holds, as browsers do for a file named .jpg.
func multipartBody(t testing.TB, parts ...part) ([]byte, string) {
	t.Helper()
	fd := make([]formdata.Part, len(parts))
	for i, p := range parts {
		fd[i] = formdata.Part{Field: p.Field, Filename: p.Filename, ContentType: cmp.Or(p.ContentType, "image/jpeg"), Data: p.Data}
	}
	body, contentType, err := formdata.Encode(fd...)
	if err != nil {
		t.Fatal(err)
	}
	return body, contentType
}

// predictBody is the JSON of a 200 from /predict.
type predictBody struct {
	Model       string               `json:"model"`
	Version     string               `json:"version"`
	Backend     string               `json:"backend"`
	RequestID   string               `json:"request_id"`
	Predictions []gateway.Prediction `json:"predictions"`
	Timings     map[string]float64   `json:"timings_ms"`
}

// batchBody is the JSON of a 200 from /predict/batch.
type batchBody struct {
	Model     string `json:"model"`
	Version   string `json:"version"`
	RequestID string `json:"request_id"`
	Results   []struct {
		Index       int                  `json:"index"`
		Filename    string               `json:"filename"`
		Predictions []gateway.Prediction `json:"predictions"`
		Backend     string               `json:"backend"`
		Error       *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	} `json:"results"`
	Timings map[string]float64 `json:"timings_ms"`
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	} `json:"error"`
}

// readyBody is the JSON of /ready, either way.
type readyBody struct {
	Status string `json:"status"`
	Reason string `json:"reason"`
	Model  string `json:"model"`
}

func decodeJSON[T any](t testing.TB, r response) T {
	t.Helper()
	var v T
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q, want application/json; body %s", ct, r.Body)
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, r.Body, err)
	}
	return v
}

// wantError checks an error answer: status, the JSON error body with the code,
// a message, the request id that X-Request-ID carries, and Retry-After when
// the status calls for one (429, 503).
func wantError(t testing.TB, r response, status int, code string) errorBody {
	t.Helper()
	if r.Status != status {
		t.Fatalf("got %s, want status %d (%s)", r, status, code)
	}
	e := decodeJSON[errorBody](t, r)
	if e.Error.Code != code {
		t.Errorf("error code %q, want %q (message %q)", e.Error.Code, code, e.Error.Message)
	}
	if e.Error.Message == "" {
		t.Errorf("error without a message: %s", r.Body)
	}
	if id := r.Header.Get("X-Request-ID"); e.Error.RequestID == "" || e.Error.RequestID != id {
		t.Errorf("error request_id %q, X-Request-ID %q: want the same, non-empty", e.Error.RequestID, id)
	}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		if ra := r.Header.Get("Retry-After"); !positiveSeconds(ra) {
			t.Errorf("Retry-After %q on a %d, want whole seconds ≥ 1", ra, status)
		}
	}
	return e
}

func positiveSeconds(s string) bool {
	var n int
	_, err := fmt.Sscanf(s, "%d", &n)
	return err == nil && n >= 1 && fmt.Sprint(n) == s
}

// --- images --------------------------------------------------------------------

// jpegOf encodes a w×h picture whose colours vary over it (so that resizing and
// cropping matter) at quality 90.
func jpegOf(t testing.TB, w, h int, seed int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x*255/w + seed), uint8(y*255/h + 3*seed), uint8((x*y + seed*7) % 256), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pngSolid encodes a w×h picture of one colour.
func pngSolid(t testing.TB, w, h int, c color.RGBA) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gifOf encodes a small GIF.
func gifOf(t testing.TB) []byte {
	t.Helper()
	img := image.NewPaletted(image.Rect(0, 0, 16, 16), color.Palette{color.Black, color.White})
	var buf bytes.Buffer
	if err := gif.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// hugeJPEG is a valid small JPEG whose frame header (SOF0) claims 65500×65500
// pixels: a decompression bomb, to be refused from the header.
func hugeJPEG(t testing.TB) []byte {
	t.Helper()
	data := jpegOf(t, 16, 16, 0)
	i := bytes.Index(data, []byte{0xFF, 0xC0})
	if i < 0 || i+9 > len(data) {
		t.Fatal("no SOF0 marker in the encoded JPEG")
	}
	// FF C0, length (2), precision (1), height (2), width (2).
	data[i+5], data[i+6] = 0xFF, 0xDC // 65500
	data[i+7], data[i+8] = 0xFF, 0xDC
	return data
}

// truncatedJPEG is a JPEG cut in the middle of its entropy-coded data.
func truncatedJPEG(t testing.TB) []byte {
	t.Helper()
	data := jpegOf(t, 64, 64, 5)
	return data[:len(data)*2/3]
}

// classSpec is the preprocessing the gateway derives from the model's
// configuration, derived here the same way from the same parameters.
func classSpec(t testing.TB, m tritontest.Model) preprocess.Spec {
	t.Helper()
	layout := modelconfig.LayoutNCHW
	if m.Input.Format == kserve.ModelInput_FORMAT_NHWC {
		layout = modelconfig.LayoutNHWC
	}
	spec, _, err := modelconfig.ContractFromParameters(
		gateway.TensorInfo{Name: m.Input.Name, Datatype: m.Input.Datatype, Shape: m.Input.Dims}, layout, m.Parameters)
	if err != nil {
		t.Fatalf("the model's preprocessing contract: %v", err)
	}
	return spec
}

// expectedTensor is what preprocess produces for img with the model's spec:
// the bytes the gateway must send to Triton.
func expectedTensor(t testing.TB, m tritontest.Model, img []byte) []byte {
	t.Helper()
	p, err := preprocess.New(classSpec(t, m), preprocess.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, p.TensorBytes())
	if _, err := p.Process(img, dst); err != nil {
		t.Fatalf("preprocess the test image: %v", err)
	}
	return dst
}

// imageForClass is a solid-colour PNG whose normalised channel means are
// tritontest.ClassMeans(m, k) up to the rounding of one pixel value, so that
// the test model classifies it as class k. PNG, not JPEG: chroma subsampling
// and quantisation would move the colour.
// mixedBatch is a /predict/batch request's parts: for each class k an image the
// test model scores as k, and for k < 0 a GIF (refused), with the tensor
// Triton should receive for the good images, in order.
func mixedBatch(t testing.TB, m tritontest.Model, classes []int) ([]part, []byte) {
	t.Helper()
	var parts []part
	var tensor []byte
	for i, k := range classes {
		if k < 0 {
			parts = append(parts, part{Field: "files", Filename: fmt.Sprintf("%d.jpg", i), Data: gifOf(t)})
			continue
		}
		img := imageForClass(t, m, k)
		parts = append(parts, part{Field: "files", Filename: fmt.Sprintf("%d.png", i), ContentType: "image/png", Data: img})
		tensor = append(tensor, expectedTensor(t, m, img)...)
	}
	return parts, tensor
}

func imageForClass(t testing.TB, m tritontest.Model, k int) []byte {
	t.Helper()
	spec := classSpec(t, m)
	want := tritontest.ClassMeans(m, k) // in the tensor's channel order (RGB here)
	var px [3]uint8
	for c := range 3 {
		// normalised = (pixel·Scale − Mean) / Std  ⇒  pixel = (v·Std + Mean) / Scale
		v := (want[c]*float64(spec.Std[c]) + float64(spec.Mean[c])) / float64(spec.Scale)
		if v < 0 || v > 255 {
			t.Fatalf("class %d: channel %d needs pixel value %.1f, outside 0..255", k, c, v)
		}
		px[c] = uint8(math.Round(v))
	}
	if spec.Order == preprocess.BGR {
		px[0], px[2] = px[2], px[0]
	}
	return pngSolid(t, 40, 30, color.RGBA{px[0], px[1], px[2], 255})
}

// argmax is the index of the largest value (the first of equals).
func argmax(v []float32) int {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}

// softmax64 is the softmax of logits in float64.
func softmax64(logits []float32) []float64 {
	maxV := math.Inf(-1)
	for _, v := range logits {
		maxV = math.Max(maxV, float64(v))
	}
	out := make([]float64, len(logits))
	var sum float64
	for i, v := range logits {
		out[i] = math.Exp(float64(v) - maxV)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// --- tritontest ---------------------------------------------------------------

// isClassification tells the label look-ups (classification extension) from
// the gateway's predictions among recorded requests.
func isClassification(r tritontest.RecordedInfer) bool {
	for _, o := range r.Request.GetOutputs() {
		if _, ok := o.GetParameters()[tritontest.ClassificationParameter]; ok {
			return true
		}
	}
	return false
}

// predictionRequests returns the recorded ModelInfer calls that carried
// predictions (not label look-ups), oldest first.
func predictionRequests(srv *tritontest.Server) []tritontest.RecordedInfer {
	var out []tritontest.RecordedInfer
	for _, r := range srv.Requests() {
		if !isClassification(r) {
			out = append(out, r)
		}
	}
	return out
}

// --- metrics -------------------------------------------------------------------

// scrape reads /metrics and parses the text exposition.
func (g *e2eGateway) scrape(t testing.TB) map[string]*dto.MetricFamily {
	t.Helper()
	r := g.get(t, "/metrics")
	if r.Status != http.StatusOK {
		t.Fatalf("GET /metrics: %s", r)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(r.Body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, r.Body)
	}
	return families
}

// metricValue finds the series of family name whose labels include want and
// returns its value: counter, gauge or untyped value, or a histogram's sample
// count. ok is false when there is no such series.
func metricValue(families map[string]*dto.MetricFamily, name string, want map[string]string) (v float64, ok bool) {
	mf := families[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// breakerState is circuit_breaker_state{name="triton"}: 0 closed, 1 half-open,
// 2 open.
func (g *e2eGateway) breakerState(t testing.TB) float64 {
	t.Helper()
	v, ok := metricValue(g.scrape(t), "circuit_breaker_state", map[string]string{"name": "triton"})
	if !ok {
		t.Fatal(`/metrics has no circuit_breaker_state{name="triton"}`)
	}
	return v
}

// --- the gateway binary -----------------------------------------------------

// gatewayBinary is the gateway built once per test binary; TestMain removes it.
var gatewayBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// buildGateway builds ./gateway/cmd/gateway from the module root, once.
func buildGateway(t testing.TB) string {
	t.Helper()
	gatewayBinary.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			gatewayBinary.err = err
			return
		}
		dir, err := os.MkdirTemp("", "gateway-e2e-")
		if err != nil {
			gatewayBinary.err = err
			return
		}
		gatewayBinary.dir = dir
		gatewayBinary.path = filepath.Join(dir, "gateway")
		// The go command that runs the tests exports GOROOT; prefer its go.
		goTool := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		if _, err := os.Stat(goTool); os.Getenv("GOROOT") == "" || err != nil {
			if goTool, err = exec.LookPath("go"); err != nil {
				gatewayBinary.err = errors.New("no go command to build the gateway with (GOROOT unset, none on PATH)")
				return
			}
		}
		cmd := exec.Command(goTool, "build", "-o", gatewayBinary.path, "./gateway/cmd/gateway")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			gatewayBinary.err = fmt.Errorf("go build ./gateway/cmd/gateway: %v\n%s", err, out)
		}
	})
	if gatewayBinary.err != nil {
		t.Fatalf("build the gateway: %v", gatewayBinary.err)
	}
	return gatewayBinary.path
}

// moduleRoot is the directory of the go.mod above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test's directory")
		}
		dir = parent
	}
}
