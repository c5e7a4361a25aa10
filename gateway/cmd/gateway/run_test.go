package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A stop that arrives while the gateway is still starting must not leave it
// serving forever (Shutdown before Serve registered its listener was a no-op).
func TestRunStopsWhenCancelledDuringStart(t *testing.T) {
	logFile, err := os.Create(filepath.Join(t.TempDir(), "gateway.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	env := map[string]string{
		"BACKEND":             "triton",
		"GATEWAY_LISTEN_ADDR": "127.0.0.1:0",
		"TRITON_URL":          "127.0.0.1:1", // nothing listens: the model never loads
		"MODEL_REPOSITORY":    t.TempDir(),
	}
	done := make(chan error, 1)
	go func() { done <- run(ctx, lookupFrom(env), logFile) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v, want nil after a stop", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context was cancelled during start")
	}
}
