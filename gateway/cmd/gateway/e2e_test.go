package main

// End-to-end tests: the real gateway (run, with its configuration read from an
// environment map) in front of a tritontest KServe v2 server, over real
// loopback sockets, driven with net/http. Every test here starts servers and
// is named TestE2E*; `go test -run 'Test[^E]'` runs the unit tests alone.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"

	"github.com/fish-classifier/fish-classifier/gateway/triton/tritontest"
)

// TestE2EPredict sends one real JPEG to /predict and follows it through: the
// tensor Triton received is byte for byte what preprocess makes of the upload
// with the model's spec, and the answer is the softmax of the scores Triton
// computed on that tensor, sorted, labelled from the label source in force.
func TestE2EPredict(t *testing.T) {
	fileLabels := make([]string, 9)
	for i := range fileLabels {
		fileLabels[i] = fmt.Sprintf("species-%d (from labels.txt)", i)
	}
	cases := []struct {
		name string
		opts []e2eOption
		// labelLookups is whether the gateway asks Triton for labels
		// (classification extension) instead of reading the file.
		labelLookups bool
	}{
		{name: "labels from MODEL_REPOSITORY labels.txt", opts: []e2eOption{withLabels(fileLabels)}},
		{name: "no labels.txt: labels from Triton's classification extension", opts: []e2eOption{withoutLabelsFile()}, labelLookups: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t, tc.opts...)
			img := jpegOf(t, 97, 61, 11) // not square: the shorter-side resize and centre crop matter

			r := g.predictFile(t, "", img)
			if r.Status != http.StatusOK {
				t.Fatalf("POST /predict: %s", r)
			}
			body := decodeJSON[predictBody](t, r)

			reqs := predictionRequests(g.Triton)
			if len(reqs) != 1 {
				t.Fatalf("Triton received %d prediction calls, want 1", len(reqs))
			}
			if lookups := len(g.Triton.Requests()) - len(reqs); (lookups > 0) != tc.labelLookups {
				t.Errorf("Triton received %d label look-ups (classification extension), want any: %v", lookups, tc.labelLookups)
			}
			got := reqs[0].Request
			if in := got.GetInputs()[0]; in.GetName() != g.Model.Input.Name || in.GetDatatype() != "FP32" ||
				!slices.Equal(in.GetShape(), []int64{1, 3, 224, 224}) {
				t.Errorf("input %s %s %v, want %s FP32 [1 3 224 224]", in.GetName(), in.GetDatatype(), in.GetShape(), g.Model.Input.Name)
			}
			tensor := got.GetRawInputContents()[0]
			if want := expectedTensor(t, g.Model, img); !bytes.Equal(tensor, want) {
				t.Fatalf("Triton received a tensor of %d bytes that differs from preprocess's %d bytes for the same upload",
					len(tensor), len(want))
			}

			if body.Model != g.Model.Name || body.Version != g.Model.Version {
				t.Errorf("model %q version %q, want %q %q", body.Model, body.Version, g.Model.Name, g.Model.Version)
			}
			if body.RequestID == "" || body.RequestID != r.Header.Get("X-Request-ID") {
				t.Errorf("request_id %q, X-Request-ID %q", body.RequestID, r.Header.Get("X-Request-ID"))
			}
			if len(body.Predictions) != 5 {
				t.Fatalf("%d predictions, want DEFAULT_TOP_K = 5", len(body.Predictions))
			}
			logits := tritontest.Logits(g.Model, tensor)
			probs := softmax64(logits)
			sum := 0.0
			for i, p := range body.Predictions {
				sum += p.Confidence
				if i > 0 && p.Confidence > body.Predictions[i-1].Confidence {
					t.Errorf("predictions not sorted: %v", body.Predictions)
				}
				if p.Index < 0 || p.Index >= len(g.Labels) {
					t.Fatalf("prediction %d: index %d out of range", i, p.Index)
				}
				if p.Label != g.Labels[p.Index] {
					t.Errorf("prediction %d: label %q, want %q", i, p.Label, g.Labels[p.Index])
				}
				if math.Abs(p.Confidence-probs[p.Index]) > 1e-6 {
					t.Errorf("prediction %d (class %d): confidence %v, want softmax of Triton's scores %v", i, p.Index, p.Confidence, probs[p.Index])
				}
			}
			if sum > 1+1e-9 || sum <= 0 {
				t.Errorf("confidences sum to %v, want within (0, 1]", sum)
			}
			if top := body.Predictions[0].Index; top != argmax(logits) {
				t.Errorf("top-1 class %d, want %d, the argmax of Triton's scores", top, argmax(logits))
			}
		})
	}
}

