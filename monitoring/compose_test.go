package monitoring_test

// The container stack, checked without Docker: docker-compose.yml (and its CPU
// override merged over it) is loaded by compose-go, the loader Docker Compose
// itself uses, so schema errors, interpolation and `!reset` behave as they will
// for `docker compose up`. The environment is a fixed map, never the caller's.
// The Dockerfile and .dockerignore are checked as text.

import (
	"bufio"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/fish-classifier/fish-classifier/internal/testenv"
)

const (
	composeBaseFile = "docker-compose.yml"
	composeCPUFile  = "docker-compose.cpu.yml"
)

// composeAllServices is every service of the stack, those of every profile
// included.
var composeAllServices = []string{"alertmanager", "cadvisor", "fish_api", "grafana", "jaeger", "k6",
	"minio", "minio-buckets", "mlflow", "model", "mysql", "mysqld-exporter", "prometheus", "triton"}

// composeProfiles are the profiles of docker-compose.yml, and the services
// each one adds; the other services run without a profile.
var composeProfiles = map[string][]string{
	"loadtest": {"k6"},
	"mlops":    {"minio", "minio-buckets", "mlflow", "mysql", "mysqld-exporter"},
}

// composeAllProfiles lists the keys of composeProfiles.
var composeAllProfiles = []string{"loadtest", "mlops"}

// composeOneShots are the services that run to completion: no health check.
var composeOneShots = map[string]bool{"k6": true, "model": true, "minio-buckets": true}

// composeLoad loads the compose files (relative to the repository root) as
// `docker compose -f ... -f ...` would, with env as the whole environment and
// the given profiles active.
func composeLoad(t *testing.T, env map[string]string, profiles []string, files ...string) *types.Project {
	t.Helper()
	root := repoRoot(t)
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = filepath.Join(root, f)
	}
	vars := make([]string, 0, len(env))
	for k, v := range env {
		vars = append(vars, k+"="+v)
	}
	opts, err := cli.NewProjectOptions(paths,
		cli.WithName("fish-classifier"),
		cli.WithWorkingDirectory(root),
		cli.WithEnv(vars),
		cli.WithProfiles(profiles),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := opts.LoadProject(ctx)
	if err != nil {
		t.Fatalf("load %s: %v", strings.Join(files, " + "), err)
	}
	return p
}

// composeStack is the base file with every profile active, in a fixed
// environment.
func composeStack(t *testing.T) *types.Project {
	t.Helper()
	return composeLoad(t, nil, composeAllProfiles, composeBaseFile)
}

func composeService(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("service %s is missing (have %v)", name, composeServiceNames(p.Services))
	}
	return s
}

