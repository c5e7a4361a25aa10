//go:build cluster

// The cluster tier (make test-cluster): the chart on a real Kubernetes control
// plane on this machine (scripts/cluster.sh: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler built from the Go module proxy, and
// kwok's fake nodes, on which pods are objects that kwok moves through their
// lifecycle). The tests install every values profile, roll out a new gateway
// image under the PodDisruptionBudget, and autoscale the gateway with KEDA
// (operator and metrics server built from its module) on what the real
// Prometheus scrapes from a real gateway under k6 load.
//
// Not in `make test`: the build tag keeps these out of every other build.

package helm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// cluster is the running cluster and the tools that drive it.
var cluster struct {
	root       string // the repository
	kubeconfig string
	bin        string // .cluster/bin
	helm       string
}

func TestMain(m *testing.M) { os.Exit(clusterMain(m)) }

func clusterMain(m *testing.M) int {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cluster.root = root
	cluster.bin = filepath.Join(root, ".cluster", "bin")
	cluster.helm = filepath.Join(root, ".chart-tools", "bin", "helm")

	// A fresh cluster for every run: the tests install into fixed namespaces.
	start := time.Now()
	if out, err := command(filepath.Join(root, "scripts", "cluster.sh"), "down"); err != nil {
		fmt.Fprintf(os.Stderr, "scripts/cluster.sh down: %v %s\n", err, out)
		return 1
	}
	up := exec.Command(filepath.Join(root, "scripts", "cluster.sh"), "up")
	up.Stderr = os.Stderr
	out, err := up.Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "scripts/cluster.sh up: %v (scripts/cluster.sh build first; make test-cluster does)\n", err)
		return 1
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	cluster.kubeconfig = lines[len(lines)-1]
	fmt.Fprintf(os.Stderr, "cluster tier: cluster up in %.1f s\n", time.Since(start).Seconds())
	if os.Getenv("CLUSTER_KEEP") == "" {
		defer func() {
			down := exec.Command(filepath.Join(root, "scripts", "cluster.sh"), "down")
			down.Stderr = os.Stderr
			_ = down.Run()
		}()
	} else {
		fmt.Fprintf(os.Stderr, "cluster tier: CLUSTER_KEEP set, the cluster stays up: KUBECONFIG=%s; scripts/cluster.sh down stops it\n", cluster.kubeconfig)
	}

	start = time.Now()
	if err := installCRDs(); err != nil {
		fmt.Fprintf(os.Stderr, "the Prometheus Operator's and KEDA's CRDs: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "cluster tier: CRDs established in %.1f s\n", time.Since(start).Seconds())
	return m.Run()
}

// command runs a command and returns its standard output; the error carries
// both outputs.
func command(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.Bytes(), nil
}

func kubectlArgs(args []string) []string {
	return append([]string{"--kubeconfig", cluster.kubeconfig}, args...)
}

// kubectl runs kubectl against the cluster and fails the test on an error.
func kubectl(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := command(filepath.Join(cluster.bin, "kubectl"), kubectlArgs(args)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func kubectlStdin(t *testing.T, stdin string, args ...string) []byte {
	t.Helper()
	return run(t, filepath.Join(cluster.bin, "kubectl"), []byte(stdin), kubectlArgs(args)...)
}

func helmCluster(t *testing.T, args ...string) []byte {
	t.Helper()
	return run(t, cluster.helm, nil, append(args, "--kubeconfig", cluster.kubeconfig)...)
}

// getJSON is `kubectl get ARGS -o json`, decoded.
func getJSON(t *testing.T, args ...string) object {
	t.Helper()
	var o object
	if err := json.Unmarshal(kubectl(t, append(append([]string{"get"}, args...), "-o", "json")...), &o); err != nil {
		t.Fatal(err)
	}
	return o
}

func items(list object) []object {
	var out []object
	for _, i := range asList(list["items"]) {
		out = append(out, i.(object))
	}
	return out
}

func asList(v any) []any { l, _ := v.([]any); return l }

func str(v any, path ...string) string {
	s, _ := dig(v, path...).(string)
	return s
}

func num(v any, path ...string) int {
	f, _ := dig(v, path...).(float64)
	return int(f)
}

// modulePin reads a module@version pin from scripts/chart-tools.sh, which
// already fetches the Prometheus Operator's and KEDA's modules for their CRDs.
func modulePin(variable string) (string, error) {
	b, err := os.ReadFile(filepath.Join(cluster.root, "scripts", "chart-tools.sh"))
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`(?m)^` + variable + `=(\S+)$`).FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("no %s= in scripts/chart-tools.sh", variable)
	}
	return string(m[1]), nil
}

func moduleDir(pin string) (string, error) {
	out, err := command("go", "mod", "download", "-json", pin)
	if err != nil {
		return "", err
	}
	var info struct{ Dir string }
	if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
		return "", fmt.Errorf("go mod download %s: %v %s", pin, err, out)
	}
	return info.Dir, nil
}

