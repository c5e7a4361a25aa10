package helm

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const (
	jaegerName     = "fc-fish-classifier-jaeger"
	jaegerEndpoint = "http://fc-fish-classifier-jaeger.fish.svc:4318"
)

// traceConfig returns Triton's --trace-config settings, by setting.
func traceConfig(triton object) map[string]string {
	out := map[string]string{}
	args, _ := triton["args"].([]any)
	for _, a := range args {
		if v, ok := strings.CutPrefix(fmt.Sprint(a), "--trace-config="); ok {
			setting, value, _ := strings.Cut(v, "=")
			out[setting] = value
		}
	}
	return out
}

// servicePort finds a Service's port by name.
func servicePort(svc object, name string) object {
	ports, _ := dig(svc, "spec", "ports").([]any)
	for _, p := range ports {
		if p, ok := p.(object); ok && p["name"] == name {
			return p
		}
	}
	return nil
}

// wantTritonTracing checks Triton's tracing flags against the collector's
// OTLP/HTTP base URL.
func wantTritonTracing(t *testing.T, triton object, endpoint string) {
	t.Helper()
	want := map[string]string{
		"mode":                   "opentelemetry",
		"opentelemetry,url":      endpoint + "/v1/traces",
		"opentelemetry,resource": "service.name=triton",
		"level":                  "TIMESTAMPS",
		"rate":                   "0",
	}
	if got := traceConfig(triton); !mapsEqual(got, want) {
		t.Errorf("Triton --trace-config %v, want %v", got, want)
	}
}