// TestE2EPredictAimedAtEachClass sends, for every class, a solid colour whose
// normalised channel means are the class's centroid in the test model: the
// gateway must answer that class first, with its label, which proves the
// channel order, scale and normalisation end to end.
func TestE2EPredictAimedAtEachClass(t *testing.T) {
	g := startGateway(t)
	for k := range g.Model.NumClasses() {
		t.Run(g.Labels[k], func(t *testing.T) {
			r := g.predictFile(t, "?top_k=9", imageForClass(t, g.Model, k))
			if r.Status != http.StatusOK {
				t.Fatalf("POST /predict: %s", r)
			}
			body := decodeJSON[predictBody](t, r)
			if len(body.Predictions) != 9 {
				t.Fatalf("%d predictions for top_k=9, want 9", len(body.Predictions))
			}
			if top := body.Predictions[0]; top.Index != k || top.Label != g.Labels[k] {
				t.Errorf("top-1 %d %q, want %d %q", top.Index, top.Label, k, g.Labels[k])
			}
			sum := 0.0
			for _, p := range body.Predictions {
				sum += p.Confidence
			}
			if math.Abs(sum-1) > 1e-6 {
				t.Errorf("the confidences of all 9 classes sum to %v, want 1", sum)
			}
		})
	}
}

// TestE2EPredictBatch sends three good images and a GIF in one request: the
// good ones reach Triton in one call with batch 3, in order, and the answer
// keeps the order, with the GIF's own error in its slot.
func TestE2EPredictBatch(t *testing.T) {
	g := startGateway(t)
	classes := []int{2, -1, 5, 7} // -1: the bad one
	parts, wantTensor := mixedBatch(t, g.Model, classes)
	body, ct := multipartBody(t, parts...)
	r := g.post(t, "/predict/batch?top_k=2", body, ct)
	if r.Status != http.StatusOK {
		t.Fatalf("POST /predict/batch: %s", r)
	}
	got := decodeJSON[batchBody](t, r)

	reqs := predictionRequests(g.Triton)
	if len(reqs) != 1 {
		t.Fatalf("Triton received %d ModelInfer calls, want 1 for the whole batch", len(reqs))
	}
	if shape := reqs[0].Request.GetInputs()[0].GetShape(); !slices.Equal(shape, []int64{3, 3, 224, 224}) {
		t.Errorf("batch shape %v, want [3 3 224 224]", shape)
	}
	if !bytes.Equal(reqs[0].Request.GetRawInputContents()[0], wantTensor) {
		t.Errorf("the batch tensor is not the three good images' tensors in order")
	}

	if got.Model != g.Model.Name || got.RequestID != r.Header.Get("X-Request-ID") || got.RequestID == "" {
		t.Errorf("model %q request_id %q (X-Request-ID %q)", got.Model, got.RequestID, r.Header.Get("X-Request-ID"))
	}
	if len(got.Results) != len(classes) {
		t.Fatalf("%d results, want %d", len(got.Results), len(classes))
	}
	for i, k := range classes {
		res := got.Results[i]
		if res.Index != i || res.Filename != parts[i].Filename {
			t.Errorf("result %d: index %d filename %q, want %d %q", i, res.Index, res.Filename, i, parts[i].Filename)
		}
		if k < 0 {
			if res.Error == nil || res.Error.Code != "unsupported_media_type" || res.Error.Message == "" || res.Predictions != nil {
				t.Errorf("result %d (a GIF): %+v, want only an unsupported_media_type error", i, res)
			}
			continue
		}
		if res.Error != nil {
			t.Errorf("result %d: error %+v", i, *res.Error)
			continue
		}
		if len(res.Predictions) != 2 || res.Predictions[0].Index != k || res.Predictions[0].Label != g.Labels[k] {
			t.Errorf("result %d: %+v, want top-2 led by class %d %q", i, res.Predictions, k, g.Labels[k])
		}
	}
}

