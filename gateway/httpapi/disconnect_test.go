package httpapi_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fish-classifier/fish-classifier/gateway/httpapi"
	"github.com/fish-classifier/fish-classifier/internal/formdata"
	"github.com/fish-classifier/fish-classifier/internal/poll"
)

// waitUntil polls cond until it holds, failing the test after limit.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, limit, 2*time.Millisecond, what, cond)
}

// watchers counts the goroutines watching a connection for a disconnect,
// started or not yet: by their creator, which every goroutine's trace names.
func watchers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "created by github.com/fish-classifier/fish-classifier/gateway/httpapi.(*watchedConn).watch ")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// waitNoWatchers waits (bounded) until no watcher goroutine is left.
func waitNoWatchers(t *testing.T) {
	t.Helper()
	waitUntil(t, 5*time.Second, "no watcher goroutine to be left", func() bool { return watchers() == 0 })
}

// disconnectConfig has a request budget far beyond what a test waits for.
func disconnectConfig() httpapi.Config {
	cfg := testConfig()
	cfg.RequestTimeout = 30 * time.Second
	return cfg
}

// rawPredict is an HTTP/1.1 POST /predict of a raw image body, labelled id.
func rawPredict(id, query string) string {
	return "POST /predict" + query + " HTTP/1.1\r\nHost: gateway\r\nX-Request-ID: " + id +
		"\r\nContent-Type: image/png\r\nContent-Length: 3\r\n\r\npng"
}

// rawBatch is an HTTP/1.1 POST /predict/batch of two images.
func rawBatch(id string) string {
	body, contentType, _ := formdata.Encode( // into memory: cannot fail
		formdata.File("files", "a.png", []byte("png-a.png")), formdata.File("files", "b.png", []byte("png-b.png")))
	return fmt.Sprintf("POST /predict/batch HTTP/1.1\r\nHost: gateway\r\nX-Request-ID: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s",
		id, contentType, len(body), body)
}

// rawReady is an HTTP/1.1 GET /ready.
func rawReady(id string) string {
	return "GET /ready HTTP/1.1\r\nHost: gateway\r\nX-Request-ID: " + id + "\r\n\r\n"
}

