package helm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/fish-classifier/fish-classifier/internal/testenv"
)

const chart = "fish-classifier"

// tools returns the directory scripts/chart-tools.sh installed helm,
// kubeconform and the schemas into; `make test` runs it first.
func tools(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", ".chart-tools"))
	if err != nil {
		t.Fatal(err)
	}
	for _, need := range []string{"bin/helm", "bin/kubeconform", "schemas/crds/scaledobject-keda-v1alpha1.json"} {
		if _, err := os.Stat(filepath.Join(dir, need)); err != nil {
			t.Fatalf("%s missing: run scripts/chart-tools.sh install (make test does)", need)
		}
	}
	return dir
}

func run(t *testing.T, name string, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.Bytes()
}

// profiles are the values files the chart is checked with.
func profiles(t *testing.T) []string {
	files, err := filepath.Glob(filepath.Join(chart, "ci", "*-values.yaml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("values profiles: %v (%d found)", err, len(files))
	}
	return files
}

// object is one rendered manifest.
type object = map[string]any

// render runs helm template with a values file and returns the objects by
// "Kind/name".
func render(t *testing.T, helm, values string, set ...string) (map[string]object, []byte) {
	t.Helper()
	args := []string{"template", "fc", chart, "--namespace", "fish", "-f", values}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out := run(t, helm, nil, args...)
	objs := map[string]object{}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var o object
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: rendered YAML: %v", values, err)
		}
		if o == nil {
			continue
		}
		key := fmt.Sprintf("%s/%s", o["kind"], dig(o, "metadata", "name"))
		if _, dup := objs[key]; dup {
			t.Fatalf("%s: %s rendered twice", values, key)
		}
		objs[key] = o
	}
	return objs, out
}

// dig walks maps and lists ("0", "1", ... index lists).
func dig(v any, path ...string) any {
	for _, p := range path {
		switch n := v.(type) {
		case map[string]any:
			v = n[p]
		case []any:
			var i int
			if _, err := fmt.Sscan(p, &i); err != nil || i >= len(n) {
				return nil
			}
			v = n[i]
		default:
			return nil
		}
	}
	return v
}

// TestChartLintAndSchemas: helm lint passes for every profile, and every object
// every profile renders is valid for the oldest Kubernetes the chart supports
// and the newest, custom resources included (kubeconform -strict: unknown
// fields are errors, no schema is an error).
func TestChartLintAndSchemas(t *testing.T) {
	dir := tools(t)
	helm, kubeconform := filepath.Join(dir, "bin", "helm"), filepath.Join(dir, "bin", "kubeconform")
	for _, values := range profiles(t) {
		t.Run(filepath.Base(values), func(t *testing.T) {
			run(t, helm, nil, "lint", "--strict", chart, "-f", values)
			_, manifests := render(t, helm, values)
			for _, kube := range []string{"1.27.0", "1.37.0"} {
				out := run(t, kubeconform, manifests, "-strict", "-summary", "-output", "text",
					"-kubernetes-version", kube,
					"-schema-location", filepath.Join(dir, "schemas", "k8s-v"+kube, "{{ .ResourceKind }}{{ .KindSuffix }}.json"),
					"-schema-location", filepath.Join(dir, "schemas", "crds", "{{ .ResourceKind }}{{ .KindSuffix }}.json"))
				if !regexp.MustCompile(`Invalid: 0, Errors: 0, Skipped: 0`).Match(out) {
					t.Fatalf("kubeconform, Kubernetes %s: %s", kube, out)
				}
				t.Logf("Kubernetes %s: %s", kube, bytes.TrimSpace(out))
			}
		})
	}
}

// TestChartRejectsBadValues: values the chart cannot honour stop the render
// with a message, instead of rendering something else.
func TestChartRejectsBadValues(t *testing.T) {
	helm := filepath.Join(tools(t), "bin", "helm")
	values := filepath.Join(chart, "ci", "default-values.yaml")
	for set, want := range map[string]string{
		"autoscaling.mode=vpa":                                           "autoscaling.mode must be keda, hpa or none",
		"triton.modelRepository.source=ftp":                              "triton.modelRepository.source must be image, volume or url",
		"triton.modelRepository.source=volume":                           "claimName is required",
		"triton.modelRepository.source=url":                              "triton.modelRepository.url is required",
		"gateway.config.SHUTDOWN_TIMEOUT=10s":                            "set gateway.shutdownTimeoutSeconds instead",
		"gateway.config.GATEWAY_LISTEN_ADDR=:1":                          "set gateway.port instead",
		"tracing.enabled=true,tracing.endpoint=http://otel.obs.svc:4318": "set tracing.jaeger.deploy=false too",
		"tracing.enabled=true,tracing.jaeger.deploy=false":               "needs tracing.endpoint",
	} {
		cmd := exec.Command(helm, "template", "fc", chart, "-f", values, "--set", set)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("--set %s: err %v, output %q; want a failure saying %q", set, err, out, want)
		}
	}
}

