//go:build linux

package main

// End-to-end tests of TRITON_SHARED_MEMORY=system: the gateway binary (its
// own process, so its regions carry its own pid and a SIGKILL is a real
// crash) in front of tritontest, which reads the regions from /dev/shm as
// Triton does. shm_real_triton_e2e_test.go runs the same against the real
// Triton.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fish-classifier/fish-classifier/gateway/triton/tritontest"
)

// shmPrefix starts the names of the process's regions and objects.
func (p *procGateway) shmPrefix() string { return fmt.Sprintf("fishgw-%d-", p.pid()) }

// objects lists the process's objects in /dev/shm.
func (p *procGateway) objects(t *testing.T) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join("/dev/shm", p.shmPrefix()+"*"))
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range matches {
		matches[i] = filepath.Base(m)
	}
	return matches
}

// counter reads one series of the gateway's /metrics (0 when absent).
func (p *procGateway) counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	v, _ := metricValue(p.scrape(t), name, labels)
	return v
}

// shmEnv is the environment of a gateway in front of srv with shared memory
// on: two regions of 4 MiB.
func shmEnv(env map[string]string) map[string]string {
	env = cloneEnv(env)
	env["TRITON_SHARED_MEMORY"] = "system"
	env["TRITON_SHARED_MEMORY_BYTES"] = strconv.Itoa(8 << 20)
	env["TRITON_SHARED_MEMORY_REGIONS"] = "2"
	env["TRITON_CONNECT_BACKOFF_MAX"] = "100ms"
	env["GATEWAY_LOG_LEVEL"] = "info"
	return env
}

