package httpapi

import "testing"

func TestFoldMethod(t *testing.T) {
	for in, want := range map[string]string{"GET": "GET", "POST": "POST", "PATCH": "PATCH", "get": "OTHER", "PROPFIND": "OTHER", "": "OTHER"} {
		if got := foldMethod(in); got != want {
			t.Errorf("foldMethod(%q) = %q, want %q", in, got, want)
		}
	}
}
