package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fish-classifier/fish-classifier/gateway/triton/tritontest"
)

// TestE2ESIGTERMDrainsAcceptedRequests runs the gateway binary, loads it with
// concurrent predictions that Triton answers slowly, and sends SIGTERM while
// they are in flight: the listener closes at once (new connections are
// refused while the drain goes on), every request the gateway accepted is
// answered 200, nothing is answered any other status, and the process exits 0.
func TestE2ESIGTERMDrainsAcceptedRequests(t *testing.T) {
	bin := buildGateway(t)
	const (
		accepted = 50                     // requests accepted before SIGTERM
		late     = 20                     // requests sent right after it
		latency  = 300 * time.Millisecond // Triton's answer time
	)
	_, srv, env, _ := prepare(t, nil)
	addr := freeAddr(t)
	env["GATEWAY_LISTEN_ADDR"] = addr
	env["MAX_IN_FLIGHT"] = "200"
	env["SHUTDOWN_TIMEOUT"] = "20s"
	env["GATEWAY_LOG_LEVEL"] = "info"

	logPath := filepath.Join(t.TempDir(), "gateway.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the gateway binary: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error
	var exitedAt time.Time
	go func() { waitErr = cmd.Wait(); exitedAt = time.Now(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("gateway output:\n%s", data)
		}
	})

	g := &e2eGateway{URL: "http://" + addr, Addr: addr, Triton: srv, Model: srv.Model(),
		client: &http.Client{Timeout: 30 * time.Second}}
	waitFor(t, "the gateway binary to be ready", func() bool {
		select {
		case <-exited:
			t.Fatalf("the gateway exited early: %v", waitErr)
		default:
		}
		r := g.doNoFatal(mustGet(t, g.URL+"/ready"))
		return r.Status == http.StatusOK
	})

	srv.SetFault(tritontest.Fault{Latency: latency})
	img := jpegOf(t, 48, 40, 12)
	body, ct := multipartBodyNoFatal(img)
	// One connection per request: no keep-alive connection is shared, so that
	// each outcome belongs to one request.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	type outcome struct {
		status int
		err    error
	}
	fire := func(n int) ([]outcome, *sync.WaitGroup) {
		out := make([]outcome, n)
		var wg sync.WaitGroup
		for i := range out {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, err := http.NewRequest(http.MethodPost, g.URL+"/predict", bytes.NewReader(body))
				if err != nil {
					out[i].err = err
					return
				}
				req.Header.Set("Content-Type", ct)
				resp, err := client.Do(req)
				if err != nil {
					out[i].err = err
					return
				}
				var buf bytes.Buffer
				_, err = buf.ReadFrom(resp.Body)
				resp.Body.Close()
				out[i] = outcome{status: resp.StatusCode, err: err}
			}()
		}
		return out, &wg
	}

	base := srv.InferCount()
	first, firstDone := fire(accepted)
	waitFor(t, fmt.Sprintf("all %d requests to reach Triton", accepted), func() bool {
		return srv.InferCount()-base >= accepted
	})
	inFlight := srv.InFlight()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()
	if inFlight == 0 {
		t.Fatalf("no request in flight at SIGTERM: the test did not exercise the drain")
	}
	second, secondDone := fire(late)

	// The listener closes at once; the process lives on while it drains.
	refusedAfter := waitForWithin(t, 5*time.Second, "new connections to be refused", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return false
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	})
	select {
	case <-exited:
		t.Errorf("new connections were refused only once the process had exited (%v after SIGTERM), not while it drained", refusedAfter)
	default:
	}

	firstDone.Wait()
	secondDone.Wait()
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		t.Fatal("the gateway did not exit within 15s of SIGTERM")
	}
	if waitErr != nil {
		t.Errorf("the gateway exited with %v, want status 0", waitErr)
	}

	for i, o := range first {
		if o.err != nil || o.status != http.StatusOK {
			t.Errorf("accepted request %d: status %d, error %v; want 200", i, o.status, o.err)
		}
	}
	ok, refused := 0, 0
	otherErrs := map[string]int{}
	for i, o := range second {
		switch {
		case o.err == nil && o.status == http.StatusOK:
			ok++
		case o.err == nil:
			t.Errorf("request %d sent after SIGTERM: status %d, want 200 or a connection error", i, o.status)
		case errors.Is(o.err, syscall.ECONNREFUSED):
			refused++
		default:
			// Connected into the listen backlog before the listener closed, and
			// dropped with it: never accepted by the gateway.
			otherErrs[o.err.Error()]++
		}
	}
	// Every request the gateway accepted and sent to Triton was answered 200.
	calls := srv.InferCount() - base
	if answered := int64(accepted + ok); calls != answered {
		t.Errorf("Triton received %d calls, %d requests got 200: an accepted request was lost", calls, answered)
	}
	for _, r := range predictionRequests(srv) {
		if r.Finished && r.Code != 0 {
			t.Errorf("a Triton call ended %v during the drain", r.Code)
		}
	}
	var errs []string
	for e, n := range otherErrs {
		errs = append(errs, fmt.Sprintf("%d× %s", n, e))
	}
	sort.Strings(errs)
	t.Logf("SIGTERM with %d in flight at Triton; refused new connections after %v; exited after %v; after SIGTERM: %d×200, %d refused, other connection errors %v",
		inFlight, refusedAfter.Round(time.Millisecond), exitedAt.Sub(signalled).Round(time.Millisecond), ok, refused, errs)
}

func mustGet(t testing.TB, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
