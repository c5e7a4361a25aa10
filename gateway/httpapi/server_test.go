package httpapi_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/httpapi"
)

func TestConfigValidate(t *testing.T) {
	if err := httpapi.DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig is invalid: %v", err)
	}
	err := httpapi.Config{}.Validate()
	for _, field := range []string{"BodyLimit", "ReadTimeout", "WriteTimeout", "IdleTimeout", "RequestTimeout", "MaxInFlight", "MaxBatchItems", "DefaultTopK"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("the zero Config's error %v does not name %s", err, field)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := httpapi.New(nil, httpapi.Config{}, nil, nil, nil); err == nil ||
		!strings.Contains(err.Error(), "Classifier") || !strings.Contains(err.Error(), "Registerer") || !strings.Contains(err.Error(), "MaxInFlight") {
		t.Errorf("New with nothing = %v, want every problem named", err)
	}
	if _, err := httpapi.New(newFake(), testConfig(), reg, reg, nil); err != nil {
		t.Fatal(err)
	}
	panicked := func() (panicked bool) {
		defer func() { panicked = recover() != nil }()
		_, _ = httpapi.New(newFake(), testConfig(), reg, reg, nil)
		return false
	}()
	if !panicked {
		t.Error("a second server registered the same metrics without a panic")
	}
}

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestRequestID(t *testing.T) {
	tests := []struct {
		name, sent string
		echoed     bool
	}{
		{"acceptable id echoed", "abc-123._:XYZ", true},
		{"128 characters echoed", strings.Repeat("a", 128), true},
		{"none: generated", "", false},
		{"129 characters: replaced", strings.Repeat("a", 129), false},
		{"space: replaced", "abc 123", false},
		{"markup: replaced", "<script>", false},
		{"non-ASCII: replaced", "café", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, testConfig(), nil)
			for _, req := range []*http.Request{
				rawRequest("/predict", "image/png", "png"),
				rawRequest("/predict?top_k=0", "image/png", "png"), // an error body
			} {
				if tt.sent != "" {
					req.Header.Set("X-Request-ID", tt.sent)
				}
				r := s.do(t, req)
				got := r.header.Get("X-Request-ID")
				if tt.echoed && got != tt.sent || !tt.echoed && !hexID.MatchString(got) {
					t.Errorf("sent %q, got %q", tt.sent, got)
				}
				var body struct {
					RequestID string `json:"request_id"`
					Error     struct {
						RequestID string `json:"request_id"`
					} `json:"error"`
				}
				r.decode(t, &body)
				if body.RequestID+body.Error.RequestID != got {
					t.Errorf("body carries %q, header %q", body.RequestID+body.Error.RequestID, got)
				}
			}
			for _, line := range s.log.lines(t) {
				if id, _ := line["request_id"].(string); tt.echoed && id != tt.sent || !hexID.MatchString(id) && !tt.echoed {
					t.Errorf("log line request_id %q", id)
				}
			}
		})
	}
	s := newTestServer(t, testConfig(), nil)
	a := s.do(t, httptest.NewRequest(http.MethodGet, "/health", nil)).header.Get("X-Request-ID")
	b := s.do(t, httptest.NewRequest(http.MethodGet, "/health", nil)).header.Get("X-Request-ID")
	if a == b {
		t.Errorf("two requests got the same generated id %q", a)
	}
}

func TestHealth(t *testing.T) {
	fake := newFake()
	fake.readyErr = errors.New("backend down") // liveness does not care
	s := newTestServer(t, testConfig(), fake)
	r := s.do(t, httptest.NewRequest(http.MethodGet, "/health", nil))
	if r.status != 200 || string(r.body) != `{"status":"ok"}` {
		t.Errorf("/health: %d %s", r.status, r.body)
	}
}

func TestReady(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		body       string
		retryAfter string
	}{
		{"ready", nil, 200, `{"status":"ready","model":"fish","version":"3"}`, ""},
		{"breaker open", &gateway.Error{Kind: gateway.KindUnavailable, Message: "circuit breaker open", RetryAfter: 30 * time.Second},
			503, `{"status":"not_ready","reason":"circuit breaker open"}`, "30"},
		{"model loading", gateway.Errorf(gateway.KindUnavailable, "model fish version 3 is not ready"),
			503, `{"status":"not_ready","reason":"model fish version 3 is not ready"}`, "1"},
		{"unexpected error", errBoom, 503, `{"status":"not_ready","reason":"internal error"}`, "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake()
			fake.readyErr = tt.err
			s := newTestServer(t, testConfig(), fake)
			r := s.do(t, httptest.NewRequest(http.MethodGet, "/ready", nil))
			if r.status != tt.status || string(r.body) != tt.body || r.header.Get("Retry-After") != tt.retryAfter {
				t.Errorf("got %d %s Retry-After %q; want %d %s %q", r.status, r.body, r.header.Get("Retry-After"), tt.status, tt.body, tt.retryAfter)
			}
		})
	}
}

