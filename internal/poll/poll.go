// Package poll is the tests' one way to wait for a condition that something
// else makes true: call it every so often, fail the test past a limit.
package poll

import (
	"testing"
	"time"
)

// Until calls cond every `every` until it holds, and returns how long that
// took; past limit it fails the test with what it was waiting for.
func Until(t testing.TB, limit, every time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(every)
	}
	return time.Since(start)
}
