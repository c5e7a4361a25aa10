package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"
)

// The profiling listener (PPROF_ADDR) serves Go's net/http/pprof handlers, and
// nothing else, on a net/http server of its own: never on the public port, and
// off unless an address is set.
//
// Importing net/http/pprof also registers its handlers on http.DefaultServeMux;
// the gateway never serves that mux, so they are reachable only here.

// Timeouts of the profiling server. net/http/pprof extends the write deadline
// of a CPU profile or an execution trace by the seconds it was asked for, so
// pprofWriteTimeout bounds only the writing of an answer, not a profile's
// length.
const (
	pprofReadHeaderTimeout = 5 * time.Second
	pprofReadTimeout       = 10 * time.Second
	pprofWriteTimeout      = 30 * time.Second
	pprofIdleTimeout       = 60 * time.Second
)

// checkPprofAddr says what is wrong with PPROF_ADDR, if anything: it must be
// host:port with a numeric port, and not the port of the public listener, even
// on another host (":8000" there would take every interface's port 8000).
func checkPprofAddr(addr, publicAddr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not a host:port listen address (e.g. 127.0.0.1:6060): %v", addr, err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("%q: the port must be a number in [0, 65535]", addr)
	}
	if _, publicPort, err := net.SplitHostPort(publicAddr); err == nil && n != 0 && port == publicPort {
		return fmt.Errorf("%q has the port of GATEWAY_LISTEN_ADDR (%s): profiles are never served on the public port", addr, publicAddr)
	}
	return nil
}

// pprofServer is the profiling listener while it serves.
type pprofServer struct {
	srv *http.Server
	ln  net.Listener
	log *slog.Logger
	// cancel ends the requests in progress: a CPU profile or trace running at
	// shutdown answers at once with what it has collected.
	cancel context.CancelFunc
}

// listenPprof opens the profiling listener on addr and logs where it is,
// warning when that is not a loopback address.
func listenPprof(addr string, log *slog.Logger) (*pprofServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on PPROF_ADDR %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // the index, and every named profile (heap, goroutine, …)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	base, cancel := context.WithCancel(context.Background())
	p := &pprofServer{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: pprofReadHeaderTimeout,
			ReadTimeout:       pprofReadTimeout,
			WriteTimeout:      pprofWriteTimeout,
			IdleTimeout:       pprofIdleTimeout,
			MaxHeaderBytes:    16 << 10,
			BaseContext:       func(net.Listener) context.Context { return base },
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		ln:     ln,
		log:    log,
		cancel: cancel,
	}
	bound := ln.Addr().String()
	log.Info("profiling: net/http/pprof serving", "addr", bound,
		"try", fmt.Sprintf("go tool pprof http://%s/debug/pprof/profile?seconds=30", bound))
	if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		log.Warn("profiling: PPROF_ADDR is not a loopback address; whoever reaches it can read the process's memory profiles, goroutine stacks and command line, and load it with profiles: keep it on loopback or a network only operators reach",
			"addr", bound)
	}
	return p, nil
}

// serve serves until shutdown; a failure is logged, the public port serves on.
func (p *pprofServer) serve() {
	if err := p.srv.Serve(p.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		p.log.Error("profiling: serve failed; the profiles are no longer served", "err", err)
	}
}

// shutdown closes the listener, ends the profiles in progress and waits, until
// ctx ends, for their answers to be written; then it closes what is left. A nil
// p (profiling off) has nothing to shut down.
func (p *pprofServer) shutdown(ctx context.Context) {
	if p == nil {
		return
	}
	p.cancel()
	if err := p.srv.Shutdown(ctx); err != nil {
		p.log.Warn("profiling: shutdown", "err", err)
	}
	p.close()
}

// close stops serving at once; it may be called more than once.
func (p *pprofServer) close() {
	p.cancel()
	_ = p.srv.Close()
	_ = p.ln.Close() // in case Serve had not started
}
