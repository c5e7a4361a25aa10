// The embedded ONNX Runtime backend needs cgo (without it the gateway is built
// with a stub that refuses BACKEND=onnx), so does this test.

//go:build cgo

package smoke_test

// The load smoke test: build the gateway, serve the committed model on the
// embedded ONNX Runtime backend on a free loopback port, send it valid photos at
// a fixed rate with vegeta, and require every answer to be a correct
// prediction. Latency percentiles and throughput are logged, never asserted
// (speed is shown by benchmarks, docs/performance.md, not by timed tests); a CI machine
// running `go test -race ./...` beside it is busy and noisy.
//
//	go test -count=1 -v ./loadtest/smoke/
//
// Time: building the gateway (seconds with a warm build cache; up to a few
// minutes cold, bounded by testenv's build timeout), then at most ~30 s: the start and
// model load (~1 s, bounded by readyTimeout), the attack (attackDuration),
// the last answers (bounded by requestTimeout) and the shutdown.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/fish-classifier/fish-classifier/internal/formdata"
	"github.com/fish-classifier/fish-classifier/internal/testenv"
)

const (
	// attackRate and attackDuration: 200 requests. ~40 req/s of VGA-class photos
	// is ~0.2 of a core for the gateway; a 2-core CI machine busy with the
	// race-detector tests of other packages holds it with a wide margin.
	attackRate     = 40
	attackDuration = 5 * time.Second
	// requestTimeout bounds one request (the gateway's own REQUEST_TIMEOUT is
	// 10 s, so a stalled inference answers 504 before this).
	requestTimeout = 10 * time.Second
	readyTimeout   = 15 * time.Second
	// minSentRatio: vegeta must have sent at least this share of
	// attackRate*attackDuration requests; below it the load was not applied
	// (the client starved), and the test says so rather than pass on a few
	// requests.
	minSentRatio = 0.8
)

// images are the valid test images of the k6 set but the 12 MP one (it costs
// ~25× a VGA photo's CPU; the k6 smoke run sends it): JPEG baseline,
// progressive, EXIF-rotated and greyscale, PNG with and without alpha, lossy
// and lossless WebP. Every one must be classified: the error bound is zero.
var images = []string{
	"fish_640x480.jpg",
	"fish_1024x768_progressive.jpg",
	"fish_480x640_exif6.jpg",
	"fish_640x480_grey.jpg",
	"fish_800x600.png",
	"fish_400x300_rgba.png",
	"fish_640x480.webp",
	"fish_256x256_lossless.webp",
}

// gatewayProcess is the running gateway and its log.
type gatewayProcess struct {
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	err    error // valid once exited is closed
}

func (g *gatewayProcess) logTail() string {
	b, _ := os.ReadFile(g.log)
	if len(bytes.TrimSpace(b)) == 0 {
		return "(empty: GATEWAY_LOG_LEVEL=warn logs warnings and errors only)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// startGateway runs bin with the embedded backend on addr and stops it when the
// test ends: SIGTERM (the gateway drains), SIGKILL after 10 s.
func startGateway(t *testing.T, root, bin, addr string) *gatewayProcess {
	t.Helper()
	g := &gatewayProcess{log: filepath.Join(t.TempDir(), "gateway.log"), exited: make(chan struct{})}
	logFile, err := os.Create(g.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin)
	cmd.Dir = root
	// The environment of the test, without any gateway setting it may carry,
	// plus the smoke test's own.
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "GATEWAY_"), strings.HasPrefix(name, "TRITON_"), strings.HasPrefix(name, "MODEL_"),
			strings.HasPrefix(name, "ONNX"), strings.HasPrefix(name, "IMAGE_"), strings.HasPrefix(name, "HTTP_"),
			strings.HasPrefix(name, "BREAKER_"), name == "BACKEND", name == "FALLBACK", name == "MAX_IN_FLIGHT",
			name == "REQUEST_TIMEOUT", name == "DEFAULT_TOP_K", name == "MAX_BATCH_ITEMS":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env,
		"BACKEND=onnx",
		"GATEWAY_LISTEN_ADDR="+addr,
		"GATEWAY_LOG_LEVEL=warn",
		"MODEL_REPOSITORY="+filepath.Join(root, "triton-models"),
		"ONNXRUNTIME_LIB="+testenv.ONNXRuntimeLib(t),
		// Admission control (429 beyond MAX_IN_FLIGHT, default 4 per core) has
		// its own tests; here a machine stalled by other tests must not turn a
		// burst of queued requests into 429s, so the limit is set out of reach
		// of this rate.
		"MAX_IN_FLIGHT=64",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the gateway: %v", err)
	}
	g.cmd = cmd
	go func() {
		g.err = cmd.Wait()
		close(g.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-g.exited
			t.Errorf("the gateway did not stop within 10 s of SIGTERM; killed")
		}
		if t.Failed() {
			t.Logf("gateway log (last lines):\n%s", g.logTail())
		}
	})
	return g
}

