package httpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// testListener wraps inner as Serve does, for a server with the default
// configuration.
func testListener(t *testing.T, inner net.Listener) net.Listener {
	t.Helper()
	s := &Server{cfg: DefaultConfig(), metrics: newMetrics(prometheus.NewRegistry()), log: slog.New(slog.DiscardHandler)}
	return s.listener(inner)
}

// connPair returns both ends of a loopback TCP connection, the server's
// accepted through a watchListener.
func connPair(t *testing.T) (server *watchedConn, client net.Conn) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	ln := testListener(t, inner)
	client, err = net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); client.Close() })
	w, ok := c.(*watchedConn)
	if !ok {
		t.Fatalf("Accept returned %T, want *watchedConn", c)
	}
	return w, client
}

func TestWatchedConnClientCloses(t *testing.T) {
	for _, reset := range []bool{false, true} {
		name := map[bool]string{false: "FIN", true: "RST"}[reset]
		t.Run(name, func(t *testing.T) {
			w, client := connPair(t)
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			if !w.watch(cancel) {
				t.Fatal("watch refused a fresh connection")
			}
			if reset {
				if err := client.(*net.TCPConn).SetLinger(0); err != nil {
					t.Fatal(err)
				}
			}
			client.Close()
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("the context was not cancelled within 5s of the client closing")
			}
			if !errors.Is(context.Cause(ctx), errClientGone) {
				t.Errorf("cause %v, want errClientGone", context.Cause(ctx))
			}
			if !w.stop() {
				t.Error("stop says the client is there")
			}
		})
	}
}

func TestWatchedConnKeepsPipelinedByte(t *testing.T) {
	w, client := connPair(t)
	deadline := time.Now().Add(time.Hour)
	if err := w.SetReadDeadline(deadline); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	if !w.watch(cancel) {
		t.Fatal("watch refused a fresh connection")
	}
	if _, err := client.Write([]byte("GET / HTTP/1.1\r\n")); err != nil {
		t.Fatal(err)
	}
	// The watcher reads one byte and returns on its own.
	limit := time.Now().Add(5 * time.Second)
	for len(w.done) == 0 {
		if time.Now().After(limit) {
			t.Fatal("the watcher did not return after reading a byte")
		}
		time.Sleep(time.Millisecond)
	}
	if w.stop() {
		t.Error("stop says the client went away")
	}
	if ctx.Err() != nil {
		t.Errorf("the context ended (%v) though the client only sent its next request", context.Cause(ctx))
	}
	if !w.readDeadline.Equal(deadline) {
		t.Errorf("read deadline %v after stop, want %v", w.readDeadline, deadline)
	}
	if w.watch(cancel) {
		t.Error("watch started while a byte of the next request was pending")
	}
	if err := w.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 0, 16)
	buf := make([]byte, 16)
	for len(got) < len("GET / HTTP/1.1\r\n") {
		n, err := w.Read(buf)
		if err != nil {
			t.Fatalf("Read after %q: %v", got, err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != "GET / HTTP/1.1\r\n" {
		t.Errorf("read %q, want the request as sent", got)
	}
}

func TestWatchedConnStopRestoresTheConnection(t *testing.T) {
	w, client := connPair(t)
	for _, deadline := range []time.Time{{}, time.Now().Add(time.Hour)} {
		if err := w.SetReadDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancelCause(context.Background())
		if !w.watch(cancel) {
			t.Fatal("watch refused")
		}
		if w.stop() {
			t.Error("stop says the client went away")
		}
		if ctx.Err() != nil {
			t.Errorf("stop cancelled the context: %v", context.Cause(ctx))
		}
		cancel(nil)
		// The deadline in the past that ended the watcher's Read is gone: the
		// next request is read.
		if _, err := client.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1)
		if _, err := io.ReadFull(w, buf); err != nil || buf[0] != 'x' {
			t.Fatalf("Read after stop (deadline %v): %q, %v", deadline, buf, err)
		}
	}
}

func TestWatchListenerKeepsTLS(t *testing.T) {
	ts := httptest.NewUnstartedServer(nil)
	ts.StartTLS()
	certs := ts.TLS.Certificates
	ts.Close()

	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := testListener(t, tls.NewListener(inner, &tls.Config{Certificates: certs}))
	defer ln.Close()
	client, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(tlsConn); !ok {
		t.Errorf("Accept over TLS returned %T, which hides the TLS methods fasthttp looks for", c)
	}
	if w, ok := c.(*watchedTLSConn); !ok || w.watchedConn == nil {
		t.Errorf("Accept over TLS returned %T, want *watchedTLSConn", c)
	}
}
