//go:build linux

package tritonci_test

// The supervision of the real Triton (2.51 from the nvidia-pytriton wheel,
// installed once by scripts/triton-ci.sh install): start and readiness, a kill
// (the port refuses), a start again on the same ports, and a stop that leaves
// no process and none of the shared memory either server's Python stub used.

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fish-classifier/fish-classifier/internal/testenv"
	"github.com/fish-classifier/fish-classifier/internal/tritonci"
)

// members lists the live processes of process group pgrp.
func members(t *testing.T, pgrp int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 2 && f[2] == strconv.Itoa(pgrp) && f[0] != "Z" {
			out = append(out, pid)
		}
	}
	return out
}

func modelReady(t *testing.T, s *tritonci.Server) {
	t.Helper()
	// No keep-alive: an idle connection would hold up the server's stop.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + s.HTTPAddr() + "/v2/models/" + tritonci.Model + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("model ready: %s", resp.Status)
	}
}

func TestRealTritonStartKillRestartStop(t *testing.T) {
	testenv.RealServers(t, "starts the real Triton")
	testenv.InstallTriton(t)
	cfg := testenv.TritonConfig(t)
	ctx := context.Background()

	first, err := tritonci.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tritonci.Stop(cfg) })
	if !strings.HasPrefix(first.Version, "2.") {
		t.Errorf("version %q, want Triton 2.x", first.Version)
	}
	modelReady(t, first)
	if n := len(members(t, first.PID)); n < 2 {
		t.Errorf("process group %d has %d live processes, want the server and its Python stub", first.PID, n)
	}
	recorded := func() []string {
		b, _ := os.ReadFile(filepath.Join(cfg.RunDir, "shm"))
		return strings.Fields(string(b))
	}
	// The regions seen in use while it started (the Python backend runs a
	// stub to complete the model's configuration, then the instance's: the
	// first one's region is gone by now) and when it was ready.
	regions := recorded()
	present := 0
	for _, r := range regions {
		if _, err := os.Stat(filepath.Join("/dev/shm", r)); err == nil {
			present++
		}
	}
	if present == 0 {
		t.Fatalf("none of the recorded regions %v is in /dev/shm: the Python stub's was not recorded", regions)
	}

	if err := tritonci.Kill(cfg); err != nil {
		t.Fatal(err)
	}
	if left := members(t, first.PID); len(left) > 0 {
		t.Errorf("processes %v outlived the kill", left)
	}
	if c, err := net.DialTimeout("tcp", first.GRPCAddr(), time.Second); err == nil {
		c.Close()
		t.Errorf("gRPC %s accepts connections after the kill", first.GRPCAddr())
	}

	// As testenv's Restart: a stop (cleans up after the kill), a start on the same ports.
	if err := tritonci.Stop(cfg); err != nil {
		t.Fatal(err)
	}
	for _, r := range regions {
		if _, err := os.Stat(filepath.Join("/dev/shm", r)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the killed stub's region %s: %v, want it removed", r, err)
		}
	}
	cfg.GRPCPort, cfg.HTTPPort, cfg.MetricsPort = first.GRPCPort, first.HTTPPort, first.MetricsPort
	second, err := tritonci.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if second.PID == first.PID || second.GRPCAddr() != first.GRPCAddr() || second.HTTPAddr() != first.HTTPAddr() || second.MetricsAddr() != first.MetricsAddr() {
		t.Errorf("restart: %+v, want a new process on the ports of %+v", second, first)
	}
	modelReady(t, second)
	regions = recorded()

	if err := tritonci.Stop(cfg); err != nil {
		t.Fatal(err)
	}
	if left := members(t, second.PID); len(left) > 0 {
		t.Errorf("processes %v outlived the stop", left)
	}
	for _, r := range regions {
		if _, err := os.Stat(filepath.Join("/dev/shm", r)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("region %s after the stop: %v, want it removed", r, err)
		}
	}
	if _, err := tritonci.Running(cfg); !errors.Is(err, tritonci.ErrNotRunning) {
		t.Errorf("Running after the stop: %v", err)
	}
}