func TestModel(t *testing.T) {
	s := newTestServer(t, testConfig(), nil)
	r := s.do(t, httptest.NewRequest(http.MethodGet, "/model", nil))
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var got, want any
	r.decode(t, &got)
	const wantJSON = `{
		"name": "fish", "version": "3", "backend": "onnxruntime", "platform": "onnxruntime_onnx",
		"max_batch_size": 8,
		"input": {"name": "input", "datatype": "FP32", "shape": [3, 224, 224]},
		"output": {"name": "logits", "datatype": "FP32", "shape": [3]},
		"labels": ["cod", "tuna", "eel"],
		"output_is_logits": true,
		"preprocess": {
			"width": 224, "height": 224, "resize": "shorter_crop", "shorter_side": 256,
			"filter": "bilinear", "fill": [0, 0, 0], "scale": 0.003921569,
			"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
			"channel_order": "rgb", "layout": "nchw", "datatype": "FP32", "dct_scaling": false
		},
		"provenance": {"sha256": "abababababababababababababababababababababababababababababababab", "source": "test weights", "license": "MIT"}
	}`
	response{body: []byte(wantJSON)}.decode(t, &want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("/model =\n%s\nwant\n%s", r.body, wantJSON)
	}
}

func TestAccessLog(t *testing.T) {
	s := newTestServer(t, testConfig(), nil)
	s.do(t, rawRequest("/predict", "image/png", "png-bytes"))
	s.do(t, httptest.NewRequest(http.MethodGet, "/nope/42", nil))
	lines := s.log.lines(t)
	if len(lines) != 2 {
		t.Fatalf("%d lines for 2 requests: %v", len(lines), lines)
	}
	for _, key := range []string{"method", "route", "path", "status", "duration_ms", "bytes_in", "bytes_out", "request_id", "remote"} {
		for i, line := range lines {
			if _, ok := line[key]; !ok {
				t.Errorf("line %d lacks %q: %v", i, key, line)
			}
		}
	}
	if l := lines[0]; l["route"] != "/predict" || l["path"] != "/predict" || l["status"] != 200.0 || l["bytes_in"] != 9.0 || l["bytes_out"].(float64) < 100 {
		t.Errorf("predict line = %v", l)
	}
	if l := lines[1]; l["route"] != "unmatched" || l["path"] != "/nope/42" || l["status"] != 404.0 || l["error_code"] != "not_found" {
		t.Errorf("404 line = %v", l)
	}
}

// closeSignalListener tells when it is closed.
type closeSignalListener struct {
	net.Listener
	once   sync.Once
	closed chan struct{}
}

// Close closes the listener, then signals: a dial after the signal must fail.
func (l *closeSignalListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() { close(l.closed) })
	return err
}

func TestGracefulShutdown(t *testing.T) {
	fake := newFake()
	fake.entered = make(chan struct{}, 1)
	fake.release = make(chan struct{})
	s := newTestServer(t, testConfig(), fake)

	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &closeSignalListener{Listener: inner, closed: make(chan struct{})}
	addr := inner.Addr().String()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()

	// A slow request is in the classifier.
	type result struct {
		status int
		body   string
		err    error
	}
	slow := make(chan result, 1)
	go func() {
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := client.Post("http://"+addr+"/predict", "image/png", bytes.NewReader([]byte("png")))
		if err != nil {
			slow <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		slow <- result{resp.StatusCode, string(body), err}
	}()
	<-fake.entered

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shutdown := make(chan error, 1)
	go func() { shutdown <- s.Shutdown(ctx) }()

	<-ln.closed
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Error("a new connection was accepted after Shutdown began")
	}
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned (%v) while a request was in flight", err)
	default:
	}

	close(fake.release)
	r := <-slow
	if r.err != nil || r.status != http.StatusOK || !strings.Contains(r.body, `"predictions"`) {
		t.Errorf("the request in flight got %d %q %v, want 200 with predictions", r.status, r.body, r.err)
	}
	if err := <-shutdown; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve after Shutdown: %v", err)
	}
}
