package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/fish-classifier/fish-classifier/gateway"
)

// Classifier is what the API needs; *gateway.Classifier implements it. The
// image bytes passed to Classify and ClassifyBatch are valid only during the
// call.
type Classifier interface {
	// Classify predicts the top k classes of one image.
	Classify(ctx context.Context, image []byte, k int) (gateway.Result, error)
	// ClassifyBatch predicts the top k classes of each image, in order, with one
	// error slot per image; both slices are as long as images.
	ClassifyBatch(ctx context.Context, images [][]byte, k int) ([]gateway.Result, []error)
	// Model describes the model in use.
	Model() gateway.ModelInfo
	// Ready returns nil when the backend can serve now, or why not.
	Ready(ctx context.Context) error
}

var _ Classifier = (*gateway.Classifier)(nil)

// Server is the HTTP API: a fiber app with its routes, limits, error handler,
// access log and metrics.
type Server struct {
	cl      Classifier
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	app     *fiber.App
	// slots is the in-flight semaphore of the predict routes (MaxInFlight);
	// budget bounds the bytes their bodies hold (MaxUploadBytesInFlight).
	slots  *gateway.Slots
	budget *uploadBudget
	// routes maps "METHOD /path" to the route template, to label requests that
	// never reached a route; uploads marks the predict routes.
	routes  map[string]string
	uploads map[string]bool
	openAPI []byte
	// refusals rate-limits the log of connections refused over MaxConnections.
	refusals refusals
	// tracer and propagator record server spans (WithTracing); nil: none.
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
}

// New builds the API around cl. Its metrics are registered with reg, which
// must not hold another Server's (a second registration panics); /metrics
// exposes what gatherer gathers (usually the same registry). A nil log
// discards the access log.
func New(cl Classifier, cfg Config, reg prometheus.Registerer, gatherer prometheus.Gatherer, log *slog.Logger, opts ...Option) (*Server, error) {
	var errs []error
	if cl == nil {
		errs = append(errs, errors.New("httpapi: nil Classifier"))
	}
	if reg == nil {
		errs = append(errs, errors.New("httpapi: nil prometheus.Registerer"))
	}
	if gatherer == nil {
		errs = append(errs, errors.New("httpapi: nil prometheus.Gatherer"))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// The last step that can fail: what follows registers metrics.
	openAPI, err := marshalOpenAPI(cfg)
	if err != nil {
		return nil, fmt.Errorf("httpapi: build the OpenAPI document: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := newMetrics(reg)
	s := &Server{
		cl:      cl,
		cfg:     cfg,
		log:     log,
		metrics: m,
		slots:   gateway.NewSlots(cfg.MaxInFlight),
		budget:  newUploadBudget(int64(cfg.MaxUploadBytesInFlight), m.uploadBytes),
		routes:  map[string]string{},
		uploads: map[string]bool{},
		openAPI: openAPI,
	}
	for _, o := range opts {
		o(s)
	}
	s.app = fiber.New(fiber.Config{
		BodyLimit:    cfg.BodyLimit,
		ReadTimeout:  cfg.ReadTimeout,
		WriteTimeout: cfg.WriteTimeout,
		IdleTimeout:  cfg.IdleTimeout,
		ErrorHandler: s.handleError,
		// Bodies are streamed: an upload is admitted (upload.go) before its body
		// is read, so a client's declared Content-Length commits no memory.
		StreamRequestBody: true,
		// The handlers parse multipart bodies themselves, from the raw bytes and
		// after refusing compressed ones: fasthttp's own parser would inflate
		// gzip without limit and loses the order of parts across field names.
		DisablePreParseMultipartForm: true,
		DisableStartupMessage:        true,
	})
	// What fiber's router never sees goes through the same error handler
	// (framing.go).
	fs := s.app.Server()
	fs.Handler = s.frontDoor(fs.Handler)
	fs.ErrorHandler = s.serverError
	fs.ExpectHandler = s.expect
	fs.SecureErrorLogMessage = true
	s.app.Use(s.observe)
	s.upload("/predict", s.predict)
	s.upload("/predict/batch", s.predictBatch)
	s.route("/health", s.health)
	s.route("/ready", s.ready)
	s.route("/model", s.model)
	s.route("/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError),
		// OpenMetrics when the scraper asks for it (Prometheus does): the only
		// exposition that carries the latency histograms' exemplars.
		EnableOpenMetrics: true,
	})))
	s.route("/openapi.json", s.openAPIDocument)
	s.routeDocs()
	return s, nil
}

