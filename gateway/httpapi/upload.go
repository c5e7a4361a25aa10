package httpapi

// Uploads: admitted before their bodies are read.
//
// fasthttp streams request bodies to the API (StreamRequestBody): a handler
// starts once the headers (and at most 8 KiB of body) have arrived. An upload
// then passes, in order:
//
//  1. refuseUpload: a declared Content-Length over BodyLimit (413) or a
//     compressed body (415) is refused from the headers alone;
//  2. an in-flight slot, taken without waiting: none free is 429;
//  3. uploadBudget: the body's bytes are reserved from MaxUploadBytesInFlight,
//     waiting up to RequestTimeout for other uploads to finish (429 after);
//  4. the body is read, into a buffer of the declared size (chunked bodies
//     grow theirs, reserving as they go, and stop at BodyLimit: 413); large
//     buffers live outside the Go heap and go back to the kernel when the
//     request ends (bodymem_unix.go).
//
// So the memory that bodies hold is bounded by MaxUploadBytesInFlight whatever
// clients declare or send, and nothing is allocated for a body before it is
// admitted. Buffers are not pooled: a pool would keep the largest bodies ever
// seen alive. What decoding them allocated (Go heap, C heap) is garbage once a
// request ends; after a burst of uploads, once none is in flight, it is
// returned to the operating system (reclaim, gateway.ReleaseMemory), which
// the Go runtime would otherwise do only minutes later on an idle process,
// and glibc's malloc not at all.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
	"golang.org/x/sync/semaphore"

	"github.com/fish-classifier/fish-classifier/gateway"
)

const (
	// chunkedGrowth is the least a chunked body's buffer (and its reservation)
	// grows by.
	chunkedGrowth = 256 << 10
	// reclaimDelay is how long no upload may have been in flight before freed
	// memory is returned to the OS, and reclaimEvery the least time between
	// two such returns.
	reclaimDelay = time.Second
	reclaimEvery = 5 * time.Second
)

// uploadHandler serves an admitted upload whose body has been read whole.
type uploadHandler func(c *fiber.Ctx, body []byte) error

// refuseUpload checks what the headers of an upload declare: compressed bodies
// are refused before anything reads them (decompressing would defeat the body
// limit), and so are bodies declared larger than BodyLimit.
func (s *Server) refuseUpload(h *fasthttp.RequestHeader) error {
	if enc := strings.TrimSpace(string(h.Peek(fiber.HeaderContentEncoding))); enc != "" && !strings.EqualFold(enc, "identity") {
		return gateway.Errorf(gateway.KindUnsupportedMedia,
			"compressed uploads are not accepted (Content-Encoding: %.32q): send the image bytes as they are", enc)
	}
	if n := h.ContentLength(); n > s.cfg.BodyLimit {
		return fiber.ErrRequestEntityTooLarge
	}
	return nil
}

// guardUpload wraps a predict handler with the admission above; h gets the
// body, valid until it returns.
func (s *Server) guardUpload(h uploadHandler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := s.refuseUpload(&c.Request().Header); err != nil {
			return err
		}
		st := stateOf(c)
		if !s.slots.TryAcquire() {
			s.metrics.shed.WithLabelValues(st.endpoint).Inc()
			return &gateway.Error{
				Kind:       gateway.KindOverloaded,
				Message:    fmt.Sprintf("overloaded: %d requests in flight already; retry shortly", s.cfg.MaxInFlight),
				RetryAfter: time.Second,
			}
		}
		s.metrics.inFlight.Inc()
		defer func() {
			s.metrics.inFlight.Dec()
			s.slots.Release()
		}()
		body, release, err := s.readUpload(c)
		if err != nil {
			// Whatever is left of the body on the connection is not read: close it.
			c.Context().SetConnectionClose()
			return err
		}
		defer release()
		st.bodyBytes = len(body)
		return h(c, body)
	}
}

