package monitoring_test

// The model's lifecycle on real servers: MLflow (tracking and registry) on
// MariaDB and MinIO, `make model` logging and registering, `make
// publish-model` writing a registered version into a Triton model repository
// on MinIO, the real Triton serving it from s3:// and picking a new version up
// by polling, the gateway reporting the MLflow run and version in service; and
// the real Prometheus scraping MinIO and mysqld_exporter for the MinIO and
// MySQL dashboards and the MySQLDown alert.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/fish-classifier/fish-classifier/internal/poll"
	"github.com/fish-classifier/fish-classifier/internal/testenv"
)

// The registered model and the bucket the published repository lives in.
const (
	registeredModel = "fish_classifier"
	modelsBucket    = "triton-models"
)

func TestModelLifecycle(t *testing.T) {
	// Its servers are its own, on free ports; most of its time is waiting
	// (MySQLDown's minute), which the stack's test spends beside it.
	t.Parallel()
	prometheusBin := requireBinary(t, "prometheus")
	minio := testenv.StartMinIO(t)
	minio.MakeBucket(t, modelsBucket)
	db := testenv.StartMariaDB(t)
	exporter := testenv.StartMySQLdExporter(t, db)
	mlflow := testenv.StartMLflow(t, db, minio)
	t.Logf("MLflow ready in %v", mlflow.Started.Round(time.Millisecond))
	// What a user exports before the two make targets.
	env := append(slices.Clone(minio.S3Env()),
		"MLFLOW_TRACKING_URI="+mlflow.TrackingURI,
		"AWS_ENDPOINT_URL="+minio.Endpoint,
		"PUBLISH_REPOSITORY=s3://"+modelsBucket)

	var v1, v2 registered
	t.Run("make model logs a run and registers version 1, once", func(t *testing.T) {
		v1 = runMake[registered](t, env, "model")
		if v1.Version != 1 || len(v1.RunID) != 32 {
			t.Fatalf("make model registered %+v, want version 1 with a run id", v1)
		}
		checkRun(t, mlflow.TrackingURI, v1)
		// The same weights again: nothing new in the registry.
		if again := runMake[registered](t, env, "model"); again != v1 {
			t.Errorf("a second make model answered %+v, want the registered %+v", again, v1)
		}
		if n := len(modelVersions(t, mlflow.TrackingURI)); n != 1 {
			t.Errorf("%d registered versions after two builds of the same weights, want 1", n)
		}
	})

	t.Run("make publish-model writes version 1 into the bucket", func(t *testing.T) {
		p := runMake[registered](t, env, "publish-model", "LAYOUT=ci")
		if p.RunID != v1.RunID || p.Version != 1 {
			t.Fatalf("published %+v, want %+v", p, v1)
		}
		got := minio.ListObjects(t, modelsBucket, registeredModel+"/")
		for _, want := range []string{"config.pbtxt", "labels.txt", "1/model.onnx", "1/model.py"} {
			if !slices.Contains(got, registeredModel+"/"+want) {
				t.Errorf("bucket lacks %s/%s (holds %v)", registeredModel, want, got)
			}
		}
	})

	triton := testenv.StartTritonWith(t, testenv.TritonOnS3(minio, minio.TritonRepositoryURL(modelsBucket, ""), "poll", 1))
	gw := startStackGateway(t, testenv.BuildGateway(t), map[string]string{
		"BACKEND":                "triton",
		"TRITON_URL":             triton.GRPCAddr,
		"MODEL_REFRESH_INTERVAL": "1s",
		// Labels from Triton's classification extension: the repository
		// served is the bucket's.
		"MODEL_REPOSITORY": t.TempDir(),
	})
	unreachable := testenv.FreeLoopbackAddr(t)
	prom := startPrometheus(t, prometheusBin, map[string]string{
		"fish_api":     gw.addr,
		"triton":       triton.MetricsAddr,
		"minio":        minio.Addr(),
		"minio_bucket": minio.Addr(),
		"mysqld":       exporter.Addr,
		"cadvisor":     unreachable,
		"alertmanager": unreachable,
	}, unreachable)

	t.Run("the gateway serves version 1 from s3:// and names its run", func(t *testing.T) {
		waitModel(t, gw, v1)
		if status, body := gw.post(t, "/predict", "image/jpeg", photo(t, 320, 240, 1)); status != http.StatusOK {
			t.Fatalf("/predict: %d %s", status, body)
		}
	})

	t.Run("a newly registered and published version replaces it without a restart", func(t *testing.T) {
		pid := triton.PID(t)
		v2 = runMake[registered](t, env, "model-log")
		if v2.Version != 2 || v2.RunID == v1.RunID {
			t.Fatalf("make model-log registered %+v, want version 2 from a new run", v2)
		}
		if p := runMake[registered](t, env, "publish-model", "LAYOUT=ci"); p != v2 {
			t.Fatalf("published %+v, want the newest, %+v", p, v2)
		}
		waitModel(t, gw, v2)
		if triton.PID(t) != pid {
			t.Error("Triton restarted; it should have polled the new version in")
		}
		if status, body := gw.post(t, "/predict", "image/jpeg", photo(t, 320, 240, 2)); status != http.StatusOK {
			t.Fatalf("/predict on version 2: %d %s", status, body)
		}
		query := fmt.Sprintf(`model_info{mlflow_run_id=%q, mlflow_model_version="2", version="2"}`, v2.RunID)
		poll.Until(t, 30*time.Second, 500*time.Millisecond, "model_info of version 2 in Prometheus", func() bool {
			return queryCount(t, prom, query) == 1 && queryCount(t, prom, `model_info`) == 1
		})
	})

	// The MySQL dashboard while MariaDB is up; then MariaDB stops, and the
	// minute MySQLDown waits is the minute MinIO's scanner takes to count
	// the buckets' objects for the MinIO dashboard.
	t.Run("every query of the MySQL dashboard returns data", func(t *testing.T) {
		var queries []stackQuery
		for _, q := range dashboardFileQueries(t, "mysql-dashboard.json") {
			// A standalone MariaDB has no replication to lag.
			if !strings.Contains(q.source, `"Replication Lag"`) {
				queries = append(queries, q)
			}
		}
		if len(queries) < 12 {
			t.Fatalf("only %d queries in the MySQL dashboard", len(queries))
		}
		checkQueriesReturnData(t, prom, queries)
	})

	t.Run("MySQLDown fires when MariaDB stops", func(t *testing.T) {
		const alert = "MySQLDown"
		if n := firingAlerts(t, prom, alert); n != 0 {
			t.Fatalf("%s firing with MariaDB up", alert)
		}
		db.Stop(t)
		stopped := time.Now()
		// The rule's for: 1m, then an evaluation.
		poll.Until(t, 3*time.Minute, time.Second, alert+" firing", func() bool { return firingAlerts(t, prom, alert) > 0 })
		t.Logf("%s fired %.0fs after MariaDB stopped", alert, time.Since(stopped).Seconds())
	})

	t.Run("every query of the MinIO dashboard returns data", func(t *testing.T) {
		// The errors panel counts failed S3 calls: one, a read of a missing
		// object.
		if _, err := minio.Do(context.Background(), http.MethodGet, modelsBucket, "no-such-object", nil, nil); err == nil {
			t.Fatal("reading a missing object succeeded")
		}
		queries := dashboardFileQueries(t, "minio-dashboard.json")
		if len(queries) < 15 {
			t.Fatalf("only %d queries in the MinIO dashboard", len(queries))
		}
		checkQueriesReturnData(t, prom, queries)
	})
}