// TestE2EErrorStatuses provokes every error status of the contract with a real
// request and checks the JSON error body (code, message, request id) and
// Retry-After where due.
func TestE2EErrorStatuses(t *testing.T) {
	good := func(t testing.TB) []byte { return jpegOf(t, 64, 48, 1) }
	// upload sends an image as the multipart field "file" of a file named
	// fish.jpg (Content-Type image/jpeg), whatever the bytes are.
	upload := func(image func(testing.TB) []byte) func(t *testing.T) ([]byte, string) {
		return func(t *testing.T) ([]byte, string) {
			return multipartBody(t, part{Field: "file", Filename: "fish.jpg", Data: image(t)})
		}
	}
	html := func(testing.TB) []byte { return []byte("<!DOCTYPE html><html><body><img src=fish.jpg></body></html>") }
	cases := []struct {
		name string
		opts []e2eOption
		// before runs once the gateway is up; what it returns, if anything,
		// runs after the checked request (to wait for what it started).
		before func(t *testing.T, g *e2eGateway) (after func())
		query  string
		body   func(t *testing.T) ([]byte, string)
		status int
		code   string
		// inMessage, when set, must appear in the error message.
		inMessage string
	}{
		{
			name: "top_k=0 is 400", query: "?top_k=0", body: upload(good),
			status: http.StatusBadRequest, code: "invalid_request", inMessage: "top_k",
		},
		{
			name: "top_k=abc is 400", query: "?top_k=abc", body: upload(good),
			status: http.StatusBadRequest, code: "invalid_request", inMessage: "top_k",
		},
		{
			name: "multipart without a file field is 400",
			body: func(t *testing.T) ([]byte, string) {
				return multipartBody(t, part{Field: "picture", Filename: "fish.jpg", Data: good(t)})
			},
			status: http.StatusBadRequest, code: "invalid_request", inMessage: "file",
		},
		{
			name: "body over HTTP_BODY_LIMIT_BYTES is 413",
			opts: []e2eOption{withEnv("HTTP_BODY_LIMIT_BYTES", "4096"), withEnv("IMAGE_MAX_BYTES", "4096")},
			body: func(t *testing.T) ([]byte, string) {
				return bytes.Repeat([]byte{0xFF}, 16<<10), "image/jpeg"
			},
			status: http.StatusRequestEntityTooLarge, code: "too_large", inMessage: "4096",
		},
		{
			name: "GIF named .jpg is 415", body: upload(gifOf),
			status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", inMessage: "GIF",
		},
		{
			name: "HTML named .jpg is 415", body: upload(html),
			status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
		},
		{
			name: "JPEG declaring 65500×65500 is 422", body: upload(hugeJPEG),
			status: http.StatusUnprocessableEntity, code: "unprocessable_image", inMessage: "65500",
		},
		{
			name: "truncated JPEG is 422", body: upload(truncatedJPEG),
			status: http.StatusUnprocessableEntity, code: "unprocessable_image",
		},
		{
			name: "second request with MAX_IN_FLIGHT=1 and a hung Triton is shed with 429",
			opts: []e2eOption{withEnv("MAX_IN_FLIGHT", "1"), withEnv("REQUEST_TIMEOUT", "1s")},
			before: func(t *testing.T, g *e2eGateway) func() {
				g.Triton.SetFault(tritontest.Fault{Hang: true})
				first := make(chan response, 1)
				img := good(t)
				go func() { first <- g.predictFileNoFatal(img) }()
				waitFor(t, "the first request to reach Triton", func() bool { return g.Triton.InFlight() == 1 })
				return func() {
					// The first one held the only slot until REQUEST_TIMEOUT.
					wantError(t, <-first, http.StatusGatewayTimeout, "deadline_exceeded")
				}
			},
			body:   upload(good),
			status: http.StatusTooManyRequests, code: "overloaded",
		},
		{
			name: "malformed Triton answer (WrongShape) is 502",
			before: func(t *testing.T, g *e2eGateway) func() {
				g.Triton.SetFault(tritontest.Fault{WrongShape: true})
				return nil
			},
			body:   upload(good),
			status: http.StatusBadGateway, code: "bad_gateway", inMessage: "shape",
		},
		{
			name: "open breaker is 503",
			before: func(t *testing.T, g *e2eGateway) func() {
				g.Triton.SetFault(tritontest.Fault{Code: codes.Internal})
				for range e2eFailures {
					wantError(t, g.predictFile(t, "", good(t)), http.StatusBadGateway, "bad_gateway")
				}
				return nil
			},
			body:   upload(good),
			status: http.StatusServiceUnavailable, code: "unavailable", inMessage: "circuit breaker open",
		},
		{
			name:   "model not loaded (Triton's model not ready from the start) is 503",
			opts:   []e2eOption{withStartFault(tritontest.Fault{ModelNotReady: true})},
			body:   upload(good),
			status: http.StatusServiceUnavailable, code: "unavailable", inMessage: "model not loaded",
		},
		{
			name: "Triton slower than REQUEST_TIMEOUT is 504",
			opts: []e2eOption{withEnv("REQUEST_TIMEOUT", "300ms")},
			before: func(t *testing.T, g *e2eGateway) func() {
				g.Triton.SetFault(tritontest.Fault{Latency: 5 * time.Second})
				return nil
			},
			body:   upload(good),
			status: http.StatusGatewayTimeout, code: "deadline_exceeded",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := startGateway(t, tc.opts...)
			var after func()
			if tc.before != nil {
				after = tc.before(t, g)
			}
			body, ct := tc.body(t)
			start := time.Now()
			r := g.post(t, "/predict"+tc.query, body, ct)
			elapsed := time.Since(start)
			e := wantError(t, r, tc.status, tc.code)
			if tc.inMessage != "" && !strings.Contains(e.Error.Message, tc.inMessage) {
				t.Errorf("message %q does not mention %q", e.Error.Message, tc.inMessage)
			}
			if tc.status == http.StatusGatewayTimeout && elapsed > 3*time.Second {
				t.Errorf("504 after %v: the 300ms REQUEST_TIMEOUT was not enforced", elapsed)
			}
			if after != nil {
				after()
			}
		})
	}
}

