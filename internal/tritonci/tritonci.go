//go:build unix

// Package tritonci supervises the CI's real NVIDIA Triton Inference Server
// (2.51 on the CPU, from the nvidia-pytriton wheel that scripts/triton-ci.sh
// install puts in .triton-venv/; the model repository comes from triton-ci/ and
// triton-models/): it assembles the model repository, starts tritonserver on
// fixed or free loopback ports in its own process group, waits until the server
// and the model are ready, and stops it (SIGTERM, then SIGKILL to the whole
// group: the server and its Python backend stubs), removing the shared memory
// the stubs leave in /dev/shm. internal/testenv starts it for the tests; the
// command in cmd/triton-ci (scripts/triton-ci.sh start|stop|env|status) for the
// shell.
//
// A server's state lives in a run folder: pid, grpc_port, http_port,
// metrics_port, log, shm (the shared-memory regions seen in use) and models/
// (the repository it serves). A process that did not start the server (a
// second shell command, a test's cleanup) stops it from that state.
package tritonci

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Model is the model the CI repository serves.
const Model = "fish_classifier"

// Config says which installation to run, where its state lives, and how.
type Config struct {
	// Root is the repository: triton-ci/ and triton-models/ are read from it.
	Root string
	// Venv is the installation made by scripts/triton-ci.sh install (default
	// Root/.triton-venv).
	Venv string
	// RunDir holds the running server's state (default Venv/run). A test
	// gives its own, so it never meets a server started by hand.
	RunDir string
	// GRPCPort, HTTPPort, MetricsPort: fixed loopback ports; 0 picks a free one.
	// With every port picked, a start that finds one taken meanwhile tries
	// other ports (up to 3 attempts); a fixed port that is taken fails at once.
	GRPCPort, HTTPPort, MetricsPort int
	// StartTimeout bounds the wait for readiness (default 90 s); StopTimeout
	// the wait after SIGTERM before SIGKILL goes to the process group (30 s).
	StartTimeout, StopTimeout time.Duration
	// LogVerbose is tritonserver's --log-verbose; Args are extra arguments.
	LogVerbose int
	Args       []string
	// ORTThreads is onnxruntime's intra-op threads in the model (default 1).
	ORTThreads int
	// ModelRepository, when set, is the --model-repository Triton serves
	// instead of the repository assembled in RunDir/models (nothing is then
	// assembled): another folder, or an S3 bucket in Triton's form with an
	// explicit endpoint, "s3://http://127.0.0.1:PORT/BUCKET/PREFIX"
	// (docs/mlops.md#triton-on-s3-what-was-checked). It must hold Model.
	ModelRepository string
	// ModelControlMode is Triton's --model-control-mode: "explicit" (the
	// default) loads Model at start and then only on a load call; "poll" and
	// "none" load every model of the repository, poll also rescanning it
	// every --repository-poll-secs (pass that in Args).
	ModelControlMode string
	// Env is extra environment for tritonserver, "NAME=value" each, after
	// the inherited one (a later entry wins): the S3 credentials of a bucket
	// repository, for instance.
	Env []string
	// DieWithParent (Linux) kills the server when the process that started it
	// dies: for tests, whose cleanup does not run when they are killed. The
	// shell's start leaves it off: the server outlives the command.
	DieWithParent bool
	// Logf receives progress lines ("ready in ..."); nil discards them.
	Logf func(format string, args ...any)
}