// registered is what mlflow_model.py prints of a registered or published
// version.
type registered struct {
	RunID   string `json:"run_id"`
	Name    string `json:"name"`
	Version int    `json:"version"`
}

// runMake runs make target in the repository with env added to the test's
// environment, and decodes the last line it printed on stdout.
func runMake[T any](t *testing.T, env []string, target string, args ...string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", append([]string{"-s", "--no-print-directory", target}, args...)...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("make %s: %v\n%s\n%s", target, err, out, stderr.String())
	}
	t.Logf("make %s %s in %v:\n%s", target, strings.Join(args, " "), time.Since(start).Round(100*time.Millisecond), strings.TrimSpace(stderr.String()))
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var v T
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &v); err != nil {
		t.Fatalf("make %s printed %q: %v", target, out, err)
	}
	return v
}

// mlflowGet GETs an MLflow REST path and decodes the answer.
func mlflowGet(t *testing.T, base, path string, query url.Values, v any) {
	t.Helper()
	resp, err := http.Get(base + "/api/2.0/mlflow/" + path + "?" + query.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("MLflow %s: %d %s", path, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("MLflow %s: %v: %s", path, err, body)
	}
}

// checkRun holds the run behind a registered version to what make model
// logs: its parameters, metrics and the repository files as artifacts.
func checkRun(t *testing.T, base string, v registered) {
	t.Helper()
	var run struct {
		Run struct {
			Data struct {
				Params  []struct{ Key, Value string } `json:"params"`
				Metrics []struct {
					Key   string  `json:"key"`
					Value float64 `json:"value"`
				} `json:"metrics"`
			} `json:"data"`
		} `json:"run"`
	}
	mlflowGet(t, base, "runs/get", url.Values{"run_id": {v.RunID}}, &run)
	params := map[string]string{}
	for _, p := range run.Run.Data.Params {
		params[p.Key] = p.Value
	}
	config, err := os.ReadFile(filepath.Join(repoRoot(t), "triton-models", registeredModel, "config.pbtxt"))
	if err != nil {
		t.Fatal(err)
	}
	if sum := params["weights_sha256"]; len(sum) != 64 || !strings.Contains(string(config), sum) {
		t.Errorf("parameter weights_sha256 %q is not config.pbtxt's model_sha256", sum)
	}
	for _, k := range []string{"source", "head", "preprocess_resize", "preprocess_mean", "output_kind"} {
		if params[k] == "" {
			t.Errorf("parameter %s missing (parameters %v)", k, params)
		}
	}
	metrics := map[string]float64{}
	for _, m := range run.Run.Data.Metrics {
		metrics[m.Key] = m.Value
	}
	if e, ok := metrics["numerics_max_abs_error"]; !ok || e > 1e-4 {
		t.Errorf("metric numerics_max_abs_error %v (logged %v), want at most 1e-4", e, ok)
	}
	if a := metrics["check_photos_top1_agreement"]; a != 1 {
		t.Errorf("metric check_photos_top1_agreement %v, want 1", a)
	}
	var files struct {
		Files []struct {
			Path  string `json:"path"`
			IsDir bool   `json:"is_dir"`
		} `json:"files"`
	}
	mlflowGet(t, base, "artifacts/list", url.Values{"run_id": {v.RunID}, "path": {"triton"}}, &files)
	var paths []string
	for _, f := range files.Files {
		paths = append(paths, f.Path)
	}
	for _, want := range []string{"triton/config.pbtxt", "triton/labels.txt", "triton/1"} {
		if !slices.Contains(paths, want) {
			t.Errorf("artifacts %v lack %s", paths, want)
		}
	}
	var mv struct {
		ModelVersion struct {
			RunID   string `json:"run_id"`
			Version string `json:"version"`
		} `json:"model_version"`
	}
	mlflowGet(t, base, "model-versions/get", url.Values{"name": {registeredModel}, "version": {fmt.Sprint(v.Version)}}, &mv)
	if mv.ModelVersion.RunID != v.RunID {
		t.Errorf("registered version %d names run %q, want %q", v.Version, mv.ModelVersion.RunID, v.RunID)
	}
}

// modelVersions lists the registered versions of the model.
func modelVersions(t *testing.T, base string) []string {
	t.Helper()
	var res struct {
		ModelVersions []struct {
			Version string `json:"version"`
		} `json:"model_versions"`
	}
	mlflowGet(t, base, "model-versions/search", url.Values{"filter": {fmt.Sprintf("name = '%s'", registeredModel)}}, &res)
	var out []string
	for _, v := range res.ModelVersions {
		out = append(out, v.Version)
	}
	return out
}

// waitModel waits until the gateway's GET /model serves the registered
// version v: Triton's version number and the MLflow provenance.
func waitModel(t *testing.T, gw *stackGateway, v registered) {
	t.Helper()
	var last string
	ok := false
	defer func() {
		if !ok {
			t.Logf("last GET /model: %s", last)
		}
	}()
	poll.Until(t, 60*time.Second, 250*time.Millisecond, fmt.Sprintf("GET /model serving MLflow version %d", v.Version), func() bool {
		status, body := gw.get(t, "/model")
		last = string(body)
		var m struct {
			Version    string `json:"version"`
			Provenance struct {
				RunID   string `json:"mlflow_run_id"`
				Version string `json:"mlflow_model_version"`
			} `json:"provenance"`
		}
		if status != http.StatusOK || json.Unmarshal(body, &m) != nil {
			return false
		}
		return m.Version == fmt.Sprint(v.Version) && m.Provenance.RunID == v.RunID && m.Provenance.Version == fmt.Sprint(v.Version)
	})
	ok = true
}

// queryCount is the number of series query returns now (0 on an error).
func queryCount(t *testing.T, api promv1.API, query string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, _, _, err := api.Query(ctx, query, time.Now())
	if err != nil {
		return 0
	}
	return resultLen(v)
}
