// Package tritontest serves the KServe v2 gRPC API the way NVIDIA Triton does,
// for tests of the gateway's Triton adapter on machines without Triton.
//
// Start listens on a real loopback TCP socket (127.0.0.1, a free port) and
// serves one Model: health, server and model metadata, model configuration,
// inference, and the system shared-memory extension (regions are objects of
// /dev/shm on this host, read when a request names them; see shm.go). Inference is a deterministic function of the input tensor's bytes
// (see Logits), so a test can tell which tensor the gateway sent; requests are
// validated with Triton's rules and error codes. Faults can be switched on and
// off while the server runs (SetFault): latency, hangs, error codes, a number of
// failures before success, malformed responses, readiness. Stop and Restart
// simulate an outage of the server process on the same address.
//
//	srv := tritontest.Start(t, tritontest.DefaultModel())
//	conn, _ := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
//	srv.SetFault(tritontest.Fault{Code: codes.Unavailable, FailCount: 2})
package tritontest

import (
	"context"
	"errors"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/fish-classifier/fish-classifier/gateway/kserve"
)

// ServerName and ServerVersion are what ServerMetadata reports by default.
const (
	ServerName    = "triton"
	ServerVersion = "2.59.0"
)

// Extensions are the protocol extensions ServerMetadata reports, as a Triton
// built with its default features does.
var Extensions = []string{
	"classification",
	"sequence",
	"model_repository",
	"model_repository(unload_dependents)",
	"schedule_policy",
	"model_configuration",
	"system_shared_memory",
	"cuda_shared_memory",
	"binary_tensor_data",
	"parameters",
	"statistics",
	"trace",
	"logging",
}

// Fault is the misbehaviour the server shows; the zero value is a healthy
// server. Fields combine: for ModelInfer the server waits first (Hang,
// Latency), then answers the unknown-model error if any, then ModelNotReady,
// then Code, then validates the request, and finally applies the malformed
// response flags to a successful answer.
type Fault struct {
	// Latency delays every ModelInfer answer. The handler returns early with
	// the context's error when the client's deadline passes or it cancels.
	Latency time.Duration
	// Hang makes ModelInfer block until the client gives up (deadline or
	// cancellation) or the server stops; it never answers on its own.
	Hang bool

	// Code, when not codes.OK, makes ModelInfer fail with this status code
	// (and Message, or a default message naming the code).
	Code    codes.Code
	Message string
	// FailCount > 0 limits Code to the next FailCount ModelInfer calls that
	// arrive after SetFault; later calls succeed. 0 means every call fails.
	FailCount int

	// Malformed successful responses; each changes exactly one thing of the
	// first output. WrongShape declares shape [batch, classes+1] while the raw
	// bytes hold classes values; WrongDatatype declares "INT64" (the bytes stay
	// FP32); MissingOutput answers no output tensor and no raw contents;
	// ShortRawOutput drops the last 4 bytes of the raw contents.
	WrongShape, WrongDatatype, MissingOutput, ShortRawOutput bool
	// WrongID answers an id other than the request's (a crossed answer).
	WrongID bool

	// ModelNotReady makes ModelReady answer false and ModelInfer,
	// ModelMetadata and ModelConfig fail with NOT_FOUND "... has no available
	// versions", as the real Triton does for a model that has no version
	// loaded (unloaded, or still loading).
	ModelNotReady bool
	// ServerNotReady makes ServerReady answer false (ServerLive stays true);
	// the other RPCs are not affected.
	ServerNotReady bool
}

// RecordedInfer is one ModelInfer call as the server received it.
type RecordedInfer struct {
	// ModelName, ModelVersion and ID are copied from Request for convenience.
	ModelName, ModelVersion, ID string
	// Request is the request exactly as decoded; shapes, datatypes and
	// RawInputContents are in it. Treat it as read-only.
	Request *kserve.ModelInferRequest
	// Input is the input tensor's bytes as the server read them: the raw
	// contents, or a copy of the shared-memory region's bytes taken when the
	// request arrived; nil when the request was refused before. SharedMemory
	// says which region they came from (nil: raw_input_contents).
	Input        []byte
	SharedMemory *SharedMemoryInput
	// Metadata holds the request's gRPC headers.
	Metadata metadata.MD
	// Timeout is the time that was left until the call's deadline when the
	// request arrived; HasDeadline is false, and Timeout 0, without deadline.
	Timeout     time.Duration
	HasDeadline bool
	// Finished tells whether the handler has returned; Code is then the status
	// code it answered: OK, the failure's code, or DeadlineExceeded or Canceled
	// when the client gave up first.
	Finished bool
	Code     codes.Code
}