// predictFileNoFatal is predictFile for goroutines other than the test's: a
// transport error becomes status 0 with the error as the body.
func (g *e2eGateway) predictFileNoFatal(img []byte) response {
	body, ct := multipartBodyNoFatal(img)
	req, err := http.NewRequest(http.MethodPost, g.URL+"/predict", bytes.NewReader(body))
	if err != nil {
		return response{Body: []byte(err.Error())}
	}
	req.Header.Set("Content-Type", ct)
	return g.doNoFatal(req)
}

func (g *e2eGateway) doNoFatal(req *http.Request) response {
	resp, err := g.client.Do(req)
	if err != nil {
		return response{Body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return response{Body: []byte(err.Error())}
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: buf.Bytes()}
}

// TestE2EBreaker trips the breaker with backend failures, checks that an open
// breaker answers 503 without calling Triton and makes /ready 503, that a
// half-open probe reaches Triton after BREAKER_OPEN_TIMEOUT (and re-opens while
// the fault lasts), and that clearing the fault closes it.
func TestE2EBreaker(t *testing.T) {
	cases := []struct {
		name       string
		code       codes.Code
		status     int // the failing calls' answer
		statusCode string
	}{
		{name: "UNAVAILABLE", code: codes.Unavailable, status: http.StatusServiceUnavailable, statusCode: "unavailable"},
		{name: "INTERNAL", code: codes.Internal, status: http.StatusBadGateway, statusCode: "bad_gateway"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// No retries: one request is one ModelInfer, so InferCount counts
			// requests that reached Triton.
			g := startGateway(t, withEnv("TRITON_RETRIES", "0"))
			img := jpegOf(t, 40, 40, 3)
			if r := g.predictFile(t, "", img); r.Status != http.StatusOK {
				t.Fatalf("healthy: %s", r)
			}

			g.Triton.SetFault(tritontest.Fault{Code: tc.code})
			for i := range e2eFailures {
				before := g.Triton.InferCount()
				e := wantError(t, g.predictFile(t, "", img), tc.status, tc.statusCode)
				if strings.Contains(e.Error.Message, "circuit breaker") {
					t.Fatalf("failure %d answered by the breaker already: %q", i+1, e.Error.Message)
				}
				if n := g.Triton.InferCount() - before; n != 1 {
					t.Fatalf("failure %d: %d ModelInfer calls, want 1", i+1, n)
				}
			}

			// Open: refused at once, Triton not called.
			before := g.Triton.InferCount()
			e := wantError(t, g.predictFile(t, "", img), http.StatusServiceUnavailable, "unavailable")
			if !strings.Contains(e.Error.Message, "circuit breaker open") {
				t.Errorf("message %q, want the breaker's", e.Error.Message)
			}
			if n := g.Triton.InferCount() - before; n != 0 {
				t.Errorf("an open breaker let %d calls through to Triton", n)
			}
			ready := g.get(t, "/ready")
			if rb := decodeJSON[readyBody](t, ready); ready.Status != http.StatusServiceUnavailable ||
				rb.Status != "not_ready" || !strings.Contains(rb.Reason, "circuit breaker open") || !positiveSeconds(ready.Header.Get("Retry-After")) {
				t.Errorf("/ready while open: %s (Retry-After %q), want 503 naming the breaker", ready, ready.Header.Get("Retry-After"))
			}
			if s := g.breakerState(t); s != 2 {
				t.Errorf("circuit_breaker_state %v while open, want 2", s)
			}

			// Half-open after the timeout: one probe reaches Triton, fails, and
			// opens the breaker again.
			before = g.Triton.InferCount()
			var probe response
			waitFor(t, "a half-open probe to reach Triton", func() bool {
				probe = g.predictFile(t, "", img)
				return g.Triton.InferCount() > before
			})
			if n := g.Triton.InferCount() - before; n != 1 {
				t.Errorf("%d calls reached Triton half-open, want 1 probe", n)
			}
			wantError(t, probe, tc.status, tc.statusCode)
			before = g.Triton.InferCount()
			wantError(t, g.predictFile(t, "", img), http.StatusServiceUnavailable, "unavailable")
			if g.Triton.InferCount() != before {
				t.Errorf("a failed probe did not re-open the breaker: the next call reached Triton")
			}

			// Healed: the next probe succeeds and closes it.
			g.Triton.SetFault(tritontest.Fault{})
			waitFor(t, "POST /predict to succeed after the fault cleared", func() bool {
				return g.predictFile(t, "", img).Status == http.StatusOK
			})
			if r := g.predictFile(t, "", img); r.Status != http.StatusOK {
				t.Errorf("after recovery: %s", r)
			}
			if r := g.get(t, "/ready"); r.Status != http.StatusOK {
				t.Errorf("/ready after recovery: %s", r)
			}
			m := g.scrape(t)
			if s, _ := metricValue(m, "circuit_breaker_state", map[string]string{"name": "triton"}); s != 0 {
				t.Errorf("circuit_breaker_state %v after recovery, want 0", s)
			}
			for _, tr := range []struct {
				from, to string
				want     float64
			}{{"closed", "open", 1}, {"open", "half-open", 2}, {"half-open", "open", 1}, {"half-open", "closed", 1}} {
				got, _ := metricValue(m, "circuit_breaker_transitions_total", map[string]string{"name": "triton", "from": tr.from, "to": tr.to})
				if got != tr.want {
					t.Errorf("circuit_breaker_transitions_total{from=%q,to=%q} = %v, want %v", tr.from, tr.to, got, tr.want)
				}
			}
		})
	}
}

