package httpapi

// The front door: what the API decides about a request before fiber routes it.
//
// fasthttp parses the request line and headers, and fiber routes what it
// parsed; a few things never reach a route and used to be answered by them in
// plain text, without a request id, a log line or a metric:
//
//   - fasthttp's own refusals (a malformed request line or header, headers too
//     large, a timeout or reset while reading them): Server.ErrorHandler, which
//     fiber points at its own mapping (it turns any net.Error into 502, and
//     echoes fasthttp's message, request bytes included). serverError replaces
//     it and answers through the one error handler.
//   - a method token fiber does not know (BREW, get): fiber's router answers
//     "Invalid http method" before any middleware. frontDoor answers 405 first.
//   - an Expect: 100-continue request: fasthttp sends "100 Continue" before any
//     handler runs, even for a body far over the limit. expect decides first.
//
// Framing (RFC 9112 §6): fasthttp v1.79 refuses a repeated Content-Length, a
// repeated Transfer-Encoding, Transfer-Encoding on HTTP/1.0, and codings other
// than chunked and identity. It still accepts Content-Length together with
// Transfer-Encoding (it reads the body as chunked, then closes) and a lone
// "Transfer-Encoding: identity"; an intermediary that frames by Content-Length
// would then see a different request boundary than we do. framingError refuses
// both, and obsolete line folding, from the raw header block, and the answer
// closes the connection so that nothing after the refused request is read.

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/fish-classifier/fish-classifier/gateway"
)

// malformedMessage is the public answer to a request fasthttp could not parse:
// its own message may quote request bytes, which must not be reflected (a
// proxy's internal headers, say); the log keeps it.
const malformedMessage = "malformed HTTP request: the request line or a header is not valid HTTP/1.1"

// framingError checks the raw header block of a request (as fasthttp keeps it,
// request line excluded) for framing that fasthttp accepts but RFC 9112 says to
// refuse: Content-Length with Transfer-Encoding, a transfer coding other than
// chunked, and obsolete line folding. It returns nil or a KindInvalid error.
func framingError(raw []byte) error {
	var contentLength, transferEncoding bool
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			continue // the blank line that ends the block
		}
		if line[0] == ' ' || line[0] == '\t' {
			return gateway.Errorf(gateway.KindInvalid, "malformed HTTP request: obsolete line folding in a header (RFC 9112 §5.2)")
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue // fasthttp has refused such a line already
		}
		name, value := line[:colon], bytes.Trim(line[colon+1:], " \t")
		switch {
		case bytes.EqualFold(name, []byte(fiber.HeaderContentLength)):
			contentLength = true
		case bytes.EqualFold(name, []byte(fiber.HeaderTransferEncoding)):
			transferEncoding = true
			if !bytes.EqualFold(value, []byte("chunked")) {
				return gateway.Errorf(gateway.KindInvalid, "malformed HTTP request: the only transfer coding accepted is Transfer-Encoding: chunked")
			}
		}
	}
	if contentLength && transferEncoding {
		return gateway.Errorf(gateway.KindInvalid, "malformed HTTP request: Content-Length and Transfer-Encoding together (RFC 9112 §6.3); send one")
	}
	return nil
}

// frontDoor runs before fiber's router: it refuses badly framed requests,
// unknown methods and bodies sent to routes that take none, each through the
// one error handler, and passes the rest to fiber.
func (s *Server) frontDoor(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(fctx *fasthttp.RequestCtx) {
		if err := s.refuseEarly(fctx); err != nil {
			s.answerEarly(fctx, err)
			return
		}
		next(fctx)
	}
}

// refuseEarly returns why the request must be answered before routing, or nil.
func (s *Server) refuseEarly(fctx *fasthttp.RequestCtx) error {
	h := &fctx.Request.Header
	if err := framingError(h.RawHeaders()); err != nil {
		return err
	}
	method, path := string(h.Method()), string(fctx.Path())
	if _, known := knownMethods[method]; !known {
		return s.methodNotAllowed(method, path)
	}
	if _, routed := s.routes[method+" "+path]; routed && !s.isUpload(method, path) && h.ContentLength() != 0 && h.ContentLength() != -2 {
		return gateway.Errorf(gateway.KindTooLarge, "%s %s takes no request body", method, path)
	}
	return nil
}

