package httpapi_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"
)

// randomBytes returns n reproducible random bytes.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestLargeUploadsArriveWhole: bodies of several megabytes (held outside the
// Go heap) reach the classifier byte for byte, raw, chunked and multipart.
func TestLargeUploadsArriveWhole(t *testing.T) {
	cfg := testConfig()
	cfg.BodyLimit = 8 << 20
	cfg.MaxUploadBytesInFlight = 16 << 20
	s := newTestServer(t, cfg, nil)
	base := s.listen(t)
	img := randomBytes(3<<20+17, 1)

	raw := rawRequest("/predict", "image/jpeg", string(img))
	raw.Header.Set("X-Request-ID", "large-raw")
	checkPredictions(t, send(t, base, raw), "large-raw", 2)

	chunked := rawRequest("/predict", "image/jpeg", "")
	chunked.Body = io.NopCloser(bytes.NewReader(img)) // no length: sent chunked
	chunked.ContentLength = -1
	chunked.Header.Set("X-Request-ID", "large-chunked")
	checkPredictions(t, send(t, base, chunked), "large-chunked", 2)

	batch := multipartRequest(t, "/predict/batch", part{"files", "a.jpg", string(img)}, part{"files", "b.jpg", string(img[:1<<20])})
	if r := send(t, base, batch); r.status != http.StatusOK {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}

	calls := s.fake.recorded()
	if len(calls) != 3 {
		t.Fatalf("%d classifier calls, want 3", len(calls))
	}
	for i, want := range [][][]byte{{img}, {img}, {img, img[:1<<20]}} {
		for j := range want {
			if !bytes.Equal(calls[i].images[j], want[j]) {
				t.Errorf("call %d image %d: %d bytes differ from the %d sent", i, j, len(calls[i].images[j]), len(want[j]))
			}
		}
	}
	if got := metricValue(t, s.reg, "http_upload_bytes_in_flight", nil); got != 0 {
		t.Errorf("http_upload_bytes_in_flight = %v after every upload ended, want 0", got)
	}
}

// TestUploadBudgetSheds: an upload waits for body bytes that others hold, and
// is answered 429 with Retry-After when they are not free within the request
// timeout; its body is never read.
func TestUploadBudgetSheds(t *testing.T) {
	cfg := testConfig()
	cfg.RequestTimeout = 300 * time.Millisecond
	cfg.MaxUploadBytesInFlight = cfg.BodyLimit // one body of BodyLimit at a time
	s := newTestServer(t, cfg, nil)
	base := s.listen(t)

	// The first upload declares BodyLimit bytes and holds them while it sends
	// them slowly.
	holder := dial(t, base)
	fmt.Fprintf(holder, "POST /predict HTTP/1.1\r\nHost: gateway\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n%s",
		cfg.BodyLimit, strings.Repeat("x", 9000))
	waitUntil(t, 5*time.Second, "the first upload to hold the budget", func() bool {
		return metricValue(t, s.reg, "http_upload_bytes_in_flight", nil) == float64(cfg.BodyLimit)
	})

	second := dial(t, base)
	fmt.Fprintf(second, "POST /predict HTTP/1.1\r\nHost: gateway\r\nX-Request-ID: waits-1\r\nContent-Type: image/png\r\nContent-Length: 10000\r\n\r\n%s",
		strings.Repeat("y", 10000))
	r := readResponse(t, second, bufio.NewReader(second))
	r.checkError(t, http.StatusTooManyRequests, "overloaded")
	if r.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	if got := metricValue(t, s.reg, "http_requests_shed_total", map[string]string{"endpoint": "/predict"}); got != 1 {
		t.Errorf("http_requests_shed_total = %v, want 1", got)
	}
	holder.Close()
	waitUntil(t, 5*time.Second, "the budget to be released", func() bool {
		return metricValue(t, s.reg, "http_upload_bytes_in_flight", nil) == 0
	})
	if len(s.fake.recorded()) != 0 {
		t.Error("the classifier was called")
	}
}
