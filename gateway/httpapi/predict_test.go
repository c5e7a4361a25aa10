package httpapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fish-classifier/fish-classifier/gateway"
)

// predictBody is the answer of POST /predict, as a client reads it.
type predictBody struct {
	Model       string               `json:"model"`
	Version     string               `json:"version"`
	RequestID   string               `json:"request_id"`
	Predictions []gateway.Prediction `json:"predictions"`
	Timings     map[string]float64   `json:"timings_ms"`
}

func TestPredictImageSources(t *testing.T) {
	tests := []struct {
		name string
		req  func(t *testing.T) *http.Request
	}{
		{"multipart field file", func(t *testing.T) *http.Request {
			return multipartRequest(t, "/predict", part{"file", "a.jpg", "jpeg-bytes"})
		}},
		{"multipart field image", func(t *testing.T) *http.Request {
			return multipartRequest(t, "/predict", part{"image", "a.jpg", "jpeg-bytes"})
		}},
		{"multipart, other fields first", func(t *testing.T) *http.Request {
			return multipartRequest(t, "/predict", part{"note", "", "hello"}, part{"file", "a.jpg", "jpeg-bytes"}, part{"file", "b.jpg", "second"})
		}},
		{"raw image/jpeg", func(*testing.T) *http.Request { return rawRequest("/predict", "image/jpeg", "jpeg-bytes") }},
		{"raw application/octet-stream", func(*testing.T) *http.Request {
			return rawRequest("/predict", "application/octet-stream", "jpeg-bytes")
		}},
		{"Content-Encoding identity", func(*testing.T) *http.Request {
			req := rawRequest("/predict", "image/png", "jpeg-bytes")
			req.Header.Set("Content-Encoding", "identity")
			return req
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, testConfig(), nil)
			r := s.do(t, tt.req(t))
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var got predictBody
			r.decode(t, &got)
			if got.Model != "fish" || got.Version != "3" || got.RequestID == "" || got.RequestID != r.header.Get("X-Request-ID") {
				t.Errorf("model %q version %q request_id %q (header %q)", got.Model, got.Version, got.RequestID, r.header.Get("X-Request-ID"))
			}
			if len(got.Predictions) != 2 || got.Predictions[0].Label != "cod" || got.Predictions[1].Index != 1 {
				t.Errorf("predictions = %+v, want the default top 2", got.Predictions)
			}
			for _, stage := range []string{"decode", "resize", "normalize", "inference", "postprocess", "total"} {
				if _, ok := got.Timings[stage]; !ok {
					t.Errorf("timings_ms lacks %q: %v", stage, got.Timings)
				}
			}
			if got.Timings["inference"] != 4 || got.Timings["postprocess"] != 0.005 {
				t.Errorf("timings_ms = %v, want inference 4 and postprocess 0.005 (ms)", got.Timings)
			}
			calls := s.fake.recorded()
			if len(calls) != 1 || calls[0].batch || len(calls[0].images) != 1 || string(calls[0].images[0]) != "jpeg-bytes" {
				t.Fatalf("classifier calls = %+v, want one Classify of %q", calls, "jpeg-bytes")
			}
		})
	}
}

func TestPredictTopK(t *testing.T) {
	tests := []struct {
		query  string
		wantK  int // 0: a 400
		wantOK bool
	}{
		{"", 2, true},
		{"?top_k=1", 1, true},
		{"?top_k=3", 3, true},
		{"?top_k=1000", 1000, true}, // the classifier clamps
		{"?top_k=0", 0, false},
		{"?top_k=-1", 0, false},
		{"?top_k=abc", 0, false},
		{"?top_k=1.5", 0, false},
		{"?top_k=", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			s := newTestServer(t, testConfig(), nil)
			r := s.do(t, rawRequest("/predict"+tt.query, "image/png", "png"))
			calls := s.fake.recorded()
			if !tt.wantOK {
				e := r.checkError(t, http.StatusBadRequest, "invalid_request")
				if !strings.Contains(e.Error.Message, "top_k") {
					t.Errorf("message %q does not name top_k", e.Error.Message)
				}
				if len(calls) != 0 {
					t.Errorf("the classifier was called for an invalid top_k")
				}
				return
			}
			if r.status != http.StatusOK || len(calls) != 1 || calls[0].k != tt.wantK {
				t.Errorf("status %d, calls %+v; want 200 and k=%d", r.status, calls, tt.wantK)
			}
		})
	}
}

