package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestE2EPprof runs the gateway binary with PPROF_ADDR on loopback: the
// profiles are served there, and only there; the public port answers 404 for
// them; a CPU profile in progress at SIGTERM is answered with what it has and
// does not hold the exit back.
func TestE2EPprof(t *testing.T) {
	gw := startPprofBinary(t, map[string]string{"PPROF_ADDR": "127.0.0.1:0"})
	addr := gw.logged(t, "profiling: net/http/pprof serving", "addr")
	if gw.loggedLevel("WARN", "not a loopback address") {
		t.Error("a loopback PPROF_ADDR was warned about")
	}
	if got, want := listeningPorts(t, gw.cmd.Process.Pid), sortedPorts(t, gw.Addr, addr); !slices.Equal(got, want) {
		t.Errorf("the process listens on ports %v, want %v (public, profiling)", got, want)
	}
	pp := &e2eGateway{URL: "http://" + addr, client: &http.Client{Timeout: 20 * time.Second}}

	if r := pp.get(t, "/debug/pprof/"); r.Status != http.StatusOK || !containsAll(string(r.Body), "heap", "goroutine", "profile", "allocs") {
		t.Errorf("GET /debug/pprof/: %d, want 200 listing the profiles:\n%.500s", r.Status, r.Body)
	}
	if r := pp.get(t, "/debug/pprof/heap?debug=1"); r.Status != http.StatusOK || !bytes.HasPrefix(r.Body, []byte("heap profile:")) {
		t.Errorf("GET /debug/pprof/heap?debug=1: %d, want 200 with a heap profile in text:\n%.300s", r.Status, r.Body)
	}
	start := time.Now()
	r := pp.get(t, "/debug/pprof/profile?seconds=1")
	took := time.Since(start)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /debug/pprof/profile?seconds=1: %s", r)
	}
	if took < 900*time.Millisecond {
		t.Errorf("a 1 s CPU profile came back after %v", took)
	}
	wantCPUProfile(t, r.Body)
	// Nothing but the profiles on the profiling listener.
	for _, path := range []string{"/", "/metrics", "/health", "/ready", "/model"} {
		if r := pp.get(t, path); r.Status != http.StatusNotFound {
			t.Errorf("profiling listener: GET %s answered %d, want 404", path, r.Status)
		}
	}
	// None of them on the public port.
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/profile?seconds=1", "/debug/pprof/cmdline"} {
		wantError(t, gw.get(t, path), http.StatusNotFound, "not_found")
	}

	// A CPU profile asked for 60 s (longer than the server's write timeout) is
	// running at SIGTERM: it is answered with what it collected, and the gateway
	// exits at once, cleanly.
	type answer struct {
		r   response
		err error
	}
	long := make(chan answer, 1)
	go func() {
		resp, err := pp.client.Get(pp.URL + "/debug/pprof/profile?seconds=60")
		if err != nil {
			long <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		long <- answer{response{Status: resp.StatusCode, Header: resp.Header, Body: body}, err}
	}()
	waitFor(t, "the 60 s CPU profile to be running", func() bool {
		return bytes.Contains(pp.get(t, "/debug/pprof/goroutine?debug=1").Body, []byte("net/http/pprof.Profile"))
	})
	if err := gw.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()
	select {
	case a := <-long:
		if a.err != nil || a.r.Status != http.StatusOK {
			t.Fatalf("the CPU profile in progress at SIGTERM: %v, %v; want 200", a.r, a.err)
		}
		wantCPUProfile(t, a.r.Body)
	case <-time.After(15 * time.Second):
		t.Fatal("the CPU profile in progress was not answered within 15 s of SIGTERM")
	}
	select {
	case <-gw.exited:
		if gw.waitErr != nil {
			t.Errorf("the gateway exited with %v, want status 0", gw.waitErr)
		}
		if d := time.Since(signalled); d > 10*time.Second {
			t.Errorf("the gateway exited %v after SIGTERM: the profile held it back", d)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the gateway did not exit within 15 s of SIGTERM")
	}
}

// TestE2EPprofOff runs the gateway binary without PPROF_ADDR: it listens on the
// public port alone, and that port answers 404 for the profiles.
func TestE2EPprofOff(t *testing.T) {
	gw := startPprofBinary(t, nil)
	if got, want := listeningPorts(t, gw.cmd.Process.Pid), sortedPorts(t, gw.Addr); !slices.Equal(got, want) {
		t.Errorf("the process listens on ports %v, want %v (public only)", got, want)
	}
	if gw.loggedLevel("", "profiling") {
		t.Error("profiling was logged without PPROF_ADDR")
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1"} {
		wantError(t, gw.get(t, path), http.StatusNotFound, "not_found")
	}
}

// pprofBinary is the gateway binary in front of tritontest.
type pprofBinary struct{ *procGateway }

// startPprofBinary starts the gateway binary (startProcGateway) with env
// added to the e2e environment, and waits until /ready answers 200.
func startPprofBinary(t *testing.T, env map[string]string) *pprofBinary {
	t.Helper()
	_, srv, full, _ := prepare(t, nil)
	full["GATEWAY_LOG_LEVEL"] = "info"
	for k, v := range env {
		full[k] = v
	}
	return &pprofBinary{startProcGateway(t, full, srv)}
}

// logRecords reads the gateway's JSON log lines.
func (g *pprofBinary) logRecords() []map[string]any {
	data, _ := os.ReadFile(g.logPath)
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}

// logged returns the attribute key of the log record whose message is msg.
func (g *pprofBinary) logged(t *testing.T, msg, key string) string {
	t.Helper()
	for _, rec := range g.logRecords() {
		if rec["msg"] == msg {
			if v, ok := rec[key].(string); ok {
				return v
			}
		}
	}
	t.Fatalf("no log record %q with %s", msg, key)
	return ""
}

// loggedLevel says whether a record of level (any, when "") has a message
// containing part.
func (g *pprofBinary) loggedLevel(level, part string) bool {
	for _, rec := range g.logRecords() {
		msg, _ := rec["msg"].(string)
		if (level == "" || rec["level"] == level) && strings.Contains(msg, part) {
			return true
		}
	}
	return false
}

// wantCPUProfile checks that body is a gzip-compressed, non-empty profile (the
// pprof protobuf format is gzipped).
func wantCPUProfile(t *testing.T, body []byte) {
	t.Helper()
	if len(body) < 2 || body[0] != 0x1f || body[1] != 0x8b {
		t.Fatalf("CPU profile of %d bytes without gzip's magic bytes: %.40q", len(body), body)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil || len(raw) == 0 {
		t.Fatalf("CPU profile: %d bytes after gunzip, %v", len(raw), err)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// sortedPorts are the ports of host:port addresses, sorted.
func sortedPorts(t *testing.T, addrs ...string) []int {
	t.Helper()
	var out []int
	for _, a := range addrs {
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// listeningPorts are the TCP ports process pid listens on (from /proc: its
// sockets, matched by inode with the listening ones of its network namespace),
// sorted.
func listeningPorts(t *testing.T, pid int) []int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Skipf("no /proc to read the process's sockets from: %v", err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(target, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
		}
	}
	var ports []int
	for _, table := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] { // 0A: LISTEN
				continue
			}
			hexPort := f[1][strings.LastIndexByte(f[1], ':')+1:]
			n, err := strconv.ParseUint(hexPort, 16, 16)
			if err != nil {
				t.Fatalf("/proc/%d/net/%s: local address %q", pid, table, f[1])
			}
			ports = append(ports, int(n))
		}
	}
	slices.Sort(ports)
	return ports
}
