package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// refuseTimeout bounds writing the refusal of a connection over
	// MaxConnections and then reading what the client had sent already.
	refuseTimeout = time.Second
	// refuseDrain is the most read from a refused connection before closing it:
	// closing a socket with unread data resets it, and the client would see a
	// reset instead of the answer.
	refuseDrain = 64 << 10
	// refuseLogEvery is the least time between two log lines about refused
	// connections: a flood of them must not become a flood of log lines.
	refuseLogEvery = 10 * time.Second
	// maxRefusing bounds the refusals being written at once (a goroutine each,
	// for up to refuseTimeout); beyond it a connection is closed unanswered,
	// so that a flood of connections cannot become a flood of goroutines.
	maxRefusing = 64
)

// refusals bounds the refusals in progress and rate-limits their log.
type refusals struct {
	inProgress atomic.Int32

	mu      sync.Mutex
	last    time.Time
	pending int
}

// listener wraps ln for Serve: connection cap and client watching.
func (s *Server) listener(ln net.Listener) net.Listener {
	return &watchListener{Listener: ln, srv: s}
}

// refuse refuses a connection accepted over MaxConnections: answered by
// refuseConn in a goroutine of its own, or closed at once when maxRefusing
// are being answered already.
func (s *Server) refuse(c net.Conn) {
	s.metrics.refused.Inc()
	if s.refusals.inProgress.Add(1) > maxRefusing {
		s.refusals.inProgress.Add(-1)
		_ = c.Close()
		return
	}
	go func() {
		defer s.refusals.inProgress.Add(-1)
		s.refuseConn(c)
	}()
}

// refuseConn answers a refused connection with 503 and closes it, without
// reading a request: the JSON error shape, a request id, Retry-After. It is
// logged at most once per refuseLogEvery.
func (s *Server) refuseConn(c net.Conn) {
	defer c.Close()
	id := newRequestID()
	body, _ := json.Marshal(errorBody{Error: errorDetail{
		Code:      "too_many_connections",
		Message:   fmt.Sprintf("the server has %d connections open, its limit; retry shortly", s.cfg.MaxConnections),
		RequestID: id,
	}})
	_ = c.SetDeadline(time.Now().Add(refuseTimeout))
	_, err := fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"+
		"Retry-After: 1\r\nX-Request-ID: %s\r\nConnection: close\r\n\r\n%s", len(body), id, body)
	if err == nil {
		if tc, ok := c.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
			_, _ = io.Copy(io.Discard, io.LimitReader(c, refuseDrain))
		}
	}
	s.refusals.mu.Lock()
	s.refusals.pending++
	if time.Since(s.refusals.last) < refuseLogEvery {
		s.refusals.mu.Unlock()
		return
	}
	n := s.refusals.pending
	s.refusals.last, s.refusals.pending = time.Now(), 0
	s.refusals.mu.Unlock()
	s.log.Warn("refused connections: HTTP_MAX_CONNECTIONS are open", "refused", n, "max_connections", s.cfg.MaxConnections,
		"remote", c.RemoteAddr().String(), "request_id", id)
}
