//go:build unix

package testenv

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMLflowTracksAndStores checks the MLflow harness on the real servers:
// an experiment, a run with a parameter and a registered model version made
// over the REST API read back the same; an artifact uploaded through the
// server's proxy lands in the MinIO bucket; and the Python client, given only
// Env (no S3 credentials), logs a run and an artifact that land there too.
func TestMLflowTracksAndStores(t *testing.T) {
	db := StartMariaDB(t)
	m := StartMinIO(t)
	f := StartMLflow(t, db, m)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	must(f.API(ctx, http.MethodPost, "mlflow/experiments/create", map[string]string{"name": "fish"}, &exp))
	var run struct {
		Run struct {
			Info struct {
				RunID       string `json:"run_id"`
				ArtifactURI string `json:"artifact_uri"`
			} `json:"info"`
			Data struct {
				Params []struct{ Key, Value string } `json:"params"`
			} `json:"data"`
		} `json:"run"`
	}
	must(f.API(ctx, http.MethodPost, "mlflow/runs/create", map[string]any{"experiment_id": exp.ExperimentID}, &run))
	id, uri := run.Run.Info.RunID, run.Run.Info.ArtifactURI
	must(f.API(ctx, http.MethodPost, "mlflow/runs/log-parameter", map[string]string{"run_id": id, "key": "classes", "value": "17"}, nil))
	must(f.API(ctx, http.MethodGet, "mlflow/runs/get?run_id="+id, nil, &run))
	if p := run.Run.Data.Params; len(p) != 1 || p[0].Key != "classes" || p[0].Value != "17" {
		t.Errorf("run %s read back with params %+v, want classes=17", id, p)
	}
	want := "mlflow-artifacts:/" + exp.ExperimentID + "/" + id + "/artifacts"
	if uri != want {
		t.Fatalf("artifact URI %q, want %q (artifacts served by the server)", uri, want)
	}
	t.Logf("experiment %s, run %s, artifacts at %s; the database holds %s", exp.ExperimentID, id, uri,
		db.Query(t, MLflowDatabase, "SELECT COUNT(*) FROM runs")[0][0]+" run(s)")

	// An artifact through the proxy: PUT /api/2.0/mlflow-artifacts/artifacts/PATH.
	rel := strings.TrimPrefix(uri, "mlflow-artifacts:/") + "/labels.txt"
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, f.TrackingURI+"/api/2.0/mlflow-artifacts/artifacts/"+rel, strings.NewReader("Salmo salar\n"))
	must(err)
	resp, err := http.DefaultClient.Do(req)
	must(err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("artifact upload: %s", resp.Status)
	}
	if got := string(m.GetObject(t, MLflowBucket, MLflowArtifactsPrefix+"/"+rel)); got != "Salmo salar\n" {
		t.Errorf("the artifact in MinIO holds %q", got)
	}

	var rm struct {
		ModelVersion struct {
			Version string `json:"version"`
			Source  string `json:"source"`
		} `json:"model_version"`
	}
	must(f.API(ctx, http.MethodPost, "mlflow/registered-models/create", map[string]string{"name": "fish_classifier"}, nil))
	must(f.API(ctx, http.MethodPost, "mlflow/model-versions/create", map[string]string{"name": "fish_classifier", "source": uri, "run_id": id}, &rm))
	if rm.ModelVersion.Version != "1" {
		t.Errorf("first model version %q, want 1", rm.ModelVersion.Version)
	}
	must(f.API(ctx, http.MethodGet, "mlflow/model-versions/get?name=fish_classifier&version=1", nil, &rm))
	if rm.ModelVersion.Source != uri {
		t.Errorf("model version 1's source %q, want %q", rm.ModelVersion.Source, uri)
	}

	// The Python client with Env only: none of the server's S3 settings.
	script := `
import mlflow
mlflow.set_experiment("client")
with mlflow.start_run() as run:
    mlflow.log_param("source", "python")
    mlflow.log_text("hello from the client\n", "notes/hello.txt")
    print("RESULT", run.info.run_id, run.info.artifact_uri)
`
	cmd := exec.CommandContext(ctx, f.Python, "-c", script)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "MLFLOW_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, f.Env()...)
	began := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the Python client: %v\n%s", err, out)
	}
	var runID, clientURI string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "RESULT" {
			runID, clientURI = f[1], f[2]
		}
	}
	if !strings.HasPrefix(clientURI, "mlflow-artifacts:/") {
		t.Fatalf("the Python client's run has artifact URI %q, want mlflow-artifacts:/...; it printed:\n%s", clientURI, out)
	}
	t.Logf("python client run %s in %v, artifacts at %s", runID, time.Since(began).Round(time.Millisecond), clientURI)
	key := MLflowArtifactsPrefix + "/" + strings.TrimPrefix(clientURI, "mlflow-artifacts:/") + "/notes/hello.txt"
	if got := string(m.GetObject(t, MLflowBucket, key)); got != "hello from the client\n" {
		t.Errorf("the client's artifact in MinIO holds %q", got)
	}
}
