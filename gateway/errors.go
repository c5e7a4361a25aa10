package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fish-classifier/fish-classifier/preprocess"
)

// Kind classifies an error by what the client should make of it. The HTTP layer
// maps each kind to one status; nothing else looks at statuses.
type Kind int

const (
	// KindInternal is a bug or an unexpected failure: 500, details to the log only.
	KindInternal Kind = iota
	// KindInvalid is a malformed request: 400.
	KindInvalid
	// KindTooLarge is a body or image over the byte limit: 413.
	KindTooLarge
	// KindUnsupportedMedia is an upload that is not a supported image format: 415.
	KindUnsupportedMedia
	// KindUnprocessable is an image that is corrupt, too large in pixels or too
	// small: 422.
	KindUnprocessable
	// KindOverloaded is a request shed because too many are in flight: 429.
	KindOverloaded
	// KindBadGateway is a backend answer that cannot be used (wrong shape, type...): 502.
	KindBadGateway
	// KindUnavailable is a backend that cannot serve now (down, model not ready,
	// circuit breaker open): 503.
	KindUnavailable
	// KindDeadline is a request whose time budget ran out: 504.
	KindDeadline
	// KindCanceled is a request the client abandoned; it is neither answered nor
	// counted as a server failure.
	KindCanceled
)

var kindCodes = [...]string{
	KindInternal:         "internal",
	KindInvalid:          "invalid_request",
	KindTooLarge:         "too_large",
	KindUnsupportedMedia: "unsupported_media_type",
	KindUnprocessable:    "unprocessable_image",
	KindOverloaded:       "overloaded",
	KindBadGateway:       "bad_gateway",
	KindUnavailable:      "unavailable",
	KindDeadline:         "deadline_exceeded",
	KindCanceled:         "canceled",
}

// String returns the kind's stable machine-readable code, used as the "code" of a
// JSON error and as a metric label.
func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindCodes) {
		return "internal"
	}
	return kindCodes[k]
}

// Kinds lists every kind, for tests and metric initialisation.
func Kinds() []Kind {
	out := make([]Kind, len(kindCodes))
	for i := range out {
		out[i] = Kind(i)
	}
	return out
}

// Error is an error with a kind, a message that is safe to show a client, and
// optionally the underlying cause (for the log) and a retry hint.
type Error struct {
	Kind    Kind
	Message string
	// RetryAfter, when positive, tells the client when to try again (429, 503).
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil && e.Message == "" {
		return e.Err.Error()
	}
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of kind k whose message is the formatted text. A %w verb
// wraps its operand as the cause, as with fmt.Errorf, and its text is kept in the
// message.
func Errorf(k Kind, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Kind: k, Message: err.Error(), Err: errors.Unwrap(err)}
}

// KindOf classifies any error: an *Error anywhere in the chain gives its kind;
// context deadlines and cancellations give KindDeadline and KindCanceled; the
// preprocess package's errors map to the client-fault kinds; anything else is
// KindInternal.
func KindOf(err error) Kind {
	if err == nil {
		return KindInternal
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return KindDeadline
	case errors.Is(err, context.Canceled):
		return KindCanceled
	case errors.Is(err, preprocess.ErrEmpty):
		return KindInvalid
	case errors.Is(err, preprocess.ErrTooLarge):
		return KindTooLarge
	case errors.Is(err, preprocess.ErrUnsupportedFormat):
		return KindUnsupportedMedia
	case errors.Is(err, preprocess.ErrTooManyPixels), errors.Is(err, preprocess.ErrTooSmall), errors.Is(err, preprocess.ErrCorrupt):
		return KindUnprocessable
	}
	return KindInternal
}

// PublicMessage is what a client may be told about err: the message of its
// *Error, the text of a preprocess (image) error, or a generic phrase for
// internal failures, whose details belong in the log only.
func PublicMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Kind != KindInternal {
		if e.Message != "" {
			return e.Message
		}
		return e.Kind.String()
	}
	switch KindOf(err) {
	case KindInternal:
		return "internal error"
	case KindDeadline:
		return "the request's deadline passed"
	case KindCanceled:
		return "the request was canceled"
	}
	return err.Error() // preprocess errors describe the image, never the server
}

// RetryAfter returns the retry hint carried by err, if any.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}
