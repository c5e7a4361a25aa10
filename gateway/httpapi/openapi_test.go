package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fish-classifier/fish-classifier/gateway"
)

var fiberParam = regexp.MustCompile(`:(\w+)`)

// TestOpenAPIDescribesTheRoutes checks that the document's (method, path)
// pairs are exactly the app's routes, and that every $ref resolves.
func TestOpenAPIDescribesTheRoutes(t *testing.T) {
	s := newTestServer(t, testConfig(), nil)
	r := s.do(t, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("/openapi.json: %d %s", r.status, r.header.Get("Content-Type"))
	}
	var doc map[string]any
	r.decode(t, &doc)
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.0") {
		t.Errorf("openapi = %v, want 3.0.x", doc["openapi"])
	}

	var documented []string
	for path, item := range doc["paths"].(map[string]any) {
		for method := range item.(map[string]any) {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	var registered []string
	for _, route := range s.App().GetRoutes(true) {
		if route.Method == http.MethodHead {
			continue // fiber answers HEAD for every GET route
		}
		// fiber writes a path parameter :name, OpenAPI {name}.
		registered = append(registered, route.Method+" "+fiberParam.ReplaceAllString(route.Path, "{$1}"))
	}
	slices.Sort(documented)
	slices.Sort(registered)
	registered = slices.Compact(registered)
	if !slices.Equal(documented, registered) {
		t.Errorf("documented %v\nregistered %v", documented, registered)
	}

	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if target, ok := v["$ref"].(string); ok && !resolves(doc, target) {
				t.Errorf("$ref %q does not resolve", target)
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(doc)
}

// resolves follows a local JSON pointer ("#/components/schemas/Error").
func resolves(doc map[string]any, ref string) bool {
	var node any = doc
	for _, key := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, ok := node.(map[string]any)
		if !ok {
			return false
		}
		if node, ok = m[key]; !ok {
			return false
		}
	}
	return true
}

// openAPI fetches and decodes the served document.
func openAPI(t *testing.T, s *testServer) map[string]any {
	t.Helper()
	r := s.do(t, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if r.status != http.StatusOK {
		t.Fatalf("/openapi.json: %d", r.status)
	}
	var doc map[string]any
	r.decode(t, &doc)
	return doc
}

// deref follows v's $ref, if it has one.
func deref(t *testing.T, doc map[string]any, v any) map[string]any {
	t.Helper()
	m, _ := v.(map[string]any)
	target, ok := m["$ref"].(string)
	if !ok {
		return m
	}
	var node any = doc
	for _, key := range strings.Split(strings.TrimPrefix(target, "#/"), "/") {
		node = node.(map[string]any)[key]
	}
	out, ok := node.(map[string]any)
	if !ok {
		t.Fatalf("$ref %q does not resolve to an object", target)
	}
	return out
}

// operation returns the operation of method and path in doc.
func operation(t *testing.T, doc map[string]any, method, path string) map[string]any {
	t.Helper()
	item, _ := doc["paths"].(map[string]any)[path].(map[string]any)
	op, ok := item[strings.ToLower(method)].(map[string]any)
	if !ok {
		t.Fatalf("no %s %s in the document", method, path)
	}
	return op
}

// Every response of every operation declares X-Request-ID as required, and the
// 429 and 503 responses Retry-After too.
func TestOpenAPIResponsesDeclareTheirHeaders(t *testing.T) {
	s := newTestServer(t, testConfig(), nil)
	doc := openAPI(t, s)
	for path, item := range doc["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			for status, resp := range op.(map[string]any)["responses"].(map[string]any) {
				where := strings.ToUpper(method) + " " + path + " " + status
				headers, _ := deref(t, doc, resp)["headers"].(map[string]any)
				want := []string{"X-Request-ID"}
				if status == "429" || status == "503" {
					want = append(want, "Retry-After")
				}
				for _, name := range want {
					h := deref(t, doc, headers[name])
					if h == nil {
						t.Errorf("%s: no %s header", where, name)
					} else if h["required"] != true {
						t.Errorf("%s: %s is not required", where, name)
					}
				}
			}
		}
	}
}

