package monitoring_test

// Distributed tracing in the compose stack: the gateway and Triton export
// OpenTelemetry spans to the jaeger service, Prometheus keeps the exemplars
// that link latency samples to traces, and Grafana reads Jaeger.

import (
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"
)

// tritonTraceRate is Triton's --trace-config rate: with 0, Triton traces
// exactly the requests that carry a traceparent (checked on the real Triton by
// internal/tritonci's TestRealTritonTracesIntoJaeger), which the gateway
// sends for its sampled requests only.
const tritonTraceRate = "0"

// composePortOf reports whether port is a container port of s, published or
// only exposed.
func composePortOf(s types.ServiceConfig, port string) bool {
	return slices.ContainsFunc(s.Ports, func(pc types.ServicePortConfig) bool { return strconv.Itoa(int(pc.Target)) == port }) ||
		slices.Contains(s.Expose, port)
}

// composeServiceURL parses a URL one container uses to reach another and checks
// that it names a compose service on one of its container ports; it returns
// the service and the parsed URL.
func composeServiceURL(t *testing.T, p *types.Project, what, raw string) (types.ServiceConfig, *url.URL) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Port() == "" {
		t.Fatalf("%s %q: want http://<service>:<port>[/path] (%v)", what, raw, err)
	}
	s, ok := p.Services[u.Hostname()]
	if !ok {
		t.Fatalf("%s %q names no compose service", what, raw)
	}
	if !composePortOf(s, u.Port()) {
		t.Errorf("%s %q: port %s is not a container port of %s", what, raw, u.Port(), s.Name)
	}
	return s, u
}

func TestComposeTracing(t *testing.T) {
	for _, files := range [][]string{
		{composeBaseFile},
		{composeBaseFile, composeCPUFile},
		{composeBaseFile, composeShmFile},
		{composeBaseFile, composeCPUFile, composeShmFile},
	} {
		t.Run(strings.Join(files, "+"), func(t *testing.T) {
			p := composeLoad(t, nil, []string{"loadtest"}, files...)
			jaeger := composeService(t, p, "jaeger")

			// Jaeger v2: one image, receiving OTLP on 4317 (gRPC) and 4318
			// (HTTP), its UI and query API on 16686.
			repo, tag, _ := composeImageRef(jaeger.Image)
			if repo != "jaegertracing/jaeger" || !strings.HasPrefix(tag, "2.") {
				t.Errorf("jaeger image %s: want jaegertracing/jaeger:2.x (v2; the v1 all-in-one image is another repository)", jaeger.Image)
			}
			for _, port := range []string{"4317", "4318", "16686"} {
				if !composePortOf(jaeger, port) {
					t.Errorf("jaeger does not listen on %s", port)
				}
			}

			// The gateway exports to Jaeger: OTLP/HTTP (the SDK's default
			// protocol) on 4318, under the service name the traces are
			// searched by.
			api := composeService(t, p, "fish_api")
			endpoint := composeEnvValue(t, api, "OTEL_EXPORTER_OTLP_ENDPOINT")
			backend, u := composeServiceURL(t, p, "fish_api OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
			if backend.Name != "jaeger" || u.Port() != "4318" || strings.Trim(u.Path, "/") != "" {
				t.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT=%q: want Jaeger's OTLP/HTTP base URL, http://jaeger:4318 (the SDK appends /v1/traces)", endpoint)
			}
			if proto, set := api.Environment["OTEL_EXPORTER_OTLP_PROTOCOL"]; set && proto != nil && *proto != "http/protobuf" {
				t.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%s with an endpoint on the OTLP/HTTP port", *proto)
			}
			if got := composeEnvValue(t, api, "OTEL_SERVICE_NAME"); got != "fish-classifier-gateway" {
				t.Errorf("OTEL_SERVICE_NAME=%q, want fish-classifier-gateway", got)
			}
			// (That every variable fish_api sets is one the gateway reads is
			// TestComposeFile's: the README's configuration table lists them.)

			// Triton exports OTLP/HTTP (JSON) to the same Jaeger, tracing the
			// requests the gateway's traceparent marks.
			triton := composeService(t, p, "triton")
			flags := composeTritonFlags(triton.Command)
			want := map[string]string{
				"trace-config mode":                   "opentelemetry",
				"trace-config opentelemetry,resource": "service.name=triton",
				"trace-config level":                  "TIMESTAMPS",
				"trace-config rate":                   tritonTraceRate,
			}
			for k, v := range want {
				if flags[k] != v {
					t.Errorf("tritonserver --%s=%q, want %q", strings.Replace(k, " ", "=", 1), flags[k], v)
				}
			}
			traceURL := flags["trace-config opentelemetry,url"]
			collector, tu := composeServiceURL(t, p, "tritonserver --trace-config=opentelemetry,url", traceURL)
			if collector.Name != backend.Name || tu.Port() != "4318" || tu.Path != "/v1/traces" {
				t.Errorf("Triton exports to %q: want the gateway's Jaeger on OTLP/HTTP, %s/v1/traces", traceURL, strings.TrimSuffix(endpoint, "/"))
			}

			// Both start after Jaeger has, but do not wait for it to be
			// healthy: tracing is best effort.
			for _, s := range []types.ServiceConfig{api, triton} {
				if d, ok := s.DependsOn["jaeger"]; !ok || d.Condition != types.ServiceConditionStarted {
					t.Errorf("%s depends on jaeger with %+v, want condition service_started", s.Name, d)
				}
			}

			// Prometheus keeps the exemplars (trace_id) the gateway's
			// histograms expose.
			prom := composeService(t, p, "prometheus")
			if !slices.ContainsFunc(prom.Command, func(arg string) bool {
				list, ok := strings.CutPrefix(arg, "--enable-feature=")
				return ok && slices.Contains(strings.Split(list, ","), "exemplar-storage")
			}) {
				t.Errorf("prometheus command %v does not enable exemplar-storage", prom.Command)
			}
		})
	}
}

// TestComposeGrafanaReadsJaeger: the provisioned Jaeger datasource points at
// the jaeger service's query port.
func TestComposeGrafanaReadsJaeger(t *testing.T) {
	var file struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "monitoring", "grafana", "provisioning", "datasources", "jaeger.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Datasources) != 1 || file.Datasources[0].Type != "jaeger" {
		t.Fatalf("jaeger.yml: %+v, want one datasource of type jaeger", file.Datasources)
	}
	p := composeStack(t)
	s, _ := composeServiceURL(t, p, "Grafana's Jaeger datasource URL", file.Datasources[0].URL)
	if u, _ := url.Parse(file.Datasources[0].URL); s.Name != "jaeger" || u.Port() != "16686" {
		t.Errorf("Grafana's Jaeger datasource reads %s, want the jaeger service's query port 16686", file.Datasources[0].URL)
	}
}