func composeServiceNames(s types.Services) []string {
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// composeEnvValue is an environment variable of a service after interpolation.
func composeEnvValue(t *testing.T, s types.ServiceConfig, name string) string {
	t.Helper()
	v, ok := s.Environment[name]
	if !ok || v == nil {
		t.Fatalf("%s: environment %s is not set", s.Name, name)
	}
	return *v
}

func TestComposeServices(t *testing.T) {
	// The Compose Specification has no version; Compose warns about the key.
	for _, f := range []string{composeBaseFile, composeCPUFile} {
		b, err := os.ReadFile(filepath.Join(repoRoot(t), f))
		if err != nil {
			t.Fatal(err)
		}
		if regexp.MustCompile(`(?m)^version\s*:`).Match(b) {
			t.Errorf("%s has a top-level version key", f)
		}
	}

	all := composeStack(t)
	if got := composeServiceNames(all.Services); !slices.Equal(got, composeAllServices) {
		t.Errorf("services with every profile: %v, want %v", got, composeAllServices)
	}

	// Without a profile, `docker compose up` starts everything but the
	// profiles' services; each profile adds its own and nothing else.
	profileOf := map[string]string{}
	for profile, services := range composeProfiles {
		for _, s := range services {
			profileOf[s] = profile
		}
	}
	plain := composeLoad(t, nil, nil, composeBaseFile)
	want := slices.DeleteFunc(slices.Clone(composeAllServices), func(s string) bool { return profileOf[s] != "" })
	if got := composeServiceNames(plain.Services); !slices.Equal(got, want) {
		t.Errorf("services without a profile: %v, want %v", got, want)
	}
	for s, profile := range profileOf {
		if _, ok := plain.DisabledServices[s]; !ok {
			t.Errorf("%s should be disabled without --profile %s", s, profile)
		}
	}
	for profile, services := range composeProfiles {
		one := composeLoad(t, nil, []string{profile}, composeBaseFile)
		wantOne := slices.Sorted(slices.Values(append(slices.Clone(want), services...)))
		if got := composeServiceNames(one.Services); !slices.Equal(got, wantOne) {
			t.Errorf("services with --profile %s: %v, want %v", profile, got, wantOne)
		}
	}
	for name, s := range all.Services {
		want := []string(nil)
		if p := profileOf[name]; p != "" {
			want = []string{p}
		}
		if !slices.Equal(s.Profiles, want) {
			t.Errorf("%s: profiles %v, want %v", name, s.Profiles, want)
		}
	}
}

func TestComposePorts(t *testing.T) {
	// host port -> container port, per service; nothing else may be published.
	want := map[string]map[string]uint32{
		"fish_api":     {"8000": 8000},
		"triton":       {"8001": 8001, "8002": 8002, "8010": 8000},
		"prometheus":   {"9090": 9090},
		"alertmanager": {"9093": 9093},
		"grafana":      {"3001": 3000},
		"cadvisor":     {"8081": 8080},
		"jaeger":       {"16686": 16686, "4317": 4317, "4318": 4318},
		"k6":           {},
		"model":        {},
		// The mlops profile: MinIO's S3 API and console, MLflow's UI and
		// API; MariaDB and the exporter stay inside the compose network.
		"minio":           {"9000": 9000, "9001": 9001},
		"minio-buckets":   {},
		"mlflow":          {"5000": 5000},
		"mysql":           {},
		"mysqld-exporter": {},
	}
	for _, files := range [][]string{{composeBaseFile}, {composeBaseFile, composeCPUFile}, {composeBaseFile, composeMLOpsFile}} {
		p := composeLoad(t, nil, composeAllProfiles, files...)
		owner := map[string]string{} // host port -> service
		for _, name := range composeServiceNames(p.Services) {
			s := p.Services[name]
			got := map[string]uint32{}
			for _, port := range s.Ports {
				if port.Published == "" {
					t.Errorf("%v %s: container port %d is published on a random host port", files, name, port.Target)
					continue
				}
				if port.HostIP != "" {
					t.Errorf("%v %s: port %s bound to %s only", files, name, port.Published, port.HostIP)
				}
				got[port.Published] = port.Target
				if other, dup := owner[port.Published]; dup {
					t.Errorf("%v: host port %s is published by both %s and %s", files, port.Published, other, name)
				}
				owner[port.Published] = name
			}
			if w, ok := want[name]; !ok || !mapsEqualPorts(got, w) {
				t.Errorf("%v %s: published %v, want %v", files, name, got, w)
			}
		}
		if owner["8000"] != "fish_api" {
			t.Errorf("%v: host port 8000 belongs to %q, want fish_api alone", files, owner["8000"])
		}
	}
}

func mapsEqualPorts(a, b map[string]uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// composeMount finds the mount of a service at target.
func composeMount(t *testing.T, s types.ServiceConfig, target string) types.ServiceVolumeConfig {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Target == target {
			return v
		}
	}
	t.Fatalf("%s: nothing is mounted at %s", s.Name, target)
	return types.ServiceVolumeConfig{}
}

func TestComposeVolumes(t *testing.T) {
	p := composeStack(t)
	root := repoRoot(t)

	for _, name := range []string{"prometheus_data", "grafana_data", "minio_data", "mysql_data"} {
		if _, ok := p.Volumes[name]; !ok {
			t.Errorf("volume %s is not declared at the top level", name)
		}
	}
	named := []struct{ service, volume, target string }{
		{"prometheus", "prometheus_data", "/prometheus"},
		{"grafana", "grafana_data", "/var/lib/grafana"},
		{"minio", "minio_data", "/data"},
		{"mysql", "mysql_data", "/var/lib/mysql"},
	}
	for _, c := range named {
		m := composeMount(t, composeService(t, p, c.service), c.target)
		if m.Type != types.VolumeTypeVolume || m.Source != c.volume {
			t.Errorf("%s:%s is %s %q, want volume %s", c.service, c.target, m.Type, m.Source, c.volume)
		}
	}
	// Storage paths the services are told to use are the volumes' targets.
	if cmd := composeService(t, p, "prometheus").Command; !slices.Contains(cmd, "--storage.tsdb.path=/prometheus") {
		t.Errorf("prometheus command %v does not store its TSDB in /prometheus", cmd)
	}

	binds := []struct {
		service, target, source string
		dir, readOnly           bool
	}{
		{"prometheus", "/etc/prometheus/prometheus.yml", "monitoring/prometheus.yml", false, true},
		{"prometheus", "/etc/prometheus/prometheus/rules", "monitoring/prometheus/rules", true, true},
		{"alertmanager", "/etc/alertmanager/alertmanager.yml", "monitoring/alertmanager/alertmanager.yml", false, true},
		{"grafana", "/etc/grafana/provisioning", "monitoring/grafana/provisioning", true, true},
		{"triton", "/models", "triton-models", true, true},
		{"fish_api", "/models", "triton-models", true, true},
		{"k6", "/scripts", "loadtest/k6", true, true},
		{"k6", "/results", "loadtest/results", true, false},
		{"mysql", "/docker-entrypoint-initdb.d", "deploy/mysql/initdb", true, true},
	}
	for _, b := range binds {
		m := composeMount(t, composeService(t, p, b.service), b.target)
		if m.Type != types.VolumeTypeBind {
			t.Errorf("%s:%s is a %s mount, want a bind mount of ./%s", b.service, b.target, m.Type, b.source)
			continue
		}
		rel, err := filepath.Rel(root, m.Source)
		if err != nil || filepath.ToSlash(rel) != b.source {
			t.Errorf("%s:%s mounts %s, want ./%s", b.service, b.target, m.Source, b.source)
		}
		if m.ReadOnly != b.readOnly {
			t.Errorf("%s:%s read-only %v, want %v", b.service, b.target, m.ReadOnly, b.readOnly)
		}
		if b.source == "loadtest/results" {
			continue // output, created on first run
		}
		fi, err := os.Stat(m.Source)
		switch {
		case err != nil:
			t.Errorf("%s:%s: the bind source does not exist in the repository: %v", b.service, b.target, err)
		case fi.IsDir() != b.dir:
			t.Errorf("%s:%s: ./%s is a directory: %v, want %v", b.service, b.target, b.source, fi.IsDir(), b.dir)
		}
	}
	// What the bind-mounted directories must hold for their service to start.
	for _, f := range []string{
		"triton-models/fish_classifier/config.pbtxt",
		"loadtest/k6/predict.js",
		"loadtest/k6/predict-batch.js",
		"deploy/mysql/initdb/10-exporter-user.sh",
	} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if matches, _ := filepath.Glob(monitoringPath(t, "prometheus", "rules", "*.yml")); len(matches) == 0 {
		t.Errorf("monitoring/prometheus/rules holds no *.yml for prometheus to load")
	}
}

// composeProbeURLRE finds an http:// URL anywhere in a health check's
// arguments, a Python one-liner's string literal included.
var composeProbeURLRE = regexp.MustCompile(`http://[^\s'"]+`)

// composeProbeURL is the URL an HTTP health check requests.
func composeProbeURL(t *testing.T, s types.ServiceConfig) *url.URL {
	t.Helper()
	for _, arg := range s.HealthCheck.Test {
		if raw := composeProbeURLRE.FindString(arg); raw != "" {
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatalf("%s: health check URL %q: %v", s.Name, raw, err)
			}
			return u
		}
	}
	t.Fatalf("%s: health check %q requests no http:// URL", s.Name, s.HealthCheck.Test)
	return nil
}