func container(t *testing.T, pod object, name string) object {
	t.Helper()
	cs, _ := dig(pod, "spec", "containers").([]any)
	for _, c := range cs {
		if c, ok := c.(object); ok && c["name"] == name {
			return c
		}
	}
	t.Fatalf("no container %q in the pod", name)
	return nil
}

func env(c object) map[string]string {
	out := map[string]string{}
	list, _ := c["env"].([]any)
	for _, e := range list {
		e := e.(object)
		out[e["name"].(string)] = fmt.Sprint(e["value"])
	}
	return out
}

// TestChartDefaultProfile: what the default values deploy.
func TestChartDefaultProfile(t *testing.T) {
	helm := filepath.Join(tools(t), "bin", "helm")
	objs, _ := render(t, helm, filepath.Join(chart, "ci", "default-values.yaml"))
	for _, want := range []string{
		"Deployment/fc-fish-classifier-gateway", "Service/fc-fish-classifier-gateway", "PodDisruptionBudget/fc-fish-classifier-gateway",
		"Deployment/fc-fish-classifier-triton", "Service/fc-fish-classifier-triton", "PodDisruptionBudget/fc-fish-classifier-triton",
		"ScaledObject/fc-fish-classifier-gateway", "ScaledObject/fc-fish-classifier-triton",
		"ServiceMonitor/fc-fish-classifier-gateway", "ServiceMonitor/fc-fish-classifier-triton",
		"PrometheusRule/fc-fish-classifier", "ConfigMap/fc-fish-classifier-dashboard-fish-api-dashboard",
		"NetworkPolicy/fc-fish-classifier-gateway", "NetworkPolicy/fc-fish-classifier-triton",
	} {
		if objs[want] == nil {
			t.Errorf("%s not rendered", want)
		}
	}
	if objs["HorizontalPodAutoscaler/fc-fish-classifier-gateway"] != nil {
		t.Error("an HPA beside KEDA's ScaledObject: two autoscalers would fight over the Deployment")
	}

	gw := objs["Deployment/fc-fish-classifier-gateway"]
	pod := dig(gw, "spec", "template").(object)
	c := container(t, pod, "gateway")
	e := env(c)
	if e["TRITON_URL"] != "dns:///fc-fish-classifier-triton.fish.svc:8001" || e["BACKEND"] != "triton" || e["FALLBACK"] != "onnx" {
		t.Errorf("gateway env %v: want Triton through the headless Service, with the ONNX fallback", e)
	}
	// Kubernetes sends SIGTERM after the pre-stop sleep; the gateway then drains
	// for SHUTDOWN_TIMEOUT; the pod must not be killed before both are over.
	grace := dig(pod, "spec", "terminationGracePeriodSeconds").(int)
	sleep := dig(c, "lifecycle", "preStop", "exec", "command", "1")
	if e["SHUTDOWN_TIMEOUT"] != "30s" || sleep != "5" || grace <= 35 {
		t.Errorf("grace period %d s, pre-stop sleep %v s, SHUTDOWN_TIMEOUT %s: the drain would be cut short", grace, sleep, e["SHUTDOWN_TIMEOUT"])
	}
	if dig(c, "readinessProbe", "httpGet", "path") != "/ready" || dig(c, "livenessProbe", "httpGet", "path") != "/health" {
		t.Error("gateway probes: want readiness on /ready and liveness on /health")
	}
	sc := c["securityContext"].(object)
	if sc["runAsNonRoot"] != true || sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false {
		t.Errorf("gateway securityContext %v: want non-root, read-only, no privilege escalation", sc)
	}
	if dig(c, "resources", "limits", "memory") == nil {
		t.Error("no memory limit: the gateway's soft memory limit derives from it")
	}
	if dig(pod, "spec", "topologySpreadConstraints", "0") == nil || dig(gw, "spec", "replicas") != nil {
		t.Error("gateway: want topology spread, and no replica count beside the autoscaler")
	}

	tr := objs["Deployment/fc-fish-classifier-triton"]
	tpod := dig(tr, "spec", "template").(object)
	tc := container(t, tpod, "triton")
	if dig(tc, "resources", "limits", "nvidia.com/gpu") != 1 || dig(tc, "readinessProbe", "httpGet", "path") != "/v2/health/ready" {
		t.Error("Triton: want one GPU and readiness on /v2/health/ready")
	}
	if !slices.Contains(tc["args"].([]any), any("--strict-readiness=true")) {
		t.Error("Triton without --strict-readiness")
	}
	if dig(tpod, "spec", "initContainers", "0", "name") != "model-repository" {
		t.Error("Triton: want the model repository from an init container")
	}
	if dig(objs["Service/fc-fish-classifier-triton"], "spec", "clusterIP") != "None" {
		t.Error("Triton's Service must be headless for the gateway's dns:/// balancing")
	}

	// Only the gateway reaches Triton's gRPC port.
	np := objs["NetworkPolicy/fc-fish-classifier-triton"]
	from := dig(np, "spec", "ingress", "0", "from", "0", "podSelector", "matchLabels", "app.kubernetes.io/component")
	if from != "gateway" || dig(np, "spec", "ingress", "0", "ports", "0", "port") != "grpc" {
		t.Errorf("Triton's NetworkPolicy: first rule from %v to %v", from, dig(np, "spec", "ingress", "0", "ports"))
	}

	// The autoscalers' queries select the series the ServiceMonitors produce.
	so := objs["ScaledObject/fc-fish-classifier-triton"]
	q := dig(so, "spec", "triggers", "0", "metadata", "query").(string)
	if !strings.Contains(q, `nv_inference_queue_duration_us{job="triton",namespace="fish"`) || !strings.Contains(q, "nv_inference_request_success") {
		t.Errorf("Triton's scaling query %q: want queue time per request of this release's Triton", q)
	}
	if dig(objs["ServiceMonitor/fc-fish-classifier-triton"], "spec", "endpoints", "0", "relabelings", "0", "replacement") != "triton" {
		t.Error("Triton's ServiceMonitor must set job=triton, which the rules and the scaling query select")
	}
	gq := dig(objs["ScaledObject/fc-fish-classifier-gateway"], "spec", "triggers", "0", "metadata", "query").(string)
	if !strings.Contains(gq, `http_requests_in_flight{job="fish_api",namespace="fish"}`) {
		t.Errorf("gateway scaling query %q", gq)
	}

	// The PrometheusRule holds every group of the monitoring rules.
	groups := dig(objs["PrometheusRule/fc-fish-classifier"], "spec", "groups").([]any)
	alerts := 0
	for _, g := range groups {
		for _, r := range dig(g, "rules").([]any) {
			if dig(r, "alert") != nil {
				alerts++
			}
		}
	}
	if alerts != 21 {
		t.Errorf("PrometheusRule: %d alerts, want the 21 of monitoring/prometheus/rules", alerts)
	}
	// One ConfigMap per dashboard: the gateway's, and the model lifecycle's
	// stores' (MinIO, MariaDB), whose panels stay empty where those are not
	// scraped.
	for _, name := range []string{"fish-api-dashboard", "minio-dashboard", "mysql-dashboard"} {
		dash := objs["ConfigMap/fc-fish-classifier-dashboard-"+name]
		if dig(dash, "metadata", "labels", "grafana_dashboard") != "1" || dig(dash, "data", name+".json") == nil {
			t.Errorf("dashboard ConfigMap %s: want the Grafana sidecar's label and the dashboard's JSON", name)
		}
	}
}

