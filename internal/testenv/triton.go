//go:build unix

package testenv

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Timeouts of the real Triton's harness: the first install downloads about
// 60 MB of wheels; a start loads the model (about 2 s here).
const (
	TritonInstallTimeout = 15 * time.Minute
	TritonStartTimeout   = 3 * time.Minute
)

// Triton is the real NVIDIA Triton Inference Server (2.51, from the
// nvidia-pytriton wheel, on the CPU: scripts/triton-ci.sh and triton-ci/) run
// with its state in a folder of the test's own (so that it never meets a
// server started by hand or by another test), on fixed loopback ports so that
// a restart comes back where clients expect it.
type Triton struct {
	script string
	env    []string
	// RunDir is the harness's state: pid, ports, log, the assembled models.
	RunDir                          string
	GRPCAddr, HTTPAddr, MetricsAddr string
}

// StartTriton installs (once, pinned; idempotent) and starts Triton; it is
// stopped at cleanup, and its log's tail printed when the test failed. A
// failure to install or start fails the test: CI runs it.
func StartTriton(t *testing.T) *Triton {
	t.Helper()
	RealServers(t, "starts the real Triton")
	tr := &Triton{script: filepath.Join(RepoRoot(t), "scripts", "triton-ci.sh"), RunDir: t.TempDir()}
	tr.run(t, TritonInstallTimeout, "install")
	ports := make([]string, 3)
	for i := range ports {
		_, port, _ := net.SplitHostPort(FreeLoopbackAddr(t))
		ports[i] = port
	}
	tr.GRPCAddr, tr.HTTPAddr, tr.MetricsAddr = "127.0.0.1:"+ports[0], "127.0.0.1:"+ports[1], "127.0.0.1:"+ports[2]
	tr.env = append(os.Environ(),
		"TRITON_CI_RUN_DIR="+tr.RunDir,
		"TRITON_CI_GRPC_PORT="+ports[0], "TRITON_CI_HTTP_PORT="+ports[1], "TRITON_CI_METRICS_PORT="+ports[2],
		"TRITON_CI_STOP_TIMEOUT=10")
	tr.run(t, TritonStartTimeout, "start")
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(tr.RunDir, "log")); err == nil {
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				t.Logf("--- tritonserver log (tail) ---\n%s", b)
			}
		}
		tr.run(t, time.Minute, "stop")
	})
	return tr
}

func (tr *Triton) run(t *testing.T, timeout time.Duration, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, tr.script, args...)
	cmd.Env = tr.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/triton-ci.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Kill ends the server and its Python stub at once (SIGKILL to the process
// group the harness started), like a crash, and waits until gRPC refuses.
func (tr *Triton) Kill(t *testing.T) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(tr.RunDir, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill Triton's process group %d: %v", pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", tr.GRPCAddr, time.Second)
		if err != nil {
			return
		}
		_ = c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("Triton's gRPC port %s still accepts connections 30s after SIGKILL", tr.GRPCAddr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Restart starts the server again on the same ports, as a new process (stop
// first ends a running one, or clears the state a killed one left).
func (tr *Triton) Restart(t *testing.T) {
	t.Helper()
	tr.run(t, time.Minute, "stop")
	tr.run(t, TritonStartTimeout, "start")
}