func TestComposeHealthchecks(t *testing.T) {
	paths := map[string]string{
		"fish_api":     "/ready",
		"triton":       "/v2/health/ready",
		"prometheus":   "/-/ready",
		"alertmanager": "/-/ready",
		"grafana":      "/api/health",
		"cadvisor":     "/healthz",
		"jaeger":       "/status",
		// The landing page, not /metrics, which would query MariaDB.
		"mysqld-exporter": "/",
		"mlflow":          "/health",
	}
	// The images without an HTTP client are probed by their own tools: mc
	// asks MinIO's readiness endpoint, MariaDB's healthcheck.sh connects and
	// waits for InnoDB.
	commands := map[string][]string{
		"minio": {"CMD", "mc", "ready", "local"},
		"mysql": {"CMD", "healthcheck.sh", "--connect", "--innodb_initialized"},
	}
	for _, files := range [][]string{{composeBaseFile}, {composeBaseFile, composeCPUFile}} {
		p := composeLoad(t, nil, composeAllProfiles, files...)
		for _, name := range composeServiceNames(p.Services) {
			s := p.Services[name]
			if composeOneShots[name] {
				if s.HealthCheck != nil && !s.HealthCheck.Disable {
					t.Errorf("%v %s: a one-shot job needs no health check", files, name)
				}
				continue
			}
			hc := s.HealthCheck
			if hc == nil || hc.Disable || len(hc.Test) < 2 || (hc.Test[0] != "CMD" && hc.Test[0] != "CMD-SHELL") {
				t.Errorf("%v %s: no health check (%+v)", files, name, hc)
				continue
			}
			if hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil {
				t.Errorf("%v %s: health check without interval, timeout or retries: %+v", files, name, hc)
			} else if time.Duration(*hc.Timeout) >= time.Duration(*hc.Interval) {
				t.Errorf("%v %s: health check timeout %v is not below its interval %v", files, name, *hc.Timeout, *hc.Interval)
			}
			if want, ok := commands[name]; ok {
				if !slices.Equal(hc.Test, want) {
					t.Errorf("%v %s: health check %q, want %q", files, name, hc.Test, want)
				}
				continue
			}
			if _, ok := paths[name]; !ok {
				t.Errorf("%v %s: the test does not know what its health check must probe", files, name)
				continue
			}
			u := composeProbeURL(t, s)
			if u.Path != paths[name] {
				t.Errorf("%v %s: health check probes %s, want %s", files, name, u.Path, paths[name])
			}
			// The probe runs inside the container: it must hit a port the
			// service listens on (published, or only exposed), not the host's
			// published one.
			port, _ := strconv.ParseUint(u.Port(), 10, 32)
			listens := slices.ContainsFunc(s.Ports, func(pc types.ServicePortConfig) bool { return pc.Target == uint32(port) }) ||
				slices.Contains(s.Expose, u.Port())
			if !listens {
				t.Errorf("%v %s: health check port %s is none of the container ports %+v (exposed %v)", files, name, u.Port(), s.Ports, s.Expose)
			}
		}
		triton := composeService(t, p, "triton").HealthCheck
		if triton.StartPeriod == nil || time.Duration(*triton.StartPeriod) < time.Minute {
			t.Errorf("%v triton: start_period %v leaves too little time for CUDA init, model load and warm-up", files, triton.StartPeriod)
		}
	}
}

