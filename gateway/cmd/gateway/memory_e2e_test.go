package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fish-classifier/fish-classifier/internal/testenv"
)

// Memory bounds of the gateway binary at its default configuration (as
// `make run` serves), whatever its clients declare or send.
const (
	peakRSSBound  = 300 << 20 // bytes: the peak under each attack
	recoverRatio  = 1.5       // times the idle RSS, reached within recoverWithin
	recoverWithin = 30 * time.Second
)

// TestE2EMemoryBoundedUnderHostileUploads runs the gateway binary on the
// embedded backend and, one after another: 16 connections that declare 32 MiB
// bodies and send only their heads; 16 that send 32 MiB - 1 bytes each; 200
// slow uploads; 64 concurrent uploads of a 12 MP photo. The process's peak
// RSS (from /proc) stays under 300 MiB in each, and within 30 s of the last
// its RSS is back under 1.5 times what it was idle.
func TestE2EMemoryBoundedUnderHostileUploads(t *testing.T) {
	testenv.RealServers(t, "starts the gateway binary and sends ~700 MB of uploads")
	gw := startBinary(t, map[string]string{
		"MODEL_REPOSITORY":  filepath.Join(repoRoot(t), "triton-models"),
		"ONNXRUNTIME_LIB":   onnxRuntimeLib(t),
		"GATEWAY_LOG_LEVEL": "warn",
	})
	photo, err := os.ReadFile(filepath.Join(repoRoot(t), "loadtest", "k6", "images", "fish_4032x3024.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // warm up: the first predictions allocate what every later one reuses
		if r := gw.rawPredict(t, photo); r.StatusCode != http.StatusOK {
			t.Fatalf("warm-up prediction: %d", r.StatusCode)
		}
	}
	time.Sleep(2500 * time.Millisecond) // quiet for longer than the reclaim delay
	idle := gw.rss(t)
	t.Logf("idle RSS %.1f MiB", mib(idle))

	attacks := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"16 heads declaring 32 MiB", func(t *testing.T) {
			conns := gw.dialN(t, 16)
			head := "POST /predict HTTP/1.1\r\nHost: gw\r\nContent-Type: image/jpeg\r\nContent-Length: 33554432\r\n\r\n"
			for _, c := range conns {
				if _, err := io.WriteString(c, head); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(3 * time.Second) // held: the gateway waits for their bodies
			closeAll(conns)
		}},
		{"16 bodies of 32 MiB - 1", func(t *testing.T) {
			body := bytes.Repeat([]byte{0xff, 0xd8, 0xff, 0xe0}, (32<<20-1)/4)
			parallel(16, func(int) {
				if status := gw.upload(body); status >= 500 {
					t.Errorf("a 32 MiB upload answered %d", status)
				}
			})
		}},
		{"200 slow uploads", func(t *testing.T) {
			conns := gw.dialN(t, 200)
			for _, c := range conns {
				if _, err := io.WriteString(c, "POST /predict HTTP/1.1\r\nHost: gw\r\nContent-Type: image/jpeg\r\nContent-Length: 1048576\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
			}
			chunk := bytes.Repeat([]byte{0xaa}, 1024)
			for range 30 { // 3 s of 10 KiB/s each
				for _, c := range conns {
					_ = c.SetWriteDeadline(time.Now().Add(time.Second))
					_, _ = c.Write(chunk) // refused ones are closed: errors expected
				}
				time.Sleep(100 * time.Millisecond)
			}
			closeAll(conns)
		}},
		{"64 concurrent 12 MP photos", func(t *testing.T) {
			parallel(64, func(int) {
				if status := gw.upload(photo); status != 0 && status != http.StatusOK && status != http.StatusTooManyRequests {
					t.Errorf("a 12 MP photo answered %d", status)
				}
			})
		}},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			gw.resetPeak(t)
			stop := gw.sample()
			a.run(t)
			peak := stop()
			t.Logf("peak RSS %.1f MiB", mib(peak))
			if peak > peakRSSBound {
				t.Errorf("peak RSS %.1f MiB, want under %.0f MiB", mib(peak), mib(peakRSSBound))
			}
		})
	}

	start := time.Now()
	var now int64
	for {
		now = gw.rss(t)
		if float64(now) <= recoverRatio*float64(idle) || time.Since(start) > recoverWithin {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("RSS %.1f MiB %.1f s after the last attack (idle %.1f MiB)", mib(now), time.Since(start).Seconds(), mib(idle))
	if float64(now) > recoverRatio*float64(idle) {
		t.Errorf("RSS %.1f MiB %v after the attacks, want under %.1f MiB (%.1f x idle)", mib(now), recoverWithin, recoverRatio*mib(idle), recoverRatio)
	}
	if r := gw.rawPredict(t, photo); r.StatusCode != http.StatusOK {
		t.Errorf("a prediction after the attacks: %d", r.StatusCode)
	}
}

// binaryGateway is the gateway binary, started for one test.
type binaryGateway struct{ *procGateway }

// startBinary starts the gateway binary with env (startProcGateway) and
// waits until it is ready; it is killed when the test ends.
func startBinary(t *testing.T, env map[string]string) *binaryGateway {
	t.Helper()
	return &binaryGateway{startProcGateway(t, env, nil)}
}

// rawPredict posts img to /predict on a new connection.
func (g *binaryGateway) rawPredict(t *testing.T, img []byte) *http.Response {
	t.Helper()
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Post("http://"+g.Addr+"/predict", "image/jpeg", bytes.NewReader(img))
	if err != nil {
		t.Fatalf("POST /predict: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// upload sends body to /predict as a JPEG on a connection of its own, all of
// it at once whatever the gateway answers meanwhile, and returns the status of
// the answer, or 0 when none could be read (a shed upload's connection is
// closed while the body is still being written).
func (g *binaryGateway) upload(body []byte) int {
	c, err := net.DialTimeout("tcp", g.Addr, 5*time.Second)
	if err != nil {
		return 0
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /predict HTTP/1.1\r\nHost: gw\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", len(body))
	_, _ = c.Write(body)
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// dialN opens n connections, closed at the end of the test.
func (g *binaryGateway) dialN(t *testing.T, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.DialTimeout("tcp", g.Addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() { closeAll(conns) })
	return conns
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// parallel runs f(0..n-1) at once and waits for all of them.
func parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { f(i) })
	}
	wg.Wait()
}

// rss is the process's resident set size now, in bytes.
func (g *binaryGateway) rss(t *testing.T) int64 {
	t.Helper()
	v, err := statusBytes(g.pid(), "VmRSS")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// resetPeak resets the kernel's peak RSS of the process (VmHWM), where the
// kernel allows it; sample reads it as well as its own samples.
func (g *binaryGateway) resetPeak(t *testing.T) {
	t.Helper()
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", g.pid()), []byte("5"), 0)
}

// sample reads the RSS every 10 ms until the returned function is called,
// which returns the peak: the largest sample or VmHWM, whichever is larger.
func (g *binaryGateway) sample() (stop func() int64) {
	done := make(chan struct{})
	peak := make(chan int64, 1)
	go func() {
		var max int64
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			if v, err := statusBytes(g.pid(), "VmRSS"); err == nil && v > max {
				max = v
			}
			select {
			case <-done:
				if v, err := statusBytes(g.pid(), "VmHWM"); err == nil && v > max {
					max = v
				}
				peak <- max
				return
			case <-tick.C:
			}
		}
	}()
	return func() int64 { close(done); return <-peak }
}

// statusBytes reads a "kB" field of /proc/<pid>/status, in bytes.
func statusBytes(pid int, key string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", key, pid)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