// readResponse reads one response from br, body included.
func readResponse(t *testing.T, conn net.Conn, br *bufio.Reader) response {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read a response: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read a response body: %v", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// checkPredictions asserts a 200 of /predict labelled id with n predictions.
func checkPredictions(t *testing.T, r response, id string, n int) {
	t.Helper()
	var body struct {
		RequestID   string `json:"request_id"`
		Predictions []any  `json:"predictions"`
	}
	if r.status != http.StatusOK {
		t.Fatalf("request %s: got %d %s, want 200", id, r.status, r.body)
	}
	r.decode(t, &body)
	if got := r.header.Get("X-Request-ID"); got != id || body.RequestID != id {
		t.Errorf("answer labelled %q (body %q), want %q: answers out of order", got, body.RequestID, id)
	}
	if len(body.Predictions) != n {
		t.Errorf("request %s: %d predictions, want %d", id, len(body.Predictions), n)
	}
}

func dial(t *testing.T, base string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestClientDisconnectCancelsRequest: a client that closes its connection
// while its request waits on the classifier cancels the classifier's context
// at once, not at RequestTimeout; the request is answered 499 (canceled),
// counted as such, never as a 504, and logged at INFO.
func TestClientDisconnectCancelsRequest(t *testing.T) {
	endpoints := []struct {
		name, method, endpoint string
		request                func(id string) string
	}{
		{"predict", http.MethodPost, "/predict", func(id string) string { return rawPredict(id, "") }},
		{"batch", http.MethodPost, "/predict/batch", rawBatch},
		{"ready", http.MethodGet, "/ready", rawReady},
	}
	for _, ep := range endpoints {
		for _, reset := range []bool{false, true} {
			how := map[bool]string{false: "close", true: "reset"}[reset]
			t.Run(ep.name+"/"+how, func(t *testing.T) {
				cfg := disconnectConfig()
				fake := newFake()
				fake.entered = make(chan struct{}, 1)
				fake.release = make(chan struct{}) // never released: only the ctx ends the call
				fake.readyWait = true
				fake.left = make(chan error, 1)
				s := newTestServer(t, cfg, fake)
				conn := dial(t, s.listen(t))

				if _, err := io.WriteString(conn, ep.request("gone-1")); err != nil {
					t.Fatal(err)
				}
				<-fake.entered
				if n := watchers(); n != 1 {
					t.Errorf("%d watcher goroutines while the request waits, want 1", n)
				}
				if reset {
					if err := conn.(*net.TCPConn).SetLinger(0); err != nil {
						t.Fatal(err)
					}
				}
				closed := time.Now()
				conn.Close()

				select {
				case err := <-fake.left:
					if !errors.Is(err, context.Canceled) {
						t.Errorf("the classifier's call ended with %v, want context.Canceled", err)
					}
					if took := time.Since(closed); took > cfg.RequestTimeout/3 {
						t.Errorf("the classifier's call ended %v after the client left", took)
					}
				case <-time.After(cfg.RequestTimeout / 3):
					t.Fatalf("the classifier's call still runs %v after the client left (RequestTimeout %v)", cfg.RequestTimeout/3, cfg.RequestTimeout)
				}

				labels := func(status string) map[string]string {
					return map[string]string{"method": ep.method, "endpoint": ep.endpoint, "status": status}
				}
				// The access record (metrics, then the log line) follows the
				// handler, which returns after the classifier's call.
				logged := func() bool {
					for _, line := range s.log.lines(t) {
						if line["request_id"] == "gone-1" {
							return true
						}
					}
					return false
				}
				waitUntil(t, 5*time.Second, "the request to be counted as 499 and logged", func() bool {
					return metricValue(t, s.reg, "http_requests_total", labels("499")) == 1 && logged()
				})
				for _, status := range []string{"504", "503", "500", "200"} {
					if n := metricValue(t, s.reg, "http_requests_total", labels(status)); n != 0 {
						t.Errorf(`http_requests_total{status=%q} = %v, want 0`, status, n)
					}
				}
				if n := metricValue(t, s.reg, "http_request_errors_total", map[string]string{"endpoint": ep.endpoint, "code": "canceled"}); n != 1 {
					t.Errorf(`http_request_errors_total{code="canceled"} = %v, want 1`, n)
				}
				for _, line := range s.log.lines(t) {
					if line["request_id"] == "gone-1" &&
						(line["level"] != "INFO" || line["status"] != float64(499) || line["error_code"] != "canceled") {
						t.Errorf("access log %v, want level INFO, status 499, error_code canceled", line)
					}
				}
				waitNoWatchers(t)
			})
		}
	}
}

// TestKeepAliveWithWatchedRequests: requests whose connection was watched
// leave it usable: ten requests of every kind on one reused connection.
func TestKeepAliveWithWatchedRequests(t *testing.T) {
	cfg := disconnectConfig()
	s := newTestServer(t, cfg, nil)
	base := s.listen(t)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()

	var reused []bool
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = append(reused, info.Reused) }}
	for i := range 10 {
		var req *http.Request
		switch i % 4 {
		case 0, 2:
			req = rawRequest(base+"/predict?top_k=3", "image/png", "png")
		case 1:
			req = multipartRequest(t, base+"/predict/batch", part{field: "files", filename: "a.png", data: "a"}, part{field: "files", filename: "b.png", data: "b"})
		case 3:
			req = httptest.NewRequest(http.MethodGet, base+"/ready", nil)
		}
		req.RequestURI = ""
		req = req.WithContext(httptrace.WithClientTrace(context.Background(), trace))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d (%s): %d %s %v", i, req.URL.Path, resp.StatusCode, body, err)
		}
	}
	if len(reused) != 10 {
		t.Fatalf("%d connections got for 10 requests", len(reused))
	}
	for i, r := range reused {
		if r != (i > 0) {
			t.Errorf("request %d: connection reused %v", i, r)
		}
	}
	waitNoWatchers(t)
}