// App returns the fiber app, for tests (app.Test) and for main.
func (s *Server) App() *fiber.App { return s.app }

// Serve answers requests on ln until Shutdown; it returns nil after a Shutdown.
// At most MaxConnections connections are open at once (conns.go); the ones
// it accepts are watched while a predict or readiness request waits on the
// backend, so that a client that goes away cancels its request
// (disconnect.go).
func (s *Server) Serve(ln net.Listener) error { return s.app.Listener(s.listener(ln)) }

// Shutdown stops accepting connections and waits for the requests already
// accepted to finish, or for ctx to end (then it returns ctx's error).
func (s *Server) Shutdown(ctx context.Context) error { return s.app.ShutdownWithContext(ctx) }

// route registers h for GET (and HEAD) on path and labels matched requests
// with the path as their endpoint.
func (s *Server) route(path string, h fiber.Handler) {
	s.routes[fiber.MethodGet+" "+path] = path
	s.routes[fiber.MethodHead+" "+path] = path
	s.app.Get(path, s.labelled(path, h))
}

// upload registers h for POST on path: an upload, admitted and read by
// guardUpload (upload.go) before h runs.
func (s *Server) upload(path string, h uploadHandler) {
	s.routes[fiber.MethodPost+" "+path] = path
	s.uploads[path] = true
	s.app.Post(path, s.labelled(path, s.guardUpload(h)))
}

// isUpload says whether method and path name an upload route.
func (s *Server) isUpload(method, path string) bool {
	return method == fiber.MethodPost && s.uploads[path]
}

// labelled records the route template of the requests h serves.
func (s *Server) labelled(path string, h fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		st := stateOf(c)
		st.endpoint = path
		st.upload = s.uploads[path]
		return h(c)
	}
}

// endpointOf is the route template of a request that no route handled (refused
// before routing, or a method the path does not answer): its path when that
// is a route's, else "unmatched".
func (s *Server) endpointOf(path string) string {
	for _, m := range []string{fiber.MethodGet, fiber.MethodPost} {
		if e, ok := s.routes[m+" "+path]; ok {
			return e
		}
	}
	return endpointUnmatched
}

// stateKey is the fiber Locals key of a request's *requestState.
type stateKey struct{}

// requestState is what the observe middleware, the handlers and the error
// handler share about one request.
type requestState struct {
	id       string
	start    time.Time
	endpoint string // route template; "" until a route matches
	upload   bool   // a predict route: its body size is observed
	// bodyBytes is the size of the body read (uploads only).
	bodyBytes int
	err       error  // the error answered, for the log
	code      string // its code, for the log and the error counter
	// itemErrs are the server-side failures of single batch items (the request
	// itself succeeded): for the log only.
	itemErrs []string
}

// stateOf returns the request's state; the observe middleware sets it first.
func stateOf(c *fiber.Ctx) *requestState {
	if st, ok := c.Locals(stateKey{}).(*requestState); ok {
		return st
	}
	st := &requestState{id: newRequestID(), start: time.Now()}
	c.Locals(stateKey{}, st)
	return st
}