// waitReady polls GET /ready until it answers 200.
func waitReady(t *testing.T, g *gatewayProcess, base string) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(readyTimeout)
	last := "no answer"
	for time.Now().Before(deadline) {
		select {
		case <-g.exited:
			t.Fatalf("the gateway exited before it was ready (%v); log:\n%s", g.err, g.logTail())
		default:
		}
		resp, err := client.Get(base + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET /ready did not answer 200 within %s (last: %s)", readyTimeout, last)
}

// targets are one POST /predict per image, multipart field "file".
func targets(t *testing.T, root, url string) []vegeta.Target {
	t.Helper()
	var out []vegeta.Target
	for _, name := range images {
		data, err := os.ReadFile(filepath.Join(root, "loadtest", "k6", "images", name))
		if err != nil {
			t.Fatal(err)
		}
		body, contentType, err := formdata.Encode(formdata.File("file", name, data))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, vegeta.Target{
			Method: http.MethodPost, URL: url, Body: body,
			Header: http.Header{"Content-Type": []string{contentType}},
		})
	}
	return out
}

// checkPrediction says what is wrong with a 200 answer, if anything: it must
// hold DEFAULT_TOP_K (5) labelled predictions, highest confidence first.
func checkPrediction(body []byte) error {
	var a struct {
		Predictions []struct {
			Label      string  `json:"label"`
			Confidence float64 `json:"confidence"`
		} `json:"predictions"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return fmt.Errorf("answer is not JSON: %v", err)
	}
	if len(a.Predictions) != 5 {
		return fmt.Errorf("answer has %d predictions, want 5", len(a.Predictions))
	}
	for i, p := range a.Predictions {
		if p.Label == "" || p.Confidence < 0 || p.Confidence > 1 || (i > 0 && p.Confidence > a.Predictions[i-1].Confidence) {
			return fmt.Errorf("prediction %d is malformed: %+v", i, p)
		}
	}
	return nil
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func TestLoadSmoke(t *testing.T) {
	testenv.RealServers(t, "builds the gateway and puts it under load")
	root := testenv.RepoRoot(t)
	bin := testenv.BuildGateway(t)

	began := time.Now()
	addr := testenv.FreeLoopbackAddr(t)
	base := "http://" + addr
	g := startGateway(t, root, bin, addr)
	waitReady(t, g, base)
	t.Logf("gateway ready in %.1f s", time.Since(began).Seconds())

	attacker := vegeta.NewAttacker(
		vegeta.Timeout(requestTimeout),
		vegeta.KeepAlive(true),
		vegeta.Redirects(vegeta.NoFollow),
	)
	// A hard stop in case answers never come: the attack then ends with the
	// requests in flight failing, which the checks below report.
	stopper := time.AfterFunc(attackDuration+requestTimeout+2*time.Second, func() { attacker.Stop() })
	defer stopper.Stop()

	var (
		lat      []time.Duration
		failures = map[string]int{}
		example  = map[string]string{}
		sent     int
		first    time.Time
		last     time.Time
	)
	pacer := vegeta.ConstantPacer{Freq: attackRate, Per: time.Second}
	for res := range attacker.Attack(vegeta.NewStaticTargeter(targets(t, root, base+"/predict")...), pacer, attackDuration, "smoke") {
		sent++
		if first.IsZero() || res.Timestamp.Before(first) {
			first = res.Timestamp
		}
		if end := res.End(); end.After(last) {
			last = end
		}
		var problem string
		switch {
		case res.Code == 0:
			problem = "no answer"
		case res.Code != http.StatusOK:
			problem = fmt.Sprintf("HTTP %d", res.Code)
		default:
			if err := checkPrediction(res.Body); err != nil {
				problem = "bad answer"
				res.Error = err.Error()
			}
		}
		if problem != "" {
			failures[problem]++
			if _, ok := example[problem]; !ok {
				example[problem] = strings.TrimSpace(res.Error + " " + string(res.Body))
			}
			continue
		}
		lat = append(lat, res.Latency)
	}

	failed := sent - len(lat)
	want := int(attackRate * attackDuration.Seconds())
	slices.Sort(lat)
	if len(lat) > 0 {
		secs := last.Sub(first).Seconds()
		t.Logf("%d requests at %d/s for %s: %d ok; %.1f req/s; latency p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms",
			sent, attackRate, attackDuration, len(lat), float64(len(lat))/secs,
			ms(percentile(lat, 50)), ms(percentile(lat, 95)), ms(percentile(lat, 99)), ms(lat[len(lat)-1]))
	}
	// The error bound is zero: every request is a valid image the gateway must
	// classify, at a rate far below what it sustains.
	if failed > 0 {
		var kinds []string
		for k, n := range failures {
			kinds = append(kinds, fmt.Sprintf("%d× %s (e.g. %.200s)", n, k, example[k]))
		}
		slices.Sort(kinds)
		t.Errorf("%d of %d requests failed (error ratio %.3f, allowed 0): %s", failed, sent, float64(failed)/float64(sent), strings.Join(kinds, "; "))
	}
	if float64(sent) < minSentRatio*float64(want) {
		t.Errorf("only %d requests were sent, want about %d: the load generator did not keep the rate", sent, want)
	}
	select {
	case <-g.exited:
		t.Errorf("the gateway exited during the load: %v", g.err)
	default:
	}
	t.Logf("start of the gateway to the last answer: %.1f s", time.Since(began).Seconds())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