// TestKeepAliveRawConnection: two requests, one after the other, on one raw
// connection.
func TestKeepAliveRawConnection(t *testing.T) {
	s := newTestServer(t, disconnectConfig(), nil)
	conn := dial(t, s.listen(t))
	br := bufio.NewReader(conn)
	for i, q := range []string{"?top_k=1", "?top_k=3"} {
		id := fmt.Sprint("seq-", i)
		if _, err := io.WriteString(conn, rawPredict(id, q)); err != nil {
			t.Fatal(err)
		}
		checkPredictions(t, readResponse(t, conn, br), id, 1+2*i)
	}
	waitNoWatchers(t)
}

// TestKeepAliveAfterReadTimeout: a request that runs longer than ReadTimeout
// is not taken for a disconnect (the watcher does not inherit the deadline of
// reading the request), and the connection serves the next request.
func TestKeepAliveAfterReadTimeout(t *testing.T) {
	cfg := disconnectConfig()
	cfg.ReadTimeout = 50 * time.Millisecond
	fake := newFake()
	fake.entered = make(chan struct{}, 2)
	fake.release = make(chan struct{})
	fake.left = make(chan error, 2)
	s := newTestServer(t, cfg, fake)
	conn := dial(t, s.listen(t))
	br := bufio.NewReader(conn)

	if _, err := io.WriteString(conn, rawPredict("slow", "")); err != nil {
		t.Fatal(err)
	}
	<-fake.entered
	// The request's read deadline has to pass while the handler runs.
	time.Sleep(4 * cfg.ReadTimeout)
	select {
	case err := <-fake.left:
		t.Fatalf("the call ended (%v) while its client waits", err)
	default:
	}
	close(fake.release)
	checkPredictions(t, readResponse(t, conn, br), "slow", 2)
	if _, err := io.WriteString(conn, rawPredict("next", "?top_k=1")); err != nil {
		t.Fatal(err)
	}
	checkPredictions(t, readResponse(t, conn, br), "next", 1)
	waitNoWatchers(t)
}

// TestPipelinedRequests: requests sent before the previous answer are all
// answered, in order: both in one write, and the second one arriving while the
// first waits on the classifier (the watcher then reads its first byte, which
// must reach fasthttp).
func TestPipelinedRequests(t *testing.T) {
	t.Run("one write", func(t *testing.T) {
		s := newTestServer(t, disconnectConfig(), nil)
		conn := dial(t, s.listen(t))
		br := bufio.NewReader(conn)
		if _, err := io.WriteString(conn, rawPredict("pipe-1", "?top_k=1")+rawPredict("pipe-2", "?top_k=3")); err != nil {
			t.Fatal(err)
		}
		checkPredictions(t, readResponse(t, conn, br), "pipe-1", 1)
		checkPredictions(t, readResponse(t, conn, br), "pipe-2", 3)
		waitNoWatchers(t)
	})
	t.Run("while the first waits", func(t *testing.T) {
		fake := newFake()
		fake.entered = make(chan struct{}, 2)
		fake.release = make(chan struct{})
		s := newTestServer(t, disconnectConfig(), fake)
		conn := dial(t, s.listen(t))
		br := bufio.NewReader(conn)
		if _, err := io.WriteString(conn, rawPredict("wait-1", "?top_k=1")); err != nil {
			t.Fatal(err)
		}
		<-fake.entered
		if n := watchers(); n != 1 {
			t.Errorf("%d watcher goroutines while the request waits, want 1", n)
		}
		if _, err := io.WriteString(conn, rawBatch("wait-2")); err != nil {
			t.Fatal(err)
		}
		// The watcher reads the first byte of the second request and stops.
		waitNoWatchers(t)
		close(fake.release)
		checkPredictions(t, readResponse(t, conn, br), "wait-1", 1)
		r := readResponse(t, conn, br)
		var batch struct {
			RequestID string `json:"request_id"`
			Results   []struct {
				Predictions []any `json:"predictions"`
			} `json:"results"`
		}
		r.decode(t, &batch)
		if r.status != http.StatusOK || batch.RequestID != "wait-2" || len(batch.Results) != 2 {
			t.Errorf("second answer %d %s, want 200 for wait-2 with 2 results", r.status, r.body)
		}
		if n := metricValue(t, s.reg, "http_requests_total", map[string]string{"method": "POST", "endpoint": "/predict/batch", "status": "200"}); n != 1 {
			t.Errorf("batch 200s = %v, want 1", n)
		}
	})
}

