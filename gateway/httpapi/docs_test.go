package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// docsAssetRef is an address of the page's own files, as the page writes it.
var docsAssetRef = regexp.MustCompile(`(?:src|href)="(/docs/[^"?]+)\?v=([0-9a-f]+)"`)

// elsewhere matches an address of another host (absolute or scheme-relative).
var elsewhere = regexp.MustCompile(`(?:src|href)="(?:[a-z]+:)?//`)

// TestDocsPage checks the page's answer: HTML, never cached unasked, a CSP that
// allows the gateway only, and nothing in it that points elsewhere.
func TestDocsPage(t *testing.T) {
	s := newTestServer(t, testConfig(), nil)
	for _, target := range []string{"/docs", "/docs/"} {
		r := s.do(t, httptest.NewRequest(http.MethodGet, target, nil))
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", target, r.status, r.body)
		}
		for header, want := range map[string]string{
			"Content-Type":           "text/html; charset=utf-8",
			"Cache-Control":          "no-cache",
			"X-Content-Type-Options": "nosniff",
		} {
			if got := r.header.Get(header); got != want {
				t.Errorf("GET %s: %s %q, want %q", target, header, got, want)
			}
		}
		csp := r.header.Get("Content-Security-Policy")
		for _, directive := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, directive+";") && !strings.HasSuffix(csp, directive) {
				t.Errorf("GET %s: Content-Security-Policy %q lacks %q", target, csp, directive)
			}
		}
		for _, loose := range []string{"unsafe-inline", "unsafe-eval", "*", "http:", "https:"} {
			if strings.Contains(csp, loose) {
				t.Errorf("GET %s: Content-Security-Policy %q allows %s", target, csp, loose)
			}
		}
		body := string(r.body)
		if !strings.Contains(body, `<div id="swagger-ui">`) {
			t.Errorf("GET %s: no Swagger UI container in %s", target, body)
		}
		if elsewhere.MatchString(body) {
			t.Errorf("GET %s: the page points outside the gateway: %s", target, body)
		}
		if n, withSrc := strings.Count(body, "<script"), strings.Count(body, "<script src="); n != withSrc || n != 2 {
			t.Errorf("GET %s: %d scripts, %d of them files; want 2 files and no inline script", target, n, withSrc)
		}
	}
}

// TestDocsPageFiles fetches every file the page names, by the address it
// names it: each is served with its type and may be cached for good.
func TestDocsPageFiles(t *testing.T) {
	s := newTestServer(t, testConfig(), nil)
	page := s.do(t, httptest.NewRequest(http.MethodGet, "/docs", nil))
	wantType := map[string]string{
		"/docs/swagger-ui-bundle.js": "text/javascript; charset=utf-8",
		"/docs/docs.js":              "text/javascript; charset=utf-8",
		"/docs/swagger-ui.css":       "text/css; charset=utf-8",
	}
	refs := docsAssetRef.FindAllStringSubmatch(string(page.body), -1)
	if len(refs) != len(wantType) {
		t.Fatalf("the page names %d files, want %d: %s", len(refs), len(wantType), page.body)
	}
	for _, ref := range refs {
		path, version := ref[1], ref[2]
		r := s.do(t, httptest.NewRequest(http.MethodGet, path+"?v="+version, nil))
		if r.status != http.StatusOK || len(r.body) == 0 {
			t.Errorf("GET %s: %d, %d bytes", path, r.status, len(r.body))
			continue
		}
		if got, want := r.header.Get("Content-Type"), wantType[path]; got != want {
			t.Errorf("GET %s: Content-Type %q, want %q", path, got, want)
		}
		if got := r.header.Get("Cache-Control"); !strings.Contains(got, "max-age=31536000") || !strings.Contains(got, "immutable") {
			t.Errorf("GET %s?v=%s: Cache-Control %q, want a year, immutable", path, version, got)
		}
		// Another version's address may not be cached: an upgrade changes the file.
		stale := s.do(t, httptest.NewRequest(http.MethodGet, path+"?v=0000", nil))
		if got := stale.header.Get("Cache-Control"); stale.status != http.StatusOK || got != "no-cache" {
			t.Errorf("GET %s?v=0000: %d, Cache-Control %q, want 200 no-cache", path, stale.status, got)
		}
	}
}