// The request bodies say what the handlers refuse: an image part is required
// (file or image for /predict; files, file, images or image for a batch), the
// raw body must not be empty, a batch field carries at most MaxBatchItems, and
// top_k is at least 1.
func TestOpenAPIRequestsSayWhatIsRefused(t *testing.T) {
	cfg := testConfig()
	s := newTestServer(t, cfg, nil)
	doc := openAPI(t, s)
	bodySchema := func(path, mediaType string) map[string]any {
		t.Helper()
		content := operation(t, doc, http.MethodPost, path)["requestBody"].(map[string]any)["content"].(map[string]any)
		media, ok := content[mediaType].(map[string]any)
		if !ok {
			t.Fatalf("POST %s accepts no %s body", path, mediaType)
		}
		return media["schema"].(map[string]any)
	}
	requiredOneOf := func(schema map[string]any) []string {
		var fields []string
		for _, alt := range schema["anyOf"].([]any) {
			for _, f := range alt.(map[string]any)["required"].([]any) {
				fields = append(fields, f.(string))
			}
		}
		slices.Sort(fields)
		return fields
	}

	single := bodySchema("/predict", "multipart/form-data")
	if got := requiredOneOf(single); !slices.Equal(got, []string{"file", "image"}) {
		t.Errorf("/predict multipart requires one of %v, want file or image", got)
	}
	for _, mt := range []string{"image/*", "application/octet-stream"} {
		if raw := bodySchema("/predict", mt); raw["minLength"] != 1.0 || raw["format"] != "binary" {
			t.Errorf("/predict %s body schema %v, want non-empty binary", mt, raw)
		}
	}
	batch := bodySchema("/predict/batch", "multipart/form-data")
	if got := requiredOneOf(batch); !slices.Equal(got, []string{"file", "files", "image", "images"}) {
		t.Errorf("/predict/batch requires one of %v, want files, file, images or image", got)
	}
	for name, field := range batch["properties"].(map[string]any) {
		f := field.(map[string]any)
		if f["minItems"] != 1.0 || f["maxItems"] != float64(cfg.MaxBatchItems) {
			t.Errorf("/predict/batch field %s: %d-%d items, want 1-%d", name, f["minItems"], f["maxItems"], cfg.MaxBatchItems)
		}
	}
	topK := deref(t, doc, map[string]any{"$ref": "#/components/parameters/TopK"})["schema"].(map[string]any)
	if topK["minimum"] != 1.0 || topK["type"] != "integer" {
		t.Errorf("top_k schema %v, want an integer of at least 1", topK)
	}
}

// Each answer the handlers give, errors included, has its status declared for
// its operation, and each error its code in the Error schema: the fake
// classifier fails with every error kind, on both predict routes.
func TestOpenAPIDeclaresEveryAnswer(t *testing.T) {
	fake := newFake()
	for _, k := range gateway.Kinds() {
		fake.errs["fails-"+k.String()] = &gateway.Error{Kind: k, Message: "it failed"}
	}
	fake.readyErr = &gateway.Error{Kind: gateway.KindUnavailable, Message: "model not loaded"}
	s := newTestServer(t, testConfig(), fake)
	doc := openAPI(t, s)
	var codes []string
	for _, c := range deref(t, doc, map[string]any{"$ref": "#/components/schemas/Error"})["properties"].(map[string]any)["error"].(map[string]any)["properties"].(map[string]any)["code"].(map[string]any)["enum"].([]any) {
		codes = append(codes, c.(string))
	}

	type request struct {
		route string // "METHOD /path" of the operation, "" for none
		req   *http.Request
	}
	requests := []request{
		{"GET /health", httptest.NewRequest(http.MethodGet, "/health", nil)},
		{"GET /ready", httptest.NewRequest(http.MethodGet, "/ready", nil)},
		{"GET /model", httptest.NewRequest(http.MethodGet, "/model", nil)},
		{"GET /metrics", httptest.NewRequest(http.MethodGet, "/metrics", nil)},
		{"POST /predict", multipartRequest(t, "/predict", part{field: "file", filename: "a.jpg", data: "img"})},
		{"POST /predict", multipartRequest(t, "/predict?top_k=0", part{field: "file", filename: "a.jpg", data: "img"})},
		{"POST /predict", multipartRequest(t, "/predict", part{field: "other", data: "x"})},
		{"POST /predict", rawRequest("/predict", "image/png", "")},
		{"POST /predict", rawRequest("/predict", "text/plain", "img")},
		{"POST /predict", rawRequest("/predict", "multipart/form-data", "img")},
		{"POST /predict/batch", multipartRequest(t, "/predict/batch", part{field: "files", filename: "a.jpg", data: "img"})},
		{"POST /predict/batch", multipartRequest(t, "/predict/batch", part{field: "other", data: "x"})},
		{"POST /predict/batch", rawRequest("/predict/batch", "image/png", "img")},
		{"POST /predict/batch", multipartRequest(t, "/predict/batch",
			part{field: "files", data: "1"}, part{field: "file", data: "2"}, part{field: "images", data: "3"},
			part{field: "image", data: "4"}, part{field: "files", data: "5"})},
		{"", httptest.NewRequest(http.MethodGet, "/no/such/route", nil)},
		{"", httptest.NewRequest(http.MethodDelete, "/health", nil)},
	}
	gz := rawRequest("/predict", "image/png", "img")
	gz.Header.Set("Content-Encoding", "gzip")
	requests = append(requests, request{"POST /predict", gz})
	for _, k := range gateway.Kinds() {
		requests = append(requests,
			request{"POST /predict", rawRequest("/predict", "image/jpeg", "fails-"+k.String())},
			request{"POST /predict/batch", multipartRequest(t, "/predict/batch", part{field: "files", filename: "a.jpg", data: "fails-" + k.String()})})
	}

	for _, rq := range requests {
		what := rq.req.Method + " " + rq.req.URL.String()
		r := s.do(t, rq.req)
		if rq.route != "" {
			method, path, _ := strings.Cut(rq.route, " ")
			responses := operation(t, doc, method, path)["responses"].(map[string]any)
			if _, ok := responses[strconv.Itoa(r.status)]; !ok {
				t.Errorf("%s answered %d, which %s does not declare: %s", what, r.status, rq.route, r.body)
			}
		}
		if r.status >= 400 && !(rq.route == "GET /ready" && r.status == http.StatusServiceUnavailable) {
			var e errorBody
			r.decode(t, &e)
			if !slices.Contains(codes, e.Error.Code) {
				t.Errorf("%s answered code %q, not in the Error schema's %v", what, e.Error.Code, codes)
			}
		}
	}
}
