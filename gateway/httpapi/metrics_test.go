package httpapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsExposition runs a small scenario and compares the exposition
// with the expected text.
func TestMetricsExposition(t *testing.T) {
	s := newTestServer(t, testConfig(), nil)
	image := strings.Repeat("x", 2000)
	s.do(t, rawRequest("/predict", "image/png", image))
	s.do(t, rawRequest("/predict?top_k=0", "image/png", image))
	s.do(t, multipartRequest(t, "/predict/batch", part{"files", "a.jpg", "a"}, part{"files", "b.jpg", "b"}, part{"files", "c.jpg", "c"}))
	s.do(t, httptest.NewRequest(http.MethodGet, "/health", nil))
	s.do(t, httptest.NewRequest(http.MethodGet, "/nope/123", nil))
	s.do(t, httptest.NewRequest(http.MethodPut, "/predict", nil))

	batchBytes := metricSum(t, s, "http_request_size_bytes", "/predict/batch")
	want := fmt.Sprintf(`
# HELP http_requests_total HTTP requests answered, by method, route template and status code.
# TYPE http_requests_total counter
http_requests_total{endpoint="/health",method="GET",status="200"} 1
http_requests_total{endpoint="/predict",method="POST",status="200"} 1
http_requests_total{endpoint="/predict",method="POST",status="400"} 1
http_requests_total{endpoint="/predict",method="PUT",status="405"} 1
http_requests_total{endpoint="/predict/batch",method="POST",status="200"} 1
http_requests_total{endpoint="unmatched",method="GET",status="404"} 1
# HELP http_request_errors_total HTTP requests answered with an error, by route template and error code.
# TYPE http_request_errors_total counter
http_request_errors_total{code="invalid_request",endpoint="/predict"} 1
http_request_errors_total{code="method_not_allowed",endpoint="/predict"} 1
http_request_errors_total{code="not_found",endpoint="unmatched"} 1
# HELP http_requests_in_flight Predict requests (single and batch) being served now.
# TYPE http_requests_in_flight gauge
http_requests_in_flight 0
# HELP predict_batch_items Images per accepted /predict/batch request.
# TYPE predict_batch_items histogram
predict_batch_items_bucket{le="1"} 0
predict_batch_items_bucket{le="2"} 0
predict_batch_items_bucket{le="4"} 1
predict_batch_items_bucket{le="8"} 1
predict_batch_items_bucket{le="16"} 1
predict_batch_items_bucket{le="32"} 1
predict_batch_items_bucket{le="64"} 1
predict_batch_items_bucket{le="128"} 1
predict_batch_items_bucket{le="+Inf"} 1
predict_batch_items_sum 3
predict_batch_items_count 1
# HELP http_request_size_bytes Body size of upload (predict) requests, in bytes.
# TYPE http_request_size_bytes histogram
http_request_size_bytes_bucket{endpoint="/predict",le="1024"} 0
http_request_size_bytes_bucket{endpoint="/predict",le="4096"} 2
http_request_size_bytes_bucket{endpoint="/predict",le="16384"} 2
http_request_size_bytes_bucket{endpoint="/predict",le="65536"} 2
http_request_size_bytes_bucket{endpoint="/predict",le="262144"} 2
http_request_size_bytes_bucket{endpoint="/predict",le="1.048576e+06"} 2
http_request_size_bytes_bucket{endpoint="/predict",le="4.194304e+06"} 2
http_request_size_bytes_bucket{endpoint="/predict",le="1.6777216e+07"} 2
http_request_size_bytes_bucket{endpoint="/predict",le="6.7108864e+07"} 2
http_request_size_bytes_bucket{endpoint="/predict",le="+Inf"} 2
http_request_size_bytes_sum{endpoint="/predict"} 4000
http_request_size_bytes_count{endpoint="/predict"} 2
http_request_size_bytes_bucket{endpoint="/predict/batch",le="1024"} 1
http_request_size_bytes_bucket{endpoint="/predict/batch",le="4096"} 1
http_request_size_bytes_bucket{endpoint="/predict/batch",le="16384"} 1
http_request_size_bytes_bucket{endpoint="/predict/batch",le="65536"} 1
http_request_size_bytes_bucket{endpoint="/predict/batch",le="262144"} 1
http_request_size_bytes_bucket{endpoint="/predict/batch",le="1.048576e+06"} 1
http_request_size_bytes_bucket{endpoint="/predict/batch",le="4.194304e+06"} 1
http_request_size_bytes_bucket{endpoint="/predict/batch",le="1.6777216e+07"} 1
http_request_size_bytes_bucket{endpoint="/predict/batch",le="6.7108864e+07"} 1
http_request_size_bytes_bucket{endpoint="/predict/batch",le="+Inf"} 1
http_request_size_bytes_sum{endpoint="/predict/batch"} %v
http_request_size_bytes_count{endpoint="/predict/batch"} 1
`, batchBytes)
	if err := testutil.GatherAndCompare(s.reg, strings.NewReader(want),
		"http_requests_total", "http_request_errors_total", "http_requests_in_flight", "predict_batch_items", "http_request_size_bytes"); err != nil {
		t.Error(err)
	}
	if got := testutil.CollectAndCount(s.reg, "http_request_duration_seconds"); got != 5 {
		t.Errorf("http_request_duration_seconds has %d series, want one per method and endpoint (5)", got)
	}
	problems, err := testutil.GatherAndLint(s.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// metricSum returns the sample sum of a histogram series by endpoint.
func metricSum(t *testing.T, s *testServer, name, endpoint string) float64 {
	t.Helper()
	families, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if sameLabels(m.GetLabel(), map[string]string{"endpoint": endpoint}) {
				return m.GetHistogram().GetSampleSum()
			}
		}
	}
	t.Fatalf("no %s{endpoint=%q}", name, endpoint)
	return 0
}

