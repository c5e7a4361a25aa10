package monitoring_test

// The model lifecycle in the compose stack: the `mlops` profile (MinIO, the
// bucket job, MariaDB, mysqld_exporter, MLflow) and docker-compose.mlops.yml,
// which points Triton at the bucket MinIO serves. Loaded with compose-go like
// the rest of the stack; the credentials are checked to be one set, shared by
// every service that needs it, and overridable from the environment.

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

const composeMLOpsFile = "docker-compose.mlops.yml"

// The buckets the stack uses: MLflow's artifacts and the published Triton
// model repository.
const (
	mlflowBucket = "mlflow"
	tritonBucket = "triton-models"
)

// composeMLOpsDefaults are the documented default credentials (README), and
// the variables that change them.
var composeMLOpsDefaults = map[string]string{
	"MINIO_ROOT_USER":          "minioadmin",
	"MINIO_ROOT_PASSWORD":      "minioadmin",
	"MYSQL_ROOT_PASSWORD":      "mlops-root",
	"MLFLOW_DB_PASSWORD":       "mlflow",
	"MYSQLD_EXPORTER_PASSWORD": "exporter",
}

// composeFlag returns the value of --name=value in a command line ("" if absent).
func composeFlag(cmd []string, name string) string {
	for _, arg := range cmd {
		if v, ok := strings.CutPrefix(arg, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// composeBuckets are the buckets the bucket job creates.
func composeBuckets(t *testing.T, p *types.Project) []string {
	t.Helper()
	job := composeService(t, p, "minio-buckets")
	if len(job.Command) < 2 || job.Command[0] != "mb" || !slices.Contains(job.Command, "--ignore-existing") {
		t.Fatalf("minio-buckets: command %q, want mc mb --ignore-existing (idempotent on a restart)", job.Command)
	}
	var buckets []string
	for _, arg := range job.Command[1:] {
		if alias, bucket, ok := strings.Cut(arg, "/"); ok && alias == "local" {
			buckets = append(buckets, bucket)
		}
	}
	return buckets
}

func TestComposeMLOpsProfile(t *testing.T) {
	for _, f := range []string{composeBaseFile, composeMLOpsFile} {
		b, err := os.ReadFile(filepath.Join(repoRoot(t), f))
		if err != nil {
			t.Fatal(err)
		}
		if regexp.MustCompile(`(?m)^version\s*:`).Match(b) {
			t.Errorf("%s has a top-level version key", f)
		}
	}

	// In the default environment, and with every credential changed: each
	// service reads the one value.
	changed := map[string]string{}
	for k := range composeMLOpsDefaults {
		changed[k] = "changed-" + strings.ToLower(k)
	}
	for _, env := range []map[string]string{nil, changed} {
		want := composeMLOpsDefaults
		if env != nil {
			want = changed
		}
		p := composeLoad(t, env, []string{"mlops"}, composeBaseFile)
		minio := composeService(t, p, "minio")
		mysql := composeService(t, p, "mysql")
		exporter := composeService(t, p, "mysqld-exporter")
		mlflow := composeService(t, p, "mlflow")

		// MinIO: the root credentials, and public v2 metrics for Prometheus.
		if got := composeEnvValue(t, minio, "MINIO_ROOT_USER"); got != want["MINIO_ROOT_USER"] {
			t.Errorf("minio MINIO_ROOT_USER=%q, want %q", got, want["MINIO_ROOT_USER"])
		}
		if got := composeEnvValue(t, minio, "MINIO_ROOT_PASSWORD"); got != want["MINIO_ROOT_PASSWORD"] {
			t.Errorf("minio MINIO_ROOT_PASSWORD=%q, want %q", got, want["MINIO_ROOT_PASSWORD"])
		}
		if got := composeEnvValue(t, minio, "MINIO_PROMETHEUS_AUTH_TYPE"); got != "public" {
			t.Errorf("minio MINIO_PROMETHEUS_AUTH_TYPE=%q, want public: Prometheus scrapes without a bearer token", got)
		}
		if addr := composeFlag(minio.Command, "address"); addr != ":9000" || !composePortOf(minio, "9000") {
			t.Errorf("minio serves S3 on %q (ports %+v), want :9000, where Prometheus scrapes it", addr, minio.Ports)
		}

		// The bucket job logs in to the minio service as root.
		buckets := composeBuckets(t, p)
		if !slices.Contains(buckets, mlflowBucket) || !slices.Contains(buckets, tritonBucket) {
			t.Errorf("minio-buckets creates %q, want %s and %s", buckets, mlflowBucket, tritonBucket)
		}
		mcHost, err := url.Parse(composeEnvValue(t, composeService(t, p, "minio-buckets"), "MC_HOST_local"))
		if err != nil {
			t.Fatalf("MC_HOST_local: %v", err)
		}
		pw, _ := mcHost.User.Password()
		if mcHost.Host != "minio:9000" || mcHost.User.Username() != want["MINIO_ROOT_USER"] || pw != want["MINIO_ROOT_PASSWORD"] {
			t.Errorf("minio-buckets reaches %s as %s:%s, want minio:9000 as MinIO's root", mcHost.Host, mcHost.User.Username(), pw)
		}

		// MariaDB: the mlflow database and user, the root password.
		for k, v := range map[string]string{
			"MARIADB_ROOT_PASSWORD": want["MYSQL_ROOT_PASSWORD"],
			"MARIADB_DATABASE":      "mlflow",
			"MARIADB_USER":          "mlflow",
			"MARIADB_PASSWORD":      want["MLFLOW_DB_PASSWORD"],
		} {
			if got := composeEnvValue(t, mysql, k); got != v {
				t.Errorf("mysql %s=%q, want %q", k, got, v)
			}
		}

		// MLflow: its backend store is that database as that user, its
		// artifacts go to the bucket the job creates, through MinIO.
		backend, err := url.Parse(composeFlag(mlflow.Command, "backend-store-uri"))
		if err != nil {
			t.Fatalf("mlflow --backend-store-uri: %v", err)
		}
		dbPassword, _ := backend.User.Password()
		switch {
		case backend.Scheme != "mysql+pymysql":
			t.Errorf("mlflow backend store scheme %q, want mysql+pymysql (the driver deploy/mlflow/Dockerfile installs)", backend.Scheme)
		case backend.Host != "mysql:3306" || backend.Path != "/"+composeEnvValue(t, mysql, "MARIADB_DATABASE"):
			t.Errorf("mlflow backend store %s%s, want the mysql service's database", backend.Host, backend.Path)
		case backend.User.Username() != composeEnvValue(t, mysql, "MARIADB_USER") || dbPassword != composeEnvValue(t, mysql, "MARIADB_PASSWORD"):
			t.Errorf("mlflow connects as %s:%s, want MARIADB_USER and MARIADB_PASSWORD", backend.User.Username(), dbPassword)
		}
		artifacts, err := url.Parse(composeFlag(mlflow.Command, "artifacts-destination"))
		if err != nil || artifacts.Scheme != "s3" || artifacts.Host != mlflowBucket {
			t.Errorf("mlflow --artifacts-destination %q (%v), want s3://%s/...", composeFlag(mlflow.Command, "artifacts-destination"), err, mlflowBucket)
		}
		if got := composeEnvValue(t, mlflow, "MLFLOW_S3_ENDPOINT_URL"); got != "http://minio:9000" {
			t.Errorf("mlflow MLFLOW_S3_ENDPOINT_URL=%q, want http://minio:9000", got)
		}
		if composeEnvValue(t, mlflow, "AWS_ACCESS_KEY_ID") != want["MINIO_ROOT_USER"] || composeEnvValue(t, mlflow, "AWS_SECRET_ACCESS_KEY") != want["MINIO_ROOT_PASSWORD"] {
			t.Errorf("mlflow's S3 credentials are not MinIO's")
		}
		if port := composeFlag(mlflow.Command, "port"); port != "5000" || composeFlag(mlflow.Command, "host") != "0.0.0.0" || !composePortOf(mlflow, port) {
			t.Errorf("mlflow listens on %s:%s, want 0.0.0.0:5000, published", composeFlag(mlflow.Command, "host"), port)
		}
		// MLflow 3.5+ answers only the Host headers it allows: the other
		// containers use the service name, the host localhost.
		hosts := strings.Split(composeFlag(mlflow.Command, "allowed-hosts"), ",")
		for _, h := range []string{"mlflow:5000", "localhost:5000"} {
			if !slices.Contains(hosts, h) {
				t.Errorf("mlflow --allowed-hosts %q lacks %s", hosts, h)
			}
		}

		// The exporter logs in as the user the init script creates, with the
		// password the init script is given.
		if got := composeEnvValue(t, exporter, "MYSQLD_EXPORTER_PASSWORD"); got != want["MYSQLD_EXPORTER_PASSWORD"] {
			t.Errorf("mysqld-exporter MYSQLD_EXPORTER_PASSWORD=%q, want %q", got, want["MYSQLD_EXPORTER_PASSWORD"])
		}
		if got := composeEnvValue(t, mysql, "MYSQLD_EXPORTER_PASSWORD"); got != want["MYSQLD_EXPORTER_PASSWORD"] {
			t.Errorf("mysql MYSQLD_EXPORTER_PASSWORD=%q (for the init script), want %q", got, want["MYSQLD_EXPORTER_PASSWORD"])
		}
		if got := composeFlag(exporter.Command, "mysqld.address"); got != "mysql:3306" {
			t.Errorf("mysqld-exporter --mysqld.address=%q, want mysql:3306", got)
		}
		if got := composeFlag(exporter.Command, "mysqld.username"); got != "exporter" {
			t.Errorf("mysqld-exporter --mysqld.username=%q, want exporter (deploy/mysql/initdb)", got)
		}
		if !composePortOf(exporter, "9104") {
			t.Errorf("mysqld-exporter does not expose 9104, where Prometheus scrapes it")
		}
	}
}

// TestComposeMySQLInitScript reads the script that creates the exporter's
// account: it must use the variable the exporter reads, create the user the
// exporter logs in as, and grant it only what the exporter reads.
func TestComposeMySQLInitScript(t *testing.T) {
	path := filepath.Join(repoRoot(t), "deploy", "mysql", "initdb", "10-exporter-user.sh")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	script := string(b)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("%s is not executable (%v)", path, err)
	}
	for _, want := range []string{
		"$MYSQLD_EXPORTER_PASSWORD", "$MARIADB_ROOT_PASSWORD",
		"CREATE USER IF NOT EXISTS 'exporter'@'%'",
		"GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR, SELECT ON *.* TO 'exporter'@'%'",
		"MAX_USER_CONNECTIONS",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("%s does not contain %q", filepath.Base(path), want)
		}
	}
	for _, never := range []string{"ALL PRIVILEGES", "SUPER", "WITH GRANT OPTION"} {
		if strings.Contains(script, never) {
			t.Errorf("%s grants %s", filepath.Base(path), never)
		}
	}
}

// TestComposeMLflowDockerfile: MLflow's image is a pinned release, and the
// two packages it adds are pinned to exact versions.
func TestComposeMLflowDockerfile(t *testing.T) {
	ins := dockerfileInstructionsAt(t, filepath.Join("deploy", "mlflow", "Dockerfile"))
	args := map[string]string{}
	var from, run []string
	for _, in := range ins {
		switch in.Cmd {
		case "ARG":
			k, v, _ := strings.Cut(in.Args, "=")
			args[k] = v
		case "FROM":
			from = append(from, in.Args)
		case "RUN":
			run = append(run, in.Args)
		}
	}
	if len(from) != 1 {
		t.Fatalf("deploy/mlflow/Dockerfile: %d FROM, want 1", len(from))
	}
	ref := from[0]
	if m := regexp.MustCompile(`^\$\{?(\w+)\}?$`).FindStringSubmatch(ref); m != nil {
		ref = args[m[1]]
	}
	repo, tag, digest := composeImageRef(ref)
	if repo != "ghcr.io/mlflow/mlflow" {
		t.Errorf("FROM %s: want MLflow's image, ghcr.io/mlflow/mlflow", ref)
	}
	if why := composePinnedTag(tag, digest); why != "" {
		t.Errorf("FROM %s is not pinned: %s", ref, why)
	}
	pins := map[string]string{}
	for _, r := range run {
		for _, m := range regexp.MustCompile(`(?i)\b(pymysql|boto3)(==|>=|~=|<|>)?([0-9][^\s]*)?`).FindAllStringSubmatch(r, -1) {
			pins[strings.ToLower(m[1])] = m[2] + m[3]
		}
	}
	for _, pkg := range []string{"pymysql", "boto3"} {
		pin, ok := pins[pkg]
		if !ok {
			t.Errorf("deploy/mlflow/Dockerfile does not install %s", pkg)
		} else if !regexp.MustCompile(`^==\d+(\.\d+)+$`).MatchString(pin) {
			t.Errorf("%s is installed as %q, want an exact ==version", pkg, pin)
		}
	}
}

// TestComposeMLOpsOverride: docker-compose.mlops.yml points Triton at the
// bucket and changes nothing else, over the GPU stack and over the CPU one.
func TestComposeMLOpsOverride(t *testing.T) {
	for _, files := range [][]string{
		{composeBaseFile, composeMLOpsFile},
		{composeBaseFile, composeCPUFile, composeMLOpsFile},
	} {
		t.Run(strings.Join(files, "+"), func(t *testing.T) {
			p := composeLoad(t, nil, composeAllProfiles, files...)
			without := composeLoad(t, nil, composeAllProfiles, files[:len(files)-1]...)
			base := composeService(t, composeStack(t), "triton")
			triton := composeService(t, p, "triton")

			if len(triton.Command) == 0 || triton.Command[0] != "tritonserver" {
				t.Fatalf("triton command %q, want tritonserver with its flags", triton.Command)
			}
			// The repository: the triton-models bucket on the minio service,
			// over plain HTTP on MinIO's S3 port.
			repo := composeFlag(triton.Command, "model-repository")
			rest, ok := strings.CutPrefix(repo, "s3://")
			if !ok {
				t.Fatalf("--model-repository=%s, want an s3:// URL", repo)
			}
			u, err := url.Parse(rest)
			if err != nil || u.Scheme != "http" || u.Hostname() != "minio" || strings.Trim(u.Path, "/") != tritonBucket {
				t.Errorf("--model-repository=%s (%v), want s3://http://minio:<port>/%s", repo, err, tritonBucket)
			} else if !composePortOf(composeService(t, p, "minio"), u.Port()) || composeFlag(composeService(t, p, "minio").Command, "address") != ":"+u.Port() {
				t.Errorf("--model-repository port %s is not MinIO's S3 port", u.Port())
			}
			if buckets := composeBuckets(t, p); !slices.Contains(buckets, tritonBucket) {
				t.Errorf("minio-buckets creates %q, not the repository's bucket %s", buckets, tritonBucket)
			}
			// Polling picks up what is published without a restart.
			if got := composeFlag(triton.Command, "model-control-mode"); got != "poll" {
				t.Errorf("--model-control-mode=%q, want poll", got)
			}
			if got := composeFlag(triton.Command, "repository-poll-secs"); got != "15" {
				t.Errorf("--repository-poll-secs=%q, want 15", got)
			}
			// Every other flag is the base file's.
			baseFlags, flags := composeTritonFlags(base.Command), composeTritonFlags(triton.Command)
			for name, v := range baseFlags {
				if name == "model-repository" {
					continue
				}
				if got, ok := flags[name]; !ok || got != v {
					t.Errorf("tritonserver flag --%s: override has %q, base %q", name, got, v)
				}
			}
			for name := range flags {
				if _, ok := baseFlags[name]; !ok && name != "model-control-mode" && name != "repository-poll-secs" {
					t.Errorf("tritonserver flag --%s is only in the override", name)
				}
			}
			// Triton's S3 client reads MinIO's credentials from AWS_*.
			minio := composeService(t, p, "minio")
			if composeEnvValue(t, triton, "AWS_ACCESS_KEY_ID") != composeEnvValue(t, minio, "MINIO_ROOT_USER") ||
				composeEnvValue(t, triton, "AWS_SECRET_ACCESS_KEY") != composeEnvValue(t, minio, "MINIO_ROOT_PASSWORD") {
				t.Error("triton's AWS_* credentials are not MinIO's")
			}
			if composeEnvValue(t, triton, "AWS_DEFAULT_REGION") == "" {
				t.Error("triton has no AWS_DEFAULT_REGION")
			}
			// It starts once the bucket is there, and still after the model
			// job and Jaeger, as in the base file.
			want := map[string]string{
				"minio":         types.ServiceConditionHealthy,
				"minio-buckets": types.ServiceConditionCompletedSuccessfully,
				"model":         types.ServiceConditionCompletedSuccessfully,
				"jaeger":        types.ServiceConditionStarted,
			}
			if len(triton.DependsOn) != len(want) {
				t.Errorf("triton depends on %v, want %v", triton.DependsOn, want)
			}
			for dep, cond := range want {
				if d, ok := triton.DependsOn[dep]; !ok || d.Condition != cond {
					t.Errorf("triton depends on %s with %q, want %q", dep, d.Condition, cond)
				}
			}
			// The GPU reservation is the file before's (none over the CPU
			// override), and no other service changes.
			if got, want := len(composeGPUDevices(triton)), len(composeGPUDevices(composeService(t, without, "triton"))); got != want {
				t.Errorf("triton reserves %d GPUs, %d without the override", got, want)
			}
			if got, want := composeServiceNames(p.Services), composeServiceNames(without.Services); !slices.Equal(got, want) {
				t.Errorf("services %v, want %v", got, want)
			}
			for name, s := range p.Services {
				if name == "triton" {
					continue
				}
				if !slices.Equal(s.Command, without.Services[name].Command) || len(s.Environment) != len(without.Services[name].Environment) {
					t.Errorf("%s changed by the override", name)
				}
			}
		})
	}
}