// TestE2EClientDisconnect: clients that go away while Triton hangs are
// neither counted nor logged as server errors (the API's rule: "a client that
// went away is neither counted nor logged as a server error"). The gateway
// watches the connection of a request that waits on Triton: each disconnect
// cancels the gRPC call at once (Triton's call ends CANCELED, long before
// REQUEST_TIMEOUT), is answered 499 to nobody, logged at INFO, and excluded by
// the breaker, so more disconnects than BREAKER_CONSECUTIVE_FAILURES leave it
// closed and the gateway ready.
func TestE2EClientDisconnect(t *testing.T) {
	// Far beyond every wait below: a call that ends did so because the gateway
	// cancelled it, not because its deadline passed.
	const requestTimeout = 3 * e2eWait
	g := startGateway(t, withEnv("REQUEST_TIMEOUT", requestTimeout.String()))
	img := jpegOf(t, 40, 40, 9)
	single, singleCT := multipartBody(t, part{Field: "file", Filename: "fish.jpg", Data: img})
	batch, batchCT := multipartBody(t,
		part{Field: "files", Filename: "a.jpg", Data: img}, part{Field: "files", Filename: "b.jpg", Data: img})
	g.Triton.SetFault(tritontest.Fault{Hang: true})
	logStart := len(readLogLines(t, g.logPath)) // start-up may log a 503 from /ready

	// One after the other, so that each call's end is seen; the last one a
	// batch (one ModelInfer for both images).
	const disconnects = e2eFailures + 2
	for i := range disconnects {
		path, body, ct := "/predict", single, singleCT
		if i == disconnects-1 {
			path, body, ct = "/predict/batch", batch, batchCT
		}
		ctx, cancel := context.WithCancel(context.Background())
		client := make(chan error, 1)
		go func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.URL+path, bytes.NewReader(body))
			if err != nil {
				client <- err
				return
			}
			req.Header.Set("Content-Type", ct)
			resp, err := g.client.Do(req)
			switch {
			case err == nil:
				resp.Body.Close()
				client <- fmt.Errorf("got %s before cancelling", resp.Status)
			case !errors.Is(err, context.Canceled):
				client <- err
			default:
				client <- nil
			}
		}()
		waitFor(t, fmt.Sprintf("%s #%d to reach Triton", path, i), func() bool { return g.Triton.InFlight() == 1 })
		cancel() // net/http closes the connection of a cancelled HTTP/1.1 request
		if err := <-client; err != nil {
			t.Fatalf("%s #%d: client: %v", path, i, err)
		}
		took := waitForWithin(t, e2eWait, fmt.Sprintf("Triton's call of %s #%d to end after its client left (REQUEST_TIMEOUT %v)", path, i, requestTimeout),
			func() bool { return g.Triton.InFlight() == 0 })
		t.Logf("%s #%d: Triton's call ended %v after the client left", path, i, took)
	}

	// Each call ended CANCELED (the gateway cancelled it), none was retried.
	reqs := predictionRequests(g.Triton)
	if len(reqs) != disconnects {
		t.Errorf("Triton received %d ModelInfer calls, want %d: one per request", len(reqs), disconnects)
	}
	for i, r := range reqs {
		if !r.Finished || r.Code != codes.Canceled {
			t.Errorf("Triton's call %d: finished %v with %v, want finished CANCELED", i, r.Finished, r.Code)
		}
	}

	// Counted as 499, never as 504 or any server error. The access record
	// (metrics, then the log line) follows the handler, which may return after
	// Triton's call ended.
	count := func(m map[string]*dto.MetricFamily, endpoint, status string) float64 {
		n, _ := metricValue(m, "http_requests_total", map[string]string{"endpoint": endpoint, "status": status})
		return n
	}
	logged499 := func() (n int) {
		for _, line := range readLogLines(t, g.logPath)[logStart:] {
			if line["msg"] == "http request" && line["status"] == float64(499) {
				n++
			}
		}
		return n
	}
	waitFor(t, "every disconnect to be counted and logged as a 499", func() bool {
		m := g.scrape(t)
		return count(m, "/predict", "499") == disconnects-1 && count(m, "/predict/batch", "499") == 1 && logged499() == disconnects
	})
	m := g.scrape(t)
	for _, endpoint := range []string{"/predict", "/predict/batch"} {
		for _, status := range []string{"500", "502", "503", "504"} {
			if n := count(m, endpoint, status); n != 0 {
				t.Errorf(`http_requests_total{endpoint=%q,status=%q} = %v, want 0: a client that went away is no server error`, endpoint, status, n)
			}
		}
	}

	// The breaker excluded every one: closed, never opened, and ready.
	if s := g.breakerState(t); s != 0 {
		t.Errorf("circuit_breaker_state %v after %d disconnects, want 0 (closed)", s, disconnects)
	}
	if n, _ := metricValue(m, "circuit_breaker_transitions_total", map[string]string{"name": "triton", "from": "closed", "to": "open"}); n != 0 {
		t.Errorf("the breaker opened %v times", n)
	}
	if r := g.get(t, "/ready"); r.Status != http.StatusOK {
		t.Errorf("/ready %s after %d disconnects, want 200", r, disconnects)
	}

	// Logged at INFO, as 499s; nothing at ERROR.
	for _, line := range readLogLines(t, g.logPath)[logStart:] {
		if line["level"] == "ERROR" {
			t.Errorf("an ERROR in the log: %v", line)
		}
		if line["msg"] == "http request" && line["status"] == float64(499) &&
			(line["level"] != "INFO" || line["error_code"] != "canceled") {
			t.Errorf("access log %v, want level INFO, error_code canceled", line)
		}
	}

	// Triton answers again: the next request succeeds at once.
	g.Triton.SetFault(tritontest.Fault{})
	if r := g.predictFile(t, "", img); r.Status != http.StatusOK {
		t.Errorf("the next request: %s, want 200", r)
	}
}