// batchBody is the answer of POST /predict/batch, as a client reads it.
type batchBody struct {
	Model     string `json:"model"`
	Version   string `json:"version"`
	RequestID string `json:"request_id"`
	Results   []struct {
		Index       int                  `json:"index"`
		Filename    string               `json:"filename"`
		Predictions []gateway.Prediction `json:"predictions"`
		Error       *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	} `json:"results"`
	Timings map[string]float64 `json:"timings_ms"`
}

func TestPredictBatchMixedResults(t *testing.T) {
	fake := newFake()
	fake.errs["gif"] = gateway.Errorf(gateway.KindUnsupportedMedia, "image 1: not a supported image format")
	fake.errs["bug"] = errBoom
	s := newTestServer(t, testConfig(), fake)

	r := s.do(t, multipartRequest(t, "/predict/batch?top_k=1",
		part{"files", "a.jpg", "jpg"},
		part{"note", "", "ignored"},
		part{"files", "b.gif", "gif"},
		part{"image", "c.png", "png"},
		part{"file", "d.bin", "bug"},
	))
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var got batchBody
	r.decode(t, &got)
	if got.Model != "fish" || got.Version != "3" || got.RequestID != r.header.Get("X-Request-ID") || len(got.Timings) != 1 {
		t.Errorf("model %q version %q request_id %q timings %v", got.Model, got.Version, got.RequestID, got.Timings)
	}
	want := []struct {
		filename, code string
	}{{"a.jpg", ""}, {"b.gif", "unsupported_media_type"}, {"c.png", ""}, {"d.bin", "internal"}}
	if len(got.Results) != len(want) {
		t.Fatalf("%d results, want %d: %s", len(got.Results), len(want), r.body)
	}
	for i, w := range want {
		res := got.Results[i]
		if res.Index != i || res.Filename != w.filename {
			t.Errorf("result %d: index %d filename %q, want %d %q", i, res.Index, res.Filename, i, w.filename)
		}
		switch {
		case w.code == "" && (res.Error != nil || len(res.Predictions) != 1):
			t.Errorf("result %d: %+v, want one prediction", i, res)
		case w.code != "" && (res.Error == nil || res.Error.Code != w.code || res.Predictions != nil):
			t.Errorf("result %d: %+v, want error %q", i, res, w.code)
		}
	}
	if msg := got.Results[3].Error.Message; msg != "internal error" {
		t.Errorf("internal item error shows %q to the client", msg)
	}
	calls := s.fake.recorded()
	if len(calls) != 1 || !calls[0].batch || calls[0].k != 1 || fmt.Sprintf("%s", calls[0].images) != "[jpg gif png bug]" {
		t.Errorf("classifier calls = %+v, want one batch of [jpg gif png bug] with k=1", calls)
	}
	lines := s.log.lines(t)
	if len(lines) != 1 || !strings.Contains(fmt.Sprint(lines[0]["item_errors"]), "hunter2") {
		t.Errorf("the internal item error's details are not in the access log: %v", lines)
	}
	if metricValue(t, s.reg, "predict_batch_items", nil) != 1 {
		t.Error("predict_batch_items did not observe the batch")
	}
}

