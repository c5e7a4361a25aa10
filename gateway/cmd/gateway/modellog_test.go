package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"testing"

	"github.com/fish-classifier/fish-classifier/gateway"
)

// countingObserver counts the lifecycle observations it is handed.
type countingObserver struct {
	gateway.NopObserver
	loaded, lost int
}

func (c *countingObserver) ModelLoaded(gateway.ModelInfo) { c.loaded++ }
func (c *countingObserver) ModelLost(error)               { c.lost++ }

// The log says when the model is served, when its version changes, and why
// it is unavailable once per reason; every observation reaches the observer
// it wraps.
func TestModelLog(t *testing.T) {
	var buf bytes.Buffer
	next := &countingObserver{}
	o := &modelLog{Observer: next, log: slog.New(slog.NewJSONHandler(&buf, nil))}
	v1 := gateway.ModelInfo{Name: "fish", Version: "1", Backend: "triton", Labels: []string{"cod", "eel"}}
	v2 := v1
	v2.Version = "2"
	down := gateway.Errorf(gateway.KindUnavailable, "inference server unavailable")
	notReady := gateway.Errorf(gateway.KindUnavailable, "model fish is not ready")

	o.ModelLost(down) // never loaded yet
	o.ModelLost(down)
	o.ModelLoaded(v1)
	o.ModelLost(down) // a loss after a load is news again
	o.ModelLost(notReady)
	o.ModelLost(errors.New("read model: tcp 10.0.0.7: secret")) // "internal error"
	o.ModelLoaded(v1)
	o.ModelLoaded(v2)

	var got []string
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line %s: %v", line, err)
		}
		msg := rec["msg"].(string)
		switch msg {
		case "model unavailable":
			msg += ": " + rec["err"].(string)
		case "model loaded":
			msg += ": " + rec["version"].(string)
		case "model version changed":
			msg += ": " + rec["from"].(string) + " to " + rec["to"].(string)
		}
		got = append(got, msg)
	}
	want := []string{
		"model unavailable: inference server unavailable",
		"model loaded: 1",
		"model unavailable: inference server unavailable",
		"model unavailable: model fish is not ready",
		"model unavailable: read model: tcp 10.0.0.7: secret",
		"model loaded: 1",
		"model version changed: 1 to 2",
	}
	if !slices.Equal(got, want) {
		t.Errorf("log:\n%q\nwant\n%q", got, want)
	}
	if next.loaded != 3 || next.lost != 5 {
		t.Errorf("the wrapped observer saw %d loads and %d losses, want 3 and 5", next.loaded, next.lost)
	}
}
