//go:build unix

package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Timeouts of the MLflow harness: the first install downloads some 90 wheels
// (about 40 s here); a start on a fresh database creates MLflow's tables
// first, and is ready in about 6 s on 2 cores.
const (
	MLflowInstallTimeout = 20 * time.Minute
	MLflowStartTimeout   = 3 * time.Minute
)

// The names StartMLflow gives its store: the database in the MariaDB, and the
// bucket and prefix in the MinIO under which the server keeps artifacts.
const (
	MLflowDatabase        = "mlflow"
	MLflowBucket          = "mlflow"
	MLflowArtifactsPrefix = "artifacts"
)

// MLflow is a real MLflow tracking server and model registry (mlflow 3.17.2
// from .mlflow-venv, scripts/mlflow.sh) on a free loopback port, with a
// MariaDB database as its backend store and a MinIO bucket as its artifact
// store. It serves artifacts itself (--serve-artifacts with
// --artifacts-destination): runs get "mlflow-artifacts:/..." URIs, and a
// client up- and downloads through the server, so a client needs only
// MLFLOW_TRACKING_URI (Env), no S3 credentials; the server alone holds those.
type MLflow struct {
	// TrackingURI is the server's base URL, "http://127.0.0.1:PORT": the REST
	// API under /api/2.0/mlflow/, artifacts under /api/2.0/mlflow-artifacts/.
	TrackingURI string
	// ArtifactsDestination is where the server puts artifacts,
	// "s3://mlflow/artifacts": an artifact logged as mlflow-artifacts:/P is
	// the object artifacts/P of the bucket mlflow.
	ArtifactsDestination string
	// BackendStoreURI is the MariaDB database's SQLAlchemy URL.
	BackendStoreURI string
	// Log is the file holding the server's output; Python the venv's
	// interpreter, for a client script.
	Log, Python string
	// Started is how long the start took, from the command to /health
	// answering (the schema migrations of a fresh database included).
	Started time.Duration

	client *http.Client
}

// Env is the environment a client process needs, besides its own: the
// tracking URI, and no telemetry (MLflow 3 otherwise reports usage off this
// machine).
func (f *MLflow) Env() []string {
	return []string{
		"MLFLOW_TRACKING_URI=" + f.TrackingURI,
		"MLFLOW_DISABLE_TELEMETRY=true",
		"DO_NOT_TRACK=true",
	}
}

// InstallMLflow installs MLflow (once, pinned; idempotent) with
// scripts/mlflow.sh install and returns the mlflow command's path. A failure
// fails the test: CI runs it.
func InstallMLflow(t testing.TB) string {
	t.Helper()
	return runScript(t, MLflowInstallTimeout, "mlflow.sh", "install")
}

// sitecustomize is loaded by every Python process of the server (its folder is
// on PYTHONPATH): each asks the kernel for SIGKILL when its parent dies.
// `mlflow server` runs uvicorn as a child process, which the parent-death
// signal of the process the test started does not reach; with this, a test
// process that dies takes the whole server with it. Debian's own
// sitecustomize, which it hides, only hooks apport in.
const sitecustomize = `# Written by internal/testenv (mlflow.go): die with the parent process.
import ctypes
import os
import signal

if os.environ.get("TESTENV_DIE_WITH_PARENT") == "1":
    _PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        os._exit(1)
`

// StartMLflow installs (once) and starts MLflow with its backend store in
// the database MLflowDatabase of db and its artifacts under
// s3://MLflowBucket/MLflowArtifactsPrefix of m (the database and the bucket
// are made when missing), waits until /health answers, and stops it at
// cleanup (SIGTERM to its process group), printing its log's tail when the
// test failed. One uvicorn worker; no job runner (MLflow's optional background
// jobs); no telemetry. A picked port that something else took meanwhile makes
// it try new ones (three attempts); any other failure fails the test.
func StartMLflow(t *testing.T, db *MariaDB, m *MinIO) *MLflow {
	t.Helper()
	RealServers(t, "starts the real MLflow server")
	bin := InstallMLflow(t)
	db.Exec(t, "", "CREATE DATABASE IF NOT EXISTS `"+MLflowDatabase+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
	if _, err := m.Do(context.Background(), http.MethodHead, MLflowBucket, "", nil, nil); err != nil {
		m.MakeBucket(t, MLflowBucket)
	}
	dir := t.TempDir()
	site := filepath.Join(dir, "site")
	if err := os.MkdirAll(site, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(site, "sitecustomize.py"), []byte(sitecustomize), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &MLflow{
		ArtifactsDestination: "s3://" + MLflowBucket + "/" + MLflowArtifactsPrefix,
		BackendStoreURI:      db.DSN(MLflowDatabase),
		Log:                  filepath.Join(dir, "log"),
		Python:               filepath.Join(filepath.Dir(bin), "python"),
		client:               &http.Client{Timeout: 60 * time.Second},
	}
	env := os.Environ()
	env = append(env, m.S3Env()...)
	env = append(env, f.Env()[1:]...)
	env = append(env,
		// boto3 (the server's artifact proxy) reaches MinIO here.
		"MLFLOW_S3_ENDPOINT_URL="+m.Endpoint,
		"MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false",
		"PYTHONPATH="+site,
		"TESTENV_DIE_WITH_PARENT=1",
	)
	var p *process
	err := withPortRetry(func(attempt int) error {
		addr := FreeLoopbackAddr(t)
		f.TrackingURI = "http://" + addr
		began := time.Now()
		var err error
		p, err = startProcess("mlflow", bin, []string{"server",
			"--host", "127.0.0.1", "--port", portOf(addr),
			"--backend-store-uri", f.BackendStoreURI,
			"--serve-artifacts", "--artifacts-destination", f.ArtifactsDestination,
			"--workers", "1",
		}, env, dir, f.Log)
		if err != nil {
			return err
		}
		if err := p.waitUntil(MLflowStartTimeout, func() bool {
			resp, err := f.client.Get(f.TrackingURI + "/health")
			if err != nil {
				return false
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}); err != nil {
			return err
		}
		f.Started = time.Since(began)
		t.Logf("mlflow ready in %v (%s; backend %s; artifacts %s on %s)", f.Started.Round(time.Millisecond),
			f.TrackingURI, db.Addr, f.ArtifactsDestination, m.Endpoint)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cleanupServer(t, "mlflow", func() string { return f.Log }, func() error { return p.stop(20 * time.Second) })
	return f
}

// API calls the REST API: method on /api/2.0/PATH ("mlflow/experiments/create"),
// a JSON body (nil for none; a GET's parameters go in path), the answer's
// JSON decoded into out (nil to drop it). A status other than 200 is an error
// carrying MLflow's answer.
func (f *MLflow) API(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, f.TrackingURI+"/api/2.0/"+strings.TrimPrefix(path, "/"), rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("mlflow %s %s: %s: %s", method, path, resp.Status, tail(b, 500))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}
