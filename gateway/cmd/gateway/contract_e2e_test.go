package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fish-classifier/fish-classifier/internal/testenv"
)

// The contract test's run: how many cases schemathesis generates per operation
// and phase, and the seed that makes them the same on every run. At 300, a run
// sends about 750 requests: 7 s on 2 cores with the race detector.
const (
	contractMaxExamples = 300
	contractSeed        = 20260601
	// contractTimeout bounds schemathesis' run, far above what it needs.
	contractTimeout = 3 * time.Minute
	// contractMinCases is fewer cases than a full run generates: a run that
	// tested (almost) nothing, say because it found no operation, fails.
	contractMinCases = 100
)

// TestE2EContract checks the gateway against its own OpenAPI document with
// schemathesis: the real gateway on the embedded backend, on loopback, and
// schemathesis (scripts/schemathesis.sh, pinned) reading /openapi.json, then
// sending schema-valid and schema-violating requests to every operation and
// checking each answer: no 5xx, a status the document declares for the
// operation, its content type, body schema and headers (X-Request-ID,
// Retry-After), valid requests accepted, invalid ones refused, and 405 with
// Allow for undeclared methods. Where the checks and the contract part, and
// why, is in testdata/schemathesis.toml. Any finding fails the test with
// schemathesis' report, which gives a curl command to reproduce each one.
func TestE2EContract(t *testing.T) {
	testenv.RealServers(t, "runs schemathesis against a gateway")
	root := repoRoot(t)
	st := schemathesisPath(t, root)
	g := startEmbeddedGateway(t, nil)

	ctx, cancel := context.WithTimeout(context.Background(), contractTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, st,
		"--config-file", filepath.Join(root, "gateway", "cmd", "gateway", "testdata", "schemathesis.toml"),
		"--no-color",
		"run", g.URL+"/openapi.json",
		"--max-examples", strconv.Itoa(contractMaxExamples),
		"--seed", strconv.Itoa(contractSeed),
		// One worker and no example database: the same cases in the same order
		// on every run, whatever ran before.
		"--workers", "1",
		"--generation-database", "none",
		"--request-timeout", "10",
	)
	cmd.Dir = t.TempDir() // anything it writes stays out of the repository
	cmd.Env = append(cmd.Environ(), "NO_COLOR=1", "COLUMNS=120")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start).Round(100 * time.Millisecond)
	if ctx.Err() != nil {
		t.Fatalf("schemathesis ran past %v:\n%s", contractTimeout, out.String())
	}
	if err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("run %s: %v", st, err)
		}
		t.Fatalf("schemathesis found the gateway and its OpenAPI document at odds (exit %d, %v); its report:\n%s",
			exit.ExitCode(), elapsed, out.String())
	}
	m := regexp.MustCompile(`(\d+) generated, (\d+) passed`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no test case count in schemathesis' output:\n%s", out.String())
	}
	if n, _ := strconv.Atoi(m[1]); n < contractMinCases {
		t.Fatalf("schemathesis generated %d test cases, want at least %d:\n%s", n, contractMinCases, out.String())
	}
	t.Logf("schemathesis: %s generated, %s passed in %v", m[1], m[2], elapsed)
	if testing.Verbose() {
		t.Log(summaryOf(out.String()))
	}
}

// schemathesisPath returns the st executable that scripts/schemathesis.sh
// installed, or fails the test saying how to install it.
func schemathesisPath(t *testing.T, root string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(root, "scripts", "schemathesis.sh"), "path")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the contract checker is missing (%v): %s\n"+
			"`make contract` installs it (pinned, from PyPI, into .schemathesis-venv/) and runs this test",
			err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out))
}

// summaryOf is schemathesis' output from its SUMMARY heading on.
func summaryOf(out string) string {
	if i := strings.Index(out, " SUMMARY "); i >= 0 {
		if j := strings.LastIndex(out[:i], "\n"); j >= 0 {
			return out[j+1:]
		}
	}
	return out
}
