//go:build linux

package tritonci

// The supervision against a stand-in for tritonserver (testdata/fakeserver:
// Triton's port flags and readiness endpoints, a "stub" in its process group
// named with a shared-memory region), in a fake installation and repository:
// fast, and able to provoke what the real server rarely does (a port taken
// between the pick and the bind, a server that ignores SIGTERM). The real
// Triton goes through the same cycle in realtriton_test.go.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	fakeOnce sync.Once
	fakeBin  string
	fakeErr  error
)

// fakeServer builds testdata/fakeserver once per test binary.
func fakeServer(t *testing.T) string {
	t.Helper()
	fakeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tritonci-fake")
		if err != nil {
			fakeErr = err
			return
		}
		goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goTool); err != nil {
			goTool = "go"
		}
		fakeBin = filepath.Join(dir, "tritonserver")
		cmd := exec.Command(goTool, "build", "-o", fakeBin, "./testdata/fakeserver")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fakeErr = fmt.Errorf("go build ./testdata/fakeserver: %v\n%s", err, out)
		}
	})
	if fakeErr != nil {
		t.Fatal(fakeErr)
	}
	return fakeBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fakeBin != "" {
		_ = os.RemoveAll(filepath.Dir(fakeBin))
	}
	os.Exit(code)
}

// fakeInstall makes a repository and an installation whose tritonserver is
// the fake, and points the shared-memory folder at a temporary one.
func fakeInstall(t *testing.T) Config {
	t.Helper()
	bin := fakeServer(t)
	root, venv := t.TempDir(), t.TempDir()
	server := filepath.Join(venv, "lib", "python3.11", "site-packages", "pytriton", "tritonserver")
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		filepath.Join(server, "bin", "tritonserver"):                                   b,
		filepath.Join(venv, "bin", "python"):                                           nil,
		filepath.Join(venv, "triton-backends", "python", "triton_python_backend_stub"): nil,
		filepath.Join(venv, "triton-backends", "python", "libtriton_python.so"):        nil,
		filepath.Join(venv, ".triton-ci-installed"):                                    []byte("layout=1\nserver=" + server + "\nld_library_path=\n"),
		filepath.Join(root, "triton-ci", "models", Model, "config.pbtxt"):              []byte("name: \"fish_classifier\"\n"),
		filepath.Join(root, "triton-ci", "models", Model, "1", "model.py"):             []byte("# model\n"),
		filepath.Join(root, "triton-models", Model, "labels.txt"):                      []byte("a\nb\n"),
		filepath.Join(root, "triton-models", Model, "1", "model.onnx"):                 []byte("onnx"),
	}
	for path, data := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	old := shmDir
	shmDir = t.TempDir()
	t.Cleanup(func() { shmDir = old })
	t.Setenv("FAKE_TRITON_SHM_DIR", shmDir)
	t.Setenv("FAKE_TRITON", "")
	cfg := Config{Root: root, Venv: venv, RunDir: filepath.Join(t.TempDir(), "run"),
		StartTimeout: 20 * time.Second, StopTimeout: 5 * time.Second, DieWithParent: true, Logf: t.Logf}
	t.Cleanup(func() {
		// Whatever a failed test left running.
		if pid, ok := readInt(filepath.Join(cfg.RunDir, pidFile)); ok && len(groupMembers(pid)) > 0 {
			stopGroup(cfg, pid, nil)
		}
	})
	return cfg
}

func regionsIn(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(shmDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func ready(t *testing.T, s *Server) {
	t.Helper()
	// No keep-alive: an idle connection would hold up the server's stop.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + s.HTTPAddr() + "/v2/models/" + Model + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("model ready: %s", resp.Status)
	}
}

func refused(t *testing.T, addr string) {
	t.Helper()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections", addr)
	}
}