// composeGPUDevices are the GPU device reservations of a service.
func composeGPUDevices(s types.ServiceConfig) []types.DeviceRequest {
	if s.Deploy == nil || s.Deploy.Resources.Reservations == nil {
		return nil
	}
	var gpus []types.DeviceRequest
	for _, d := range s.Deploy.Resources.Reservations.Devices {
		if d.Driver == "nvidia" || slices.Contains(d.Capabilities, "gpu") {
			gpus = append(gpus, d)
		}
	}
	return gpus
}

// composeTritonFlags are the --name=value flags of a tritonserver command line,
// whether given as a list or inside a shell script. --trace-config is given
// once per setting: each is keyed "trace-config SETTING" (the setting being
// what precedes the value's first "="), so that none overwrites another.
func composeTritonFlags(cmd []string) map[string]string {
	flags := map[string]string{}
	re := regexp.MustCompile(`(?:^|\s)--([a-z0-9-]+)=(\S*)`)
	for _, arg := range cmd {
		for _, m := range re.FindAllStringSubmatch(arg, -1) {
			name, value := m[1], m[2]
			if name == "trace-config" {
				setting, v, _ := strings.Cut(value, "=")
				name, value = name+" "+setting, v
			}
			flags[name] = value
		}
	}
	return flags
}

func TestComposeTritonGPUAndCPU(t *testing.T) {
	base := composeService(t, composeStack(t), "triton")
	gpus := composeGPUDevices(base)
	if len(gpus) != 1 || gpus[0].Driver != "nvidia" || !slices.Contains(gpus[0].Capabilities, "gpu") {
		t.Fatalf("triton: GPU reservation %+v, want one device request with driver nvidia and capability gpu", gpus)
	}
	if gpus[0].Count == 0 && len(gpus[0].IDs) == 0 {
		t.Errorf("triton: the GPU reservation names neither a count nor device ids")
	}
	if !slices.Contains(base.Command, "--model-repository=/models") {
		t.Errorf("triton: command %v does not serve /models", base.Command)
	}
	if base.ShmSize < 256<<20 {
		t.Errorf("triton: shm_size %d is below Triton's recommended minimum", base.ShmSize)
	}
	for name, s := range composeStack(t).Services {
		if name != "triton" && len(composeGPUDevices(s)) > 0 {
			t.Errorf("%s reserves a GPU", name)
		}
	}

	cpuProject := composeLoad(t, nil, composeAllProfiles, composeBaseFile, composeCPUFile)
	cpu := composeService(t, cpuProject, "triton")
	if gpus := composeGPUDevices(cpu); len(gpus) > 0 {
		t.Errorf("triton with %s still reserves a GPU: %+v", composeCPUFile, gpus)
	}
	if cpu.Image != base.Image {
		t.Errorf("the CPU override changes the image: %s, base %s", cpu.Image, base.Image)
	}
	script := strings.Join(cpu.Command, "\n")
	if !strings.Contains(script, "s/KIND_GPU/KIND_CPU/") {
		t.Errorf("the CPU override does not rewrite KIND_GPU to KIND_CPU: %q", script)
	}
	if !strings.Contains(script, "exec tritonserver") {
		t.Errorf("the CPU override does not exec tritonserver (signals would not reach it): %q", script)
	}
	// The override repeats the base flags; only these two may differ.
	baseFlags, cpuFlags := composeTritonFlags(base.Command), composeTritonFlags(cpu.Command)
	differ := map[string]string{"model-repository": "/tmp/models", "allow-gpu-metrics": "false"}
	for name, v := range baseFlags {
		want, special := differ[name]
		if !special {
			want = v
		}
		if got, ok := cpuFlags[name]; !ok || got != want {
			t.Errorf("tritonserver flag --%s: CPU override has %q, want %q (base %q)", name, got, want, v)
		}
	}
	for name := range cpuFlags {
		if _, ok := baseFlags[name]; !ok {
			t.Errorf("tritonserver flag --%s is only in the CPU override", name)
		}
	}
	// The repository the override rewrites asks for a GPU today: the rewrite is
	// what makes the CPU variant load it.
	cfg, err := os.ReadFile(filepath.Join(repoRoot(t), "triton-models", "fish_classifier", "config.pbtxt"))
	if err != nil {
		t.Fatal(err)
	}
	if rewritten := strings.ReplaceAll(string(cfg), "KIND_GPU", "KIND_CPU"); !strings.Contains(rewritten, "kind: KIND_CPU") {
		t.Errorf("config.pbtxt after the override's rewrite has no instance_group kind KIND_CPU")
	}
	// Everything else is the base stack.
	if got, want := composeServiceNames(cpuProject.Services), composeAllServices; !slices.Equal(got, want) {
		t.Errorf("services with the CPU override: %v, want %v", got, want)
	}
}