// begin starts the state of a request: its id (the client's if acceptable) on
// the response.
func (s *Server) begin(c *fiber.Ctx, start time.Time) *requestState {
	id := c.Get(fiber.HeaderXRequestID)
	if validRequestID(id) {
		id = strings.Clone(id) // fiber's strings alias a buffer reused after the request
	} else {
		id = newRequestID()
	}
	st := &requestState{id: id, start: start}
	c.Locals(stateKey{}, st)
	c.Set(fiber.HeaderXRequestID, id)
	return st
}

// observe is the outermost middleware: request id, panic recovery, the error
// handler for whatever the routes return, then one metric update and one
// access log line.
func (s *Server) observe(c *fiber.Ctx) error {
	st := s.begin(c, time.Now())
	span := s.startSpan(c, st)
	if err := nextRecovering(c); err != nil {
		if hErr := s.handleError(c, err); hErr != nil {
			st.err = errors.Join(err, hErr)
		}
	}
	s.finish(c, st, span)
	return nil
}

// nextRecovering runs the rest of the chain; a panic becomes an internal error
// carrying its stack (a 500 whose details go to the log).
func nextRecovering(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return c.Next()
}

// finish records the answered request: metrics, the server span (nil: none)
// and the access log line.
func (s *Server) finish(c *fiber.Ctx, st *requestState, span trace.Span) {
	elapsed := time.Since(st.start)
	status := c.Response().StatusCode()
	endpoint := st.endpoint
	if endpoint == "" {
		endpoint = s.endpointOf(c.Path())
	}
	// Bodies are streamed: Body() would read one that was refused unread.
	bytesIn := st.bodyBytes
	if cl := c.Request().Header.ContentLength(); bytesIn == 0 && cl > 0 {
		bytesIn = cl // refused before the body was read
	}
	bytesOut := len(c.Response().Body())

	// The request's span, for the exemplar and the log; without tracing
	// there is none to look for.
	ctx := context.Background()
	if s.tracer != nil {
		ctx = c.UserContext()
	}
	method := foldMethod(c.Method())
	s.metrics.observe(ctx, method, endpoint, status, elapsed.Seconds())
	if st.code != "" {
		s.metrics.errors.WithLabelValues(endpoint, st.code).Inc()
	}
	if st.upload {
		s.metrics.uploadSize.WithLabelValues(endpoint).Observe(float64(bytesIn))
	}

	s.endSpan(span, method, endpoint, status, bytesIn, bytesOut, st)

	attrs := make([]slog.Attr, 0, 15)
	attrs = append(attrs,
		slog.String("method", c.Method()),
		slog.String("route", endpoint),
		slog.String("path", c.Path()),
		slog.Int("status", status),
		slog.Float64("duration_ms", milliseconds(elapsed)),
		slog.Int("bytes_in", bytesIn),
		slog.Int("bytes_out", bytesOut),
		slog.String("request_id", st.id),
		slog.String("remote", c.Context().RemoteAddr().String()),
	)
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	level := slog.LevelInfo
	if st.code != "" {
		attrs = append(attrs, slog.String("error_code", st.code))
	}
	if status >= 500 {
		level = slog.LevelError
		if st.err != nil {
			attrs = append(attrs, slog.String("error", st.err.Error()))
		}
	}
	if len(st.itemErrs) > 0 {
		level = slog.LevelError
		attrs = append(attrs, slog.Any("item_errors", st.itemErrs))
	}
	s.log.LogAttrs(context.Background(), level, "http request", attrs...)
}

// validRequestID accepts a client's X-Request-ID of 1-128 characters of
// [A-Za-z0-9._:-], so it is safe in headers, JSON and logs.
func validRequestID(id string) bool {
	if len(id) < 1 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch b := id[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9',
			b == '.', b == '_', b == ':', b == '-':
		default:
			return false
		}
	}
	return true
}

// newRequestID returns 16 random bytes in hex.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go ≥ 1.24)
	return hex.EncodeToString(b[:])
}

// milliseconds renders d in milliseconds with microsecond precision.
func milliseconds(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