func TestPredictBatchRefusals(t *testing.T) {
	t.Run("no images", func(t *testing.T) {
		s := newTestServer(t, testConfig(), nil)
		s.do(t, multipartRequest(t, "/predict/batch", part{"note", "", "x"})).checkError(t, http.StatusBadRequest, "invalid_request")
	})
	t.Run("too many images", func(t *testing.T) {
		s := newTestServer(t, testConfig(), nil) // MaxBatchItems 4
		parts := make([]part, 5)
		for i := range parts {
			parts[i] = part{"files", fmt.Sprintf("%d.jpg", i), "jpg"}
		}
		e := s.do(t, multipartRequest(t, "/predict/batch", parts...)).checkError(t, http.StatusRequestEntityTooLarge, "too_large")
		if !strings.Contains(e.Error.Message, "at most 4") {
			t.Errorf("message %q does not name the limit", e.Error.Message)
		}
		if len(s.fake.recorded()) != 0 {
			t.Error("the classifier was called for an oversized batch")
		}
	})
	t.Run("not multipart", func(t *testing.T) {
		s := newTestServer(t, testConfig(), nil)
		s.do(t, rawRequest("/predict/batch", "image/png", "png")).checkError(t, http.StatusUnsupportedMediaType, "unsupported_media_type")
	})
	t.Run("every item unavailable", func(t *testing.T) {
		fake := newFake()
		unavailable := &gateway.Error{Kind: gateway.KindUnavailable, Message: "circuit breaker open", RetryAfter: 2 * time.Second}
		fake.errs["a"], fake.errs["b"] = unavailable, unavailable
		s := newTestServer(t, testConfig(), fake)
		r := s.do(t, multipartRequest(t, "/predict/batch", part{"files", "a.jpg", "a"}, part{"files", "b.jpg", "b"}))
		r.checkError(t, http.StatusServiceUnavailable, "unavailable")
		if got := r.header.Get("Retry-After"); got != "2" {
			t.Errorf("Retry-After = %q, want 2", got)
		}
	})
	t.Run("every item failed, kinds differ", func(t *testing.T) {
		fake := newFake()
		fake.errs["a"] = gateway.Errorf(gateway.KindUnavailable, "down")
		fake.errs["b"] = gateway.Errorf(gateway.KindUnprocessable, "corrupt")
		s := newTestServer(t, testConfig(), fake)
		r := s.do(t, multipartRequest(t, "/predict/batch", part{"files", "a.jpg", "a"}, part{"files", "b.jpg", "b"}))
		if r.status != http.StatusOK {
			t.Errorf("status %d, want 200 with per-item errors: %s", r.status, r.body)
		}
	})
}

func TestPredictDeadline(t *testing.T) {
	fake := newFake()
	fake.waitForDeadline = true
	cfg := testConfig()
	cfg.RequestTimeout = 150 * time.Millisecond
	s := newTestServer(t, cfg, fake)

	s.do(t, rawRequest("/predict", "image/png", "png")).checkError(t, http.StatusGatewayTimeout, "deadline_exceeded")
	calls := fake.recorded()
	if len(calls) != 1 || !calls[0].hasDeadline {
		t.Fatalf("calls = %+v, want one with a deadline", calls)
	}
	if rem := calls[0].remaining; rem <= cfg.RequestTimeout-100*time.Millisecond || rem > cfg.RequestTimeout {
		t.Errorf("the classifier had %v left, want about RequestTimeout (%v)", rem, cfg.RequestTimeout)
	}
}