func TestComposeDependsOn(t *testing.T) {
	p := composeStack(t)
	want := map[string]map[string]string{
		"fish_api": {"triton": types.ServiceConditionHealthy, "jaeger": types.ServiceConditionStarted},
		"triton":   {"model": types.ServiceConditionCompletedSuccessfully, "jaeger": types.ServiceConditionStarted},
		"grafana":  {"prometheus": types.ServiceConditionHealthy},
		"k6":       {"fish_api": types.ServiceConditionHealthy},
		// The mlops profile: the buckets once MinIO answers, MLflow once
		// its database and its bucket are there, the exporter once MariaDB is.
		"minio-buckets":   {"minio": types.ServiceConditionHealthy},
		"mysqld-exporter": {"mysql": types.ServiceConditionHealthy},
		"mlflow":          {"mysql": types.ServiceConditionHealthy, "minio-buckets": types.ServiceConditionCompletedSuccessfully},
	}
	for _, name := range composeServiceNames(p.Services) {
		got := map[string]string{}
		for dep, d := range p.Services[name].DependsOn {
			got[dep] = d.Condition
		}
		w := want[name]
		if len(got) != len(w) {
			t.Errorf("%s depends on %v, want %v", name, got, w)
			continue
		}
		for dep, cond := range w {
			if got[dep] != cond {
				t.Errorf("%s depends on %s with condition %q, want %q", name, dep, got[dep], cond)
			}
		}
	}
}

// composeImageRef splits an image reference into repository, tag and digest.
func composeImageRef(ref string) (repo, tag, digest string) {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref, digest = ref[:i], ref[i+1:]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref, tag = ref[:i], ref[i+1:]
	}
	return ref, tag, digest
}

// composePinnedTag reports why tag does not pin an image, or "" when it does:
// a version-like tag (digits and dots, optionally a suffix such as -py3).
func composePinnedTag(tag, digest string) string {
	switch {
	case digest != "":
		return ""
	case tag == "":
		return "no tag (latest)"
	case tag == "latest" || strings.HasPrefix(tag, "latest-") || tag == "stable" || tag == "main" || tag == "master":
		return "floating tag " + tag
	case composeMinIORelease.MatchString(tag):
		// MinIO names its releases by their UTC time.
	case !regexp.MustCompile(`^v?\d+\.\d+(\.\d+)?([-.].+)?$`).MatchString(tag):
		return "tag " + tag + " names no release"
	}
	return ""
}

// composeMinIORelease is a release tag of MinIO's server and client images,
// e.g. RELEASE.2025-09-07T16-13-09Z.
var composeMinIORelease = regexp.MustCompile(`^RELEASE\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$`)

