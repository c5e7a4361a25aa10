package httpapi

// Seeing a client go away while its request runs.
//
// fasthttp (v1.51.0) never tells a handler that its client left: it reads a
// request and its whole body (StreamRequestBody is off), calls the handler in
// the connection's own goroutine, writes the answer, and only then reads the
// connection again (server.go, serveConn: readLimitBody, then s.Handler(ctx),
// then writeResponse, then the next iteration's Peek/Header.Read). While a
// handler runs, nothing reads the socket, so its FIN or RST goes unnoticed,
// and fiber's c.UserContext() is context.Background().
//
// Serve therefore wraps its listener: every connection is a *watchedConn. A
// handler that waits on the backend (predict, batch, ready) calls
// requestContext, which starts one goroutine that blocks in a 1-byte Read of
// the connection, as net/http's background read does:
//
//   - EOF or a read error: the client closed (or reset) the connection; the
//     request's context is cancelled with errClientGone, a KindCanceled error,
//     and the answer (499, nobody reads it) closes the connection;
//   - a byte: the client pipelined its next request; the byte is kept for
//     fasthttp's next Read and watching stops (the client is evidently there).
//
// When the handler returns, the watcher is stopped deterministically: a read
// deadline in the past ends its Read, the handler waits for the goroutine to
// finish, and the read deadline fasthttp last set is put back. fasthttp sets
// a read deadline again before reading the next request anyway whenever
// ReadTimeout or IdleTimeout is set (server.go, serveConn: SetReadDeadline with
// the idle timeout before the keep-alive Peek, with ReadTimeout after it); and
// when neither is, the deadline put back is zero, as fasthttp left it.
//
// Limits. A client that half-closes its side after sending (shutdown(SHUT_WR))
// reads as gone too, as with net/http. Watching relies on fasthttp not reading
// while a handler runs: it must stay off with StreamRequestBody (the handler
// would read the body concurrently), and it is skipped for connections that
// are not a watchedConn (app.Test; fasthttp's MaxConnsPerIP wrapper) and for a
// protocol other than HTTP/1 negotiated by ALPN.

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/fish-classifier/fish-classifier/gateway"
)

// errClientGone is the cause of a request context cancelled because the
// client closed its connection.
var errClientGone = &gateway.Error{Kind: gateway.KindCanceled, Message: "the client closed the connection"}

// longAgo is a read deadline that has passed: it ends a blocked Read at once.
var longAgo = time.Unix(1, 0)

// watchListener wraps every connection it accepts in a watchedConn, and
// refuses those beyond MaxConnections (conns.go).
type watchListener struct {
	net.Listener
	srv  *Server
	open atomic.Int64
}

func (l *watchListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err // as is: fasthttp tells a closed listener by its text
		}
		if l.open.Add(1) > int64(l.srv.cfg.MaxConnections) {
			l.open.Add(-1)
			l.srv.refuse(c)
			continue
		}
		l.srv.metrics.connections.Inc()
		w := &watchedConn{Conn: c, done: make(chan struct{}, 1), onClose: l.closed}
		if _, ok := c.(tlsConn); ok {
			return &watchedTLSConn{w}, nil
		}
		return w, nil
	}
}

// closed counts a connection Accept returned as closed.
func (l *watchListener) closed() {
	l.open.Add(-1)
	l.srv.metrics.connections.Dec()
}

// tlsConn is what fasthttp looks for to tell a TLS connection (its
// connTLSer: RequestCtx.IsTLS, TLSConnectionState, ALPN in getNextProto).
type tlsConn interface {
	Handshake() error
	ConnectionState() tls.ConnectionState
}

// watchedTLSConn is a watchedConn over a TLS connection: it keeps the TLS
// methods visible to fasthttp.
type watchedTLSConn struct{ *watchedConn }

func (c *watchedTLSConn) Handshake() error { return c.Conn.(tlsConn).Handshake() }
func (c *watchedTLSConn) ConnectionState() tls.ConnectionState {
	return c.Conn.(tlsConn).ConnectionState()
}

// watchedConn is a connection whose client can be watched while a handler
// runs. Its fields other than stopping are used by the connection's serving
// goroutine only, except while a watcher runs: between watch and the receive
// from done in stop, buf, pending and gone belong to the watcher.
type watchedConn struct {
	net.Conn
	// readDeadline is the read deadline last set through the wrapper (by
	// fasthttp), put back after watching.
	readDeadline time.Time
	// buf holds the byte the watcher read; pending says it is the first byte
	// of the next request, not yet returned by Read.
	buf     [1]byte
	pending bool
	// watching is set from watch to stop; gone, by the watcher, when the
	// client closed the connection.
	watching bool
	gone     bool
	cancel   context.CancelCauseFunc
	// stopping tells the watcher that its Read ended because stop asked.
	stopping atomic.Bool
	// done receives one value when the watcher returns.
	done chan struct{}
	// onClose is called once, by the first Close.
	onClose   func()
	closeOnce sync.Once
}