// TestWatcherEndsWithRequest: a request that finishes normally leaves no
// watcher behind, and neither do the routes that are not watched.
func TestWatcherEndsWithRequest(t *testing.T) {
	fake := newFake()
	fake.entered = make(chan struct{}, 1)
	fake.release = make(chan struct{})
	s := newTestServer(t, disconnectConfig(), fake)
	conn := dial(t, s.listen(t))
	br := bufio.NewReader(conn)
	if _, err := io.WriteString(conn, rawPredict("one", "")); err != nil {
		t.Fatal(err)
	}
	<-fake.entered
	if n := watchers(); n != 1 {
		t.Errorf("%d watcher goroutines while the request waits, want 1", n)
	}
	close(fake.release)
	checkPredictions(t, readResponse(t, conn, br), "one", 2)
	waitNoWatchers(t)

	for _, path := range []string{"/health", "/model", "/metrics", "/openapi.json"} {
		if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: gateway\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if r := readResponse(t, conn, br); r.status != http.StatusOK {
			t.Errorf("GET %s: %d", path, r.status)
		}
	}
	if n := watchers(); n != 0 {
		t.Errorf("%d watcher goroutines after unwatched routes", n)
	}
}

// TestClientDisconnectOverTLS: over TLS too, a disconnect cancels the call,
// and requests reuse their connection.
func TestClientDisconnectOverTLS(t *testing.T) {
	ts := httptest.NewUnstartedServer(nil)
	ts.StartTLS()
	certs := ts.TLS.Certificates
	roots := x509.NewCertPool()
	roots.AddCert(ts.Certificate())
	ts.Close()

	fake := newFake()
	fake.entered = make(chan struct{}, 1)
	fake.left = make(chan error, 1)
	s := newTestServer(t, disconnectConfig(), fake)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(tls.NewListener(inner, &tls.Config{Certificates: certs})) }()
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
	clientConfig := &tls.Config{RootCAs: roots, ServerName: "example.com"}

	// Keep-alive: three watched requests on one connection.
	conn, err := tls.Dial("tcp", inner.Addr().String(), clientConfig)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	for i := range 3 {
		id := fmt.Sprint("tls-", i)
		if _, err := io.WriteString(conn, rawPredict(id, "?top_k=1")); err != nil {
			t.Fatal(err)
		}
		<-fake.entered
		checkPredictions(t, readResponse(t, conn, br), id, 1)
	}
	conn.Close()
	waitNoWatchers(t)

	// Disconnect.
	fake.release = make(chan struct{})
	conn, err = tls.Dial("tcp", inner.Addr().String(), clientConfig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, rawPredict("tls-gone", "")); err != nil {
		t.Fatal(err)
	}
	<-fake.entered
	conn.Close()
	select {
	case err := <-fake.left:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the classifier's call ended with %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the classifier's call still runs 10s after the client left")
	}
	waitUntil(t, 5*time.Second, "the request to be counted as 499", func() bool {
		return metricValue(t, s.reg, "http_requests_total", map[string]string{"method": "POST", "endpoint": "/predict", "status": "499"}) == 1
	})
	waitNoWatchers(t)
}
