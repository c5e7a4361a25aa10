package gateway

import (
	"context"
	"time"

	"golang.org/x/sync/semaphore"
)

// Slots bounds how many holders run something at once: the gateway's one
// admission type. TryAcquire is for shedding (a caller that finds none free is
// refused at once, e.g. 429); Acquire is for queueing (the caller waits its
// turn, first come first served, until a slot frees or its context ends) and
// says how long it waited, for the slot-wait metrics. A nil *Slots has no bound.
type Slots struct{ sem *semaphore.Weighted }

// NewSlots returns n slots; n <= 0 gives nil, no bound.
func NewSlots(n int) *Slots {
	if n <= 0 {
		return nil
	}
	return &Slots{sem: semaphore.NewWeighted(int64(n))}
}

// TryAcquire takes a slot if one is free now, and reports whether it did.
func (s *Slots) TryAcquire() bool { return s == nil || s.sem.TryAcquire(1) }

// Acquire waits for a slot and returns how long it waited; an error (the
// context's) means it got none and must not Release.
func (s *Slots) Acquire(ctx context.Context) (time.Duration, error) {
	if s == nil {
		return 0, nil
	}
	start := time.Now()
	err := s.sem.Acquire(ctx, 1)
	return time.Since(start), err
}

// Release gives back a slot taken by TryAcquire or Acquire.
func (s *Slots) Release() {
	if s != nil {
		s.sem.Release(1)
	}
}