// Close closes the connection and tells the listener, once.
func (c *watchedConn) Close() error {
	c.closeOnce.Do(c.onClose)
	return c.Conn.Close()
}

// Read returns the byte the watcher kept first, then reads the connection.
func (c *watchedConn) Read(p []byte) (int, error) {
	if c.pending && len(p) > 0 {
		p[0] = c.buf[0]
		c.pending = false
		return 1, nil
	}
	return c.Conn.Read(p)
}

func (c *watchedConn) SetReadDeadline(t time.Time) error {
	c.readDeadline = t
	return c.Conn.SetReadDeadline(t)
}

func (c *watchedConn) SetDeadline(t time.Time) error {
	c.readDeadline = t
	return c.Conn.SetDeadline(t)
}

// watch starts watching the client for the running request: cancel is called
// with errClientGone if it closes the connection. It returns false, having
// started nothing, when the connection cannot be watched.
func (c *watchedConn) watch(cancel context.CancelCauseFunc) bool {
	if c.watching || c.pending {
		return false
	}
	// No deadline while watching: the one fasthttp set bounds reading the
	// request, and may pass while the handler runs.
	if err := c.Conn.SetReadDeadline(time.Time{}); err != nil {
		return false
	}
	c.watching, c.gone, c.cancel = true, false, cancel
	go c.run()
	return true
}

// run is the watcher: one blocking Read.
func (c *watchedConn) run() {
	for {
		n, err := c.Conn.Read(c.buf[:])
		if n > 0 {
			c.pending = true // pipelined: fasthttp's next Read returns it
			break
		}
		if err != nil {
			// Unless stop ended the Read, the client closed or reset the
			// connection (EOF, ECONNRESET...), or it broke (ETIMEDOUT from
			// TCP keep-alive): nobody will read the answer.
			if !c.stopping.Load() {
				c.gone = true
				c.cancel(errClientGone)
			}
			break
		}
	}
	c.done <- struct{}{}
}

// stop ends the watcher and waits for it; it returns whether the client went
// away. The connection is then as fasthttp left it, the byte of a pipelined
// request kept for its next Read.
func (c *watchedConn) stop() (gone bool) {
	c.stopping.Store(true)
	_ = c.Conn.SetReadDeadline(longAgo) // ends the Read, if it still blocks
	<-c.done
	c.stopping.Store(false)
	_ = c.Conn.SetReadDeadline(c.readDeadline)
	c.watching, c.cancel = false, nil
	return c.gone
}

// watchedOf returns the watchedConn under a request, or nil: a connection
// Serve did not accept (app.Test), or one that is not HTTP/1 (a protocol
// negotiated by ALPN has its own framing, which a read would corrupt).
func watchedOf(c *fiber.Ctx) *watchedConn {
	switch w := c.Context().Conn().(type) {
	case *watchedConn:
		return w
	case *watchedTLSConn:
		if p := w.ConnectionState().NegotiatedProtocol; p != "" && p != "http/1.1" && p != "http/1.0" {
			return nil
		}
		return w.watchedConn
	}
	return nil
}

// requestContext returns the context of the backend call of a request: it
// ends after RequestTimeout, and is cancelled with errClientGone as soon as
// the client closes its connection, and carries the request's id
// (gateway.WithRequestID) for the backend. done must be called before the
// handler returns (defer it): it stops watching and, when the client went
// away, makes the answer close the connection.
func (s *Server) requestContext(c *fiber.Ctx) (ctx context.Context, done func()) {
	parent := gateway.WithRequestID(c.UserContext(), stateOf(c).id)
	w := watchedOf(c)
	if w == nil {
		return context.WithTimeout(parent, s.cfg.RequestTimeout)
	}
	watched, cancelWatched := context.WithCancelCause(parent)
	ctx, cancel := context.WithTimeout(watched, s.cfg.RequestTimeout)
	if !w.watch(cancelWatched) {
		return ctx, func() { cancel(); cancelWatched(nil) }
	}
	return ctx, func() {
		if w.stop() {
			c.Context().SetConnectionClose()
		}
		cancel()
		cancelWatched(nil)
	}
}

// clientGone says whether ctx, from requestContext, ended because the client
// closed its connection.
func clientGone(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), errClientGone)
}

// canceledByClient returns err as a KindCanceled error when the client of ctx
// went away: whatever failed then failed because the call was cancelled, and
// nobody waits for the answer. Other errors, and nil, are returned as they are.
func canceledByClient(ctx context.Context, err error) error {
	if err == nil || !clientGone(ctx) || gateway.KindOf(err) == gateway.KindCanceled {
		return err
	}
	return &gateway.Error{Kind: gateway.KindCanceled, Message: errClientGone.Message, Err: err}
}