// Option configures Start.
type Option func(*options)

type options struct {
	fault         Fault
	serverVersion string
	grpcOptions   []grpc.ServerOption
	shmDir        string
}

// WithFault starts the server with a fault already set, as SetFault would.
func WithFault(f Fault) Option {
	return func(o *options) { o.fault = f }
}

// WithServerVersion changes the version ServerMetadata reports.
func WithServerVersion(v string) Option {
	return func(o *options) { o.serverVersion = v }
}

// WithGRPCOptions adds options to the gRPC server, after the defaults (which
// raise the receive limit to Triton's 2 GiB and make Stop wait for handlers).
func WithGRPCOptions(opts ...grpc.ServerOption) Option {
	return func(o *options) { o.grpcOptions = append(o.grpcOptions, opts...) }
}

// Server is a running test server. Its methods are safe for concurrent use.
type Server struct {
	tb      testing.TB
	service *service

	lifecycle  sync.Mutex // serialises Stop and Restart
	addr       string
	grpcServer *grpc.Server // nil while stopped
	serveDone  chan struct{}
}

// Start serves m on 127.0.0.1 at a free port until the test ends (t.Cleanup
// stops it). It fails the test when m cannot be served (see Model) or the
// socket cannot be opened.
func Start(tb testing.TB, m Model, opts ...Option) *Server {
	tb.Helper()
	if err := m.validate(); err != nil {
		tb.Fatalf("tritontest: model %q cannot be served: %v", m.Name, err)
	}
	o := options{serverVersion: ServerVersion, shmDir: DefaultSharedMemoryDir}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{
		tb:      tb,
		service: &service{model: m.clone(), serverVersion: o.serverVersion, shmDir: o.shmDir, regions: map[string]*region{}},
	}
	s.service.grpcOptions = o.grpcOptions
	s.service.setFault(o.fault)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("tritontest: listen: %v", err)
	}
	s.addr = lis.Addr().String()
	s.serve(lis)
	tb.Cleanup(s.Stop)
	return s
}

// Addr is the server's address, "127.0.0.1:port"; it stays the same across
// Stop and Restart.
func (s *Server) Addr() string { return s.addr }

// Model returns the served model.
func (s *Server) Model() Model { return s.service.model.clone() }

func (s *Server) serve(lis net.Listener) {
	opts := append([]grpc.ServerOption{
		// Triton accepts messages up to 2 GiB; grpc-go's default is 4 MiB, less
		// than one batch of 8 images.
		grpc.MaxRecvMsgSize(math.MaxInt32),
		// Stop then returns only once every handler has, so nothing leaks.
		grpc.WaitForHandlers(true),
	}, s.service.grpcOptions...)
	gs := grpc.NewServer(opts...)
	kserve.RegisterGRPCInferenceServiceServer(gs, s.service)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis) // returns when Stop closes the listener
	}()
	s.grpcServer, s.serveDone = gs, done
}

// Stop stops serving at once, like a crashed server: the listener closes (new
// connections are refused), open connections are closed and the calls in
// progress fail on the client with UNAVAILABLE; the registered shared-memory
// regions are forgotten, as a server process's are when it ends. It returns
// once every handler and goroutine of the server has ended. Stopping a
// stopped server does nothing.
func (s *Server) Stop() {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	if s.grpcServer == nil {
		return
	}
	s.grpcServer.Stop()
	<-s.serveDone
	s.grpcServer, s.serveDone = nil, nil
	s.service.dropRegions()
}

// Restart serves again on the same address after Stop, keeping the fault, the
// recorded requests and the counters, but no shared-memory region; clients
// reconnect on their own. On a
// running server it does nothing. It fails the test when the address cannot be
// taken again within a few seconds.
func (s *Server) Restart() {
	s.tb.Helper()
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	if s.grpcServer != nil {
		return
	}
	lis, err := listenAgain(s.addr)
	if err != nil {
		s.tb.Fatalf("tritontest: restart on %s: %v", s.addr, err)
	}
	s.serve(lis)
}

