package gateway

import (
	"context"
	"errors"
	"image/color"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fish-classifier/fish-classifier/preprocess"
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

// blockingBackend holds every Infer until release is closed and records the
// most calls it held at once.
type blockingBackend struct {
	*fakeBackend
	release        chan struct{}
	now, most, all atomic.Int64
}

func (b *blockingBackend) Infer(ctx context.Context, in Batch) (Scores, error) {
	n := b.now.Add(1)
	defer b.now.Add(-1)
	b.all.Add(1)
	for m := b.most.Load(); n > m && !b.most.CompareAndSwap(m, n); m = b.most.Load() {
	}
	select {
	case <-b.release:
	case <-ctx.Done():
		return Scores{}, ctx.Err()
	}
	return b.fakeBackend.Infer(ctx, in)
}

// With WithMaxConcurrentInferences(n), at most n requests hold tensors at
// once; the others wait their turn and are all served; one whose context ends
// while waiting gets its context's error without reaching the backend.
func TestMaxConcurrentInferencesBoundsAndQueues(t *testing.T) {
	const slots, requests = 3, 10
	b := &blockingBackend{fakeBackend: newFake(8), release: make(chan struct{})}
	obs := &waitObserver{}
	c, err := NewClassifier(context.Background(), b, preprocess.DefaultLimits(), obs, WithMaxConcurrentInferences(slots))
	if err != nil {
		t.Fatal(err)
	}
	img := solidPNG(t, color.NRGBA{R: 7, A: 255})

	var wg sync.WaitGroup
	errs := make([]error, requests)
	for i := range requests {
		wg.Go(func() { _, errs[i] = c.Classify(context.Background(), img, 1) })
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.now.Load() < slots && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // give any excess request the chance to slip through
	if got := b.now.Load(); got != slots {
		t.Fatalf("%d calls held by the backend, want %d", got, slots)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = c.Classify(ctx, img, 1)
	if KindOf(err) != KindDeadline || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("request whose deadline passed while waiting: %v (kind %v), want deadline_exceeded", err, KindOf(err))
	}

	close(b.release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	if most, all := b.most.Load(), b.all.Load(); most != slots || all != requests {
		t.Errorf("backend saw at most %d at once and %d in all, want %d and %d", most, all, slots, requests)
	}
	// The queued requests waited at least the 50 ms the first ones were held;
	// the one that gave up waiting is not reported.
	if obs.waits != requests || obs.longest < 50*time.Millisecond {
		t.Errorf("observer saw %d waits, longest %v; want %d, at least 50ms", obs.waits, obs.longest, requests)
	}
}