func TestComposeImagesPinned(t *testing.T) {
	for _, files := range [][]string{{composeBaseFile}, {composeBaseFile, composeCPUFile}} {
		p := composeLoad(t, nil, composeAllProfiles, files...)
		for _, name := range composeServiceNames(p.Services) {
			s := p.Services[name]
			if s.Build != nil && name == "mlflow" {
				// Built from deploy/mlflow/Dockerfile, checked by
				// TestComposeMLflowDockerfile.
				if s.Build.Context != filepath.Join(repoRoot(t), "deploy", "mlflow") || filepath.Base(s.Build.Dockerfile) != "Dockerfile" {
					t.Errorf("%v mlflow: builds %s in %s, want deploy/mlflow/Dockerfile", files, s.Build.Dockerfile, s.Build.Context)
				}
				continue
			}
			if s.Build != nil {
				// Built here from the Dockerfile, whose bases are checked below.
				if filepath.Base(s.Build.Dockerfile) != "Dockerfile" || s.Build.Context != repoRoot(t) {
					t.Errorf("%v %s: builds %s in %s, want the repository's Dockerfile", files, name, s.Build.Dockerfile, s.Build.Context)
				}
				continue
			}
			_, tag, digest := composeImageRef(s.Image)
			if why := composePinnedTag(tag, digest); why != "" {
				t.Errorf("%v %s: image %q is not pinned: %s", files, name, s.Image, why)
			}
		}
	}
	if got := composeService(t, composeStack(t), "fish_api").Build; got == nil {
		t.Errorf("fish_api is not built from the Dockerfile")
	}
	// An older Triton for an older driver is one variable away.
	old := composeService(t, composeLoad(t, map[string]string{"TRITON_IMAGE_TAG": "25.01-py3"}, nil, composeBaseFile), "triton")
	if old.Image != "nvcr.io/nvidia/tritonserver:25.01-py3" {
		t.Errorf("TRITON_IMAGE_TAG=25.01-py3 gives image %s", old.Image)
	}
}

func TestComposeGatewayEnvironment(t *testing.T) {
	p := composeStack(t)
	api := composeService(t, p, "fish_api")
	want := map[string]string{
		"BACKEND":          "triton",
		"TRITON_URL":       "triton:8001",
		"FALLBACK":         "onnx",
		"MODEL_NAME":       "fish_classifier",
		"MODEL_REPOSITORY": "/models",
	}
	for k, v := range want {
		if got := composeEnvValue(t, api, k); got != v {
			t.Errorf("fish_api %s=%q, want %q", k, got, v)
		}
	}
	// Every variable given to the gateway is one it reads: a misspelt name
	// would be ignored silently and the default used. The README's
	// configuration table lists exactly the variables the gateway reads
	// (gateway/cmd/gateway's TestREADMEConfigurationTable holds it to that).
	reads := gatewayVariables(t)
	for k := range api.Environment {
		if !reads[k] {
			t.Errorf("fish_api sets %s, which the gateway does not read (not in the README's configuration table)", k)
		}
	}
	// TRITON_URL names the triton service on its gRPC port.
	host, port, _ := strings.Cut(want["TRITON_URL"], ":")
	triton := composeService(t, p, host)
	if !slices.ContainsFunc(triton.Ports, func(pc types.ServicePortConfig) bool { return strconv.Itoa(int(pc.Target)) == port }) {
		t.Errorf("TRITON_URL port %s is not a container port of triton", port)
	}
	if flags := composeTritonFlags(triton.Command); flags["grpc-port"] != port {
		t.Errorf("triton serves gRPC on %q, TRITON_URL says %s", flags["grpc-port"], port)
	}
	// docker compose stop must outlast the gateway's drain (SHUTDOWN_TIMEOUT, 30s).
	if api.StopGracePeriod == nil || time.Duration(*api.StopGracePeriod) <= 30*time.Second {
		t.Errorf("fish_api stop_grace_period %v does not exceed the 30s drain", api.StopGracePeriod)
	}
	for _, name := range []string{"fish_api", "triton", "prometheus", "alertmanager", "grafana", "cadvisor", "jaeger",
		"minio", "mysql", "mysqld-exporter", "mlflow"} {
		if r := composeService(t, p, name).Restart; r != types.RestartPolicyUnlessStopped && r != types.RestartPolicyAlways {
			t.Errorf("%s: restart policy %q", name, r)
		}
	}
}

func TestComposeGrafanaAdminPassword(t *testing.T) {
	grafana := composeService(t, composeStack(t), "grafana")
	if got := composeEnvValue(t, grafana, "GF_SECURITY_ADMIN_PASSWORD"); got != "admin" {
		t.Errorf("default Grafana admin password %q, want admin", got)
	}
	if got := composeEnvValue(t, grafana, "GF_USERS_ALLOW_SIGN_UP"); got != "false" {
		t.Errorf("GF_USERS_ALLOW_SIGN_UP=%q, want false", got)
	}
	set := composeService(t, composeLoad(t, map[string]string{"GRAFANA_ADMIN_PASSWORD": "s3cret-pw"}, nil, composeBaseFile), "grafana")
	if got := composeEnvValue(t, set, "GF_SECURITY_ADMIN_PASSWORD"); got != "s3cret-pw" {
		t.Errorf("GRAFANA_ADMIN_PASSWORD=s3cret-pw gives %q", got)
	}
}

