package gateway

import (
	"context"
	"errors"
	"image/color"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// waitObserver records the longest wait for an inference slot.
type waitObserver struct {
	NopObserver
	mu      sync.Mutex
	longest time.Duration
	waits   int
}

func (w *waitObserver) Waited(slot string, d time.Duration) {
	if slot != SlotInference {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.waits++
	w.longest = max(w.longest, d)
}

// With WithMaxConcurrentInferences(n), at most n requests hold tensors at
// once; the others wait their turn and are all served; one whose context ends
// while waiting gets its context's error without reaching the backend.
func TestMaxConcurrentInferencesBoundsAndQueues(t *testing.T) {
	// In a synctest bubble: time is the bubble's own, and synctest.Wait returns
	// once every goroutine is blocked, so "no excess request slipped through"
	// is checked when none could still be on its way, not after a guessed sleep.
	synctest.Test(t, func(t *testing.T) {
		const slots, requests = 3, 10
		// The backend holds every call until release is closed and records the
		// most calls it held at once.
		release := make(chan struct{})
		var now, most, all atomic.Int64
		b := fishBackend(8, nil)
		b.InferFunc = func(ctx context.Context, in Batch) (Scores, error) {
			n := now.Add(1)
			defer now.Add(-1)
			all.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			select {
			case <-release:
			case <-ctx.Done():
				return Scores{}, ctx.Err()
			}
			return scoreByRed(ctx, in)
		}
		obs := &waitObserver{}
		c := loadedClassifier(t, b, obs, WithMaxConcurrentInferences(slots))
		img := solidPNG(t, color.NRGBA{R: 7, A: 255})

		var wg sync.WaitGroup
		errs := make([]error, requests)
		for i := range requests {
			wg.Go(func() { _, errs[i] = c.Classify(context.Background(), img, 1) })
		}
		synctest.Wait() // every request is held by the backend or waits for a slot
		if got := now.Load(); got != slots {
			t.Fatalf("%d calls held by the backend, want %d", got, slots)
		}

		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := c.Classify(ctx, img, 1)
		if KindOf(err) != KindDeadline || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("request whose deadline passed while waiting: %v (kind %v), want deadline_exceeded", err, KindOf(err))
		}

		time.Sleep(50 * time.Millisecond) // the bubble's clock: the first calls are held 50 ms and more
		close(release)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("request %d: %v", i, err)
			}
		}
		if most, all := most.Load(), all.Load(); most != slots || all != requests {
			t.Errorf("backend saw at most %d at once and %d in all, want %d and %d", most, all, slots, requests)
		}
		// The queued requests waited at least the 70 ms the first ones were
		// held (the 20 ms deadline, then 50 ms); the one that gave up waiting is
		// not reported.
		if obs.waits != requests || obs.longest < 70*time.Millisecond {
			t.Errorf("observer saw %d waits, longest %v; want %d, at least 70ms", obs.waits, obs.longest, requests)
		}
	})
}