func TestStartThenStop(t *testing.T) {
	cfg := fakeInstall(t)
	s, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ready(t, s)
	if s.Version != "0.0.fake" {
		t.Errorf("version %q", s.Version)
	}
	if s.GRPCPort == s.HTTPPort || s.HTTPPort == s.MetricsPort || s.GRPCPort == s.MetricsPort {
		t.Errorf("ports %d %d %d are not distinct", s.GRPCPort, s.HTTPPort, s.MetricsPort)
	}
	got, err := Running(cfg)
	if err != nil || got.PID != s.PID || got.GRPCPort != s.GRPCPort || got.HTTPPort != s.HTTPPort || got.MetricsPort != s.MetricsPort {
		t.Fatalf("Running = %+v, %v; want %+v", got, err, s)
	}
	members := groupMembers(s.PID)
	if len(members) != 2 {
		t.Errorf("process group %d: %v, want the server and its stub", s.PID, members)
	}
	if regions := regionsIn(t); len(regions) != 1 || !slices.Equal(recordedRegions(cfg.RunDir), regions) {
		t.Errorf("regions in shm %v, recorded %v: want the stub's, recorded", regions, recordedRegions(cfg.RunDir))
	}
	for _, f := range []string{"models/fish_classifier/config.pbtxt", "models/fish_classifier/labels.txt",
		"models/fish_classifier/1/model.py", "models/fish_classifier/1/model.onnx", "log"} {
		if _, err := os.Stat(filepath.Join(cfg.RunDir, f)); err != nil {
			t.Errorf("run folder: %v", err)
		}
	}
	if _, err := Start(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("a second start: %v, want already running", err)
	}
	if u, n := s.Usage(); u <= 0 || n != 2 {
		t.Errorf("Usage = %d bytes in %d processes", u, n)
	}
	if !strings.Contains(s.Env(), "export TRITON_URL="+s.GRPCAddr()+"\n") {
		t.Errorf("Env:\n%s", s.Env())
	}

	if err := Stop(cfg); err != nil {
		t.Fatal(err)
	}
	if left := groupMembers(s.PID); len(left) > 0 {
		t.Errorf("after stop, processes %v are left", left)
	}
	if r := regionsIn(t); len(r) > 0 {
		t.Errorf("after stop, regions %v are left", r)
	}
	refused(t, s.GRPCAddr())
	if _, err := Running(cfg); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Running after stop: %v", err)
	}
	if err := Stop(cfg); !errors.Is(err, ErrNotRunning) {
		t.Errorf("a second stop: %v, want ErrNotRunning", err)
	}
}

// A killed server leaves its stub's region: the next stop removes it (it was
// recorded), and a start on the same ports works.
func TestKillThenRestartOnTheSamePorts(t *testing.T) {
	cfg := fakeInstall(t)
	s, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := Kill(cfg); err != nil {
		t.Fatal(err)
	}
	if left := groupMembers(s.PID); len(left) > 0 {
		t.Errorf("after kill, processes %v are left", left)
	}
	refused(t, s.GRPCAddr())
	refused(t, s.HTTPAddr())
	if len(regionsIn(t)) != 1 {
		t.Fatalf("a killed server's stub leaves its region; shm holds %v", regionsIn(t))
	}
	if err := Kill(cfg); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Kill of a killed server: %v", err)
	}

	if err := Stop(cfg); err != nil {
		t.Fatal(err)
	}
	if r := regionsIn(t); len(r) > 0 {
		t.Errorf("stop after a kill left regions %v", r)
	}
	cfg.GRPCPort, cfg.HTTPPort, cfg.MetricsPort = s.GRPCPort, s.HTTPPort, s.MetricsPort
	again, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if again.PID == s.PID || again.GRPCPort != s.GRPCPort || again.HTTPPort != s.HTTPPort || again.MetricsPort != s.MetricsPort {
		t.Errorf("restart: %+v, want a new process on the ports of %+v", again, s)
	}
	ready(t, again)
	if err := Stop(cfg); err != nil {
		t.Fatal(err)
	}
}

// A server that crashed alone leaves its stub running: stop ends it too.
func TestStopAfterTheServerAloneDied(t *testing.T) {
	cfg := fakeInstall(t)
	s, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(s.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(s.PID) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stub := groupMembers(s.PID)
	if len(stub) != 1 {
		t.Fatalf("after the server's death, its group holds %v; want its stub", stub)
	}
	if err := Stop(cfg); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for alive(stub[0]) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(stub[0]) {
		t.Errorf("the stub %d outlived the stop", stub[0])
	}
	if r := regionsIn(t); len(r) > 0 {
		t.Errorf("regions %v are left", r)
	}
}

func TestStopEscalatesToSIGKILL(t *testing.T) {
	cfg := fakeInstall(t)
	t.Setenv("FAKE_TRITON", "ignore-term")
	cfg.StopTimeout = 300 * time.Millisecond
	s, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := Stop(cfg); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < cfg.StopTimeout {
		t.Errorf("stop took %s, less than the SIGTERM timeout", took)
	}
	if left := groupMembers(s.PID); len(left) > 0 {
		t.Errorf("processes %v outlived SIGKILL", left)
	}
	if r := regionsIn(t); len(r) > 0 {
		t.Errorf("regions %v are left", r)
	}
	if b, _ := os.ReadFile(s.Log); !strings.Contains(string(b), "SIGTERM ignored") {
		t.Errorf("the server's log does not show the SIGTERM it ignored:\n%s", b)
	}
}

// holdPort listens on a free loopback port until the test ends.
func holdPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

func TestAPickedPortTakenMeanwhileIsRetried(t *testing.T) {
	cfg := fakeInstall(t)
	taken := holdPort(t)
	calls := 0
	pickPortsFunc = func(fixed ...int) ([3]int, error) {
		calls++
		ports, err := pickFreePorts(fixed...)
		if calls == 1 {
			ports[1] = taken // the HTTP port, lost to another process
		}
		return ports, err
	}
	t.Cleanup(func() { pickPortsFunc = pickFreePorts })
	s, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 || s.HTTPPort == taken {
		t.Errorf("%d picks, HTTP port %d (taken: %d): want a second pick", calls, s.HTTPPort, taken)
	}
	if n := len(regionsIn(t)); n != 1 {
		t.Errorf("%d regions in shm, want the running server's one (the failed start's removed)", n)
	}
	if err := Stop(cfg); err != nil {
		t.Fatal(err)
	}
}

func TestAFixedPortTakenFailsAtOnce(t *testing.T) {
	cfg := fakeInstall(t)
	cfg.GRPCPort = holdPort(t)
	calls := 0
	pickPortsFunc = func(fixed ...int) ([3]int, error) { calls++; return pickFreePorts(fixed...) }
	t.Cleanup(func() { pickPortsFunc = pickFreePorts })
	_, err := Start(context.Background(), cfg)
	if !errors.Is(err, errPortTaken) || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("start on a taken port: %v; want the port taken and the log's line", err)
	}
	if calls != 1 {
		t.Errorf("%d attempts with a fixed port, want 1", calls)
	}
	if _, err := os.Stat(filepath.Join(cfg.RunDir, pidFile)); err == nil {
		t.Error("a failed start left a pid file")
	}
}

