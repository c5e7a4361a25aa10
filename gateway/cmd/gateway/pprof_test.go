package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPprofAddrConfig(t *testing.T) {
	c, err := loadConfig(lookupFrom(nil))
	if err != nil || c.PprofAddr != "" {
		t.Fatalf("default PPROF_ADDR %q, %v; want \"\" (off)", c.PprofAddr, err)
	}
	for _, good := range []string{"127.0.0.1:6060", "localhost:6060", "[::1]:6060", ":6060", "127.0.0.1:0"} {
		c, err := loadConfig(lookupFrom(map[string]string{"PPROF_ADDR": good}))
		if err != nil || c.PprofAddr != good {
			t.Errorf("PPROF_ADDR=%s: %q, %v; want it accepted", good, c.PprofAddr, err)
		}
	}
	bad := map[string]string{
		"6060":                  "host:port",
		"localhost":             "host:port",
		"http://127.0.0.1:6060": "host:port",
		"127.0.0.1:http":        "port must be a number",
		"127.0.0.1:65536":       "port must be a number",
		"127.0.0.1:8000":        "public port", // GATEWAY_LISTEN_ADDR defaults to :8000
	}
	for addr, want := range bad {
		_, err := loadConfig(lookupFrom(map[string]string{"PPROF_ADDR": addr}))
		if err == nil || !strings.Contains(err.Error(), "PPROF_ADDR") || !strings.Contains(err.Error(), want) {
			t.Errorf("PPROF_ADDR=%s: error %v; want one naming PPROF_ADDR and saying %q", addr, err, want)
		}
	}
}

// A PPROF_ADDR that cannot be listened on stops the start with an error naming
// it, and the public listener opened before it is closed again.
func TestRunFailsWhenPprofAddrIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	logFile, err := os.Create(filepath.Join(t.TempDir(), "gateway.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	public := freeAddr(t)
	env := map[string]string{
		"BACKEND":             "triton",
		"GATEWAY_LISTEN_ADDR": public,
		"PPROF_ADDR":          taken.Addr().String(),
		"TRITON_URL":          "127.0.0.1:1", // nothing listens: the model never loads
		"MODEL_REPOSITORY":    t.TempDir(),
	}
	done := make(chan error, 1)
	go func() { done <- run(context.Background(), lookupFrom(env), logFile) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "PPROF_ADDR "+taken.Addr().String()) {
			t.Fatalf("run returned %v, want an error naming PPROF_ADDR and its address", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return although PPROF_ADDR is taken")
	}
	ln, err := net.Listen("tcp", public)
	if err != nil {
		t.Fatalf("the public address is still held after the failed start: %v", err)
	}
	ln.Close()
}

// The start-up log names the profiling address, with a warning when it is not
// a loopback one.
func TestListenPprofWarnsOffLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		warn bool
	}{
		{"127.0.0.1:0", false},
		{"[::1]:0", false},
		{":0", true}, // every interface; closed at once, never served
	} {
		var buf bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&buf, nil))
		p, err := listenPprof(tc.addr, log)
		if err != nil {
			if tc.addr == "[::1]:0" {
				t.Logf("no IPv6 loopback here: %v", err)
				continue
			}
			t.Fatal(err)
		}
		p.close()
		out := buf.String()
		if !strings.Contains(out, `"addr":"`+p.ln.Addr().String()+`"`) {
			t.Errorf("%s: the log does not name the bound address %s:\n%s", tc.addr, p.ln.Addr(), out)
		}
		if got := strings.Contains(out, `"level":"WARN"`) && strings.Contains(out, "not a loopback address"); got != tc.warn {
			t.Errorf("%s: warning logged %v, want %v:\n%s", tc.addr, got, tc.warn, out)
		}
	}
}
