package main

// The real gateway, for the tests that put it under bench's load: the load
// smoke test (smoke_test.go) and the gateway's overhead over the in-process
// KServe test server (overhead_test.go).

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fish-classifier/fish-classifier/internal/testenv"
)

// readyTimeout bounds the gateway's start and model load (~1 s).
const readyTimeout = 15 * time.Second

// gatewayProcess is a running gateway binary and its log.
type gatewayProcess struct {
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:port
	log    string
	exited chan struct{}
	err    error // valid once exited is closed
}

func (g *gatewayProcess) logTail() string {
	b, _ := os.ReadFile(g.log)
	if len(bytes.TrimSpace(b)) == 0 {
		return "(empty: GATEWAY_LOG_LEVEL=warn logs warnings and errors only)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// startGateway builds the gateway, runs it on a free loopback port with the
// test's environment stripped of every gateway setting plus env, waits until
// GET /ready answers 200, and stops it when the test ends: SIGTERM (the
// gateway drains), SIGKILL after 10 s.
func startGateway(t *testing.T, env ...string) *gatewayProcess {
	t.Helper()
	bin := testenv.BuildGateway(t)
	addr := testenv.FreeLoopbackAddr(t)
	g := &gatewayProcess{base: "http://" + addr, log: filepath.Join(t.TempDir(), "gateway.log"), exited: make(chan struct{})}
	logFile, err := os.Create(g.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin)
	cmd.Dir = testenv.RepoRoot(t)
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "GATEWAY_"), strings.HasPrefix(name, "TRITON_"), strings.HasPrefix(name, "MODEL_"),
			strings.HasPrefix(name, "ONNX"), strings.HasPrefix(name, "IMAGE_"), strings.HasPrefix(name, "HTTP_"),
			strings.HasPrefix(name, "BREAKER_"), name == "BACKEND", name == "FALLBACK", name == "MAX_IN_FLIGHT",
			name == "REQUEST_TIMEOUT", name == "DEFAULT_TOP_K", name == "MAX_BATCH_ITEMS":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, "GATEWAY_LISTEN_ADDR="+addr, "GATEWAY_LOG_LEVEL=warn",
		"MODEL_REPOSITORY="+filepath.Join(testenv.RepoRoot(t), "triton-models"))
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the gateway: %v", err)
	}
	g.cmd = cmd
	go func() {
		g.err = cmd.Wait()
		close(g.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-g.exited
			t.Errorf("the gateway did not stop within 10 s of SIGTERM; killed")
		}
		if t.Failed() {
			t.Logf("gateway log (last lines):\n%s", g.logTail())
		}
	})

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(readyTimeout)
	last := "no answer"
	for time.Now().Before(deadline) {
		select {
		case <-g.exited:
			t.Fatalf("the gateway exited before it was ready (%v); log:\n%s", g.err, g.logTail())
		default:
		}
		resp, err := client.Get(g.base + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Logf("gateway ready in %.1f s", time.Since(began).Seconds())
				return g
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET /ready did not answer 200 within %s (last: %s)", readyTimeout, last)
	return nil
}

// stillRunning fails the test when the gateway exited.
func (g *gatewayProcess) stillRunning(t *testing.T) {
	t.Helper()
	select {
	case <-g.exited:
		t.Errorf("the gateway exited during the load: %v", g.err)
	default:
	}
}
