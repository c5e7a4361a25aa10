//go:build unix

// Command triton-ci starts, stops and describes the CI's real Triton
// (internal/tritonci) for the shell: scripts/triton-ci.sh start|stop|env|status
// runs it (install stays in the script: venv, pip, the pinned wheel). The
// settings come from the environment (TRITON_CI_*, see scripts/triton-ci.sh);
// TRITON_CI_ROOT is the repository (default: the folder above the working
// directory that holds go.mod).
//
//	go run ./internal/tritonci/cmd/triton-ci start|stop|env|status
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/fish-classifier/fish-classifier/internal/tritonci"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = "usage: triton-ci start|stop|env|status"

func run(args []string, stdout, stderr io.Writer) int {
	logf := func(format string, a ...any) {
		fmt.Fprintln(stderr, "triton-ci: "+strings.TrimPrefix(fmt.Sprintf(format, a...), "tritonci: "))
	}
	if len(args) != 1 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	root, err := repoRoot()
	if err != nil {
		logf("%v", err)
		return 1
	}
	cfg, err := tritonci.ConfigFromEnv(root)
	if err != nil {
		logf("%v", err)
		return 1
	}
	cfg.Logf = logf
	switch args[0] {
	case "start":
		// Interrupted (Ctrl-C, a CI timeout's SIGTERM) while starting: Start
		// leaves nothing behind.
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		defer stop()
		s, err := tritonci.Start(ctx, cfg)
		if err != nil {
			logf("%v", err)
			if ctx.Err() != nil {
				return 130
			}
			return 1
		}
		fmt.Fprintf(stdout, "grpc_port=%d\nhttp_port=%d\nmetrics_port=%d\n", s.GRPCPort, s.HTTPPort, s.MetricsPort)
	case "stop":
		if err := tritonci.Stop(cfg); errors.Is(err, tritonci.ErrNotRunning) {
			logf("not running")
		} else if err != nil {
			logf("%v", err)
			return 1
		}
	case "env":
		s, err := tritonci.Running(cfg)
		if err != nil {
			logf("not running: start it first")
			return 1
		}
		fmt.Fprint(stdout, s.Env())
	case "status":
		s, err := tritonci.Running(cfg)
		if err != nil {
			fmt.Fprintln(stdout, "not running")
			return 3
		}
		rss, procs := s.Usage()
		fmt.Fprintf(stdout, "running: pid %d, gRPC %s, HTTP %s, metrics %s; RSS %d MiB (server + %d stub(s)); log %s\n",
			s.PID, s.GRPCAddr(), s.HTTPAddr(), s.MetricsAddr(), rss>>20, max(procs-1, 0), s.Log)
	default:
		fmt.Fprintln(stderr, usage)
		return 2
	}
	return 0
}

// repoRoot is TRITON_CI_ROOT, or the nearest folder upwards that holds go.mod.
func repoRoot() (string, error) {
	if r := os.Getenv("TRITON_CI_ROOT"); r != "" {
		return filepath.Abs(r)
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s: set TRITON_CI_ROOT to the repository", dir)
		}
	}
}
