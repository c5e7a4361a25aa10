package httpapi_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// smuggled is a request hidden in a body, and next a request sent after it on
// the same connection: a server that frames the first request as a
// Content-Length-only intermediary would not answers them as requests.
const (
	smuggled = "GET /model HTTP/1.1\r\nHost: gateway\r\n\r\n"
	next     = "GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n"
)

// withBody is a POST /predict head with extra header lines, then body.
func withBody(version, headers, body string) string {
	return "POST /predict " + version + "\r\nHost: gateway\r\nX-Request-ID: framing-1\r\nContent-Type: image/png\r\n" +
		headers + "\r\n" + body
}

// exchange sends raw on a fresh connection to base and returns the first
// response and whether the server then closed the connection (with nothing
// more to read) rather than answering anything else.
func exchange(t *testing.T, base, raw string) (first response, closed bool, more string) {
	t.Helper()
	conn := dial(t, base)
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatalf("write: %v", err)
	}
	br := bufio.NewReader(conn)
	first = readResponse(t, conn, br)
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	rest, err := io.ReadAll(br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return first, false, string(rest) // still open after 3 s
	}
	return first, len(rest) == 0, string(rest)
}

// TestFramingRefused: requests whose framing RFC 9112 says to refuse are
// answered 400 in the JSON error shape and the connection is closed, so
// nothing after them (a smuggled request, the next one) is ever answered.
func TestFramingRefused(t *testing.T) {
	s := newTestServer(t, testConfig(), nil)
	base := s.listen(t)
	chunked := "0\r\n\r\n" + smuggled
	cases := []struct{ name, raw string }{
		{"content-length and chunked", withBody("HTTP/1.1", "Content-Length: 41\r\nTransfer-Encoding: chunked\r\n", chunked)},
		{"chunked and content-length", withBody("HTTP/1.1", "Transfer-Encoding: chunked\r\nContent-Length: 41\r\n", chunked)},
		{"xchunked", withBody("HTTP/1.1", "Content-Length: 41\r\nTransfer-Encoding: xchunked\r\n", chunked)},
		{"chunked, identity", withBody("HTTP/1.1", "Content-Length: 41\r\nTransfer-Encoding: chunked, identity\r\n", chunked)},
		{"tab before the value", withBody("HTTP/1.1", "Content-Length: 41\r\nTransfer-Encoding:\tchunked\r\n", chunked)},
		{"vertical tab before the value", withBody("HTTP/1.1", "Content-Length: 41\r\nTransfer-Encoding:\vchunked\r\n", chunked)},
		{"upper case", withBody("HTTP/1.1", "Content-Length: 41\r\nTransfer-Encoding: CHUNKED\r\n", chunked)},
		{"space before the colon", withBody("HTTP/1.1", "Content-Length: 41\r\nTransfer-Encoding : chunked\r\n", chunked)},
		{"two transfer-encoding lines", withBody("HTTP/1.1", "Content-Length: 41\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", chunked)},
		{"chunked then identity", withBody("HTTP/1.1", "Content-Length: 41\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", chunked)},
		{"obs-fold continuation", withBody("HTTP/1.1", "Content-Length: 41\r\nTransfer-Encoding:\r\n chunked\r\n", chunked)},
		{"transfer-encoding on HTTP/1.0", withBody("HTTP/1.0", "Connection: keep-alive\r\nContent-Length: 41\r\nTransfer-Encoding: chunked\r\n", chunked)},
		{"identity alone", withBody("HTTP/1.1", "Transfer-Encoding: identity\r\n", "png")},
		{"two content-lengths that differ", withBody("HTTP/1.1", "Content-Length: 3\r\nContent-Length: 44\r\n", "png"+smuggled)},
		{"two equal content-lengths", withBody("HTTP/1.1", "Content-Length: 3\r\nContent-Length: 3\r\n", "png")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			first, closed, more := exchange(t, base, tc.raw+next)
			first.checkError(t, http.StatusBadRequest, "invalid_request")
			if !closed {
				t.Errorf("the connection stayed open or answered more after the refusal: %q", more)
			}
		})
	}
	if calls := s.fake.recorded(); len(calls) != 0 {
		t.Errorf("the classifier was called %d times; every request was badly framed", len(calls))
	}
}