// readLogLines decodes the complete lines of the gateway's JSON log.
func readLogLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data = data[:bytes.LastIndexByte(data, '\n')+1] // a line being written is not yet one
	var lines []map[string]any
	for _, text := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if text == "" {
			continue
		}
		var line map[string]any
		if err := json.Unmarshal([]byte(text), &line); err != nil {
			t.Fatalf("log line %q: %v", text, err)
		}
		lines = append(lines, line)
	}
	return lines
}

// multipartBodyNoFatal builds a one-file multipart body without a testing.T,
// for goroutines.
func multipartBodyNoFatal(img []byte) ([]byte, string) {
	const boundary = "e2e-boundary-7d3f"
	var b bytes.Buffer
	b.WriteString("--" + boundary + "\r\n")
	b.WriteString(`Content-Disposition: form-data; name="file"; filename="fish.jpg"` + "\r\n")
	b.WriteString("Content-Type: image/jpeg\r\n\r\n")
	b.Write(img)
	b.WriteString("\r\n--" + boundary + "--\r\n")
	return b.Bytes(), "multipart/form-data; boundary=" + boundary
}

// TestE2EReadyFollowsModelReadiness: /ready is 503 with the reason while
// Triton reports the model not ready, and 200 again once it is.
func TestE2EReadyFollowsModelReadiness(t *testing.T) {
	g := startGateway(t)
	g.Triton.SetFault(tritontest.Fault{ModelNotReady: true})
	var r response
	waitFor(t, "/ready to answer 503", func() bool {
		r = g.get(t, "/ready")
		return r.Status == http.StatusServiceUnavailable
	})
	rb := decodeJSON[readyBody](t, r)
	if rb.Status != "not_ready" || !strings.Contains(rb.Reason, "not ready") || !strings.Contains(rb.Reason, g.Model.Name) {
		t.Errorf("/ready: %s, want not_ready with a reason naming the model", r)
	}
	if !positiveSeconds(r.Header.Get("Retry-After")) {
		t.Errorf("/ready 503 with Retry-After %q", r.Header.Get("Retry-After"))
	}
	g.Triton.SetFault(tritontest.Fault{})
	g.waitReady(t)
	if r := g.predictFile(t, "", jpegOf(t, 32, 32, 4)); r.Status != http.StatusOK {
		t.Errorf("POST /predict once ready again: %s", r)
	}
}