// readUpload reserves the body's bytes and reads it. release gives the
// reservation back; the body must not be used after it.
func (s *Server) readUpload(c *fiber.Ctx) (body []byte, release func(), err error) {
	declared := c.Request().Header.ContentLength()
	stream := c.Context().RequestBodyStream()
	if declared == 0 || declared == -2 || stream == nil {
		return nil, func() {}, nil // no body
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	if declared > 0 {
		if err := s.budget.acquire(ctx, int64(declared)); err != nil {
			return nil, nil, s.budgetError(c, err)
		}
		buf, free := allocBody(declared)
		release = func() { free(); s.budget.release(int64(declared)) }
		body = buf
		if n, err := io.ReadFull(stream, body); err != nil {
			release()
			return nil, nil, bodyReadError(err, fmt.Sprintf("%d of its %d bytes arrived before the connection closed", n, declared))
		}
		return body, release, nil
	}
	return s.readChunked(ctx, c, stream)
}

// readChunked reads a body of unknown length (Transfer-Encoding: chunked),
// reserving its buffer's capacity as the buffer grows; more than BodyLimit
// bytes is 413.
func (s *Server) readChunked(ctx context.Context, c *fiber.Ctx, stream io.Reader) (body []byte, release func(), err error) {
	var reserved int64
	free := func() {}
	release = func() { free(); s.budget.release(reserved) }
	for {
		if len(body) == cap(body) {
			if len(body) > s.cfg.BodyLimit {
				release()
				return nil, nil, fiber.ErrRequestEntityTooLarge
			}
			// One byte past the limit tells a body of exactly BodyLimit bytes
			// from a larger one.
			grown := min(max(2*cap(body), chunkedGrowth), s.cfg.BodyLimit+1)
			if err := s.budget.acquire(ctx, int64(grown)-reserved); err != nil {
				release()
				return nil, nil, s.budgetError(c, err)
			}
			reserved = int64(grown)
			buf, freeBuf := allocBody(grown)
			body = buf[:copy(buf, body)]
			free()
			free = freeBuf
		}
		n, err := stream.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		if errors.Is(err, io.EOF) {
			return body, release, nil
		}
		if err != nil {
			release()
			return nil, nil, bodyReadError(err, "the connection closed before the last chunk")
		}
	}
}

// budgetError is the answer to an upload that waited for body bytes in vain.
func (s *Server) budgetError(c *fiber.Ctx, err error) error {
	s.metrics.shed.WithLabelValues(stateOf(c).endpoint).Inc()
	return &gateway.Error{
		Kind: gateway.KindOverloaded,
		Message: fmt.Sprintf("overloaded: uploads in flight hold the %d bytes of memory set aside for them; retry shortly",
			s.cfg.MaxUploadBytesInFlight),
		RetryAfter: time.Second,
		Err:        err,
	}
}

// bodyReadError classifies an error reading a body, the client's fault (or
// departure) in every case; incomplete says how much of it had arrived when
// the connection closed.
func bodyReadError(err error, incomplete string) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return &gateway.Error{Kind: gateway.KindInvalid, Message: "incomplete request body: " + incomplete, Err: err}
	}
	return readError(err, "request body")
}

// uploadBudget is MaxUploadBytesInFlight: the bytes that admitted bodies may
// hold at once. It also tells when uploads have gone quiet, to reclaim memory.
type uploadBudget struct {
	sem   *semaphore.Weighted
	gauge interface{ Set(float64) }

	mu        sync.Mutex
	held      int64     // bytes reserved now
	used      bool      // an upload was admitted since the last reclaim
	idleSince time.Time // when held last dropped to zero
	pending   bool      // a reclaim timer runs
	last      time.Time // when the last reclaim ran
	// freeOSMemory is gateway.ReleaseMemory; tests count the calls.
	freeOSMemory func()
}

func newUploadBudget(bytes int64, gauge interface{ Set(float64) }) *uploadBudget {
	return &uploadBudget{sem: semaphore.NewWeighted(bytes), gauge: gauge, freeOSMemory: gateway.ReleaseMemory}
}

// acquire reserves n bytes, waiting until they are free or ctx ends.
func (b *uploadBudget) acquire(ctx context.Context, n int64) error {
	if err := b.sem.Acquire(ctx, n); err != nil {
		return fmt.Errorf("wait for %d bytes of upload budget: %w", n, err)
	}
	b.mu.Lock()
	b.held += n
	b.used = true
	b.gauge.Set(float64(b.held))
	b.mu.Unlock()
	return nil
}

// release gives back n bytes; when that leaves none held, a reclaim is
// scheduled for when uploads will have been quiet for reclaimDelay.
func (b *uploadBudget) release(n int64) {
	if n == 0 {
		return
	}
	b.sem.Release(n)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held -= n
	b.gauge.Set(float64(b.held))
	if b.held == 0 {
		b.idleSince = time.Now()
		b.schedule()
	}
}

// schedule starts the reclaim timer unless one runs; b.mu is held.
func (b *uploadBudget) schedule() {
	if b.pending || !b.used {
		return
	}
	b.pending = true
	wait := max(time.Until(b.idleSince.Add(reclaimDelay)), time.Until(b.last.Add(reclaimEvery)))
	time.AfterFunc(wait, b.reclaim)
}

// reclaim returns freed memory to the OS once no upload has been in flight
// for reclaimDelay; under steady traffic that moment does not come, and
// nothing is spent on it.
func (b *uploadBudget) reclaim() {
	b.mu.Lock()
	b.pending = false
	if b.held != 0 {
		b.mu.Unlock()
		return // the next release to zero schedules again
	}
	if time.Since(b.idleSince) < reclaimDelay {
		b.schedule() // busy again in between: wait for a full quiet period
		b.mu.Unlock()
		return
	}
	b.used = false
	b.last = time.Now()
	b.mu.Unlock()
	b.freeOSMemory()
}