func TestOverloadSheds(t *testing.T) {
	fake := newFake()
	fake.entered = make(chan struct{}, 2)
	fake.release = make(chan struct{})
	cfg := testConfig()
	cfg.MaxInFlight = 2
	s := newTestServer(t, cfg, fake)

	done := make(chan response, 2)
	for range 2 {
		go func() {
			resp, err := s.App().Test(rawRequest("/predict", "image/png", "png"), 5000)
			if err != nil {
				done <- response{status: -1, body: []byte(err.Error())}
				return
			}
			resp.Body.Close()
			done <- response{status: resp.StatusCode}
		}()
	}
	<-fake.entered
	<-fake.entered // both slots are taken

	if got := metricValue(t, s.reg, "http_requests_in_flight", nil); got != 2 {
		t.Errorf("http_requests_in_flight = %v, want 2", got)
	}
	r := s.do(t, rawRequest("/predict", "image/png", "png"))
	r.checkError(t, http.StatusTooManyRequests, "overloaded")
	if got := r.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After = %q, want 1", got)
	}
	s.do(t, multipartRequest(t, "/predict/batch", part{"files", "a.jpg", "a"})).checkError(t, http.StatusTooManyRequests, "overloaded")

	close(fake.release)
	for range 2 {
		if r := <-done; r.status != http.StatusOK {
			t.Errorf("held request answered %d (%s), want 200", r.status, r.body)
		}
	}
	if got := metricValue(t, s.reg, "http_requests_shed_total", map[string]string{"endpoint": "/predict"}); got != 1 {
		t.Errorf("http_requests_shed_total{endpoint=/predict} = %v, want 1", got)
	}
	if got := metricValue(t, s.reg, "http_requests_in_flight", nil); got != 0 {
		t.Errorf("http_requests_in_flight = %v after the requests, want 0", got)
	}
	// The slots are free again.
	if r := s.do(t, rawRequest("/predict", "image/png", "png")); r.status != http.StatusOK {
		t.Errorf("after release: status %d", r.status)
	}
}

func TestBodyLimit(t *testing.T) {
	cfg := testConfig()
	cfg.BodyLimit = 1024
	s := newTestServer(t, cfg, nil)
	req := rawRequest("/predict", "image/png", strings.Repeat("x", 4096))
	req.Header.Set("X-Request-ID", "big-upload-1")
	// fasthttp refuses the body before routing, which app.Test reports as an
	// error: a real connection shows what a client gets.
	e := send(t, s.listen(t), req).checkError(t, http.StatusRequestEntityTooLarge, "too_large")
	if e.Error.RequestID != "big-upload-1" || !strings.Contains(e.Error.Message, "1024") {
		t.Errorf("error = %+v, want the client's request id and the limit named", e.Error)
	}
	if len(s.fake.recorded()) != 0 {
		t.Error("the classifier saw an oversized body")
	}
	if got := metricValue(t, s.reg, "http_request_errors_total", map[string]string{"endpoint": "/predict", "code": "too_large"}); got != 1 {
		t.Errorf("http_request_errors_total{endpoint=/predict,code=too_large} = %v, want 1", got)
	}
	lines := s.log.lines(t)
	if len(lines) != 1 || lines[0]["route"] != "/predict" || lines[0]["status"] != 413.0 || lines[0]["bytes_in"] != 4096.0 {
		t.Errorf("access log = %v, want one line for /predict, 413, 4096 bytes in", lines)
	}
}

func TestCompressedUploadRefused(t *testing.T) {
	for _, target := range []string{"/predict", "/predict/batch"} {
		t.Run(target, func(t *testing.T) {
			s := newTestServer(t, testConfig(), nil)
			req := multipartRequest(t, target, part{"file", "a.jpg", "jpg"})
			req.Header.Set("Content-Encoding", "gzip")
			e := s.do(t, req).checkError(t, http.StatusUnsupportedMediaType, "unsupported_media_type")
			if !strings.Contains(e.Error.Message, "compressed uploads are not accepted") {
				t.Errorf("message %q does not say why", e.Error.Message)
			}
			if len(s.fake.recorded()) != 0 {
				t.Error("the classifier was called")
			}
		})
	}
}

func TestHeadOfGetRoute(t *testing.T) {
	s := newTestServer(t, testConfig(), nil)
	r := s.do(t, httptest.NewRequest(http.MethodHead, "/health", nil))
	if r.status != http.StatusOK || len(r.body) != 0 {
		t.Errorf("HEAD /health: %d %q", r.status, r.body)
	}
}