// TestE2EModelLoadedLate: a gateway started while Triton's model is not ready
// answers 503 "model not loaded", and serves once the model comes up, without
// a restart.
func TestE2EModelLoadedLate(t *testing.T) {
	g := startGateway(t, withStartFault(tritontest.Fault{ModelNotReady: true}))
	r := g.get(t, "/ready")
	if rb := decodeJSON[readyBody](t, r); r.Status != http.StatusServiceUnavailable || !strings.Contains(rb.Reason, "model not loaded") {
		t.Errorf("/ready before the model loads: %s", r)
	}
	e := wantError(t, g.predictFile(t, "", jpegOf(t, 32, 32, 2)), http.StatusServiceUnavailable, "unavailable")
	if !strings.Contains(e.Error.Message, "model not loaded") {
		t.Errorf("message %q, want model not loaded", e.Error.Message)
	}
	// Let a load fail once (its reason then replaces "not loaded yet"), so
	// that what follows is a retry, not the first attempt.
	waitFor(t, "the Classifier to report a failed load", func() bool {
		r := g.get(t, "/ready")
		return r.Status == http.StatusServiceUnavailable && !strings.Contains(decodeJSON[readyBody](t, r).Reason, "not loaded yet")
	})
	g.Triton.SetFault(tritontest.Fault{})
	g.waitReady(t)
	if r := g.predictFile(t, "", jpegOf(t, 32, 32, 2)); r.Status != http.StatusOK {
		t.Errorf("POST /predict once loaded: %s", r)
	}
	if v, _ := metricValue(g.scrape(t), "model_loaded", map[string]string{"model": g.Model.Name, "version": g.Model.Version}); v != 1 {
		t.Errorf("model_loaded %v once loaded, want 1", v)
	}
}

// TestE2ETritonRestart stops Triton (a crash: connections closed, port
// refused): requests fail with 503 at once rather than waiting for
// REQUEST_TIMEOUT, and succeed again within a bounded time of the restart.
func TestE2ETritonRestart(t *testing.T) {
	const requestTimeout = 5 * time.Second
	g := startGateway(t, withEnv("REQUEST_TIMEOUT", requestTimeout.String()))
	img := jpegOf(t, 48, 32, 6)
	if r := g.predictFile(t, "", img); r.Status != http.StatusOK {
		t.Fatalf("before the outage: %s", r)
	}

	g.Triton.Stop()
	for i := range e2eFailures + 2 { // through the breaker's threshold and beyond
		start := time.Now()
		r := g.predictFile(t, "", img)
		elapsed := time.Since(start)
		wantError(t, r, http.StatusServiceUnavailable, "unavailable")
		if elapsed > time.Second {
			t.Errorf("request %d during the outage took %v, want a quick 503 (REQUEST_TIMEOUT is %v)", i, elapsed, requestTimeout)
		}
	}
	if r := g.get(t, "/ready"); r.Status != http.StatusServiceUnavailable {
		t.Errorf("/ready during the outage: %s", r)
	}

	g.Triton.Restart()
	// The bound: gRPC's reconnect backoff (ConnectBackoffMax, 5s by default and
	// not settable from the environment) plus BREAKER_OPEN_TIMEOUT; in
	// practice about a second.
	took := waitForWithin(t, 5*time.Second+2*e2eOpenTimeout+time.Second, "POST /predict to succeed after Triton restarted", func() bool {
		return g.predictFile(t, "", img).Status == http.StatusOK
	})
	t.Logf("served again %v after the restart", took.Round(time.Millisecond))
	g.waitReady(t)
}

