//go:build unix

package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// process is a server that a test started: its own process group (so that a
// stop reaches the children it spawns), its output appended to Log, killed by
// the kernel when the test process dies before its cleanup (Linux).
type process struct {
	name string
	log  string
	pid  int
	// exited is closed once the process has exited and been reaped.
	exited  chan struct{}
	waitErr error
}

// startProcess starts bin with args; env nil inherits the test's environment.
// Output goes to the file log, appended (a restart keeps the earlier lines).
// The process is started from a goroutine locked to its OS thread for the
// process's lifetime: the parent-death signal fires when the starting thread
// ends, which must be when the test process does, not earlier.
func startProcess(name, bin string, args, env []string, dir, log string) (*process, error) {
	logf, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = env, dir, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setParentDeathSignal(cmd.SysProcAttr)
	p := &process{name: name, log: log, exited: make(chan struct{})}
	started := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the wait
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	return p, nil
}

// running says whether the process has not exited yet.
func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the process group and waits for the process to exit;
// after timeout, or if members of its group outlive it, SIGKILL goes to the
// whole group. It reports a process that needed SIGKILL.
func (p *process) stop(timeout time.Duration) error {
	var err error
	if p.running() {
		_ = syscall.Kill(-p.pid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(timeout):
			err = fmt.Errorf("%s did not stop within %v of SIGTERM; killed", p.name, timeout)
		}
	}
	// Children the leader did not wait for (or a leader that ignored SIGTERM).
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	<-p.exited
	return err
}

// waitUntil polls ready every 100 ms until it holds, the process exits, or
// timeout passes; a failure says why, with the log's tail.
func (p *process) waitUntil(timeout time.Duration, ready func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if ready() {
			return nil
		}
		select {
		case <-p.exited:
			err := fmt.Errorf("%s exited before it was ready (%v):\n%s", p.name, p.waitErr, p.tail(3000))
			if p.logHas("address already in use") {
				err = fmt.Errorf("%w: %w", errPortTaken, err)
			}
			return err
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = p.stop(5 * time.Second)
			return fmt.Errorf("%s not ready after %v:\n%s", p.name, timeout, p.tail(3000))
		}
	}
}

func (p *process) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	return string(tail(b, n))
}

func (p *process) logHas(s string) bool {
	b, _ := os.ReadFile(p.log)
	return bytes.Contains(bytes.ToLower(b), []byte(s))
}

// cleanupServer stops p at the test's cleanup (through stop, which may be a
// server's own), printing the tail of p's log first when the test failed.
func cleanupServer(t testing.TB, name string, log func() string, stop func() error) {
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(log()); err == nil {
				t.Logf("--- %s log (tail) ---\n%s", name, tail(b, 4000))
			}
		}
		if err := stop(); err != nil {
			t.Errorf("stopping %s: %v", name, err)
		}
	})
}

// withPortRetry runs start up to three times while it fails because a port
// picked free was taken meanwhile (errPortTaken).
func withPortRetry(start func(attempt int) error) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = start(attempt); err == nil || !errors.Is(err, errPortTaken) {
			return err
		}
	}
	return err
}

// runScript runs one of the repository's install scripts (scripts/NAME with
// args) within limit and returns its standard output, trimmed: the path it
// prints. Its standard error (what it did and why) is in the failure.
func runScript(t testing.TB, limit time.Duration, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(RepoRoot(t), "scripts", name), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// portOf is the port of "127.0.0.1:PORT".
func portOf(addr string) string {
	_, port, _ := strings.Cut(addr, ":")
	return port
}