func TestComposeK6(t *testing.T) {
	k6 := composeService(t, composeStack(t), "k6")
	if !slices.Equal(k6.Command, []string{"run", "/scripts/predict.js"}) {
		t.Errorf("k6 command %v, want [run /scripts/predict.js]", k6.Command)
	}
	want := map[string]string{"BASE_URL": "http://fish_api:8000", "SCENARIO": "smoke", "SUMMARY_DIR": "/results"}
	for k, v := range want {
		if got := composeEnvValue(t, k6, k); got != v {
			t.Errorf("k6 %s=%q, want %q", k, got, v)
		}
	}
	if m := composeMount(t, k6, "/results"); m.ReadOnly {
		t.Errorf("k6 cannot write its summaries: /results is read-only")
	}
	soak := composeService(t, composeLoad(t, map[string]string{"SCENARIO": "soak"}, []string{"loadtest"}, composeBaseFile), "k6")
	if got := composeEnvValue(t, soak, "SCENARIO"); got != "soak" {
		t.Errorf("SCENARIO=soak gives %q", got)
	}
}

// dockerInstruction is one instruction of a Dockerfile, continuation lines joined.
type dockerInstruction struct {
	Cmd   string // upper case: FROM, RUN, COPY...
	Args  string
	Stage int // index of the FROM it belongs to; -1 before the first
}

// dockerfileInstructions reads the repository's Dockerfile, the gateway's.
func dockerfileInstructions(t *testing.T) []dockerInstruction {
	t.Helper()
	return dockerfileInstructionsAt(t, "Dockerfile")
}

// dockerfileInstructionsAt reads the Dockerfile at path, relative to the
// repository root.
func dockerfileInstructionsAt(t *testing.T, path string) []dockerInstruction {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), path))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out     []dockerInstruction
		pending strings.Builder
		stage   = -1
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && pending.Len() == 0) {
			continue
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			pending.WriteString(cont + " ")
			continue
		}
		pending.WriteString(line)
		full := strings.TrimSpace(pending.String())
		pending.Reset()
		cmd, args, _ := strings.Cut(full, " ")
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			stage++
		}
		out = append(out, dockerInstruction{Cmd: cmd, Args: strings.TrimSpace(args), Stage: stage})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestComposeDockerfile(t *testing.T) {
	ins := dockerfileInstructions(t)
	args := map[string]string{} // global ARG defaults
	var froms []string
	stages := map[string]int{}
	for _, in := range ins {
		switch {
		case in.Cmd == "ARG" && in.Stage < 0:
			k, v, _ := strings.Cut(in.Args, "=")
			args[k] = v
		case in.Cmd == "FROM":
			f := strings.Fields(in.Args)
			froms = append(froms, f[0])
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				stages[f[2]] = in.Stage
			}
		}
	}
	if len(froms) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a multi-stage build", len(froms))
	}
	// Base images are pinned releases (through their ARG defaults).
	for _, from := range froms {
		ref := from
		if m := regexp.MustCompile(`^\$\{?(\w+)\}?$`).FindStringSubmatch(from); m != nil {
			ref = args[m[1]]
		}
		if _, isStage := stages[ref]; isStage {
			continue
		}
		_, tag, digest := composeImageRef(ref)
		if why := composePinnedTag(tag, digest); why != "" {
			t.Errorf("FROM %s (%s) is not pinned: %s", from, ref, why)
		}
	}

	final := len(froms) - 1
	has := func(stage int, cmd, substr string) bool {
		return slices.ContainsFunc(ins, func(in dockerInstruction) bool {
			return (stage < 0 || in.Stage == stage) && in.Cmd == cmd && strings.Contains(in.Args, substr)
		})
	}
	// The builder: cgo on, reproducible flags, the gateway's main package.
	for _, s := range []string{"CGO_ENABLED=1", "-trimpath", `-ldflags "-s -w"`, "./gateway/cmd/gateway"} {
		if !has(-1, "RUN", s) {
			t.Errorf("no RUN builds with %s", s)
		}
	}
	if !has(-1, "RUN", "libjpeg62-turbo-dev") {
		t.Errorf("the builder does not install libjpeg62-turbo-dev")
	}
	if !has(-1, "RUN", "scripts/fetch-onnxruntime.sh") {
		t.Errorf("ONNX Runtime's library is not fetched with scripts/fetch-onnxruntime.sh")
	}

	// The runtime stage.
	user := ""
	for _, in := range ins {
		if in.Stage == final && in.Cmd == "USER" {
			user = in.Args
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("the final stage runs as USER %q, want a numeric non-root UID", user)
	}
	if !has(final, "EXPOSE", "8000") {
		t.Errorf("the final stage does not EXPOSE 8000")
	}
	if !has(final, "HEALTHCHECK", "/ready") {
		t.Errorf("the final stage's HEALTHCHECK does not probe /ready")
	}
	if !has(final, "ENTRYPOINT", "gateway") {
		t.Errorf("the final stage's ENTRYPOINT is not the gateway")
	}
	if !has(final, "RUN", "libjpeg62-turbo") {
		t.Errorf("the runtime does not install libjpeg62-turbo")
	}
	// ONNXRUNTIME_LIB points where the library is copied, MODEL_REPOSITORY where
	// the model repository is.
	env := map[string]string{}
	for _, in := range ins {
		if in.Stage == final && in.Cmd == "ENV" {
			for _, kv := range strings.Fields(in.Args) {
				if k, v, ok := strings.Cut(kv, "="); ok {
					env[k] = v
				}
			}
		}
	}
	if lib := env["ONNXRUNTIME_LIB"]; lib == "" || !has(final, "COPY", " "+lib) {
		t.Errorf("ONNXRUNTIME_LIB=%q is not where the final stage copies the library", lib)
	}
	if repo := env["MODEL_REPOSITORY"]; repo == "" || !has(final, "COPY", "triton-models/fish_classifier/ "+repo+"/fish_classifier/") ||
		!has(final, "COPY", "--from=model /src/triton-models/fish_classifier/1/model.onnx "+repo+"/fish_classifier/1/model.onnx") {
		t.Errorf("MODEL_REPOSITORY=%q is not where the final stage copies the model (config and labels from the context, model.onnx from the model stage)", repo)
	}
	if !has(stages["model"], "RUN", "triton-models/build_model.py") {
		t.Errorf("the model stage does not build the model with triton-models/build_model.py")
	}

	// COPY from the build context names files that exist (and, by
	// TestComposeDockerignoreMirrorsGitignore, that git tracks).
	root := repoRoot(t)
	for _, in := range ins {
		if in.Cmd != "COPY" || strings.Contains(in.Args, "--from=") {
			continue
		}
		f := strings.Fields(in.Args)
		for _, src := range f[:len(f)-1] {
			if strings.HasPrefix(src, "--") || src == "." {
				continue
			}
			if _, err := os.Stat(filepath.Join(root, src)); err != nil {
				t.Errorf("COPY %s: %v", src, err)
			}
		}
	}
}