// TestE2EMetrics checks /metrics after real traffic: the product's metric names
// and labels, and that raw paths never become endpoint labels.
func TestE2EMetrics(t *testing.T) {
	g := startGateway(t)
	const class = 4
	if r := g.predictFile(t, "", imageForClass(t, g.Model, class)); r.Status != http.StatusOK {
		t.Fatalf("POST /predict: %s", r)
	}
	if r := g.predictFile(t, "?top_k=1&extra=raw-query", jpegOf(t, 32, 32, 8)); r.Status != http.StatusOK {
		t.Fatalf("POST /predict with a query: %s", r)
	}
	for _, path := range []string{"/no/such/route", "/predict/12345", "/fish/../etc/passwd", "/model", "/openapi.json"} {
		g.get(t, path)
	}
	body, ct := multipartBody(t, part{Field: "files", Filename: "a.png", ContentType: "image/png", Data: imageForClass(t, g.Model, 1)})
	if r := g.post(t, "/predict/batch", body, ct); r.Status != http.StatusOK {
		t.Fatalf("POST /predict/batch: %s", r)
	}

	m := g.scrape(t)
	checks := []struct {
		name   string
		labels map[string]string
		want   func(float64) bool
		desc   string
	}{
		{"http_requests_total", map[string]string{"endpoint": "/predict", "method": "POST", "status": "200"}, func(v float64) bool { return v == 2 }, "2"},
		{"http_requests_total", map[string]string{"endpoint": "/predict/batch", "method": "POST", "status": "200"}, func(v float64) bool { return v == 1 }, "1"},
		{"http_requests_total", map[string]string{"endpoint": "unmatched", "method": "GET", "status": "404"}, func(v float64) bool { return v == 3 }, "3"},
		{"http_request_duration_seconds", map[string]string{"endpoint": "/predict", "method": "POST"}, func(v float64) bool { return v == 2 }, "2 observations"},
		{"model_inference_duration_seconds", map[string]string{"model": g.Model.Name, "backend": "triton"}, func(v float64) bool { return v == 3 }, "3 observations"},
		{"predicted_class_total", map[string]string{"model": g.Model.Name, "class": g.Labels[class]}, func(v float64) bool { return v >= 1 }, "≥ 1"},
		{"predicted_class_total", map[string]string{"model": g.Model.Name, "class": g.Labels[len(g.Labels)-1]}, func(v float64) bool { return v >= 0 }, "present (every class starts at 0)"},
		{"model_loaded", map[string]string{"model": g.Model.Name, "version": g.Model.Version}, func(v float64) bool { return v == 1 }, "1"},
		{"model_info", map[string]string{"model": g.Model.Name, "version": g.Model.Version, "backend": "triton"}, func(v float64) bool { return v == 1 }, "1"},
		{"circuit_breaker_state", map[string]string{"name": "triton"}, func(v float64) bool { return v == 0 }, "0"},
		{"prediction_confidence", map[string]string{"model": g.Model.Name}, func(v float64) bool { return v == 3 }, "3 observations"},
	}
	for _, c := range checks {
		v, ok := metricValue(m, c.name, c.labels)
		if !ok || !c.want(v) {
			t.Errorf("%s%v = %v (present: %v), want %s", c.name, c.labels, v, ok, c.desc)
		}
	}

	routes := map[string]bool{"/predict": true, "/predict/batch": true, "/health": true, "/ready": true,
		"/model": true, "/metrics": true, "/openapi.json": true, "unmatched": true}
	for _, name := range []string{"http_requests_total", "http_request_duration_seconds"} {
		mf := m[name]
		if mf == nil {
			t.Errorf("/metrics has no %s", name)
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "endpoint" && !routes[l.GetValue()] {
					t.Errorf("%s has endpoint=%q: a raw path, not a route template", name, l.GetValue())
				}
			}
		}
	}
}

// An open breaker is not a lost model: while it is open, the Classifier's refreshes
// keep asking Triton itself, and model_loaded stays 1.
func TestE2EOpenBreakerKeepsModelLoaded(t *testing.T) {
	t.Parallel()
	g := startGateway(t, withEnv("TRITON_RETRIES", "0"), withEnv("BREAKER_OPEN_TIMEOUT", "1m"))
	img := jpegOf(t, 40, 40, 5)
	g.Triton.SetFault(tritontest.Fault{Code: codes.Unavailable})
	for range e2eFailures {
		g.predictFile(t, "", img)
	}
	if s := g.breakerState(t); s != 2 {
		t.Fatalf("circuit_breaker_state %v, want 2 (open)", s)
	}
	// Triton's model itself is ready (only inference fails): let two refreshes
	// (MODEL_REFRESH_INTERVAL=1s) ask it.
	g.Triton.SetFault(tritontest.Fault{})
	readies := func() float64 {
		v, _ := metricValue(g.scrape(t), "triton_rpc_duration_seconds", map[string]string{"rpc": "ModelReady", "code": "OK"})
		return v
	}
	start := readies()
	waitFor(t, "two model refreshes while the breaker is open", func() bool { return readies() >= start+2 })
	families := g.scrape(t)
	if v, ok := metricValue(families, "model_loaded", map[string]string{"model": "fish_classifier"}); !ok || v != 1 {
		t.Errorf("model_loaded = %v (present %v) while only the breaker is open, want 1", v, ok)
	}
	if s := g.breakerState(t); s != 2 {
		t.Errorf("circuit_breaker_state %v, want still open", s)
	}
}
