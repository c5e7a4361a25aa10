package poll

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	var calls atomic.Int32
	took := Until(t, time.Second, time.Millisecond, "the third call", func() bool { return calls.Add(1) >= 3 })
	if calls.Load() != 3 {
		t.Errorf("cond called %d times, want 3", calls.Load())
	}
	if took < 2*time.Millisecond {
		t.Errorf("took %v, want at least the two waits between the calls", took)
	}
}

// fatalRecorder is a testing.TB that records Fatalf instead of stopping.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = format
	panic(f)
}

func TestUntilTimesOut(t *testing.T) {
	rec := &fatalRecorder{TB: t}
	func() {
		defer func() {
			if r := recover(); r != rec {
				t.Fatalf("Until did not fail the test past its limit (recovered %v)", r)
			}
		}()
		Until(rec, 20*time.Millisecond, time.Millisecond, "never", func() bool { return false })
	}()
	if rec.msg == "" {
		t.Fatal("no failure message")
	}
}