// TestFramingAccepted: what must keep working next to the refusals.
func TestFramingAccepted(t *testing.T) {
	s := newTestServer(t, testConfig(), nil)
	base := s.listen(t)
	for _, tc := range []struct{ name, raw string }{
		{"content-length", withBody("HTTP/1.1", "Content-Length: 3\r\n", "png")},
		{"chunked", withBody("HTTP/1.1", "Transfer-Encoding: chunked\r\n", "2\r\npn\r\n1\r\ng\r\n0\r\n\r\n")},
		{"chunked with a trailer", withBody("HTTP/1.1", "Transfer-Encoding: chunked\r\n", "3\r\npng\r\n0\r\nX-Trailer: 1\r\n\r\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := dial(t, base)
			if _, err := io.WriteString(conn, tc.raw+next); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			checkPredictions(t, readResponse(t, conn, br), "framing-1", 2)
			if r := readResponse(t, conn, br); r.status != http.StatusOK {
				t.Errorf("the next request on the connection: %d %s, want 200", r.status, r.body)
			}
		})
	}
}

// TestUnknownMethods: a method token the API does not know, in any case, is
// answered like any other error (JSON, request id, access log, metric), and
// so is garbage after a valid request.
func TestUnknownMethods(t *testing.T) {
	s := newTestServer(t, testConfig(), nil)
	base := s.listen(t)
	for i, tc := range []struct {
		name, requestLine, allow, route string
		status                          int
	}{
		{"BREW", "BREW /health HTTP/1.1", "GET, HEAD", "/health", http.StatusMethodNotAllowed},
		{"lower-case get", "get /health HTTP/1.1", "GET, HEAD", "/health", http.StatusMethodNotAllowed},
		{"QUERY on an upload", "QUERY /predict HTTP/1.1", "POST", "/predict", http.StatusMethodNotAllowed},
		{"unknown method, unknown path", "BREW /pot HTTP/1.1", "", "unmatched", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("brew-%d", i)
			r, _, _ := exchange(t, base, tc.requestLine+"\r\nHost: gateway\r\nX-Request-ID: "+id+"\r\n\r\n")
			code := map[int]string{http.StatusMethodNotAllowed: "method_not_allowed", http.StatusNotFound: "not_found"}[tc.status]
			e := r.checkError(t, tc.status, code)
			if e.Error.RequestID != id {
				t.Errorf("request id %q, want the client's %s", e.Error.RequestID, id)
			}
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
			line := s.log.waitFor(t, id, tc.route)
			if line["method"] == "" || line["status"] != float64(tc.status) {
				t.Errorf("log line %v, want status %d", line, tc.status)
			}
		})
	}
	if got := metricValue(t, s.reg, "http_requests_total", map[string]string{"method": "OTHER", "endpoint": "/health", "status": "405"}); got != 2 {
		t.Errorf("http_requests_total{method=OTHER,endpoint=/health,status=405} = %v, want 2", got)
	}

	t.Run("garbage after a valid request", func(t *testing.T) {
		conn := dial(t, base)
		if _, err := io.WriteString(conn, next+"\x16\x03\x01garbage\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		if r := readResponse(t, conn, br); r.status != http.StatusOK {
			t.Fatalf("the valid request: %d %s", r.status, r.body)
		}
		readResponse(t, conn, br).checkError(t, http.StatusBadRequest, "invalid_request")
	})
}