// installCRDs applies every CRD of the Prometheus Operator and of KEDA, at the
// versions whose schemas the offline tests validate against.
func installCRDs() error {
	var files []string
	for _, c := range []struct{ pin, dir string }{
		{"PROMETHEUS_OPERATOR", "example/prometheus-operator-crd"},
		{"KEDA", "config/crd/bases"},
	} {
		pin, err := modulePin(c.pin)
		if err != nil {
			return err
		}
		dir, err := moduleDir(pin)
		if err != nil {
			return err
		}
		found, _ := filepath.Glob(filepath.Join(dir, c.dir, "*.yaml"))
		if len(found) == 0 {
			return fmt.Errorf("no CRDs in %s/%s", dir, c.dir)
		}
		for _, f := range found {
			if filepath.Base(f) != "kustomization.yaml" {
				files = append(files, f)
			}
		}
	}
	kubectl := filepath.Join(cluster.bin, "kubectl")
	args := []string{"apply", "--server-side", "--force-conflicts"}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	if _, err := command(kubectl, kubectlArgs(args)...); err != nil {
		return err
	}
	_, err := command(kubectl, kubectlArgs([]string{"wait", "--for", "condition=Established", "crd", "--all", "--timeout", "60s"})...)
	return err
}

// pod is what the tests look at in a pod.
type pod struct {
	name, node, component string
	images                []string
	phase                 string
	ready, terminating    bool
}

func pods(t *testing.T, ns, selector string) []pod {
	t.Helper()
	return podsOf(getJSON(t, "pods", "-n", ns, "-l", selector))
}

func podsOf(list object) []pod {
	var out []pod
	for _, p := range items(list) {
		if p["kind"] != nil && p["kind"] != "Pod" {
			continue
		}
		q := pod{
			name:        str(p, "metadata", "name"),
			node:        str(p, "spec", "nodeName"),
			component:   str(p, "metadata", "labels", "app.kubernetes.io/component"),
			phase:       str(p, "status", "phase"),
			terminating: dig(p, "metadata", "deletionTimestamp") != nil,
		}
		for _, c := range asList(dig(p, "spec", "containers")) {
			q.images = append(q.images, str(c, "image"))
		}
		for _, c := range asList(dig(p, "status", "conditions")) {
			if str(c, "type") == "Ready" && str(c, "status") == "True" {
				q.ready = true
			}
		}
		out = append(out, q)
	}
	return out
}

// nodes returns the cluster's nodes by name.
func nodes(t *testing.T) map[string]object {
	t.Helper()
	out := map[string]object{}
	for _, n := range items(getJSON(t, "nodes")) {
		out[str(n, "metadata", "name")] = n
	}
	return out
}

// release is the Helm release every test installs (in its own namespace).
const release = "fc"

