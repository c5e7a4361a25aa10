//go:build cluster

package helm

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/fish-classifier/fish-classifier/internal/poll"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// freePort returns a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// background starts a process for the rest of the test, its output in
// dir/name.log (printed when the test fails).
func background(t *testing.T, dir, name string, env []string, bin string, args ...string) *exec.Cmd {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("%s's log (end):\n%s", name, b)
		}
	})
	return cmd
}

func httpOK(url string) bool {
	_, err := command("curl", "-fsS", "-o", "/dev/null", "--max-time", "2", url)
	return err == nil
}

// TestClusterAutoscaling: KEDA scales the gateway on its own saturation. A
// real gateway (the embedded ONNX backend) serves on this machine, the real
// Prometheus scrapes it with the labels the chart's ServiceMonitor gives its
// series (job="fish_api", the release's namespace), and KEDA's operator and
// metrics server (built from KEDA's module) serve the chart's ScaledObject
// queries to the HPA controller through the external metrics API. Under k6
// load the HPA controller scales the gateway Deployment up; when the load
// stops, back down.
func TestClusterAutoscaling(t *testing.T) {
	for _, b := range []string{"keda-operator", "keda-adapter"} {
		if _, err := os.Stat(filepath.Join(cluster.bin, b)); err != nil {
			t.Fatalf("%s missing: scripts/cluster.sh build", b)
		}
	}
	const ns = "autoscale"
	work := t.TempDir()
	pki := filepath.Join(cluster.root, ".cluster", "run", "pki")

	// The real gateway, on the embedded ONNX backend.
	ort, err := command(filepath.Join(cluster.root, "scripts", "fetch-onnxruntime.sh"))
	if err != nil {
		t.Fatal(err)
	}
	gwBin := filepath.Join(work, "gateway")
	build := exec.Command("go", "build", "-o", gwBin, "./gateway/cmd/gateway")
	build.Dir = cluster.root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./gateway/cmd/gateway: %v\n%s", err, out)
	}
	gwPort := freePort(t)
	gwURL := fmt.Sprintf("http://127.0.0.1:%d", gwPort)
	background(t, work, "gateway", []string{
		fmt.Sprintf("GATEWAY_LISTEN_ADDR=127.0.0.1:%d", gwPort),
		"ONNXRUNTIME_LIB=" + strings.TrimSpace(string(ort)),
		"GATEWAY_LOG_LEVEL=warn",
		"MODEL_REPOSITORY=" + filepath.Join(cluster.root, "triton-models"),
		// One process stands for every replica: its admitted requests are the
		// fleet's. Admitting 32 rather than 4 per core (MAX_IN_FLIGHT's
		// default) lets the backlog queue inside it, as it would spread over
		// the replicas, instead of being shed at 8.
		"MAX_IN_FLIGHT=32",
	}, gwBin)
	poll.Until(t, 60*time.Second, 200*time.Millisecond, "the gateway's /ready", func() bool { return httpOK(gwURL + "/ready") })

	// The real Prometheus: the gateway's series get the labels the chart's
	// ServiceMonitor gives them in a cluster, which the ScaledObject's queries
	// select.
	promPort := freePort(t)
	promURL := fmt.Sprintf("http://127.0.0.1:%d", promPort)
	promConfig := filepath.Join(work, "prometheus.yml")
	if err := os.WriteFile(promConfig, []byte(fmt.Sprintf(`global:
  scrape_interval: 2s
scrape_configs:
  - job_name: fish_api
    static_configs:
      - targets: ["127.0.0.1:%d"]
        labels:
          namespace: %s
`, gwPort, ns)), 0o644); err != nil {
		t.Fatal(err)
	}
	background(t, work, "prometheus", nil, "prometheus", "--config.file", promConfig,
		"--storage.tsdb.path", filepath.Join(work, "tsdb"), "--web.listen-address", fmt.Sprintf("127.0.0.1:%d", promPort))
	poll.Until(t, 60*time.Second, 500*time.Millisecond, "Prometheus's first scrape of the gateway", func() bool {
		out, err := command("curl", "-fsS", "--max-time", "2", promURL+"/api/v1/query?query=up%7Bjob%3D%22fish_api%22%7D%3D%3D1")
		return err == nil && strings.Contains(string(out), `"value"`)
	})

	// KEDA: its operator (which evaluates the triggers) and its metrics
	// server (the external metrics API the HPA controller reads, through the
	// API server's aggregation layer), with the cluster's serving certificate
	// for their gRPC link and the metrics server's HTTPS.
	certs := filepath.Join(work, "certs")
	if err := os.MkdirAll(certs, 0o755); err != nil {
		t.Fatal(err)
	}
	for from, to := range map[string]string{"ca.crt": "ca.crt", "serving.crt": "tls.crt", "serving.key": "tls.key"} {
		b, err := os.ReadFile(filepath.Join(pki, from))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(certs, to), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	kubectlStdin(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: keda}\n", "apply", "-f", "-")
	kedaEnv := []string{"KUBECONFIG=" + cluster.kubeconfig, "WATCH_NAMESPACE=", "POD_NAMESPACE=keda", "KEDA_CLUSTER_OBJECT_NAMESPACE=keda"}
	grpcPort, adapterPort := freePort(t), freePort(t)
	background(t, work, "keda-operator", kedaEnv, filepath.Join(cluster.bin, "keda-operator"),
		"--leader-elect=false", "--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--metrics-service-bind-address", fmt.Sprintf("127.0.0.1:%d", grpcPort), "--cert-dir", certs, "--ca-dir", certs,
		"--zap-log-level", "info")
	background(t, work, "keda-adapter", kedaEnv, filepath.Join(cluster.bin, "keda-adapter"),
		"--secure-port", fmt.Sprint(adapterPort), "--bind-address", "127.0.0.1",
		"--cert-dir", certs, "--tls-cert-file", filepath.Join(certs, "tls.crt"), "--tls-private-key-file", filepath.Join(certs, "tls.key"),
		"--lister-kubeconfig", cluster.kubeconfig, "--authentication-kubeconfig", cluster.kubeconfig, "--authorization-kubeconfig", cluster.kubeconfig,
		"--metrics-service-address", fmt.Sprintf("127.0.0.1:%d", grpcPort), "--port", fmt.Sprint(freePort(t)))
	ca, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	// The aggregation layer reaches the metrics server through a Service; an
	// ExternalName one names this machine (there is no kube-proxy).
	kubectlStdin(t, fmt.Sprintf(`
apiVersion: v1
kind: Service
metadata: {name: keda-metrics-apiserver, namespace: keda}
spec:
  type: ExternalName
  externalName: localhost
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.external.metrics.k8s.io}
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  service: {name: keda-metrics-apiserver, namespace: keda, port: %d}
  caBundle: %s
`, adapterPort, base64.StdEncoding.EncodeToString(ca)), "apply", "-f", "-")
	t.Cleanup(func() {
		_, _ = command(filepath.Join(cluster.bin, "kubectl"), kubectlArgs([]string{"delete", "apiservice", "v1beta1.external.metrics.k8s.io", "--ignore-not-found"})...)
	})
	poll.Until(t, 90*time.Second, time.Second, "the external metrics API", func() bool {
		_, err := command(filepath.Join(cluster.bin, "kubectl"), kubectlArgs([]string{"get", "--raw", "/apis/external.metrics.k8s.io/v1beta1"})...)
		return err == nil
	})

	// The chart, KEDA mode, its queries sent to this Prometheus. Scale-down
	// waits 30 s rather than 5 minutes, and at most 4 replicas.
	const minReplicas, maxReplicas = 2, 4
	install(t, ns, filepath.Join(chart, "ci", "default-values.yaml"),
		"autoscaling.prometheusAddress="+promURL,
		fmt.Sprintf("autoscaling.gateway.minReplicas=%d", minReplicas), fmt.Sprintf("autoscaling.gateway.maxReplicas=%d", maxReplicas),
		"autoscaling.gateway.scaleDownStabilizationSeconds=30", "autoscaling.pollingInterval=5")
	hpaName := "keda-hpa-fc-fish-classifier-gateway"
	deployment := "fc-fish-classifier-gateway"
	replicas := func() int { return num(getJSON(t, "deployment", "-n", ns, deployment), "spec", "replicas") }
	hpaState := func() (object, string) {
		h := getJSON(t, "hpa", "-n", ns, hpaName)
		var metrics []string
		for _, m := range asList(dig(h, "status", "currentMetrics")) {
			metrics = append(metrics, fmt.Sprintf("%s=%v%v", str(m, "external", "metric", "name"),
				dig(m, "external", "current", "averageValue"), dig(m, "external", "current", "value")))
		}
		return h, fmt.Sprintf("desired %d, metrics %v", num(h, "status", "desiredReplicas"), metrics)
	}
	took := poll.Until(t, 3*time.Minute, 2*time.Second, "KEDA's HPA reading the gateway's metrics at minReplicas", func() bool {
		out, err := command(filepath.Join(cluster.bin, "kubectl"), kubectlArgs([]string{"get", "hpa", "-n", ns, hpaName, "-o", "json"})...)
		if err != nil {
			return false
		}
		var h object
		_ = json.Unmarshal(out, &h)
		active := false
		for _, c := range asList(dig(h, "status", "conditions")) {
			if str(c, "type") == "ScalingActive" && str(c, "status") == "True" {
				active = true
			}
		}
		return active && len(asList(dig(h, "status", "currentMetrics"))) == 2 && replicas() == minReplicas
	})
	_, state := hpaState()
	t.Logf("HPA %s active after %.1f s: %s", hpaName, took.Seconds(), state)

	// Load: more requests than two cores answer, so admitted requests queue
	// for decode and inference slots.
	k6, err := command(filepath.Join(cluster.root, "scripts", "k6.sh"), "--path")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	load := exec.CommandContext(ctx, strings.TrimSpace(string(k6)), "run", "--quiet", "--no-thresholds",
		"-e", "SCENARIO=load", "-e", "RATE=120", "-e", "DURATION=6m", "-e", "BASE_URL="+gwURL,
		"-e", "SUMMARY_DIR="+work, "loadtest/k6/predict.js")
	load.Dir = cluster.root
	load.Env = append(os.Environ(), "K6_NO_USAGE_REPORT=true")
	loadLog, _ := os.Create(filepath.Join(work, "k6.log"))
	load.Stdout, load.Stderr = loadLog, loadLog
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	loadDone := make(chan struct{})
	go func() { _ = load.Wait(); close(loadDone) }()
	up := poll.Until(t, 5*time.Minute, 2*time.Second, "the HPA scaling the gateway up under load", func() bool {
		select {
		case <-loadDone:
			t.Fatalf("k6 ended before the scale-up; its log in %s", loadLog.Name())
		default:
		}
		return replicas() >= maxReplicas
	})
	_, state = hpaState()
	t.Logf("scaled up to %d replicas %.1f s after the load started: %s", replicas(), up.Seconds(), state)
	// What Prometheus says, for the log: the two triggers' inputs.
	for _, q := range []string{
		`sum(http_requests_in_flight{job="fish_api"})`,
		`sum by (slot) (rate(classifier_slot_wait_seconds_sum{job="fish_api"}[1m])) / sum by (slot) (rate(classifier_slot_wait_seconds_count{job="fish_api"}[1m]))`,
	} {
		out, _ := command("curl", "-fsS", "--max-time", "2", "-G", promURL+"/api/v1/query", "--data-urlencode", "query="+q)
		var r struct {
			Data struct {
				Result []struct {
					Metric map[string]string
					Value  []any
				}
			}
		}
		_ = json.Unmarshal(out, &r)
		var vals []string
		for _, v := range r.Data.Result {
			vals = append(vals, fmt.Sprintf("%v=%v", v.Metric, v.Value[1]))
		}
		t.Logf("Prometheus: %s: %v", q, vals)
	}
	poll.Until(t, 2*time.Minute, time.Second, "every gateway pod ready", func() bool {
		return num(getJSON(t, "deployment", "-n", ns, deployment), "status", "readyReplicas") == maxReplicas
	})

	cancel()
	<-loadDone
	down := poll.Until(t, 6*time.Minute, 2*time.Second, "the HPA scaling the gateway back down", func() bool { return replicas() == minReplicas })
	_, state = hpaState()
	t.Logf("back to %d replicas %.1f s after the load stopped: %s", minReplicas, down.Seconds(), state)

	// The HPA controller did the scaling, both ways.
	var rescales []string
	for _, e := range items(getJSON(t, "events", "-n", ns, "--field-selector", "involvedObject.name="+hpaName)) {
		if str(e, "reason") == "SuccessfulRescale" {
			rescales = append(rescales, str(e, "message"))
		}
	}
	upEvent := regexp.MustCompile(`^New size: [0-9]+; reason: external metric s[0-9]-prometheus\(.*\) above target$`)
	if !slices.ContainsFunc(rescales, upEvent.MatchString) {
		t.Errorf("the HPA's rescale events: %q; none is a scale-up on a ScaledObject trigger", rescales)
	}
	downEvent := fmt.Sprintf("New size: %d; reason: All metrics below target", minReplicas)
	if !slices.Contains(rescales, downEvent) {
		t.Errorf("the HPA's rescale events: %q; none says %q", rescales, downEvent)
	}
	t.Logf("HPA events: %q", rescales)
}