// TestBodyPhaseErrors: what goes wrong while a body arrives is the client's
// (4xx or 499, never 5xx), answered and logged under the route and the
// client's request id.
func TestBodyPhaseErrors(t *testing.T) {
	s := newTestServer(t, testConfig(), nil) // BodyLimit 64 KiB
	base := s.listen(t)

	t.Run("short body then FIN", func(t *testing.T) {
		conn := dial(t, base)
		head := "POST /predict HTTP/1.1\r\nHost: gateway\r\nX-Request-ID: short-1\r\nContent-Type: image/png\r\nContent-Length: 60000\r\n\r\n"
		if _, err := io.WriteString(conn, head+strings.Repeat("x", 20000)); err != nil {
			t.Fatal(err)
		}
		_ = conn.(*net.TCPConn).CloseWrite()
		r := readResponse(t, conn, bufio.NewReader(conn))
		if e := r.checkError(t, http.StatusBadRequest, "invalid_request"); e.Error.RequestID != "short-1" {
			t.Errorf("request id %q, want short-1", e.Error.RequestID)
		}
		line := s.log.waitFor(t, "short-1", "/predict")
		if line["method"] != "POST" {
			t.Errorf("logged as %v %v, want POST /predict", line["method"], line["route"])
		}
	})

	t.Run("reset mid-body", func(t *testing.T) {
		conn := dial(t, base)
		head := "POST /predict HTTP/1.1\r\nHost: gateway\r\nX-Request-ID: reset-1\r\nContent-Type: image/png\r\nContent-Length: 60000\r\n\r\n"
		if _, err := io.WriteString(conn, head+strings.Repeat("x", 10000)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // the head and the first bytes are read
		_ = conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
		line := s.log.waitFor(t, "reset-1", "/predict")
		if status := line["status"].(float64); status < 400 || status >= 500 && status != 499 {
			t.Errorf("a client's reset answered %v, want 4xx or 499: %v", status, line)
		}
		if line["level"] == "ERROR" {
			t.Errorf("a client's reset logged at ERROR: %v", line)
		}
	})

	t.Run("chunked body over the limit", func(t *testing.T) {
		conn := dial(t, base)
		head := "POST /predict HTTP/1.1\r\nHost: gateway\r\nX-Request-ID: chunky-1\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n"
		chunk := fmt.Sprintf("%x\r\n%s\r\n", 16<<10, strings.Repeat("x", 16<<10))
		go func() { _, _ = io.WriteString(conn, head+strings.Repeat(chunk, 8)+"0\r\n\r\n") }()
		r := readResponse(t, conn, bufio.NewReader(conn))
		if e := r.checkError(t, http.StatusRequestEntityTooLarge, "too_large"); e.Error.RequestID != "chunky-1" {
			t.Errorf("request id %q, want chunky-1", e.Error.RequestID)
		}
		s.log.waitFor(t, "chunky-1", "/predict")
	})

	for _, status := range []string{"500", "502", "503", "504"} {
		if got := metricValue(t, s.reg, "http_requests_total", map[string]string{"method": "POST", "endpoint": "/predict", "status": status}); got != 0 {
			t.Errorf("http_requests_total{status=%s} = %v: a client's broken upload counted as a server error", status, got)
		}
	}
}

// TestExpectContinue: an upload that would be refused is refused before
// "100 Continue", so its client never sends the body; one that will be
// read gets "100 Continue".
func TestExpectContinue(t *testing.T) {
	s := newTestServer(t, testConfig(), nil)
	base := s.listen(t)

	conn := dial(t, base)
	if _, err := io.WriteString(conn, withBody("HTTP/1.1", "Expect: 100-continue\r\nContent-Length: 10000000000\r\n", "")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if status, _ := br.Peek(12); string(status) != "HTTP/1.1 413" {
		t.Fatalf("the first answer begins %q, want a 413 before any 100 Continue", status)
	}
	readResponse(t, conn, br).checkError(t, http.StatusRequestEntityTooLarge, "too_large")

	conn = dial(t, base)
	if _, err := io.WriteString(conn, withBody("HTTP/1.1", "Expect: 100-continue\r\nContent-Length: 3\r\n", "")); err != nil {
		t.Fatal(err)
	}
	br = bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if status, _ := br.ReadString('\n'); !strings.HasPrefix(status, "HTTP/1.1 100") {
		t.Fatalf("first status line %q, want 100 Continue", status)
	}
	if _, err := br.ReadString('\n'); err != nil { // the blank line ending the 100
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "png"); err != nil {
		t.Fatal(err)
	}
	checkPredictions(t, readResponse(t, conn, br), "framing-1", 2)
}

// TestMalformedHeadersNotReflected: a refusal of headers fasthttp cannot
// parse says what is wrong without quoting the request back.
func TestMalformedHeadersNotReflected(t *testing.T) {
	s := newTestServer(t, testConfig(), nil)
	base := s.listen(t)
	for _, raw := range []string{
		"GET /health HTTP/1.1\r\nHost: gateway\r\nX-Internal-Token: s3cr3t-value\r\nNo colon in this s3cr3t-value line\r\n\r\n",
		"GET /health HTTP/1.1\r\nHost: gateway\r\nX-Internal-Token: s3cr3t-value\r\nBad\x01Name: s3cr3t-value\r\n\r\n",
		"GET /health s3cr3t-value\r\nHost: gateway\r\n\r\n",
	} {
		r, closed, _ := exchange(t, base, raw)
		r.checkError(t, http.StatusBadRequest, "invalid_request")
		if strings.Contains(string(r.body), "s3cr3t") || strings.Contains(string(r.body), "Internal") {
			t.Errorf("the refusal quotes the request: %s", r.body)
		}
		if !closed {
			t.Error("the connection stayed open after a malformed request")
		}
	}
}

// TestBodyOnBodylessRoute: a GET with a body is refused, its body unread
// (but for the first 8 KiB, which fasthttp reads before any handler runs).
func TestBodyOnBodylessRoute(t *testing.T) {
	s := newTestServer(t, testConfig(), nil)
	base := s.listen(t)
	r, closed, _ := exchange(t, base, "GET /health HTTP/1.1\r\nHost: gateway\r\nContent-Length: 33554432\r\n\r\n"+strings.Repeat("x", 16<<10))
	r.checkError(t, http.StatusRequestEntityTooLarge, "too_large")
	if !closed {
		t.Error("the connection stayed open with an unread body on it")
	}
}

// TestConnectionLimit: beyond MaxConnections a connection is answered 503 in
// the JSON error shape and closed; once one closes, a new one is served.
func TestConnectionLimit(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConnections = 2
	s := newTestServer(t, cfg, nil)
	base := s.listen(t)
	first, second := dial(t, base), dial(t, base)
	for _, c := range []net.Conn{first, second} { // both are served, and stay open
		if _, err := io.WriteString(c, next); err != nil {
			t.Fatal(err)
		}
		if r := readResponse(t, c, bufio.NewReader(c)); r.status != http.StatusOK {
			t.Fatalf("within the limit: %d %s", r.status, r.body)
		}
	}
	third := dial(t, base)
	_, _ = io.WriteString(third, next)
	r := readResponse(t, third, bufio.NewReader(third))
	r.checkError(t, http.StatusServiceUnavailable, "too_many_connections")
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if got := metricValue(t, s.reg, "http_connections_refused_total", nil); got != 1 {
		t.Errorf("http_connections_refused_total = %v, want 1", got)
	}

	first.Close()
	waitUntil(t, 5*time.Second, "the closed connection to be counted", func() bool {
		return metricValue(t, s.reg, "http_connections_open", nil) == 1
	})
	fourth := dial(t, base)
	_, _ = io.WriteString(fourth, next)
	if r := readResponse(t, fourth, bufio.NewReader(fourth)); r.status != http.StatusOK {
		t.Errorf("after a connection closed: %d %s, want 200", r.status, r.body)
	}
}
