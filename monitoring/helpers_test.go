package monitoring_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/fish-classifier/fish-classifier/internal/testenv"
)

// repoRoot is the module root.
func repoRoot(t testing.TB) string { return testenv.RepoRoot(t) }

// monitoringPath is a path under monitoring/, absolute.
func monitoringPath(t testing.TB, elem ...string) string {
	t.Helper()
	return filepath.Join(append([]string{repoRoot(t), "monitoring"}, elem...)...)
}

// requireBinary returns the path of a tool these tests run for real. A missing
// tool fails the test, never skips it: the checks it makes are the point.
func requireBinary(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: these tests run the real Prometheus tools; "+
			"install them with scripts/install-test-deps.sh (Debian: apt-get install prometheus prometheus-alertmanager)", name)
	}
	return path
}
