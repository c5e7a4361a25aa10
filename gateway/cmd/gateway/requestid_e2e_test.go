package main

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/fish-classifier/fish-classifier/gateway/triton"
	"github.com/fish-classifier/fish-classifier/gateway/triton/tritontest"
)

// TestE2ERequestID follows the request id from HTTP to Triton: the client's
// X-Request-ID, or the id the gateway made up, is the ModelInfer request's id
// and its x-request-id metadata, in every call made for the request (a batch
// split by max_batch_size included).
func TestE2ERequestID(t *testing.T) {
	g := startGateway(t, withModel(func(m *tritontest.Model) { m.MaxBatchSize = 2 }))

	// sent checks that every prediction call Triton received since the last
	// reset carried id, and that there were want of them.
	sent := func(t *testing.T, id string, want int) {
		t.Helper()
		reqs := predictionRequests(g.Triton)
		g.Triton.ResetRequests()
		if len(reqs) != want {
			t.Fatalf("Triton received %d ModelInfer calls, want %d", len(reqs), want)
		}
		for i, r := range reqs {
			if r.ID != id {
				t.Errorf("call %d: ModelInfer id %q, want %q", i, r.ID, id)
			}
			if got := r.Metadata.Get(triton.RequestIDHeader); !slices.Equal(got, []string{id}) {
				t.Errorf("call %d: x-request-id metadata %v, want [%s]", i, got, id)
			}
		}
	}
	img := imageForClass(t, g.Model, 3)
	g.Triton.ResetRequests()

	t.Run("the client's id", func(t *testing.T) {
		body, ct := multipartBody(t, part{Field: "file", Filename: "fish.png", ContentType: "image/png", Data: img})
		req := newPost(t, t.Context(), g.URL+"/predict", body, ct)
		req.Header.Set("X-Request-ID", "abc-123")
		r := g.do(t, req)
		if r.Status != http.StatusOK || r.Header.Get("X-Request-ID") != "abc-123" {
			t.Fatalf("POST /predict: %s, X-Request-ID %q", r, r.Header.Get("X-Request-ID"))
		}
		sent(t, "abc-123", 1)
	})
	t.Run("the gateway's id", func(t *testing.T) {
		body, ct := multipartBody(t, part{Field: "file", Filename: "fish.png", ContentType: "image/png", Data: img})
		r := g.post(t, "/predict", body, ct)
		id := r.Header.Get("X-Request-ID")
		if r.Status != http.StatusOK || len(id) != 32 {
			t.Fatalf("POST /predict: %s, X-Request-ID %q, want a generated id", r, id)
		}
		sent(t, id, 1)
	})
	t.Run("one id for every call of a batch", func(t *testing.T) {
		var parts []part
		for i := range 3 {
			parts = append(parts, part{Field: "files", Filename: fmt.Sprintf("%d.png", i), ContentType: "image/png", Data: img})
		}
		body, ct := multipartBody(t, parts...)
		req := newPost(t, t.Context(), g.URL+"/predict/batch", body, ct)
		req.Header.Set("X-Request-ID", "batch-7")
		if r := g.do(t, req); r.Status != http.StatusOK {
			t.Fatalf("POST /predict/batch: %s", r)
		}
		sent(t, "batch-7", 2) // max_batch_size 2: 2 + 1 items
	})
}