// TestChartKEDAOffProfile: without KEDA, a CPU HPA scales the gateway and Triton
// keeps its replica count.
func TestChartKEDAOffProfile(t *testing.T) {
	helm := filepath.Join(tools(t), "bin", "helm")
	objs, _ := render(t, helm, filepath.Join(chart, "ci", "keda-off-values.yaml"))
	for key := range objs {
		if strings.HasPrefix(key, "ScaledObject/") {
			t.Errorf("%s rendered with autoscaling.mode=hpa", key)
		}
	}
	hpa := objs["HorizontalPodAutoscaler/fc-fish-classifier-gateway"]
	if dig(hpa, "spec", "metrics", "0", "resource", "name") != "cpu" || dig(hpa, "spec", "scaleTargetRef", "name") != "fc-fish-classifier-gateway" {
		t.Errorf("HPA: %v", hpa)
	}
	if dig(objs["Deployment/fc-fish-classifier-triton"], "spec", "replicas") != 2 {
		t.Error("Triton's replicas: want the profile's 2")
	}
}

// TestChartSidecarProfile: the gateway inside Triton's pod, over localhost and
// shared memory; no gateway Deployment, its Service on Triton's pods.
func TestChartSidecarProfile(t *testing.T) {
	helm := filepath.Join(tools(t), "bin", "helm")
	objs, _ := render(t, helm, filepath.Join(chart, "ci", "sidecar-values.yaml"))
	if objs["Deployment/fc-fish-classifier-gateway"] != nil || objs["ScaledObject/fc-fish-classifier-gateway"] != nil {
		t.Error("sidecar mode renders a gateway Deployment or its autoscaler")
	}
	pod := dig(objs["Deployment/fc-fish-classifier-triton"], "spec", "template").(object)
	gw := container(t, pod, "gateway")
	e := env(gw)
	if e["TRITON_URL"] != "localhost:8001" || e["TRITON_SHARED_MEMORY"] != "system" {
		t.Errorf("sidecar gateway env %v: want localhost and system shared memory", e)
	}
	mounts := func(c object) (paths []string) {
		for _, m := range c["volumeMounts"].([]any) {
			if dig(m, "name") == "dshm" {
				paths = append(paths, dig(m, "mountPath").(string))
			}
		}
		return paths
	}
	if got, want := mounts(gw), mounts(container(t, pod, "triton")); !slices.Equal(got, []string{"/dev/shm"}) || !slices.Equal(want, got) {
		t.Errorf("/dev/shm: gateway %v, Triton %v: both must mount the pod's shared memory", got, want)
	}
	if sel := dig(objs["Service/fc-fish-classifier-gateway"], "spec", "selector", "app.kubernetes.io/component"); sel != "triton" {
		t.Errorf("gateway Service selects component %v, want the Triton pods", sel)
	}
	if grace := dig(pod, "spec", "terminationGracePeriodSeconds").(int); grace < 40 {
		t.Errorf("grace period %d s: shorter than the gateway's drain", grace)
	}
}