// listenAgain listens on addr, retrying for a while when the port is still
// held (a closing socket of the previous incarnation).
func listenAgain(addr string) (net.Listener, error) {
	deadline := time.Now().Add(5 * time.Second)
	delay := time.Millisecond
	for {
		lis, err := net.Listen("tcp", addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return lis, err
		}
		time.Sleep(delay)
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// SetFault replaces the server's fault; the zero Fault heals it. It applies to
// calls that arrive afterwards and restarts the FailCount countdown.
func (s *Server) SetFault(f Fault) { s.service.setFault(f) }

// Requests returns a copy of every ModelInfer call received so far, oldest
// first.
func (s *Server) Requests() []RecordedInfer { return s.service.requests() }

// LastRequest returns the most recent ModelInfer call; ok is false when there
// was none.
func (s *Server) LastRequest() (r RecordedInfer, ok bool) {
	reqs := s.service.requests()
	if len(reqs) == 0 {
		return RecordedInfer{}, false
	}
	return reqs[len(reqs)-1], true
}

// ResetRequests forgets the recorded requests (and the memory their tensors
// hold); InferCount is not reset.
func (s *Server) ResetRequests() { s.service.resetRequests() }

// SharedMemoryRegisterCount is the number of SystemSharedMemoryRegister
// calls received, whatever their outcome.
func (s *Server) SharedMemoryRegisterCount() int64 { return s.service.shmCalls.Load() }

// InferCount is the number of ModelInfer calls received, whatever their outcome.
func (s *Server) InferCount() int64 { return s.service.inferCount.Load() }

// InFlight is the number of ModelInfer handlers running now. A test waits for
// it to reach 0 to know that the server saw a cancellation through.
func (s *Server) InFlight() int { return int(s.service.inFlight.Load()) }

// service implements the gRPC API; the Server owns its lifecycle.
type service struct {
	kserve.UnimplementedGRPCInferenceServiceServer

	model         Model // never modified after Start
	serverVersion string
	grpcOptions   []grpc.ServerOption

	inferCount atomic.Int64
	inFlight   atomic.Int64
	shmCalls   atomic.Int64 // SystemSharedMemoryRegister calls

	shmDir string // where region keys are opened

	mu           sync.Mutex
	fault        Fault
	failuresLeft int // of fault.FailCount
	records      []*RecordedInfer
	regions      map[string]*region
}

func (s *service) setFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
	s.failuresLeft = f.FailCount
}

func (s *service) currentFault() Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault
}

// arrive records a ModelInfer call, and decides, under the same lock, which
// fault it meets and whether it is one of the FailCount failures.
func (s *service) arrive(ctx context.Context, req *kserve.ModelInferRequest) (*RecordedInfer, Fault, bool) {
	rec := &RecordedInfer{
		ModelName:    req.GetModelName(),
		ModelVersion: req.GetModelVersion(),
		ID:           req.GetId(),
		Request:      req,
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		rec.Metadata = md.Copy()
	}
	if d, ok := ctx.Deadline(); ok {
		rec.Timeout, rec.HasDeadline = time.Until(d), true
	}
	s.inferCount.Add(1)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, rec)
	f := s.fault
	fail := f.Code != codes.OK
	if fail && f.FailCount > 0 {
		fail = s.failuresLeft > 0
		if fail {
			s.failuresLeft--
		}
	}
	return rec, f, fail
}

// received records the input tensor a request carried.
func (s *service) received(rec *RecordedInfer, input []byte, where *SharedMemoryInput) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec.Input, rec.SharedMemory = input, where
}

func (s *service) finish(rec *RecordedInfer, code codes.Code) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec.Finished, rec.Code = true, code
}

func (s *service) requests() []RecordedInfer {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RecordedInfer, len(s.records))
	for i, r := range s.records {
		out[i] = *r
		out[i].Metadata = r.Metadata.Copy()
	}
	return out
}

func (s *service) resetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = nil
}
