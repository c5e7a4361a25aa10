//go:build linux

package tritonci_test

// The real Triton serving its model repository from an S3 bucket of the real
// MinIO (--model-repository=s3://http://127.0.0.1:PORT/BUCKET/PREFIX): the
// Python-backend model loads from it and answers, and a version 2 uploaded
// later, with a changed config.pbtxt, is served without a restart, both after
// a load call (explicit model control) and by polling. docs/mlops.md's
// "Triton on S3 (what was checked)" sets out the facts these tests hold.

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fish-classifier/fish-classifier/gateway/kserve"
	"github.com/fish-classifier/fish-classifier/internal/poll"
	"github.com/fish-classifier/fish-classifier/internal/testenv"
	"github.com/fish-classifier/fish-classifier/internal/tritonci"
)

const (
	s3Bucket = "triton"
	s3Prefix = "repo"
	// The configuration parameter that version 2's config.pbtxt changes.
	changedParam = "model_license"
)

// s3Triton is a Triton on a bucket of a MinIO, with a gRPC client.
type s3Triton struct {
	minio  *testenv.MinIO
	triton *testenv.Triton
	client kserve.GRPCInferenceServiceClient
}

func startS3Triton(t *testing.T, mode string, pollSecs int) *s3Triton {
	t.Helper()
	m := testenv.StartMinIO(t)
	m.MakeBucket(t, s3Bucket)
	url := m.UploadTritonRepository(t, s3Bucket, s3Prefix)
	if want := "s3://" + m.Endpoint + "/" + s3Bucket + "/" + s3Prefix; url != want {
		t.Fatalf("repository URL %q, want %q", url, want)
	}
	tr := testenv.StartTritonWith(t, testenv.TritonOnS3(m, url, mode, pollSecs))
	conn, err := grpc.NewClient(tr.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &s3Triton{minio: m, triton: tr, client: kserve.NewGRPCInferenceServiceClient(conn)}
}

// served is what Triton serves of the model now: its versions (ModelMetadata)
// and the changed parameter of its configuration (ModelConfig).
func (s *s3Triton) served(t *testing.T) (versions []string, param string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	meta, err := s.client.ModelMetadata(ctx, &kserve.ModelMetadataRequest{Name: tritonci.Model})
	if err != nil {
		return nil, "", err
	}
	cfg, err := s.client.ModelConfig(ctx, &kserve.ModelConfigRequest{Name: tritonci.Model})
	if err != nil {
		return nil, "", err
	}
	return meta.GetVersions(), cfg.GetConfig().GetParameters()[changedParam].GetStringValue(), nil
}

// infer runs one zero image through the given version ("" for the one served)
// and checks the 17 logits come back.
func (s *s3Triton) infer(t *testing.T, version string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := s.client.ModelInfer(ctx, &kserve.ModelInferRequest{
		ModelName: tritonci.Model, ModelVersion: version,
		Inputs: []*kserve.ModelInferRequest_InferInputTensor{
			{Name: "input", Datatype: "FP32", Shape: []int64{1, 3, 224, 224}},
		},
		RawInputContents: [][]byte{make([]byte, 4*3*224*224)},
	})
	if err != nil {
		t.Fatalf("ModelInfer (version %q): %v", version, err)
	}
	if len(resp.GetRawOutputContents()) != 1 || len(resp.GetRawOutputContents()[0]) != 4*17 {
		t.Fatalf("ModelInfer (version %q): outputs %d, want one of 17 FP32 logits", version, len(resp.GetRawOutputContents()))
	}
	if resp.GetModelVersion() != version && version != "" {
		t.Errorf("ModelInfer answered from version %q, want %q", resp.GetModelVersion(), version)
	}
}

// uploadVersion uploads version v of the model (model.py and model.onnx, as
// version 1's) and then a config.pbtxt whose changedParam is value.
func (s *s3Triton) uploadVersion(t *testing.T, v, value string) {
	t.Helper()
	root := testenv.RepoRoot(t)
	base := s3Prefix + "/" + tritonci.Model + "/"
	for _, f := range [][2]string{
		{filepath.Join(root, "triton-ci", "models", tritonci.Model, "1", "model.py"), v + "/model.py"},
		{filepath.Join(root, "triton-models", tritonci.Model, "1", "model.onnx"), v + "/model.onnx"},
	} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		s.minio.PutObject(t, s3Bucket, base+f[1], b)
	}
	s.minio.PutObject(t, s3Bucket, base+"config.pbtxt", changedConfig(t, value))
}

// changedConfig is the CI config.pbtxt with changedParam's value replaced.
func changedConfig(t *testing.T, value string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "triton-ci", "models", tritonci.Model, "config.pbtxt"))
	if err != nil {
		t.Fatal(err)
	}
	old := []byte(`value: { string_value: "Apache-2.0" }`)
	if bytes.Count(b, old) != 1 {
		t.Fatalf("config.pbtxt has %d lines %s, want one (the %s parameter)", bytes.Count(b, old), old, changedParam)
	}
	return bytes.Replace(b, old, []byte(`value: { string_value: "`+value+`" }`), 1)
}

