//go:build unix

package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fish-classifier/fish-classifier/internal/tritonci"
)

// Timeouts of the real Triton's harness: the first install downloads about
// 60 MB of wheels; a start loads the model (about 2 s here).
const (
	TritonInstallTimeout = 15 * time.Minute
	TritonStartTimeout   = 3 * time.Minute
)

// Triton is the real NVIDIA Triton Inference Server (2.51, from the
// nvidia-pytriton wheel, on the CPU: triton-ci/), supervised by
// internal/tritonci with its state in a folder of the test's own (so that it
// never meets a server started by hand or by another test). Its ports are
// picked free at the first start and kept: a restart comes back where clients
// expect it.
type Triton struct {
	cfg tritonci.Config
	// RunDir is the server's state: pid, ports, log, the assembled models.
	RunDir                          string
	GRPCAddr, HTTPAddr, MetricsAddr string
}

// InstallTriton installs the real Triton (once, pinned; idempotent) with
// scripts/triton-ci.sh install: a venv, pip and the wheel's layout, which stay
// shell. A failure fails the test: CI runs it.
func InstallTriton(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), TritonInstallTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(RepoRoot(t), "scripts", "triton-ci.sh"), "install")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/triton-ci.sh install: %v\n%s", err, out)
	}
}

// TritonConfig is the supervision's configuration for a test: the
// repository's installation (TRITON_CI_VENV and the other TRITON_CI_*
// settings of the environment apply), state in a temporary folder of the
// test's, a 10 s stop timeout, and the server killed if the test process dies
// before its cleanup.
func TritonConfig(t testing.TB) tritonci.Config {
	t.Helper()
	cfg, err := tritonci.ConfigFromEnv(RepoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RunDir = t.TempDir()
	cfg.GRPCPort, cfg.HTTPPort, cfg.MetricsPort = 0, 0, 0
	cfg.StartTimeout, cfg.StopTimeout = TritonStartTimeout, 10*time.Second
	cfg.DieWithParent = true
	cfg.Logf = t.Logf
	return cfg
}

// StartTriton installs (once) and starts Triton; it is stopped at cleanup, and
// its log's tail printed when the test failed. A failure to install or start
// fails the test.
func StartTriton(t *testing.T) *Triton {
	t.Helper()
	return StartTritonWith(t, nil)
}

// StartTritonWith is StartTriton with TritonConfig changed by configure first
// (nil changes nothing): extra tritonserver arguments in Args, such as
// TritonTracingArgs. Restarts keep the change.
func StartTritonWith(t *testing.T, configure func(*tritonci.Config)) *Triton {
	t.Helper()
	RealServers(t, "starts the real Triton")
	InstallTriton(t)
	tr := &Triton{cfg: TritonConfig(t)}
	if configure != nil {
		configure(&tr.cfg)
	}
	tr.RunDir = tr.cfg.RunDir
	s, err := tritonci.Start(context.Background(), tr.cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr.GRPCAddr, tr.HTTPAddr, tr.MetricsAddr = s.GRPCAddr(), s.HTTPAddr(), s.MetricsAddr()
	// Restarts come back on the same ports.
	tr.cfg.GRPCPort, tr.cfg.HTTPPort, tr.cfg.MetricsPort = s.GRPCPort, s.HTTPPort, s.MetricsPort
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(tr.RunDir, "log")); err == nil {
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				t.Logf("--- tritonserver log (tail) ---\n%s", b)
			}
		}
		if err := tritonci.Stop(tr.cfg); err != nil && !errors.Is(err, tritonci.ErrNotRunning) {
			t.Errorf("stopping Triton: %v", err)
		}
	})
	return tr
}