func TestMetricsEndpoint(t *testing.T) {
	fake := newFake()
	fake.entered = make(chan struct{}, 1)
	fake.release = make(chan struct{})
	cfg := testConfig()
	cfg.MaxInFlight = 1
	s := newTestServer(t, cfg, fake)

	// One request shed, so every family has a sample.
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := s.App().Test(rawRequest("/predict", "image/png", "png"), 5000); err == nil {
			resp.Body.Close()
		}
	}()
	<-fake.entered
	s.do(t, rawRequest("/predict", "image/png", "png"))
	close(fake.release)
	<-done
	fake.entered = nil
	s.do(t, multipartRequest(t, "/predict/batch", part{"files", "a.jpg", "a"}))
	s.do(t, httptest.NewRequest(http.MethodGet, "/nope/123", nil))

	r := s.do(t, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %s", r.status, r.header.Get("Content-Type"))
	}
	if !hexID.MatchString(r.header.Get("X-Request-ID")) {
		t.Errorf("/metrics answered without an X-Request-ID: %v", r.header)
	}
	text := string(r.body)
	for _, family := range []string{
		"http_requests_total", "http_request_duration_seconds", "http_requests_in_flight", "http_requests_shed_total",
		"http_request_errors_total", "http_request_size_bytes", "predict_batch_items",
	} {
		if !strings.Contains(text, "# TYPE "+family+" ") {
			t.Errorf("/metrics lacks %s", family)
		}
	}
	for _, want := range []string{
		`http_requests_total{endpoint="/predict",method="POST",status="200"} 1`,
		`http_requests_total{endpoint="/predict",method="POST",status="429"} 1`,
		`http_requests_shed_total{endpoint="/predict"} 1`,
		`http_requests_total{endpoint="unmatched",method="GET",status="404"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(text, "/nope") {
		t.Error("a raw path became a label value")
	}
	// The scrape itself is counted under its template on the next one.
	r = s.do(t, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(string(r.body), `http_requests_total{endpoint="/metrics",method="GET",status="200"} 1`) {
		t.Error("the /metrics scrape is not counted")
	}
}
