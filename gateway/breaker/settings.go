package breaker

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Settings configure a Breaker. Start from DefaultSettings: New takes every
// field as it is, and Validate refuses a zero where the field needs a value.
type Settings struct {
	// Name identifies the breaker in metrics (the "name" label) and logs; name it
	// after the backend it guards, such as "triton". Required.
	Name string

	// ConsecutiveFailures trips the breaker after this many server faults in a row
	// in the closed state (at least 1). Excluded calls (client gone) do not break
	// the run; successes and caller faults end it.
	ConsecutiveFailures int

	// FailureRatio and MinRequests add a second way to trip: once at least
	// MinRequests calls have been counted (successes plus failures, exclusions
	// left out) in the current Interval, a failure that brings failures/counted to
	// FailureRatio or above trips the breaker. Both 0 disable it; setting one
	// without the other is an error.
	FailureRatio float64
	MinRequests  int

	// OpenTimeout is how long the breaker stays open, refusing every call, before
	// it lets a half-open probe through (positive).
	OpenTimeout time.Duration

	// HalfOpenMaxRequests is how many probes the half-open state lets through
	// (at least 1); it closes after that many successes in a row and re-opens on
	// any failure.
	HalfOpenMaxRequests int

	// Interval is the closed state's counting window: every Interval the counts
	// behind ConsecutiveFailures and FailureRatio start again from zero. 0 means
	// they are never reset while closed (they are always reset on a state change).
	Interval time.Duration
}

// DefaultSettings are the default of every setting; Name has none: it names
// the backend the breaker guards. Ratio tripping is off.
func DefaultSettings() Settings {
	return Settings{
		ConsecutiveFailures: 5,
		OpenTimeout:         10 * time.Second,
		HalfOpenMaxRequests: 1,
		Interval:            60 * time.Second,
	}
}

// Validate reports every problem with s at once, each naming its field.
func (s Settings) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("breaker settings: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	count := func(field string, v int) {
		switch {
		case v < 1:
			bad(field, "must be at least 1, got %d", v)
		case v > math.MaxUint32:
			bad(field, "must be at most %d, got %d", uint32(math.MaxUint32), v)
		}
	}

	if s.Name == "" {
		bad("Name", "must not be empty: it labels the breaker's metrics")
	}
	count("ConsecutiveFailures", s.ConsecutiveFailures)
	count("HalfOpenMaxRequests", s.HalfOpenMaxRequests)
	switch {
	case s.MinRequests < 0:
		bad("MinRequests", "must not be negative, got %d", s.MinRequests)
	case s.MinRequests > math.MaxUint32:
		bad("MinRequests", "must be at most %d, got %d", uint32(math.MaxUint32), s.MinRequests)
	}
	switch {
	case math.IsNaN(s.FailureRatio) || s.FailureRatio < 0 || s.FailureRatio > 1:
		bad("FailureRatio", "must be between 0 and 1, got %v", s.FailureRatio)
	case s.FailureRatio > 0 && s.MinRequests == 0:
		bad("MinRequests", "must be at least 1 when FailureRatio is set (%v), or a single failure would trip the breaker", s.FailureRatio)
	case s.FailureRatio == 0 && s.MinRequests > 0:
		bad("FailureRatio", "must be set when MinRequests is (%d); 0 disables ratio tripping", s.MinRequests)
	}
	if s.OpenTimeout <= 0 {
		bad("OpenTimeout", "must be positive, got %v", s.OpenTimeout)
	}
	if s.Interval < 0 {
		bad("Interval", "must not be negative, got %v (0 means never reset)", s.Interval)
	}
	return errors.Join(errs...)
}

// readyToTrip is gobreaker's ReadyToTrip for s. gobreaker
// calls it after each failure in the closed state.
func (s Settings) readyToTrip(c gobreaker.Counts) bool {
	if c.ConsecutiveFailures >= uint32(s.ConsecutiveFailures) {
		return true
	}
	if s.FailureRatio == 0 {
		return false
	}
	// Requests would include calls still in flight and excluded ones; the ratio is
	// over completed, counted calls only.
	counted := c.TotalSuccesses + c.TotalFailures
	return counted >= uint32(s.MinRequests) && float64(c.TotalFailures)/float64(counted) >= s.FailureRatio
}