// TestChartFilesMatchMonitoring: the PrometheusRule and dashboards are built
// from the chart's copies of monitoring/'s files (Helm reads only files inside
// the chart); `make generate` copies them, and this fails when they drift.
func TestChartFilesMatchMonitoring(t *testing.T) {
	for src, dst := range map[string]string{
		"../../monitoring/prometheus/rules/*.yml":                 chart + "/files/rules",
		"../../monitoring/grafana/provisioning/dashboards/*.json": chart + "/files/dashboards",
	} {
		files, _ := filepath.Glob(src)
		copies, _ := filepath.Glob(filepath.Join(dst, "*"))
		if len(files) == 0 || len(files) != len(copies) {
			t.Errorf("%s: %d files, %s: %d copies", src, len(files), dst, len(copies))
		}
		for _, f := range files {
			want, _ := os.ReadFile(f)
			got, err := os.ReadFile(filepath.Join(dst, filepath.Base(f)))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s (or is missing): run make generate", filepath.Join(dst, filepath.Base(f)), f)
			}
		}
	}
}

// TestValuesCoverREADME: gateway.config offers every variable of the README's
// configuration table, and nothing the gateway does not read.
func TestValuesCoverREADME(t *testing.T) {
	documented := testenv.ConfigVariables(t)
	documented["AUTOMEMLIMIT"] = true // in GOMEMLIMIT's row
	if len(documented) < 40 {
		t.Fatalf("read %d variables from the README's table", len(documented))
	}
	data, err := os.ReadFile(filepath.Join(chart, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Gateway struct {
			Config map[string]any `yaml:"config"`
		} `yaml:"gateway"`
	}
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatal(err)
	}
	for v := range documented {
		if _, ok := values.Gateway.Config[v]; !ok {
			t.Errorf("values.yaml gateway.config lacks %s", v)
		}
	}
	for v := range values.Gateway.Config {
		if !documented[v] {
			t.Errorf("values.yaml gateway.config has %s, which the README does not document", v)
		}
	}
}
