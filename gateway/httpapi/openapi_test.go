package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
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
