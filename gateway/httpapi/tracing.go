package httpapi

import (
	"github.com/gofiber/fiber/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/fish-classifier/fish-classifier/gateway"
)

// Option changes a Server made by New.
type Option func(*Server)

// WithTracing has the Server record a server span for each request, a child of
// the span named by the request's W3C trace context (traceparent, read with
// propagator), or a new trace's root. The span is in the context the
// Classifier gets, so its stages and the backend call are its children. It is
// named after the route template ("POST /predict"), carries the status, the
// request id and the body sizes, and is marked failed for a 5xx. The probes
// and the scrape (/health, /ready, /metrics) are not traced: at one every few
// seconds they would bury the requests people look for.
func WithTracing(tp trace.TracerProvider, propagator propagation.TextMapPropagator) Option {
	return func(s *Server) {
		s.tracer = tp.Tracer(gateway.TracerName)
		s.propagator = propagator
	}
}

// untraced are the paths whose requests get no span.
var untraced = map[string]bool{"/health": true, "/ready": true, "/metrics": true}

// AttrRequestID is the request id (X-Request-ID) on the server span.
const AttrRequestID = attribute.Key("fish.request.id")

// startSpan starts the server span of the request, unless tracing is off or
// the path is not traced; it puts the span in the request's user context.
func (s *Server) startSpan(c *fiber.Ctx, st *requestState) trace.Span {
	if s.tracer == nil || untraced[string(c.Request().URI().Path())] {
		return nil
	}
	ctx := s.propagator.Extract(c.UserContext(), headerCarrier{&c.Request().Header})
	// The name is a constant string: fiber's c.Method() aliases a buffer that
	// is reused after the request, and the span outlives it until exported.
	ctx, span := s.tracer.Start(ctx, foldMethod(c.Method()), trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(st.start))
	c.SetUserContext(ctx)
	return span
}

// endSpan names the span after the route template and records the answer.
func (s *Server) endSpan(span trace.Span, method, endpoint string, status, bytesIn, bytesOut int, st *requestState) {
	if span == nil {
		return
	}
	if span.IsRecording() {
		span.SetName(method + " " + endpoint)
		span.SetAttributes(
			semconv.HTTPRequestMethodKey.String(method),
			semconv.HTTPRoute(endpoint),
			semconv.HTTPResponseStatusCode(status),
			semconv.HTTPRequestBodySize(bytesIn),
			semconv.HTTPResponseBodySize(bytesOut),
			AttrRequestID.String(st.id),
		)
		if st.code != "" {
			span.SetAttributes(semconv.ErrorTypeKey.String(st.code))
		}
		if status >= 500 {
			span.SetStatus(codes.Error, st.code)
		}
	}
	span.End()
}

// headerCarrier reads a request's trace context from its fasthttp headers
// without copying them.
type headerCarrier struct {
	h interface{ Peek(string) []byte }
}

func (hc headerCarrier) Get(key string) string { return string(hc.h.Peek(key)) }
func (hc headerCarrier) Set(string, string)    {}
func (hc headerCarrier) Keys() []string        { return nil }