// methodNotAllowed is the answer to a method the API has no route for: 405
// with the methods the path does allow, or 404 for a path that is no route.
func (s *Server) methodNotAllowed(method, path string) error {
	var allow []string
	for _, m := range []string{fiber.MethodGet, fiber.MethodHead, fiber.MethodPost} {
		if _, ok := s.routes[m+" "+path]; ok {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		return fiber.ErrNotFound
	}
	return &methodError{allow: strings.Join(allow, ", ")}
}

// methodError answers 405 with an Allow header.
type methodError struct{ allow string }

func (e *methodError) Error() string {
	return "method not allowed: this route answers " + e.allow
}

// answerEarly answers fctx with err through the one error handler, which also
// logs and counts it, and closes the connection: what follows a refused
// request on it cannot be trusted to start where the refused one ended.
func (s *Server) answerEarly(fctx *fasthttp.RequestCtx, err error) {
	c := s.app.AcquireCtx(fctx)
	defer s.app.ReleaseCtx(c)
	fctx.SetConnectionClose()
	_ = s.handleError(c, err) // only a JSON encoding error, of a fixed shape
}

// serverError is fasthttp's ErrorHandler: it answers the requests fasthttp
// could not read (their headers, or a body it reads itself), with an error
// kind chosen by what went wrong and a message that quotes nothing the client
// sent.
func (s *Server) serverError(fctx *fasthttp.RequestCtx, err error) {
	s.answerEarly(fctx, readError(err, "request"))
}

// expect is fasthttp's ExpectHandler: a request with Expect: 100-continue is
// refused before "100 Continue" is sent (so the client never sends the body)
// when its framing, method, size or encoding would refuse it anyway. It
// returns the status fasthttp sends; the refusal's JSON body is already set.
func (s *Server) expect(fctx *fasthttp.RequestCtx) int {
	err := s.refuseEarly(fctx)
	if err == nil {
		if s.isUpload(string(fctx.Method()), string(fctx.Path())) {
			err = s.refuseUpload(&fctx.Request.Header)
		}
	}
	if err == nil {
		return fasthttp.StatusContinue
	}
	s.answerEarly(fctx, err)
	return fctx.Response.StatusCode()
}

// readError classifies an error met while reading a request (what names the
// part being read: "request", "request body"): a timeout is 408, a client that
// reset the connection 499, a connection closed early 400, a header block too
// large 431; anything else is a malformed request, 400. None of them is the
// server's fault.
func readError(err error, what string) error {
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.As(err, &small):
		return fiber.NewError(http.StatusRequestHeaderFieldsTooLarge, "the request's headers are larger than the server accepts")
	case errors.As(err, &netErr) && netErr.Timeout():
		return fiber.NewError(http.StatusRequestTimeout, "reading the "+what+" took longer than the read timeout")
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return &gateway.Error{Kind: gateway.KindCanceled, Message: "the client reset the connection while sending the " + what, Err: err}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &gateway.Error{Kind: gateway.KindInvalid, Message: "the connection closed before the " + what + " was complete", Err: err}
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fiber.ErrRequestEntityTooLarge
	case errors.Is(err, fasthttp.ErrDuplicateContentLength):
		return gateway.Errorf(gateway.KindInvalid, "malformed HTTP request: Content-Length given more than once")
	case errors.Is(err, fasthttp.ErrUnsupportedTransferEncoding):
		return gateway.Errorf(gateway.KindInvalid, "malformed HTTP request: unsupported Transfer-Encoding (only chunked, and only on HTTP/1.1)")
	}
	if what == "request" {
		return &gateway.Error{Kind: gateway.KindInvalid, Message: malformedMessage, Err: err}
	}
	return &gateway.Error{Kind: gateway.KindInvalid, Message: "malformed " + what, Err: err}
}
