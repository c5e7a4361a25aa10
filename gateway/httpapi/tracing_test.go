package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/fish-classifier/fish-classifier/gateway"
	"github.com/fish-classifier/fish-classifier/gateway/httpapi"
)

// tracedServer is a test server recording its spans; sampler decides which
// traces are kept.
func tracedServer(t *testing.T, fake *fakeClassifier, sampler sdktrace.Sampler) (*testServer, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sampler))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return newTestServer(t, testConfig(), fake, httpapi.WithTracing(tp, propagation.TraceContext{})), rec
}

func spanAttr(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

const (
	clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpan  = "00f067aa0ba902b7"
)

func TestServerSpanContinuesTheClientsTrace(t *testing.T) {
	fake := newFake()
	s, rec := tracedServer(t, fake, sdktrace.ParentBased(sdktrace.AlwaysSample()))
	req := rawRequest("/predict", "image/png", "fish bytes")
	req.Header.Set("traceparent", "00-"+clientTrace+"-"+clientSpan+"-01")
	req.Header.Set("X-Request-ID", "trace-me-1")
	if r := s.do(t, req); r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}

	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want the one server span", len(spans))
	}
	span := spans[0]
	if span.Name() != "POST /predict" {
		t.Errorf("span name %q, want the route template", span.Name())
	}
	if got := span.SpanContext().TraceID().String(); got != clientTrace {
		t.Errorf("trace id %s, want the client's %s", got, clientTrace)
	}
	if got := span.Parent().SpanID().String(); got != clientSpan || !span.Parent().IsRemote() {
		t.Errorf("parent %s (remote %v), want the client's span %s", got, span.Parent().IsRemote(), clientSpan)
	}
	for key, want := range map[string]string{
		"http.route": "/predict", "http.request.method": "POST", "fish.request.id": "trace-me-1",
	} {
		if got := spanAttr(span, key).AsString(); got != want {
			t.Errorf("attribute %s = %q, want %q", key, got, want)
		}
	}
	if got := spanAttr(span, "http.response.status_code").AsInt64(); got != 200 {
		t.Errorf("status attribute %d", got)
	}
	if got := spanAttr(span, "http.request.body.size").AsInt64(); got != int64(len("fish bytes")) {
		t.Errorf("request body size attribute %d", got)
	}
	// The Classifier got the span: its stages are the span's children.
	calls := fake.recorded()
	if len(calls) != 1 || calls[0].span.SpanID() != span.SpanContext().SpanID() {
		t.Errorf("the classifier's context carries span %v, want the server span %v", calls[0].span.SpanID(), span.SpanContext().SpanID())
	}
	// The access log names the trace and the span.
	line := s.log.waitFor(t, "trace-me-1", "/predict")
	if line["trace_id"] != clientTrace || line["span_id"] != span.SpanContext().SpanID().String() {
		t.Errorf("access log trace_id %v span_id %v, want %s and the server span", line["trace_id"], line["span_id"], clientTrace)
	}
}

func TestServerSpanOfFailuresAndUnmatchedRoutes(t *testing.T) {
	fake := newFake()
	fake.errs["down"] = &gateway.Error{Kind: gateway.KindUnavailable, Message: "inference server unavailable"}
	s, rec := tracedServer(t, fake, sdktrace.AlwaysSample())
	s.do(t, rawRequest("/predict", "image/png", "down"))
	s.do(t, httptest.NewRequest(http.MethodGet, "/nope/123", nil))
	s.do(t, rawRequest("/predict", "text/plain", "not an image"))

	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3", len(spans))
	}
	for i, want := range []struct {
		name   string
		status int64
		failed bool
		code   string
	}{
		{"POST /predict", 503, true, "unavailable"},
		{"GET unmatched", 404, false, "not_found"},
		{"POST /predict", 415, false, "unsupported_media_type"},
	} {
		sp := spans[i]
		if sp.Name() != want.name || spanAttr(sp, "http.response.status_code").AsInt64() != want.status {
			t.Errorf("span %d: %q status %d, want %q %d", i, sp.Name(), spanAttr(sp, "http.response.status_code").AsInt64(), want.name, want.status)
		}
		if failed := sp.Status().Code == codes.Error; failed != want.failed {
			t.Errorf("span %d (%s): failed %v, want %v: only server faults fail the span", i, want.name, failed, want.failed)
		}
		if got := spanAttr(sp, "error.type").AsString(); got != want.code {
			t.Errorf("span %d: error.type %q, want %q", i, got, want.code)
		}
		if sp.Parent().IsValid() {
			t.Errorf("span %d has a parent without a traceparent", i)
		}
	}
}

func TestProbesAndScrapesAreNotTraced(t *testing.T) {
	s, rec := tracedServer(t, newFake(), sdktrace.AlwaysSample())
	for _, path := range []string{"/health", "/ready", "/metrics"} {
		if r := s.do(t, httptest.NewRequest(http.MethodGet, path, nil)); r.status != http.StatusOK {
			t.Fatalf("GET %s: %d", path, r.status)
		}
	}
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans for probes and scrapes, want none", n)
	}
}

func TestUnsampledRequestHasNoSpanNoExemplar(t *testing.T) {
	fake := newFake()
	s, rec := tracedServer(t, fake, sdktrace.ParentBased(sdktrace.AlwaysSample()))
	req := rawRequest("/predict", "image/png", "fish bytes")
	req.Header.Set("traceparent", "00-"+clientTrace+"-"+clientSpan+"-00") // not sampled
	req.Header.Set("X-Request-ID", "unsampled-1")
	s.do(t, req)
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans recorded for a request the client did not sample", n)
	}
	if body := openMetrics(t, s); strings.Contains(body, "trace_id=") {
		t.Errorf("an exemplar was recorded for an unsampled request:\n%s", body)
	}
	// The log still names the trace, so the client's id can be found.
	if line := s.log.waitFor(t, "unsampled-1", "/predict"); line["trace_id"] != clientTrace {
		t.Errorf("access log trace_id %v, want the client's", line["trace_id"])
	}
}

func TestLatencyExemplarNamesTheTrace(t *testing.T) {
	s, _ := tracedServer(t, newFake(), sdktrace.AlwaysSample())
	req := rawRequest("/predict", "image/png", "fish bytes")
	req.Header.Set("traceparent", "00-"+clientTrace+"-"+clientSpan+"-01")
	s.do(t, req)

	body := openMetrics(t, s)
	exemplar := regexp.MustCompile(`(?m)^http_request_duration_seconds_bucket\{endpoint="/predict",method="POST",le="[^"]+"\} 1 # \{trace_id="` + clientTrace + `"\} `)
	if !exemplar.MatchString(body) {
		t.Errorf("no exemplar with the request's trace id on http_request_duration_seconds:\n%s", grepLines(body, "http_request_duration_seconds_bucket"))
	}
}

// openMetrics scrapes /metrics as Prometheus does, asking for OpenMetrics.
func openMetrics(t *testing.T, s *testServer) string {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
	resp, err := s.App().Test(req, 5000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Fatalf("/metrics answered %q to a scraper asking for OpenMetrics", ct)
	}
	return string(body)
}

// grepLines keeps the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
