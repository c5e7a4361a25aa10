//go:build linux

package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fish-classifier/fish-classifier/gateway/kserve"
	"github.com/fish-classifier/fish-classifier/internal/testenv"
)

// TestE2ERealTritonSharedMemory runs the gateway with and without
// TRITON_SHARED_MEMORY=system against the real Triton (2.51, nvidia-pytriton,
// on the CPU: testenv.StartTriton): the same photographs get the same
// predictions, bit for bit, both ways; Triton lists the gateway's regions;
// after Triton restarts, the gateway registers them again; a gateway killed
// with SIGKILL is cleaned up after by the next one; and a gateway that stops
// leaves no region in Triton and no object in /dev/shm.
func TestE2ERealTritonSharedMemory(t *testing.T) {
	tr := testenv.StartTriton(t)
	root := testenv.RepoRoot(t)
	env := map[string]string{
		"BACKEND":                    "triton",
		"TRITON_URL":                 tr.GRPCAddr,
		"MODEL_NAME":                 "fish_classifier",
		"MODEL_REPOSITORY":           filepath.Join(root, "triton-models"),
		"MODEL_REFRESH_INTERVAL":     "1s",
		"REQUEST_TIMEOUT":            "30s",
		"TRITON_RETRY_BACKOFF":       "5ms",
		"TRITON_CONNECT_BACKOFF_MAX": "200ms",
		"GATEWAY_LOG_LEVEL":          "info",
	}
	withShm := cloneEnv(env)
	withShm["TRITON_SHARED_MEMORY"] = "system"
	withShm["TRITON_SHARED_MEMORY_BYTES"] = strconv.Itoa(16 << 20)
	shm := startProcGateway(t, withShm, nil)
	plain := startProcGateway(t, env, nil)

	conn, err := grpc.NewClient(tr.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	api := kserve.NewGRPCInferenceServiceClient(conn)
	tritonRegions := func() map[string]*kserve.SystemSharedMemoryStatusResponse_RegionStatus {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := api.SystemSharedMemoryStatus(ctx, &kserve.SystemSharedMemoryStatusRequest{}, grpc.WaitForReady(true))
		if err != nil {
			t.Fatalf("SystemSharedMemoryStatus: %v", err)
		}
		return st.GetRegions()
	}
	wantRegions := func(what string, owners ...*procGateway) {
		t.Helper()
		got := tritonRegions()
		want := 0
		for _, g := range owners {
			for _, obj := range g.objects(t) {
				want++
				r := got[obj]
				if r == nil || r.GetKey() != "/"+obj || r.GetOffset() != 0 || r.GetByteSize() != 16<<20 {
					t.Errorf("%s: Triton has %v for the object %s, want it registered whole under its key", what, r, obj)
				}
			}
		}
		if len(got) != want {
			t.Errorf("%s: Triton has %d regions %v, want %d", what, len(got), keys(got), want)
		}
	}
	wantRegions("at start", shm)

	photos := map[string][]byte{}
	for _, name := range []string{"cat.png", "coffee.png", "rocket.jpg"} {
		b, err := os.ReadFile(filepath.Join("testdata", "photos", name))
		if err != nil {
			t.Fatal(err)
		}
		photos[name] = b
	}
	photos["synthetic.jpg"] = jpegOf(t, 320, 240, 5)
	predict := func(g *procGateway, img []byte) []byte {
		t.Helper()
		r := g.predictFile(t, "?top_k=17", img)
		if r.Status != http.StatusOK {
			t.Fatalf("POST /predict: %s", r)
		}
		return predictionsJSON(t, r.Body)
	}
	answers := map[string][]byte{}
	for name, img := range photos {
		viaShm, inMessage := predict(shm, img), predict(plain, img)
		if string(viaShm) != string(inMessage) {
			t.Errorf("%s: predictions differ\n by shared memory: %s\n in the message:    %s", name, viaShm, inMessage)
		}
		answers[name] = viaShm
	}
	var parts []part
	for _, name := range []string{"cat.png", "coffee.png", "rocket.jpg"} {
		parts = append(parts, part{Field: "files", Filename: name, ContentType: contentTypeOf(name), Data: photos[name]})
	}
	body, ct := multipartBody(t, parts...)
	batchOf := func(g *procGateway) string {
		r := g.post(t, "/predict/batch?top_k=17", body, ct)
		if r.Status != http.StatusOK {
			t.Fatalf("POST /predict/batch: %s", r)
		}
		var b batchBody
		if err := json.Unmarshal(r.Body, &b); err != nil {
			t.Fatal(err)
		}
		out, _ := json.Marshal(b.Results)
		return string(out)
	}
	if viaShm, inMessage := batchOf(shm), batchOf(plain); viaShm != inMessage {
		t.Errorf("batch predictions differ\n by shared memory: %s\n in the message:    %s", viaShm, inMessage)
	}
	calls := float64(len(photos) + 1)
	for _, c := range []struct {
		g      *procGateway
		via    string
		wantIn float64
	}{{shm, "system_shared_memory", calls}, {shm, "message", 0}, {plain, "message", calls}} {
		if got := c.g.counter(t, "triton_infer_inputs_total", map[string]string{"via": c.via}); got != c.wantIn {
			t.Errorf("triton_infer_inputs_total{via=%s} = %v, want %v", c.via, got, c.wantIn)
		}
	}

	// Triton restarts (a new process, no registrations): the gateway
	// registers its regions again and answers as before.
	tr.Restart(t)
	waitForWithin(t, time.Minute, "a prediction by shared memory after Triton's restart", func() bool {
		r := shm.predictFile(t, "?top_k=17", photos["rocket.jpg"])
		return r.Status == http.StatusOK && string(predictionsJSON(t, r.Body)) == string(answers["rocket.jpg"])
	})
	wantRegions("after Triton's restart", shm)
	if got := shm.counter(t, "triton_shared_memory_registrations_total", map[string]string{"result": "ok"}); got != 2 {
		t.Errorf("registrations{ok} = %v, want 2", got)
	}

	// A gateway killed with SIGKILL leaves its regions behind; the next one
	// removes them from /dev/shm and from Triton.
	killed := startProcGateway(t, withShm, nil)
	wantRegions("with a second gateway", shm, killed)
	killed.kill(t)
	leftovers := killed.objects(t)
	t.Cleanup(func() {
		for _, name := range leftovers {
			_ = os.Remove(filepath.Join("/dev/shm", name))
		}
	})
	if len(leftovers) != 1 {
		t.Fatalf("the killed gateway left %v, want its region", leftovers)
	}
	next := startProcGateway(t, withShm, nil)
	if got := killed.objects(t); len(got) != 0 {
		t.Errorf("the killed gateway's objects are still in /dev/shm: %v", got)
	}
	if _, still := tritonRegions()[leftovers[0]]; still {
		t.Errorf("Triton still has the killed gateway's region %s", leftovers[0])
	}
	wantRegions("after the killed gateway's successor started", shm, next)
	if got := string(predict(next, photos["cat.png"])); got != string(answers["cat.png"]) {
		t.Errorf("the successor answers %s, want %s", got, answers["cat.png"])
	}

	// Stopped gateways leave nothing.
	shm.terminate(t)
	next.terminate(t)
	wantRegions("after the gateways stopped")
	for _, g := range []*procGateway{shm, next} {
		if got := g.objects(t); len(got) != 0 {
			t.Errorf("objects of pid %d left in /dev/shm: %v", g.pid(), got)
		}
	}
}

// predictionsJSON is the predictions of a /predict answer, re-encoded: what
// must be equal between two gateways (request ids and timings differ).
func predictionsJSON(t *testing.T, body []byte) []byte {
	t.Helper()
	var p predictBody
	if err := json.Unmarshal(body, &p); err != nil || len(p.Predictions) == 0 {
		t.Fatalf("predict answer: %v: %s", err, body)
	}
	out, err := json.Marshal(struct {
		Model, Version, Backend string
		Predictions             any
	}{p.Model, p.Version, p.Backend, p.Predictions})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func contentTypeOf(name string) string {
	if strings.HasSuffix(name, ".png") {
		return "image/png"
	}
	return "image/jpeg"
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