// ConfigFromEnv is the configuration the shell command takes from its
// environment (TRITON_CI_VENV, TRITON_CI_RUN_DIR, TRITON_CI_GRPC_PORT,
// TRITON_CI_HTTP_PORT, TRITON_CI_METRICS_PORT, TRITON_CI_START_TIMEOUT and
// TRITON_CI_STOP_TIMEOUT in seconds, TRITON_CI_LOG_VERBOSE, TRITON_CI_ARGS
// split on spaces, TRITON_CI_ORT_THREADS), for the repository at root.
func ConfigFromEnv(root string) (Config, error) {
	c := Config{Root: root, Venv: os.Getenv("TRITON_CI_VENV"), RunDir: os.Getenv("TRITON_CI_RUN_DIR"),
		Args: strings.Fields(os.Getenv("TRITON_CI_ARGS"))}
	var errs []error
	num := func(name string, dst *int, lo, hi int) {
		v := os.Getenv(name)
		if v == "" {
			return
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			errs = append(errs, fmt.Errorf("%s must be a number from %d to %d, not %q", name, lo, hi, v))
			return
		}
		*dst = n
	}
	num("TRITON_CI_GRPC_PORT", &c.GRPCPort, 1, 65535)
	num("TRITON_CI_HTTP_PORT", &c.HTTPPort, 1, 65535)
	num("TRITON_CI_METRICS_PORT", &c.MetricsPort, 1, 65535)
	num("TRITON_CI_LOG_VERBOSE", &c.LogVerbose, 0, 1<<20)
	num("TRITON_CI_ORT_THREADS", &c.ORTThreads, 1, 1024)
	var start, stop int
	num("TRITON_CI_START_TIMEOUT", &start, 1, 1<<20)
	num("TRITON_CI_STOP_TIMEOUT", &stop, 1, 1<<20)
	c.StartTimeout, c.StopTimeout = time.Duration(start)*time.Second, time.Duration(stop)*time.Second
	return c, errors.Join(errs...)
}

// withDefaults fills the defaults in and makes the folders absolute; the venv
// is taken by its real path, which is what /proc/<pid>/exe names.
func (c Config) withDefaults() (Config, error) {
	if c.Root == "" {
		return c, errors.New("tritonci: Config.Root (the repository) is empty")
	}
	if c.Venv == "" {
		c.Venv = filepath.Join(c.Root, ".triton-venv")
	}
	var err error
	if c.Venv, err = filepath.Abs(c.Venv); err != nil {
		return c, err
	}
	if real, err := filepath.EvalSymlinks(c.Venv); err == nil {
		c.Venv = real
	}
	if c.RunDir == "" {
		c.RunDir = filepath.Join(c.Venv, "run")
	}
	if c.RunDir, err = filepath.Abs(c.RunDir); err != nil {
		return c, err
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 90 * time.Second
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = 30 * time.Second
	}
	if c.ORTThreads <= 0 {
		c.ORTThreads = 1
	}
	switch c.ModelControlMode {
	case "":
		c.ModelControlMode = "explicit"
	case "explicit", "poll", "none":
	default:
		return c, fmt.Errorf("tritonci: ModelControlMode %q: want explicit, poll or none", c.ModelControlMode)
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return c, nil
}

// Server is a running tritonserver.
type Server struct {
	PID                             int
	GRPCPort, HTTPPort, MetricsPort int
	// Version is Triton's, from its server metadata ("2.51.0"); empty for a
	// server found by Running.
	Version string
	// RunDir is its state; Log its output (RunDir/log).
	RunDir, Log string
}

func (s *Server) GRPCAddr() string    { return "127.0.0.1:" + strconv.Itoa(s.GRPCPort) }
func (s *Server) HTTPAddr() string    { return "127.0.0.1:" + strconv.Itoa(s.HTTPPort) }
func (s *Server) MetricsAddr() string { return "127.0.0.1:" + strconv.Itoa(s.MetricsPort) }

// ErrNotRunning says that the run folder names no running server.
var ErrNotRunning = errors.New("tritonci: not running")

// install is what scripts/triton-ci.sh install recorded in <venv>/.triton-ci-installed.
type install struct {
	server string // the wheel's tritonserver folder: bin/, caches/, backends/
	ldPath string // a folder for LD_LIBRARY_PATH (a libpython outside the default path), or ""
}

func readInstall(venv string) (install, error) {
	notInstalled := fmt.Errorf("tritonci: Triton is not installed in %s: run scripts/triton-ci.sh install first", venv)
	b, err := os.ReadFile(filepath.Join(venv, ".triton-ci-installed"))
	if err != nil {
		return install{}, notInstalled
	}
	var in install
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "server":
			in.server = v
		case "ld_library_path":
			in.ldPath = v
		}
	}
	if in.server == "" {
		return install{}, notInstalled
	}
	for _, p := range []string{
		filepath.Join(venv, "bin", "python"),
		filepath.Join(in.server, "bin", "tritonserver"),
		filepath.Join(venv, "triton-backends", "python", "triton_python_backend_stub"),
		filepath.Join(venv, "triton-backends", "python", "libtriton_python.so"),
	} {
		if _, err := os.Stat(p); err != nil {
			return install{}, fmt.Errorf("%w (%v)", notInstalled, err)
		}
	}
	return in, nil
}