func TestStartNeedsTheInstallation(t *testing.T) {
	cfg := fakeInstall(t)
	if err := os.Remove(filepath.Join(cfg.Venv, ".triton-ci-installed")); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "scripts/triton-ci.sh install") {
		t.Errorf("start without an installation: %v", err)
	}
}

func TestAnInterruptedStartLeavesNothing(t *testing.T) {
	cfg := fakeInstall(t)
	// Interrupted before the server was ready (here: before it started).
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Start(ctx, cfg); err == nil {
		t.Fatal("a start whose context had ended succeeded")
	}
	if pid, ok := readInt(filepath.Join(cfg.RunDir, pidFile)); ok {
		t.Errorf("pid file left naming %d", pid)
	}
	if r := regionsIn(t); len(r) > 0 {
		t.Errorf("regions %v left", r)
	}
}

func TestSweepUnused(t *testing.T) {
	_ = fakeInstall(t) // its shm folder
	old := time.Now().Add(-2 * orphanAge)
	mk := func(name string, mtime time.Time) {
		path := filepath.Join(shmDir, name)
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	orphan, fresh, inUse := shmPrefix+"_orphan", shmPrefix+"_fresh", shmPrefix+"_in-use"
	mk(orphan, old)
	mk(fresh, time.Now())
	mk(inUse, old)
	mk("fishgw-1-2-0", old) // not Triton's
	// A live process that names inUse on its command line, as a stub does.
	stub := exec.Command(fakeServer(t), "stub", inUse)
	if err := stub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stub.Process.Kill(); _ = stub.Wait() })
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(regionNames(stub.Process.Pid), inUse) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // until it has exec'd
	}

	if got := sweepUnused(time.Time{}, time.Now().Add(-orphanAge)); !slices.Equal(got, []string{orphan}) {
		t.Errorf("swept %v, want only %s", got, orphan)
	}
	if got, want := regionsIn(t), []string{"fishgw-1-2-0", fresh, inUse}; !slices.Equal(got, want) {
		t.Errorf("left %v, want %v", got, want)
	}
}

func TestIsRegionName(t *testing.T) {
	for name, want := range map[string]bool{
		"triton_python_backend_shm_region_97281b3e-d11b-4321-b223-18981bdc2b60": true,
		"triton_python_backend_shm_region":                                      true,
		"triton_python_backend_shm_region_../../etc/passwd":                     false,
		"triton_python_backend_shm_region x":                                    false,
		"fishgw-17631-119cf0ee-0":                                               false,
		"":                                                                      false,
	} {
		if got := isRegionName(name); got != want {
			t.Errorf("isRegionName(%q) = %v", name, got)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("TRITON_CI_GRPC_PORT", "8001")
	t.Setenv("TRITON_CI_HTTP_PORT", "")
	t.Setenv("TRITON_CI_METRICS_PORT", "")
	t.Setenv("TRITON_CI_STOP_TIMEOUT", "7")
	t.Setenv("TRITON_CI_START_TIMEOUT", "")
	t.Setenv("TRITON_CI_ARGS", "--a=1  --b=2")
	t.Setenv("TRITON_CI_LOG_VERBOSE", "")
	t.Setenv("TRITON_CI_ORT_THREADS", "")
	c, err := ConfigFromEnv("/repo")
	if err != nil {
		t.Fatal(err)
	}
	if c.GRPCPort != 8001 || c.HTTPPort != 0 || c.StopTimeout != 7*time.Second || c.StartTimeout != 0 ||
		!slices.Equal(c.Args, []string{"--a=1", "--b=2"}) {
		t.Errorf("ConfigFromEnv = %+v", c)
	}
	t.Setenv("TRITON_CI_HTTP_PORT", "70000")
	t.Setenv("TRITON_CI_START_TIMEOUT", "soon")
	_, err = ConfigFromEnv("/repo")
	if err == nil || !strings.Contains(err.Error(), "TRITON_CI_HTTP_PORT") || !strings.Contains(err.Error(), "TRITON_CI_START_TIMEOUT") {
		t.Errorf("bad values: %v, want both named", err)
	}
}
