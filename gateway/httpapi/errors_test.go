package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/preprocess"
)

// TestErrorContract sends real requests that end in each error status and
// checks the status, the code, the body and the headers.
func TestErrorContract(t *testing.T) {
	tests := []struct {
		name       string
		classifier error // what the fake answers for the image "png"
		req        func(t *testing.T) *http.Request
		status     int
		code       string
		retryAfter string
	}{
		{name: "bad top_k", status: 400, code: "invalid_request",
			req: func(*testing.T) *http.Request { return rawRequest("/predict?top_k=x", "image/png", "png") }},
		{name: "multipart without a file", status: 400, code: "invalid_request",
			req: func(t *testing.T) *http.Request { return multipartRequest(t, "/predict", part{"note", "", "x"}) }},
		{name: "malformed multipart", status: 400, code: "invalid_request",
			req: func(*testing.T) *http.Request {
				return rawRequest("/predict", "multipart/form-data; boundary=xyz", "--xyz\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\ntruncated")
			}},
		{name: "empty raw body", status: 400, code: "invalid_request",
			req: func(*testing.T) *http.Request { return rawRequest("/predict", "image/png", "") }},
		{name: "empty image (classifier)", classifier: fmt.Errorf("image 0: %w", preprocess.ErrEmpty), status: 400, code: "invalid_request"},
		{name: "image over the byte limit", classifier: fmt.Errorf("image 0: %w", preprocess.ErrTooLarge), status: 413, code: "too_large"},
		{name: "unsupported format", classifier: gateway.Errorf(gateway.KindUnsupportedMedia, "image 0: not a supported image format"), status: 415, code: "unsupported_media_type"},
		{name: "wrong content type", status: 415, code: "unsupported_media_type",
			req: func(*testing.T) *http.Request { return rawRequest("/predict", "text/plain", "png") }},
		{name: "no content type", status: 415, code: "unsupported_media_type",
			req: func(*testing.T) *http.Request { return rawRequest("/predict", "", "png") }},
		{name: "corrupt image", classifier: fmt.Errorf("image 0: %w", preprocess.ErrCorrupt), status: 422, code: "unprocessable_image"},
		{name: "backend answer unusable", classifier: gateway.Errorf(gateway.KindBadGateway, "backend returned 2 rows for 1 image"), status: 502, code: "bad_gateway"},
		{name: "breaker open", classifier: &gateway.Error{Kind: gateway.KindUnavailable, Message: "circuit breaker open", RetryAfter: 2500 * time.Millisecond},
			status: 503, code: "unavailable", retryAfter: "3"},
		{name: "unavailable without a hint", classifier: gateway.Errorf(gateway.KindUnavailable, "model not ready"), status: 503, code: "unavailable", retryAfter: "1"},
		{name: "deadline", classifier: fmt.Errorf("infer: %w", context.DeadlineExceeded), status: 504, code: "deadline_exceeded"},
		{name: "bug", classifier: errBoom, status: 500, code: "internal"},
		{name: "client went away", classifier: context.Canceled, status: 499, code: "canceled"},
		{name: "unknown route", status: 404, code: "not_found",
			req: func(*testing.T) *http.Request { return httptest.NewRequest(http.MethodGet, "/nope/123", nil) }},
		{name: "wrong method", status: 405, code: "method_not_allowed",
			req: func(*testing.T) *http.Request { return httptest.NewRequest(http.MethodGet, "/predict", nil) }},
		{name: "wrong method on a GET route", status: 405, code: "method_not_allowed",
			req: func(*testing.T) *http.Request { return httptest.NewRequest(http.MethodDelete, "/health", nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake()
			if tt.classifier != nil {
				fake.errs["png"] = tt.classifier
			}
			s := newTestServer(t, testConfig(), fake)
			req := rawRequest("/predict", "image/png", "png")
			if tt.req != nil {
				req = tt.req(t)
			}
			r := s.do(t, req)
			e := r.checkError(t, tt.status, tt.code)
			if got := r.header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tt.retryAfter)
			}
			if strings.Contains(string(r.body), "hunter2") {
				t.Errorf("internal details leaked to the client: %s", r.body)
			}
			lines := s.log.lines(t)
			if len(lines) != 1 {
				t.Fatalf("%d access log lines, want 1", len(lines))
			}
			line := lines[0]
			if line["error_code"] != tt.code || line["status"] != float64(tt.status) || line["request_id"] != e.Error.RequestID {
				t.Errorf("access log line %v does not match the answer", line)
			}
			wantLevel := "INFO"
			if tt.status >= 500 {
				wantLevel = "ERROR"
				if _, ok := line["error"]; !ok {
					t.Errorf("a %d is logged without the error text: %v", tt.status, line)
				}
			}
			if line["level"] != wantLevel {
				t.Errorf("logged at %v, want %s", line["level"], wantLevel)
			}
		})
	}
}

func TestInternalErrorDetailsGoToTheLogOnly(t *testing.T) {
	fake := newFake()
	fake.errs["png"] = errBoom
	s := newTestServer(t, testConfig(), fake)
	e := s.do(t, rawRequest("/predict", "image/png", "png")).checkError(t, 500, "internal")
	if e.Error.Message != "internal error" {
		t.Errorf("message %q, want %q", e.Error.Message, "internal error")
	}
	if line := s.log.lines(t)[0]; !strings.Contains(fmt.Sprint(line["error"]), "hunter2") {
		t.Errorf("the log lacks the details: %v", line)
	}
}

func TestPanicIsA500(t *testing.T) {
	fake := newFake()
	fake.panicOn = "png"
	s := newTestServer(t, testConfig(), fake)
	e := s.do(t, rawRequest("/predict", "image/png", "png")).checkError(t, 500, "internal")
	if e.Error.Message != "internal error" {
		t.Errorf("message %q", e.Error.Message)
	}
	if line := s.log.lines(t)[0]; !strings.Contains(fmt.Sprint(line["error"]), "panic: fake classifier") {
		t.Errorf("the log lacks the panic: %v", line)
	}
	// The server still serves.
	if r := s.do(t, httptest.NewRequest(http.MethodGet, "/health", nil)); r.status != 200 {
		t.Errorf("after a panic: /health %d", r.status)
	}
}