// install installs the chart into a new namespace and waits (Helm's watcher)
// until every object is ready.
func install(t *testing.T, ns, values string, set ...string) time.Duration {
	t.Helper()
	args := []string{"install", release, chart, "--namespace", ns, "--create-namespace", "-f", values,
		"--wait", "--timeout", "5m"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	start := time.Now()
	helmCluster(t, args...)
	return time.Since(start)
}

// TestClusterInstall: every values profile installs with the Prometheus
// Operator's and KEDA's CRDs present: the API server accepts every object, and
// every pod is scheduled onto a kwok node and Running, Triton's onto GPU nodes.
func TestClusterInstall(t *testing.T) {
	nodeByName := nodes(t)
	for _, values := range profiles(t) {
		profile := strings.TrimSuffix(filepath.Base(values), "-values.yaml")
		t.Run(profile, func(t *testing.T) {
			ns := "install-" + profile
			if profile == "minimal" {
				// The profile reads the model repository from the claim
				// fish-models: a volume bound to it before the install, as an
				// operator would provide.
				kubectlStdin(t, `
apiVersion: v1
kind: Namespace
metadata: {name: `+ns+`}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: `+ns+`-models}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadOnlyMany]
  storageClassName: ""
  hostPath: {path: /srv/fish-models}
  claimRef: {namespace: `+ns+`, name: fish-models}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: fish-models, namespace: `+ns+`}
spec:
  accessModes: [ReadOnlyMany]
  storageClassName: ""
  volumeName: `+ns+`-models
  resources: {requests: {storage: 1Gi}}
`, "apply", "-f", "-")
			}
			took := install(t, ns, values)

			// Every object Helm rendered is in the cluster, as rendered.
			manifest := helmCluster(t, "get", "manifest", release, "--namespace", ns)
			rendered := map[string]bool{}
			for _, line := range strings.Split(string(kubectlStdin(t, string(manifest), "get", "-n", ns, "-f", "-", "-o", "name")), "\n") {
				if line != "" {
					rendered[line] = true
				}
			}
			want := 0
			for _, doc := range strings.Split(string(manifest), "\n---") {
				if strings.Contains(doc, "\nkind: ") || strings.HasPrefix(strings.TrimSpace(doc), "kind: ") {
					want++
				}
			}
			if len(rendered) != want || want == 0 {
				t.Fatalf("%d objects in the cluster, %d in the release's manifest", len(rendered), want)
			}

			// Every Deployment has its replicas ready; every pod is Running and
			// Ready on a kwok node, Triton's on a GPU node.
			for _, d := range items(getJSON(t, "deployments", "-n", ns)) {
				name := str(d, "metadata", "name")
				if r := num(d, "spec", "replicas"); r == 0 || num(d, "status", "readyReplicas") != r {
					t.Errorf("deployment %s: %d of %d replicas ready", name, num(d, "status", "readyReplicas"), r)
				}
			}
			ps := pods(t, ns, "app.kubernetes.io/instance="+release)
			if len(ps) == 0 {
				t.Fatal("no pods")
			}
			perComponent := map[string]int{}
			for _, p := range ps {
				perComponent[p.component]++
				node := nodeByName[p.node]
				if node == nil || str(node, "metadata", "annotations", "kwok.x-k8s.io/node") != "fake" {
					t.Errorf("pod %s on node %q, not a kwok node", p.name, p.node)
				}
				if p.phase != "Running" || !p.ready {
					t.Errorf("pod %s: phase %s, ready %v", p.name, p.phase, p.ready)
				}
				gpu := str(node, "metadata", "labels", "nvidia.com/gpu.present") == "true"
				if p.component == "triton" && !gpu {
					t.Errorf("Triton pod %s on %s, a node without GPUs", p.name, p.node)
				}
				if p.component == "gateway" && gpu {
					t.Errorf("gateway pod %s on the GPU node %s", p.name, p.node)
				}
			}
			t.Logf("installed in %.1f s: %d objects; pods by component %v", took.Seconds(), want, perComponent)
		})
	}
}

// sample is one look at the gateway's pods and PodDisruptionBudget.
type sample struct {
	at                               time.Duration
	ready, total                     int // ready pods not being deleted; all pods
	images                           map[string]int
	desiredHealthy, currentHealthy   int
	disruptionsAllowed, expectedPods int
	readyNames                       []string
}

// watchGateway samples the gateway's pods and PDB until stop is closed.
func watchGateway(t *testing.T, ns string, stop <-chan struct{}) <-chan []sample {
	done := make(chan []sample, 1)
	kubectlBin := filepath.Join(cluster.bin, "kubectl")
	start := time.Now()
	go func() {
		var samples []sample
		for {
			select {
			case <-stop:
				done <- samples
				return
			default:
			}
			out, err := command(kubectlBin, kubectlArgs([]string{"get", "pods,poddisruptionbudgets", "-n", ns,
				"-l", "app.kubernetes.io/component=gateway", "-o", "json"})...)
			if err != nil {
				t.Error(err)
				done <- samples
				return
			}
			var list object
			if err := json.Unmarshal(out, &list); err != nil {
				t.Error(err)
				done <- samples
				return
			}
			s := sample{at: time.Since(start), images: map[string]int{}}
			for _, p := range podsOf(list) {
				s.total++
				if p.ready && !p.terminating {
					s.ready++
					s.readyNames = append(s.readyNames, p.name)
				}
				if !p.terminating {
					s.images[p.images[0]]++
				}
			}
			for _, o := range items(list) {
				if o["kind"] == "PodDisruptionBudget" {
					s.desiredHealthy = num(o, "status", "desiredHealthy")
					s.currentHealthy = num(o, "status", "currentHealthy")
					s.disruptionsAllowed = num(o, "status", "disruptionsAllowed")
					s.expectedPods = num(o, "status", "expectedPods")
				}
			}
			samples = append(samples, s)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return done
}

// TestClusterRolloutRespectsPDB: a new gateway image rolls out without ever
// taking more gateway pods out of service than the PodDisruptionBudget allows
// (the Deployment adds a pod before it removes one), and draining nodes during
// the release's life evicts gateway pods only as fast as the budget lets:
// evictions beyond it are refused until replacements are ready.
func TestClusterRolloutRespectsPDB(t *testing.T) {
	const ns, replicas = "rollout", 4
	values := filepath.Join(chart, "ci", "default-values.yaml")
	install(t, ns, values, "autoscaling.mode=none", fmt.Sprintf("gateway.replicas=%d", replicas), "gateway.image.tag=1.0.0")
	pdb := getJSON(t, "poddisruptionbudget", "-n", ns, "fc-fish-classifier-gateway")
	maxUnavailable := num(pdb, "spec", "maxUnavailable")
	if maxUnavailable != 1 {
		t.Fatalf("the gateway PDB's maxUnavailable is %v, want the chart's default 1", dig(pdb, "spec", "maxUnavailable"))
	}
	floor := replicas - maxUnavailable

	check := func(phase string, samples []sample) {
		t.Helper()
		if len(samples) < 5 {
			t.Fatalf("%s: only %d samples", phase, len(samples))
		}
		low := samples[0]
		for _, s := range samples {
			if s.ready < low.ready {
				low = s
			}
			if s.desiredHealthy > 0 && s.currentHealthy < s.desiredHealthy {
				t.Errorf("%s, at %.1f s: the PDB reports %d healthy pods, below its %d", phase, s.at.Seconds(), s.currentHealthy, s.desiredHealthy)
			}
		}
		if low.ready < floor {
			t.Errorf("%s, at %.1f s: %d gateway pods ready (%v); the budget keeps at least %d", phase, low.at.Seconds(), low.ready, low.readyNames, floor)
		}
		t.Logf("%s: %d samples over %.1f s; fewest ready gateway pods %d (budget floor %d)", phase, len(samples), samples[len(samples)-1].at.Seconds(), low.ready, floor)
	}

	// The rollout: every pod replaced by one of the new image.
	stop := make(chan struct{})
	watch := watchGateway(t, ns, stop)
	time.Sleep(time.Second)
	start := time.Now()
	helmCluster(t, "upgrade", release, chart, "--namespace", ns, "--reuse-values",
		"--set", "gateway.image.tag=1.0.1", "--wait", "--timeout", "5m")
	rollout := time.Since(start)
	time.Sleep(time.Second)
	close(stop)
	samples := <-watch
	check("rollout", samples)
	mixed := false
	for _, s := range samples {
		mixed = mixed || len(s.images) > 1
	}
	if !mixed {
		t.Error("never saw old and new pods side by side: the rollout was not observed")
	}
	for _, p := range pods(t, ns, "app.kubernetes.io/component=gateway") {
		if !p.terminating && !strings.HasSuffix(p.images[0], ":1.0.1") {
			t.Errorf("pod %s still runs %s after the rollout", p.name, p.images[0])
		}
	}
	t.Logf("rollout of %d replicas in %.1f s", replicas, rollout.Seconds())

	// The drain: the two CPU nodes with the most gateway pods, at once.
	perNode := map[string]int{}
	for _, p := range pods(t, ns, "app.kubernetes.io/component=gateway") {
		if !p.terminating {
			perNode[p.node]++
		}
	}
	var busiest []string
	for n := range perNode {
		busiest = append(busiest, n)
	}
	sort.Slice(busiest, func(i, j int) bool { return perNode[busiest[i]] > perNode[busiest[j]] })
	busiest = busiest[:min(2, len(busiest))]
	onDrained := 0
	for _, n := range busiest {
		onDrained += perNode[n]
	}
	defer func() {
		for _, n := range busiest {
			kubectl(t, "uncordon", n)
		}
	}()
	stop = make(chan struct{})
	watch = watchGateway(t, ns, stop)
	time.Sleep(time.Second)
	start = time.Now()
	var wg sync.WaitGroup
	outputs := make([][]byte, len(busiest))
	errs := make([]error, len(busiest))
	for i, n := range busiest {
		wg.Go(func() {
			// kubectl drain says on stderr which evictions were refused.
			drain := exec.Command(filepath.Join(cluster.bin, "kubectl"), kubectlArgs([]string{"drain", n,
				"--pod-selector", "app.kubernetes.io/component=gateway", "--ignore-daemonsets", "--delete-emptydir-data",
				"--timeout", "4m"})...)
			outputs[i], errs[i] = drain.CombinedOutput()
			if errs[i] != nil {
				errs[i] = fmt.Errorf("%v\n%s", errs[i], outputs[i])
			}
		})
	}
	wg.Wait()
	drain := time.Since(start)
	// Until the replacements are Ready.
	kubectl(t, "rollout", "status", "deployment/fc-fish-classifier-gateway", "-n", ns, "--timeout", "3m")
	time.Sleep(time.Second)
	close(stop)
	check("drain", <-watch)
	refused := 0
	for i, err := range errs {
		if err != nil {
			t.Errorf("drain %s: %v", busiest[i], err)
		}
		refused += strings.Count(string(outputs[i]), "disruption budget")
	}
	// Evicting more than one pod at once breaks the budget: the API server
	// must have refused some until replacements were ready.
	if onDrained >= 2 && refused == 0 {
		t.Errorf("%d gateway pods on %v were evicted and no eviction was refused", onDrained, busiest)
	}
	t.Logf("drained %v (%d gateway pods) in %.1f s; %d evictions refused by the budget", busiest, onDrained, drain.Seconds(), refused)
}
