package gateway

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSlots(t *testing.T) {
	s := NewSlots(2)
	if !s.TryAcquire() || !s.TryAcquire() {
		t.Fatal("two slots: the first two TryAcquire must succeed")
	}
	if s.TryAcquire() {
		t.Fatal("a third TryAcquire succeeded with both slots held")
	}
	// Acquire waits for a Release, then reports the wait.
	got := make(chan time.Duration, 1)
	go func() {
		waited, err := s.Acquire(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- waited
	}()
	select {
	case <-got:
		t.Fatal("Acquire returned while no slot was free")
	case <-time.After(20 * time.Millisecond):
	}
	s.Release()
	if waited := <-got; waited <= 0 {
		t.Errorf("waited %v, want the time until the Release", waited)
	}
	// A context that ends first: an error, and no slot taken.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := s.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire with both slots held: %v, want the context's deadline", err)
	}
	s.Release()
	s.Release()
	if !s.TryAcquire() || !s.TryAcquire() {
		t.Fatal("after the releases both slots must be free again")
	}
}

func TestSlotsUnbounded(t *testing.T) {
	var s *Slots = NewSlots(0)
	for range 1000 {
		if !s.TryAcquire() {
			t.Fatal("no bound: TryAcquire must always succeed")
		}
	}
	if waited, err := s.Acquire(context.Background()); err != nil || waited != 0 {
		t.Fatalf("no bound: Acquire = %v, %v", waited, err)
	}
	s.Release()
}