func mapsEqual(a, b map[string]string) bool {
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

// TestChartTracingOffByDefault: without tracing.enabled the chart deploys no
// Jaeger and configures no tracing anywhere.
func TestChartTracingOffByDefault(t *testing.T) {
	helm := filepath.Join(tools(t), "bin", "helm")
	for _, values := range []string{"default-values.yaml", "sidecar-values.yaml", "minimal-values.yaml"} {
		objs, _ := render(t, helm, filepath.Join(chart, "ci", values))
		for key := range objs {
			if strings.Contains(key, "jaeger") {
				t.Errorf("%s: %s rendered with tracing off", values, key)
			}
		}
		tpod := dig(objs["Deployment/fc-fish-classifier-triton"], "spec", "template").(object)
		if tc := traceConfig(container(t, tpod, "triton")); len(tc) > 0 {
			t.Errorf("%s: Triton traces with tracing off: %v", values, tc)
		}
		gwPod := tpod
		if gw := objs["Deployment/fc-fish-classifier-gateway"]; gw != nil {
			gwPod = dig(gw, "spec", "template").(object)
		}
		for k := range env(container(t, gwPod, "gateway")) {
			if strings.HasPrefix(k, "OTEL_") {
				t.Errorf("%s: the gateway gets %s with tracing off", values, k)
			}
		}
	}
}

// TestChartTracingProfile: with tracing on, the gateway and Triton export to
// the chart's Jaeger, which the NetworkPolicy opens to them, and Grafana gets
// a datasource for it.
func TestChartTracingProfile(t *testing.T) {
	helm := filepath.Join(tools(t), "bin", "helm")
	objs, _ := render(t, helm, filepath.Join(chart, "ci", "tracing-values.yaml"))
	for _, want := range []string{
		"Deployment/" + jaegerName, "Service/" + jaegerName, "NetworkPolicy/" + jaegerName,
		"ConfigMap/fc-fish-classifier-grafana-datasource-jaeger",
	} {
		if objs[want] == nil {
			t.Errorf("%s not rendered", want)
		}
	}

	// The gateway exports OTLP/HTTP to Jaeger's Service.
	gw := container(t, dig(objs["Deployment/fc-fish-classifier-gateway"], "spec", "template").(object), "gateway")
	e := env(gw)
	want := map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": jaegerEndpoint,
		"OTEL_SERVICE_NAME":           "fish-classifier-gateway",
		"OTEL_TRACES_SAMPLER":         "parentbased_always_on",
	}
	for k, v := range want {
		if e[k] != v {
			t.Errorf("gateway %s=%q, want %q", k, e[k], v)
		}
	}
	for k := range e {
		if strings.HasPrefix(k, "OTEL_") && want[k] == "" {
			t.Errorf("gateway gets %s=%q, which no value asked for", k, e[k])
		}
	}
	svc := objs["Service/"+jaegerName]
	if p := servicePort(svc, "otlp-http"); p == nil || p["port"] != 4318 {
		t.Errorf("Jaeger's Service has no OTLP/HTTP port 4318 (the endpoint's): %v", dig(svc, "spec", "ports"))
	}
	if p := servicePort(svc, "otlp-grpc"); p == nil || p["port"] != 4317 {
		t.Errorf("Jaeger's Service has no OTLP/gRPC port 4317: %v", dig(svc, "spec", "ports"))
	}
	if p := servicePort(svc, "query"); p == nil || p["port"] != 16686 {
		t.Errorf("Jaeger's Service has no query port 16686: %v", dig(svc, "spec", "ports"))
	}

	// Triton exports to the same collector.
	triton := container(t, dig(objs["Deployment/fc-fish-classifier-triton"], "spec", "template").(object), "triton")
	wantTritonTracing(t, triton, jaegerEndpoint)

	// Jaeger itself: v2, pinned, one replica (the store is in memory), ready
	// when its health endpoint says so, the Service selecting its pods.
	dep := objs["Deployment/"+jaegerName]
	pod := dig(dep, "spec", "template").(object)
	jc := container(t, pod, "jaeger")
	image := fmt.Sprint(jc["image"])
	if repo, tag, _ := strings.Cut(image, ":"); repo != "jaegertracing/jaeger" || !strings.HasPrefix(tag, "2.") {
		t.Errorf("Jaeger image %s: want jaegertracing/jaeger:2.x, pinned", image)
	}
	if dig(dep, "spec", "replicas") != 1 || dig(dep, "spec", "strategy", "type") != "Recreate" {
		t.Error("Jaeger: want one replica, recreated (an in-memory store cannot be shared or rolled)")
	}
	if dig(jc, "readinessProbe", "httpGet", "path") != "/status" || dig(jc, "readinessProbe", "httpGet", "port") != "health" {
		t.Errorf("Jaeger readiness probe %v: want /status on the health port", jc["readinessProbe"])
	}
	if sc := jc["securityContext"].(object); sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false {
		t.Errorf("Jaeger securityContext %v", sc)
	}
	for k, v := range dig(svc, "spec", "selector").(object) {
		if dig(pod, "metadata", "labels", k) != v {
			t.Errorf("Jaeger's Service selects %s=%v, which its pods lack", k, v)
		}
	}

	// Only the gateway and Triton pods reach OTLP; Grafana reaches the query port.
	np := objs["NetworkPolicy/"+jaegerName]
	var otlpFrom []string
	for _, f := range dig(np, "spec", "ingress", "0", "from").([]any) {
		otlpFrom = append(otlpFrom, fmt.Sprint(dig(f, "podSelector", "matchLabels", "app.kubernetes.io/component")))
	}
	var otlpPorts []string
	for _, p := range dig(np, "spec", "ingress", "0", "ports").([]any) {
		otlpPorts = append(otlpPorts, fmt.Sprint(dig(p, "port")))
	}
	if !slices.Equal(otlpFrom, []string{"gateway", "triton"}) || !slices.Equal(otlpPorts, []string{"otlp-grpc", "otlp-http"}) {
		t.Errorf("Jaeger's NetworkPolicy, first rule: from %v to %v; want gateway and triton to otlp-grpc and otlp-http", otlpFrom, otlpPorts)
	}
	if dig(np, "spec", "ingress", "1", "from", "0", "podSelector", "matchLabels", "app.kubernetes.io/name") != "grafana" ||
		dig(np, "spec", "ingress", "1", "ports", "0", "port") != "query" {
		t.Errorf("Jaeger's NetworkPolicy, second rule: %v; want Grafana to the query port", dig(np, "spec", "ingress", "1"))
	}
	if dig(np, "spec", "podSelector", "matchLabels", "app.kubernetes.io/component") != "jaeger" {
		t.Error("Jaeger's NetworkPolicy does not select the Jaeger pods")
	}

	// The Grafana datasource: uid jaeger (the exemplar links' target), the
	// Service's query port, the sidecar's label.
	cm := objs["ConfigMap/fc-fish-classifier-grafana-datasource-jaeger"]
	if dig(cm, "metadata", "labels", "grafana_datasource") != "1" {
		t.Error("datasource ConfigMap without the Grafana sidecar's label grafana_datasource")
	}
	var file struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal([]byte(fmt.Sprint(dig(cm, "data", "jaeger-datasource.yaml"))), &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Datasources) != 1 || file.Datasources[0].UID != "jaeger" || file.Datasources[0].Type != "jaeger" ||
		file.Datasources[0].URL != "http://fc-fish-classifier-jaeger.fish.svc:16686" {
		t.Errorf("Grafana datasource %+v: want one, uid and type jaeger, at the Service's query port", file.Datasources)
	}
}