// Kill ends the server and its Python stub at once (SIGKILL to the process
// group), like a crash, and waits until gRPC refuses connections.
func (tr *Triton) Kill(t *testing.T) {
	t.Helper()
	if err := tritonci.Kill(tr.cfg); err != nil {
		t.Fatal(err)
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

// Restart starts the server again on the same ports, as a new process (the
// stop first ends a running one, or cleans up after a killed one).
func (tr *Triton) Restart(t *testing.T) {
	t.Helper()
	if err := tritonci.Stop(tr.cfg); err != nil && !errors.Is(err, tritonci.ErrNotRunning) {
		t.Fatal(err)
	}
	if _, err := tritonci.Start(context.Background(), tr.cfg); err != nil {
		t.Fatal(err)
	}
}

// TritonTracingArgs are the tritonserver arguments that export OpenTelemetry
// traces to the OTLP/HTTP endpoint ("http://127.0.0.1:PORT", Jaeger's
// OTLPHTTPEndpoint) of only the inference requests that carry a trace context
// (a W3C traceparent in a ModelInfer's gRPC metadata), each as three spans:
// InferRequest, under it the model's span (named after the model), under that
// compute. Checked on Triton 2.51 by internal/tritonci's
// TestRealTritonTracesIntoJaeger; docs/tracing.md#tritons-spans sets out what
// each setting does.
func TritonTracingArgs(otlpHTTPEndpoint string) []string {
	return []string{
		// OpenTelemetry's spans rather than Triton's own trace file.
		"--trace-config=mode=opentelemetry",
		// Without TIMESTAMPS (the default level is OFF) nothing is traced, not
		// even a request with a context.
		"--trace-config=level=TIMESTAMPS",
		// No request without a context is sampled; one with a context always
		// is, whatever the rate and its sampled flag.
		"--trace-config=rate=0",
		// No limit on the number of traced requests (the default, said).
		"--trace-config=count=-1",
		// OTLP/HTTP with a JSON body; the setting is the full URL.
		"--trace-config=opentelemetry,url=" + strings.TrimSuffix(otlpHTTPEndpoint, "/") + "/v1/traces",
		// The resource's service.name (default "triton-inference-server").
		"--trace-config=opentelemetry,resource=service.name=triton",
		// Its batch span processor exports every 5 s by default: every 200 ms
		// keeps the tests short.
		"--trace-config=opentelemetry,bsp_schedule_delay=200",
	}
}

// UploadTritonRepository uploads the CI model repository (what
// tritonci.Start assembles and serves: triton-ci's config.pbtxt and
// 1/model.py, triton-models' labels.txt and 1/model.onnx) into bucket under
// prefix, and returns the --model-repository URL with which Triton reads it
// (MinIO.TritonRepositoryURL).
func (m *MinIO) UploadTritonRepository(t testing.TB, bucket, prefix string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "models")
	if err := tritonci.AssembleRepository(RepoRoot(t), dir); err != nil {
		t.Fatal(err)
	}
	m.UploadDir(t, dir, bucket, prefix)
	return m.TritonRepositoryURL(bucket, prefix)
}

// TritonOnS3 is a StartTritonWith configuration that serves the model
// repository at repoURL ("s3://http://127.0.0.1:PORT/BUCKET/PREFIX", from
// UploadTritonRepository) of the MinIO m instead of an assembled local one,
// with m's credentials in Triton's environment (MinIO.S3Env), under the model
// control mode mode ("explicit": the model is loaded at start and then on a
// load call; "poll": every pollSecs seconds Triton rescans the bucket and
// loads what changed).
func TritonOnS3(m *MinIO, repoURL, mode string, pollSecs int) func(*tritonci.Config) {
	return func(c *tritonci.Config) {
		c.ModelRepository = repoURL
		c.ModelControlMode = mode
		c.Env = append(c.Env, m.S3Env()...)
		if mode == "poll" {
			c.Args = append(c.Args, fmt.Sprintf("--repository-poll-secs=%d", pollSecs))
		}
	}
}

// PID is the running server's process id (read from its run folder), which
// stays the same while the server serves without a restart.
func (tr *Triton) PID(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tr.RunDir, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	return pid
}