// lock serialises starting and stopping the servers of one installation (the
// tests of several packages, CI jobs sharing a checkout) with flock(2) on
// <venv>/.lock, the lock scripts/triton-ci.sh install takes too.
func lock(ctx context.Context, venv string) (unlock func(), err error) {
	if err := os.MkdirAll(venv, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(venv, ".lock"), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("tritonci: lock %s: %w", f.Name(), err)
		}
		if time.Now().After(deadline) {
			_ = f.Close()
			return nil, fmt.Errorf("tritonci: another start, stop or install holds %s for more than 2 minutes", f.Name())
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// state files in the run folder.
const (
	pidFile   = "pid"
	shmFile   = "shm"
	logFile   = "log"
	modelsDir = "models"
)

var portFiles = [3]string{"grpc_port", "http_port", "metrics_port"}

func readInt(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return n, err == nil && n > 0
}

func writeInt(path string, n int) error {
	return os.WriteFile(path, []byte(strconv.Itoa(n)+"\n"), 0o644)
}

// clearState removes what a run leaves in the run folder but its log and models.
func clearState(run string) {
	for _, f := range append([]string{pidFile, shmFile}, portFiles[:]...) {
		_ = os.Remove(filepath.Join(run, f))
	}
}

// Running returns the server the run folder names, or ErrNotRunning.
func Running(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	pid, ok := readInt(filepath.Join(cfg.RunDir, pidFile))
	if !ok || !isServer(pid, cfg.Venv) {
		return nil, ErrNotRunning
	}
	s := &Server{PID: pid, RunDir: cfg.RunDir, Log: filepath.Join(cfg.RunDir, logFile)}
	for i, dst := range []*int{&s.GRPCPort, &s.HTTPPort, &s.MetricsPort} {
		if *dst, ok = readInt(filepath.Join(cfg.RunDir, portFiles[i])); !ok {
			return nil, ErrNotRunning // still starting, or a start that failed
		}
	}
	return s, nil
}

// Start assembles the model repository and starts tritonserver, then waits
// until it is ready: the server's /v2/health/ready and the model's ready
// endpoint answer 200. On any failure, or when ctx ends first, nothing is left
// running and the error holds the end of the log.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	in, err := readInstall(cfg.Venv)
	if err != nil {
		return nil, err
	}
	unlock, err := lock(ctx, cfg.Venv)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if pid, ok := readInt(filepath.Join(cfg.RunDir, pidFile)); ok && isServer(pid, cfg.Venv) {
		return nil, fmt.Errorf("tritonci: already running (pid %d, state in %s); stop it first", pid, cfg.RunDir)
	}
	clearState(cfg.RunDir)
	if cfg.ModelRepository == "" {
		if err := assembleRepository(cfg); err != nil {
			return nil, err
		}
	}
	attempts := 3
	if cfg.GRPCPort != 0 || cfg.HTTPPort != 0 || cfg.MetricsPort != 0 {
		attempts = 1
	}
	var last error
	for attempt := 1; attempt <= attempts; attempt++ {
		ports, err := pickPortsFunc(cfg.GRPCPort, cfg.HTTPPort, cfg.MetricsPort)
		if err != nil {
			return nil, err
		}
		s, err := startOnce(ctx, cfg, in, ports)
		if err == nil {
			return s, nil
		}
		last = err
		if ctx.Err() != nil || attempt == attempts || !errors.Is(err, errPortTaken) {
			break
		}
		cfg.Logf("a port was taken meanwhile; trying other ports")
	}
	return nil, last
}

// pickPortsFunc is pickFreePorts; tests replace it to hand out a taken port.
var pickPortsFunc = pickFreePorts

// pickFreePorts keeps the fixed ports and picks free loopback ones for the
// others, all bound at once so that they differ. Another process may take one
// before Triton binds it: Start then tries again.
func pickFreePorts(fixed ...int) ([3]int, error) {
	var ports [3]int
	for i, p := range fixed {
		if p != 0 {
			ports[i] = p
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return ports, fmt.Errorf("tritonci: picking a free port: %w", err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// errPortTaken marks a start that failed because a port was in use.
var errPortTaken = errors.New("a port was in use")

// assembleRepository builds RunDir/models: the CI configuration and model.py
// from triton-ci/, the labels and the ONNX file from the production repository
// (copied, not linked, so that rebuilding triton-models/ mid-run cannot change
// what a running server reloads).
func assembleRepository(cfg Config) error {
	return AssembleRepository(cfg.Root, filepath.Join(cfg.RunDir, modelsDir))
}

// AssembleRepository writes the CI model repository of the repository at root
// into the folder dir, replacing what dir held: Model/config.pbtxt and
// Model/1/model.py from triton-ci/, Model/labels.txt and Model/1/model.onnx
// from triton-models/. It is what Start serves, for a test that serves it from
// elsewhere (an S3 bucket).
func AssembleRepository(root, dir string) error {
	ci := filepath.Join(root, "triton-ci", "models", Model)
	prod := filepath.Join(root, "triton-models", Model)
	dst := filepath.Join(dir, Model)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dst, "1"), 0o755); err != nil {
		return err
	}
	for _, c := range [][2]string{
		{filepath.Join(ci, "config.pbtxt"), filepath.Join(dst, "config.pbtxt")},
		{filepath.Join(prod, "labels.txt"), filepath.Join(dst, "labels.txt")},
		{filepath.Join(ci, "1", "model.py"), filepath.Join(dst, "1", "model.py")},
		{filepath.Join(prod, "1", "model.onnx"), filepath.Join(dst, "1", "model.onnx")},
	} {
		b, err := os.ReadFile(c[0])
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && filepath.Base(c[0]) == "model.onnx" {
				return fmt.Errorf("tritonci: %s is missing: build it with make model", c[0])
			}
			return fmt.Errorf("tritonci: %w", err)
		}
		if err := os.WriteFile(c[1], b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// command is tritonserver's command line and environment. PATH: the Python
// stub embeds libpython in isolated mode (PYTHONPATH is ignored) and finds its
// prefix, hence the venv's site-packages (numpy, onnxruntime), from the first
// python3 on PATH.
func command(cfg Config, in install, ports [3]int) (args, env []string) {
	repo := cfg.ModelRepository
	if repo == "" {
		repo = filepath.Join(cfg.RunDir, modelsDir)
	}
	args = []string{
		filepath.Join(in.server, "bin", "tritonserver"),
		"--model-repository=" + repo,
		"--backend-directory=" + filepath.Join(cfg.Venv, "triton-backends"),
		"--cache-directory=" + filepath.Join(in.server, "caches"),
		"--model-control-mode=" + cfg.ModelControlMode,
	}
	if cfg.ModelControlMode == "explicit" {
		args = append(args, "--load-model="+Model)
	}
	args = append(args,
		"--strict-readiness=true",
		"--grpc-address=127.0.0.1", "--grpc-port="+strconv.Itoa(ports[0]),
		"--http-address=127.0.0.1", "--http-port="+strconv.Itoa(ports[1]),
		"--metrics-address=127.0.0.1", "--metrics-port="+strconv.Itoa(ports[2]),
		"--allow-metrics=true", "--allow-gpu-metrics=false", "--allow-cpu-metrics=true",
		"--exit-timeout-secs=10",
		"--log-verbose="+strconv.Itoa(cfg.LogVerbose),
	)
	args = append(args, cfg.Args...)
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "PYTHONPATH", "PYTHONHOME", "PATH", "LD_LIBRARY_PATH", "TRITON_CI_ORT_THREADS":
			continue
		}
		env = append(env, kv)
	}
	path := filepath.Join(cfg.Venv, "bin")
	if p := os.Getenv("PATH"); p != "" {
		path += ":" + p
	}
	env = append(env, "PATH="+path, "TRITON_CI_ORT_THREADS="+strconv.Itoa(cfg.ORTThreads))
	ld := os.Getenv("LD_LIBRARY_PATH")
	if in.ldPath != "" {
		ld = strings.TrimSuffix(in.ldPath+":"+ld, ":")
	}
	if ld != "" {
		env = append(env, "LD_LIBRARY_PATH="+ld)
	}
	env = append(env, cfg.Env...)
	return args, env
}

func startOnce(ctx context.Context, cfg Config, in install, ports [3]int) (*Server, error) {
	run := cfg.RunDir
	logPath := filepath.Join(run, logFile)
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	args, env := command(cfg, in, ports)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = env, run, logf, logf
	// Its own session, hence its own process group, which the Python stubs it
	// starts join: stopping kills every one of them, and a terminal's Ctrl-C
	// meant for the shell that started it does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	began := time.Now()
	exited, err := spawn(cmd, cfg.DieWithParent)
	if err != nil {
		return nil, fmt.Errorf("tritonci: starting %s: %w", args[0], err)
	}
	pid := cmd.Process.Pid
	if err := writeInt(filepath.Join(run, pidFile), pid); err != nil {
		stopGroup(cfg, pid, nil)
		return nil, err
	}
	regions := map[string]bool{}
	version, err := waitReady(ctx, cfg, ports[1], exited, func() {
		for _, r := range groupRegions(pid) {
			regions[r] = true
		}
	})
	if err != nil {
		stopGroup(cfg, pid, slices.Collect(maps.Keys(regions)))
		// A server stopped early (killed before it handled signals, or exited
		// on its own) may leave a region no poll saw: those unused since the
		// start are its. (Starts from one installation take turns.) File times
		// come from the kernel's coarse clock, which can be milliseconds
		// behind time.Now: hence the margin.
		sweepUnused(began.Add(-time.Second), time.Now().Add(time.Minute))
		clearState(run)
		// gRPC's bind says "Address already in use", HTTP's "Socket '...' already in use".
		if logHas(logPath, "already in use") {
			err = fmt.Errorf("%w (%v)", errPortTaken, err)
		}
		return nil, fmt.Errorf("tritonci: %w; last lines of %s:\n%s", err, logPath, logTail(logPath, 30))
	}
	s := &Server{PID: pid, GRPCPort: ports[0], HTTPPort: ports[1], MetricsPort: ports[2], Version: version, RunDir: run, Log: logPath}
	for i, p := range ports {
		if err := writeInt(filepath.Join(run, portFiles[i]), p); err != nil {
			stopGroup(cfg, pid, nil)
			clearState(run)
			return nil, err
		}
	}
	recordRegions(run, append(groupRegions(pid), slices.Collect(maps.Keys(regions))...))
	cfg.Logf("Triton %s ready in %d ms (pid %d, log %s)", version, time.Since(began).Milliseconds(), pid, logPath)
	return s, nil
}

// spawn starts cmd and reaps it when it exits (the returned channel closes
// then), for a caller that outlives the server. With dieWithParent (Linux) the
// kernel sends the server SIGKILL when the thread that started it ends, so it
// is started from a goroutine locked to its thread for the server's lifetime:
// the thread then ends with this process, not earlier.
func spawn(cmd *exec.Cmd, dieWithParent bool) (<-chan struct{}, error) {
	exited := make(chan struct{})
	if !dieWithParent {
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		go func() { _ = cmd.Wait(); close(exited) }()
		return exited, nil
	}
	setParentDeathSignal(cmd.SysProcAttr)
	started := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the server's wait
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return exited, nil
}

// waitReady polls until the server and the model are ready, the server exits,
// StartTimeout passes or ctx ends; it returns Triton's version. It calls poll
// at every round (Start notes the shared memory in use: a start that fails may
// leave none of its processes to tell).
func waitReady(ctx context.Context, cfg Config, httpPort int, exited <-chan struct{}, poll func()) (string, error) {
	base := "http://127.0.0.1:" + strconv.Itoa(httpPort)
	// No keep-alive: on SIGTERM Triton waits (up to its exit timeout) for the
	// HTTP connections to close, and an idle one of this client's would hold
	// up a stop by this process.
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	ok := func(path string) bool {
		resp, err := client.Get(base + path)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	deadline := time.Now().Add(cfg.StartTimeout)
	for {
		poll()
		select {
		case <-exited:
			return "", errors.New("tritonserver exited before it was ready")
		default:
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("interrupted while waiting for readiness: %w", ctx.Err())
		}
		if ok("/v2/health/ready") && ok("/v2/models/"+Model+"/ready") {
			var meta struct {
				Version string `json:"version"`
			}
			if resp, err := client.Get(base + "/v2"); err == nil {
				_ = json.NewDecoder(resp.Body).Decode(&meta)
				_ = resp.Body.Close()
			}
			if meta.Version == "" {
				meta.Version = "?"
			}
			return meta.Version, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("not ready after %s (TRITON_CI_START_TIMEOUT)", cfg.StartTimeout)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("interrupted while waiting for readiness: %w", ctx.Err())
		case <-exited:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func logHas(path, s string) bool {
	b, _ := os.ReadFile(path)
	return strings.Contains(strings.ToLower(string(b)), s)
}

// logTail is the last n lines of Triton's log that say something (not its
// tables' borders, not blank).
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log)"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "|") || strings.HasPrefix(l, "+") {
			continue
		}
		lines = append(lines, l)
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// recordRegions adds region names to RunDir/shm, so that a later stop removes
// them even after the processes that used them are gone (killed).
func recordRegions(run string, names []string) {
	old, _ := os.ReadFile(filepath.Join(run, shmFile))
	all := append(strings.Fields(string(old)), names...)
	slices.Sort(all)
	all = slices.Compact(all)
	if len(all) == 0 {
		return
	}
	_ = os.WriteFile(filepath.Join(run, shmFile), []byte(strings.Join(all, "\n")+"\n"), 0o644)
}

func recordedRegions(run string) []string {
	b, _ := os.ReadFile(filepath.Join(run, shmFile))
	return strings.Fields(string(b))
}

// stopGroup stops the process group led by pid: SIGTERM to the server (it
// unloads the model and stops its stubs), SIGKILL to the whole group after
// StopTimeout; then it removes the shared-memory regions the group used and
// those recorded earlier (extra).
func stopGroup(cfg Config, pid int, extra []string) {
	regions := append(groupRegions(pid), extra...)
	if alive(pid) {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(cfg.StopTimeout)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	// A process group's id is not reused while a member lives: the members
	// left are the server's.
	if len(groupMembers(pid)) > 0 {
		if alive(pid) {
			cfg.Logf("pid %d still running %s after SIGTERM: SIGKILL to its process group", pid, cfg.StopTimeout)
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		deadline = time.Now().Add(10 * time.Second)
		for len(groupMembers(pid)) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if left := groupMembers(pid); len(left) > 0 {
			cfg.Logf("process group %d did not go away: %v", pid, left)
		}
	}
	if err := removeRegions(regions); err != nil {
		cfg.Logf("removing shared memory: %v", err)
	}
}

// Stop stops the server the run folder names (see stopGroup) and clears the
// folder's state; it also removes the shared memory that killed servers left
// in /dev/shm (recorded in the folder, or orphaned: unused and older than a
// minute). Without a server it only cleans up, and reports ErrNotRunning.
func Stop(cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	unlock, err := lock(context.Background(), cfg.Venv)
	if err != nil {
		return err
	}
	defer unlock()
	defer func() {
		if swept := sweepUnused(time.Time{}, time.Now().Add(-orphanAge)); len(swept) > 0 {
			cfg.Logf("removed %d unused shared-memory region(s) of Triton servers that are gone from %s", len(swept), shmDir)
		}
	}()
	recorded := recordedRegions(cfg.RunDir)
	pid, ok := readInt(filepath.Join(cfg.RunDir, pidFile))
	if !ok {
		_ = removeRegions(recorded)
		clearState(cfg.RunDir)
		return ErrNotRunning
	}
	if !isServer(pid, cfg.Venv) {
		// The server is gone; a stub of its group may not be (it outlives a
		// server that crashed). Its group id cannot have been reused while it
		// lives, and it runs from the installation.
		for _, p := range groupMembers(pid) {
			if exe, err := os.Readlink(filepath.Join(procRoot, strconv.Itoa(p), "exe")); err == nil && strings.HasPrefix(exe, cfg.Venv+"/") {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
		}
		_ = removeRegions(recorded)
		clearState(cfg.RunDir)
		cfg.Logf("pid file %s is stale (process %d is gone); cleaned up", filepath.Join(cfg.RunDir, pidFile), pid)
		return nil
	}
	began := time.Now()
	stopGroup(cfg, pid, recorded)
	clearState(cfg.RunDir)
	cfg.Logf("stopped pid %d in %.1f s", pid, time.Since(began).Seconds())
	return nil
}

// Kill ends the server and its stubs at once, SIGKILL to the process group,
// like a crash: nothing is cleaned up (a later Stop does that; the regions in
// use are recorded first so that it can). It returns once no member is left.
func Kill(cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	pid, ok := readInt(filepath.Join(cfg.RunDir, pidFile))
	if !ok || !isServer(pid, cfg.Venv) {
		return ErrNotRunning
	}
	recordRegions(cfg.RunDir, groupRegions(pid))
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("tritonci: SIGKILL to process group %d: %w", pid, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(groupMembers(pid)) > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("tritonci: process group %d still has %v 10 s after SIGKILL", pid, groupMembers(pid))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// Usage is the summed resident memory of the server and its stubs, in bytes.
func (s *Server) Usage() (rss int64, procs int) {
	for _, p := range groupMembers(s.PID) {
		rss += statusKB(p, "VmRSS") << 10
		procs++
	}
	return rss, procs
}

// Env is the shell's export lines for a running server: its addresses for
// clients and tests, and the gateway's own TRITON_URL.
func (s *Server) Env() string {
	return fmt.Sprintf("export TRITON_GRPC_ADDR=%s\nexport TRITON_HTTP_URL=http://%s\nexport TRITON_METRICS_URL=http://%s/metrics\nexport TRITON_URL=%s\nexport TRITON_CI_PID=%d\n",
		s.GRPCAddr(), s.HTTPAddr(), s.MetricsAddr(), s.GRPCAddr(), s.PID)
}