// TestChartTracingOptions: an existing collector instead of the chart's
// Jaeger, the sampler and gateway.config's precedence, Triton's spans off,
// and sidecar mode.
func TestChartTracingOptions(t *testing.T) {
	helm := filepath.Join(tools(t), "bin", "helm")
	values := filepath.Join(chart, "ci", "tracing-values.yaml")
	const collector = "http://otel-collector.observability.svc:4318"

	t.Run("existing collector", func(t *testing.T) {
		objs, _ := render(t, helm, values, "tracing.jaeger.deploy=false", "tracing.endpoint="+collector+"/")
		for key := range objs {
			if strings.Contains(key, "jaeger") {
				t.Errorf("%s rendered, though the spans go to %s", key, collector)
			}
		}
		gw := container(t, dig(objs["Deployment/fc-fish-classifier-gateway"], "spec", "template").(object), "gateway")
		if got := env(gw)["OTEL_EXPORTER_OTLP_ENDPOINT"]; got != collector {
			t.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT=%q, want %q", got, collector)
		}
		wantTritonTracing(t, container(t, dig(objs["Deployment/fc-fish-classifier-triton"], "spec", "template").(object), "triton"), collector)

		objs, _ = render(t, helm, values, "tracing.jaeger.deploy=false", "tracing.endpoint="+collector,
			"tracing.grafanaDatasource.url=http://jaeger-query.observability.svc:16686")
		cm := objs["ConfigMap/fc-fish-classifier-grafana-datasource-jaeger"]
		if !strings.Contains(fmt.Sprint(dig(cm, "data", "jaeger-datasource.yaml")), "url: http://jaeger-query.observability.svc:16686") {
			t.Errorf("with grafanaDatasource.url, the datasource ConfigMap is %v", cm)
		}
	})

	t.Run("sampler and gateway.config", func(t *testing.T) {
		objs, _ := render(t, helm, values,
			"tracing.sampler=parentbased_traceidratio", "tracing.samplerArg=0.1",
			"tracing.resourceAttributes=deployment.environment=staging",
			"gateway.config.OTEL_SERVICE_NAME=fish-gw-canary")
		e := env(container(t, dig(objs["Deployment/fc-fish-classifier-gateway"], "spec", "template").(object), "gateway"))
		want := map[string]string{
			"OTEL_TRACES_SAMPLER":         "parentbased_traceidratio",
			"OTEL_TRACES_SAMPLER_ARG":     "0.1",
			"OTEL_RESOURCE_ATTRIBUTES":    "deployment.environment=staging",
			"OTEL_SERVICE_NAME":           "fish-gw-canary",
			"OTEL_EXPORTER_OTLP_ENDPOINT": jaegerEndpoint,
		}
		for k, v := range want {
			if e[k] != v {
				t.Errorf("gateway %s=%q, want %q", k, e[k], v)
			}
		}
	})

	t.Run("Triton spans off", func(t *testing.T) {
		objs, _ := render(t, helm, values, "tracing.triton.enabled=false")
		if tc := traceConfig(container(t, dig(objs["Deployment/fc-fish-classifier-triton"], "spec", "template").(object), "triton")); len(tc) > 0 {
			t.Errorf("tracing.triton.enabled=false, Triton still traces: %v", tc)
		}
	})

	t.Run("sidecar", func(t *testing.T) {
		objs, _ := render(t, helm, filepath.Join(chart, "ci", "sidecar-values.yaml"), "tracing.enabled=true")
		pod := dig(objs["Deployment/fc-fish-classifier-triton"], "spec", "template").(object)
		if got := env(container(t, pod, "gateway"))["OTEL_EXPORTER_OTLP_ENDPOINT"]; got != jaegerEndpoint {
			t.Errorf("sidecar gateway OTEL_EXPORTER_OTLP_ENDPOINT=%q, want %q", got, jaegerEndpoint)
		}
		wantTritonTracing(t, container(t, pod, "triton"), jaegerEndpoint)
		// The sidecar's spans leave from Triton's pods, which the policy admits.
		np := objs["NetworkPolicy/"+jaegerName]
		if dig(np, "spec", "ingress", "0", "from", "1", "podSelector", "matchLabels", "app.kubernetes.io/component") != "triton" {
			t.Errorf("Jaeger's NetworkPolicy does not admit Triton's pods: %v", dig(np, "spec", "ingress"))
		}
	})
}