// TestComposeDockerignoreMirrorsGitignore: whatever git ignores is outside the build
// context too, so the image cannot depend on a file a clean checkout lacks.
func TestComposeDockerignoreMirrorsGitignore(t *testing.T) {
	read := func(name string) []string {
		b, err := os.ReadFile(filepath.Join(repoRoot(t), name))
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				lines = append(lines, l)
			}
		}
		return lines
	}
	// .dockerignore patterns are relative to the context root, and a leading or
	// trailing "/" is insignificant. A .gitignore pattern without a "/" before
	// its end matches at any depth, which .dockerignore spells "**/". A pattern
	// is covered when .dockerignore excludes it or a directory above it
	// ("loadtest" covers "loadtest/node_modules"), at the root or at any depth.
	norm := func(p string) string { return strings.TrimSuffix(strings.TrimPrefix(p, "/"), "/") }
	ignored := map[string]bool{}
	for _, p := range read(".dockerignore") {
		ignored[norm(p)] = true
	}
	covered := func(pattern string) bool {
		segs := strings.Split(pattern, "/")
		for i := range segs {
			if ignored[strings.Join(segs[:i+1], "/")] || ignored["**/"+strings.Join(segs[i:], "/")] {
				return true
			}
		}
		return false
	}
	for _, p := range read(".gitignore") {
		if strings.HasPrefix(p, "!") {
			continue // re-included: git tracks it, the context may hold it
		}
		want := norm(p)
		if anyDepth := !strings.HasPrefix(p, "/") && !strings.Contains(want, "/"); anyDepth {
			want = "**/" + want
			if !ignored[want] {
				t.Errorf(".gitignore ignores %q at any depth but .dockerignore does not: add %q", p, want)
			}
		} else if !covered(want) {
			t.Errorf(".gitignore ignores %q but .dockerignore does not: add %q", p, want)
		}
	}
	for _, p := range []string{".git", "**/testdata", "**/node_modules"} {
		if !ignored[p] {
			t.Errorf(".dockerignore does not exclude %s", p)
		}
	}
}

// gatewayVariables returns the environment variables of the README's
// configuration table, which are the ones the gateway reads.
func gatewayVariables(t *testing.T) map[string]bool {
	t.Helper()
	return testenv.ConfigVariables(t)
}