func TestE2ESharedMemory(t *testing.T) {
	_, srv, env, _ := prepare(t, nil)
	g := startProcGateway(t, shmEnv(env), srv)

	regions := srv.SharedMemoryRegions()
	if len(regions) != 2 || !strings.HasPrefix(regions[0], g.shmPrefix()) {
		t.Fatalf("Triton has regions %v, want the gateway's 2 (%s*)", regions, g.shmPrefix())
	}
	if objects := g.objects(t); !slices.Equal(objects, regions) {
		t.Fatalf("objects in /dev/shm %v, want the registered regions %v", objects, regions)
	}

	// One image: the tensor Triton reads from the region is preprocess's.
	img := jpegOf(t, 97, 61, 11)
	if r := g.predictFile(t, "", img); r.Status != http.StatusOK {
		t.Fatalf("POST /predict: %s", r)
	}
	reqs := predictionRequests(srv)
	if len(reqs) != 1 {
		t.Fatalf("%d prediction calls, want 1", len(reqs))
	}
	if reqs[0].SharedMemory == nil || len(reqs[0].Request.GetRawInputContents()) != 0 {
		t.Fatalf("the image travelled as %v with %d raw contents, want a region and none", reqs[0].SharedMemory, len(reqs[0].Request.GetRawInputContents()))
	}
	if !bytes.Equal(reqs[0].Input, expectedTensor(t, g.Model, img)) {
		t.Fatal("Triton read other bytes from the region than preprocess makes of the upload")
	}

	// A batch with a bad image: the good ones, moved together in the region,
	// go in one call.
	parts, want := mixedBatch(t, g.Model, []int{2, -1, 5, 7})
	body, ct := multipartBody(t, parts...)
	r := g.post(t, "/predict/batch", body, ct)
	if r.Status != http.StatusOK {
		t.Fatalf("POST /predict/batch: %s", r)
	}
	batch := decodeJSON[batchBody](t, r)
	for i, k := range []int{2, -1, 5, 7} {
		if k >= 0 && (batch.Results[i].Error != nil || batch.Results[i].Predictions[0].Index != k) {
			t.Errorf("batch item %d: %+v, want class %d", i, batch.Results[i], k)
		}
	}
	reqs = predictionRequests(srv)
	if len(reqs) != 2 || reqs[1].SharedMemory == nil || !bytes.Equal(reqs[1].Input, want) {
		t.Fatalf("the batch went as %d calls, the last by %v; want one call reading the three tensors from a region", len(reqs)-1, reqs[len(reqs)-1].SharedMemory)
	}

	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"triton_infer_inputs_total", map[string]string{"via": "system_shared_memory"}, 2},
		{"triton_infer_inputs_total", map[string]string{"via": "message"}, 0},
		{"triton_shared_memory_fallbacks_total", map[string]string{"reason": "full"}, 0},
		{"triton_shared_memory_fallbacks_total", map[string]string{"reason": "unregistered"}, 0},
		{"triton_shared_memory_registrations_total", map[string]string{"result": "ok"}, 1},
		{"triton_shared_memory_bytes", nil, 8 << 20},
		{"triton_shared_memory_bytes_in_use", nil, 0},
	} {
		if got := g.counter(t, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	// Triton restarts and has no region: the gateway registers them again and
	// predictions go on by shared memory.
	srv.Stop()
	srv.Restart()
	waitFor(t, "a prediction after Triton's restart", func() bool {
		return g.predictFile(t, "", img).Status == http.StatusOK
	})
	last := predictionRequests(srv)
	if rec := last[len(last)-1]; rec.SharedMemory == nil || !bytes.Equal(rec.Input, reqs[0].Input) {
		t.Errorf("after the restart the image travelled as %v", rec.SharedMemory)
	}
	if got := srv.SharedMemoryRegions(); !slices.Equal(got, regions) {
		t.Errorf("Triton has %v after the restart, want %v again", got, regions)
	}
	if got := g.counter(t, "triton_shared_memory_registrations_total", map[string]string{"result": "ok"}); got != 2 {
		t.Errorf("registrations{ok} = %v after the restart, want 2", got)
	}

	// SIGTERM: the regions leave Triton and /dev/shm.
	g.terminate(t)
	if got := srv.SharedMemoryRegions(); len(got) != 0 {
		t.Errorf("Triton still has %v after the gateway stopped", got)
	}
	if got := g.objects(t); len(got) != 0 {
		t.Errorf("objects left in /dev/shm: %v", got)
	}
}

// A gateway killed with SIGKILL cannot clean up: its objects stay in
// /dev/shm and its regions in Triton. The next gateway removes both.
func TestE2ESharedMemoryAfterAKilledGateway(t *testing.T) {
	_, srv, env, _ := prepare(t, nil)
	env = shmEnv(env)
	dead := startProcGateway(t, env, srv)
	deadRegions := srv.SharedMemoryRegions()
	dead.kill(t)
	left := dead.objects(t)
	t.Cleanup(func() { // should the gateway below fail to
		for _, name := range left {
			_ = os.Remove(filepath.Join("/dev/shm", name))
		}
	})
	if len(left) != 2 || len(deadRegions) != 2 {
		t.Fatalf("after SIGKILL: objects %v, regions %v; want 2 of each left behind", left, deadRegions)
	}

	next := startProcGateway(t, env, srv)
	if got := dead.objects(t); len(got) != 0 {
		t.Errorf("the killed gateway's objects are still in /dev/shm: %v", got)
	}
	regions := srv.SharedMemoryRegions()
	for _, r := range regions {
		if !strings.HasPrefix(r, next.shmPrefix()) {
			t.Errorf("Triton still has region %s of the killed gateway", r)
		}
	}
	if len(regions) != 2 {
		t.Errorf("Triton has %v, want the new gateway's 2 regions", regions)
	}
	if got := next.counter(t, "triton_shared_memory_stale_unregistered_total", nil); got != 2 {
		t.Errorf("triton_shared_memory_stale_unregistered_total = %v, want 2", got)
	}
	if r := next.predictFile(t, "", jpegOf(t, 50, 40, 3)); r.Status != http.StatusOK {
		t.Fatalf("POST /predict: %s", r)
	}
	next.terminate(t)
	if got := next.objects(t); len(got) != 0 {
		t.Errorf("objects left in /dev/shm: %v", got)
	}
	if got := srv.SharedMemoryRegions(); len(got) != 0 {
		t.Errorf("Triton still has %v", got)
	}
}

// A Triton that cannot open the regions (another host, another IPC
// namespace) keeps the model from loading, and /ready says why.
func TestE2ESharedMemoryTritonElsewhere(t *testing.T) {
	m := tritontest.DefaultModel()
	srv := tritontest.Start(t, m, tritontest.WithSharedMemoryDir(t.TempDir()))
	_, _, env, _ := prepare(t, nil)
	env["TRITON_URL"] = srv.Addr()
	env = shmEnv(env)
	bin := buildGateway(t)
	addr := freeAddr(t)
	cmd := exec.Command(bin)
	cmd.Env = []string{"GATEWAY_LISTEN_ADDR=" + addr}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := <-exited; err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
		if t.Failed() {
			t.Logf("gateway output:\n%s", out.String())
		}
	}()
	g := &e2eGateway{URL: "http://" + addr, client: &http.Client{Timeout: 10 * time.Second}}
	var ready readyBody
	waitFor(t, "/ready to say why the model is not loaded", func() bool {
		r := g.doNoFatal(mustGet(t, g.URL+"/ready"))
		if r.Status != http.StatusServiceUnavailable {
			return false
		}
		if err := json.Unmarshal(r.Body, &ready); err != nil {
			return false
		}
		return strings.Contains(ready.Reason, "shared memory")
	})
	for _, s := range []string{"could not register region", "Unable to open shared memory region", "IPC namespace"} {
		if !strings.Contains(ready.Reason, s) {
			t.Errorf("/ready reason %q does not say %q", ready.Reason, s)
		}
	}
}