// TestDocsFiles covers each file under /docs/ by name: type, and a mark of its
// content; and HEAD, which answers the headers of GET without the body.
func TestDocsFiles(t *testing.T) {
	tests := []struct {
		name, path, contentType, contains string
	}{
		{"page", "/docs", "text/html; charset=utf-8", `<script src="/docs/docs.js?v=`},
		{"bundle", "/docs/swagger-ui-bundle.js", "text/javascript; charset=utf-8", "SwaggerUIBundle"},
		{"style sheet", "/docs/swagger-ui.css", "text/css; charset=utf-8", ".swagger-ui"},
		{"our script", "/docs/docs.js", "text/javascript; charset=utf-8", `url: "/openapi.json"`},
		{"license", "/docs/LICENSE", "text/plain; charset=utf-8", "Apache License"},
		{"notice", "/docs/NOTICE", "text/plain; charset=utf-8", "SmartBear"},
		{"bundled licenses", "/docs/swagger-ui-bundle.js.LICENSE.txt", "text/plain; charset=utf-8", "MIT"},
	}
	s := newTestServer(t, testConfig(), nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			get := s.do(t, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if get.status != http.StatusOK || get.header.Get("Content-Type") != tt.contentType {
				t.Fatalf("GET %s: %d %q, want 200 %q", tt.path, get.status, get.header.Get("Content-Type"), tt.contentType)
			}
			if !strings.Contains(string(get.body), tt.contains) {
				t.Errorf("GET %s: the body lacks %q", tt.path, tt.contains)
			}
			if get.header.Get("X-Request-ID") == "" {
				t.Errorf("GET %s: no X-Request-ID", tt.path)
			}
			head := s.do(t, httptest.NewRequest(http.MethodHead, tt.path, nil))
			if head.status != http.StatusOK || head.header.Get("Content-Type") != tt.contentType || len(head.body) != 0 {
				t.Errorf("HEAD %s: %d %q with %d body bytes, want 200 %q and no body",
					tt.path, head.status, head.header.Get("Content-Type"), len(head.body), tt.contentType)
			}
		})
	}
}

// TestDocsUnknownFile checks that other addresses under /docs answer the API's
// JSON 404, and that they are labelled by route template, not by raw path.
func TestDocsUnknownFile(t *testing.T) {
	tests := []struct {
		path, endpoint string
	}{
		{"/docs/x", "/docs/:asset"},
		{"/docs/index.html", "/docs/:asset"},
		{"/docs/swagger-ui.css.map", "/docs/:asset"},
		{"/docs/swagger-ui/LICENSE", "unmatched"},
		{"/docs/docs.js/x", "unmatched"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			s := newTestServer(t, testConfig(), nil)
			s.do(t, httptest.NewRequest(http.MethodGet, tt.path, nil)).checkError(t, http.StatusNotFound, "not_found")
			labels := map[string]string{"method": "GET", "endpoint": tt.endpoint, "status": "404"}
			if n := metricValue(t, s.reg, "http_requests_total", labels); n != 1 {
				t.Errorf("http_requests_total%v = %v, want 1", labels, n)
			}
		})
	}
}

// TestDocsObserved checks that the page's requests are counted and logged
// like every other route's.
func TestDocsObserved(t *testing.T) {
	s := newTestServer(t, testConfig(), nil)
	s.do(t, httptest.NewRequest(http.MethodGet, "/docs", nil))
	s.do(t, httptest.NewRequest(http.MethodGet, "/docs/swagger-ui.css", nil))
	for _, endpoint := range []string{"/docs", "/docs/:asset"} {
		labels := map[string]string{"method": "GET", "endpoint": endpoint, "status": "200"}
		if n := metricValue(t, s.reg, "http_requests_total", labels); n != 1 {
			t.Errorf("http_requests_total%v = %v, want 1", labels, n)
		}
	}
	var routes []string
	for _, line := range s.log.lines(t) {
		if route, _ := line["route"].(string); strings.HasPrefix(route, "/docs") {
			routes = append(routes, route+" "+line["path"].(string))
		}
	}
	if want := []string{"/docs /docs", "/docs/:asset /docs/swagger-ui.css"}; strings.Join(routes, ",") != strings.Join(want, ",") {
		t.Errorf("access log routes %q, want %q", routes, want)
	}
}
