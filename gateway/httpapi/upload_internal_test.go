package httpapi

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func newTestBudget(bytes int64) (*uploadBudget, *atomic.Int32) {
	var calls atomic.Int32
	b := newUploadBudget(bytes, prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"}))
	b.freeOSMemory = func() { calls.Add(1) }
	return b, &calls
}

// TestUploadBudgetWaits: a reservation that does not fit waits for a release,
// or fails when its context ends first.
func TestUploadBudgetWaits(t *testing.T) { synctest.Test(t, testUploadBudgetWaits) }

func testUploadBudgetWaits(t *testing.T) {
	b, _ := newTestBudget(10)
	if err := b.acquire(context.Background(), 8); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.acquire(ctx, 4); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acquire over the budget: %v, want a deadline error", err)
	}
	got := make(chan error, 1)
	go func() { got <- b.acquire(context.Background(), 4) }()
	synctest.Wait()
	select {
	case err := <-got:
		t.Fatalf("acquire returned %v before anything was released", err)
	default:
	}
	b.release(8)
	if err := <-got; err != nil {
		t.Fatalf("acquire after a release: %v", err)
	}
}

// TestUploadBudgetReclaims: memory is given back once uploads have been quiet
// for reclaimDelay, once per quiet period, and not while they go on.
func TestUploadBudgetReclaims(t *testing.T) { synctest.Test(t, testUploadBudgetReclaims) }

func testUploadBudgetReclaims(t *testing.T) {
	b, calls := newTestBudget(1 << 20)
	ctx := context.Background()

	// Uploads keep overlapping for longer than reclaimDelay: no reclaim.
	_ = b.acquire(ctx, 1)
	for range 6 {
		_ = b.acquire(ctx, 1)
		b.release(1)
		time.Sleep(reclaimDelay / 4)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d reclaims while an upload was always in flight", n)
	}
	b.release(1)
	time.Sleep(reclaimDelay + time.Millisecond)
	synctest.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d reclaims after a quiet period, want 1", n)
	}
	time.Sleep(reclaimEvery)
	synctest.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d reclaims with no upload since the last, want still 1", n)
	}
}