func (s *s3Triton) waitServed(t *testing.T, limit time.Duration, versions []string, param string) time.Duration {
	t.Helper()
	var got []string
	var gotParam string
	var err error
	defer func() {
		if t.Failed() {
			t.Logf("last seen: versions %q, %s %q, error %v", got, changedParam, gotParam, err)
		}
	}()
	return poll.Until(t, limit, 100*time.Millisecond, "Triton serving versions "+param, func() bool {
		got, gotParam, err = s.served(t)
		return err == nil && slices.Equal(got, versions) && gotParam == param
	})
}

// TestRealTritonS3ExplicitLoad: version 1 is served from the bucket (the
// Python backend's model.py and model.onnx, read from S3, answer); version 2
// and a changed config.pbtxt, uploaded while it serves, change nothing until
// a load call (POST /v2/repository/models/NAME/load), which returns once
// version 2 is served with the new configuration and version 1 no more, by
// the same process.
func TestRealTritonS3ExplicitLoad(t *testing.T) {
	s := startS3Triton(t, "explicit", 0)
	pid := s.triton.PID(t)
	s.waitServed(t, 10*time.Second, []string{"1"}, "Apache-2.0")
	s.infer(t, "1")

	s.uploadVersion(t, "2", "Apache-2.0 (version 2)")
	time.Sleep(2 * time.Second)
	if v, p, err := s.served(t); err != nil || !slices.Equal(v, []string{"1"}) || p != "Apache-2.0" {
		t.Fatalf("before the load call: versions %q, %s %q, error %v; want version 1 as it was", v, changedParam, p, err)
	}

	// The load call: the repository API over HTTP (the gateway's gRPC stubs
	// leave out the repository service). No keep-alive: an idle connection
	// would hold up Triton's stop.
	began := time.Now()
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Post("http://"+s.triton.HTTPAddr+"/v2/repository/models/"+tritonci.Model+"/load", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("load call: %s %s", resp.Status, body)
	}
	t.Logf("the load call returned after %v", time.Since(began).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if v, p, err := s.served(t); err != nil || !slices.Equal(v, []string{"2"}) || p != "Apache-2.0 (version 2)" {
		t.Fatalf("after the load call: versions %q, %s %q, error %v; want version 2 with the new configuration", v, changedParam, p, err)
	}
	s.infer(t, "2")
	s.infer(t, "")
	if ready, err := s.client.ModelReady(ctx, &kserve.ModelReadyRequest{Name: tritonci.Model, Version: "1"}); err != nil || ready.GetReady() {
		t.Errorf("version 1 ready after the load: %v, %v; want not ready", ready.GetReady(), err)
	}
	if got := s.triton.PID(t); got != pid {
		t.Errorf("tritonserver pid %d, was %d: restarted", got, pid)
	}
}

// TestRealTritonS3Poll: with --model-control-mode=poll Triton finds version 2
// and the changed config.pbtxt by itself within a few poll periods; a
// version uploaded half (model.py without model.onnx) fails to load and the
// served version stays, until the rest arrives.
func TestRealTritonS3Poll(t *testing.T) {
	s := startS3Triton(t, "poll", 1)
	pid := s.triton.PID(t)
	s.waitServed(t, 10*time.Second, []string{"1"}, "Apache-2.0")

	s.uploadVersion(t, "2", "Apache-2.0 (version 2)")
	took := s.waitServed(t, 60*time.Second, []string{"2"}, "Apache-2.0 (version 2)")
	t.Logf("version 2 served %v after its upload (poll every 1 s)", took.Round(time.Millisecond))
	s.infer(t, "2")

	// Half of version 3: model.py fails to load without model.onnx.
	base := s3Prefix + "/" + tritonci.Model + "/3/"
	py, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "triton-ci", "models", tritonci.Model, "1", "model.py"))
	if err != nil {
		t.Fatal(err)
	}
	s.minio.PutObject(t, s3Bucket, base+"model.py", py)
	time.Sleep(4 * time.Second)
	if v, _, err := s.served(t); err != nil || !slices.Equal(v, []string{"2"}) {
		t.Fatalf("with half of version 3 uploaded: versions %q, error %v; want version 2 still", v, err)
	}
	s.infer(t, "")
	onnx, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "triton-models", tritonci.Model, "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	s.minio.PutObject(t, s3Bucket, base+"model.onnx", onnx)
	took = s.waitServed(t, 60*time.Second, []string{"3"}, "Apache-2.0 (version 2)")
	t.Logf("version 3 served %v after its model.onnx arrived", took.Round(time.Millisecond))
	if got := s.triton.PID(t); got != pid {
		t.Errorf("tritonserver pid %d, was %d: restarted", got, pid)
	}
}
