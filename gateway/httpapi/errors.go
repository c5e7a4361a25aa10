package httpapi

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/fish-classifier/fish-classifier/gateway"
)

// StatusClientClosedRequest answers a request whose client went away (nginx's
// 499): nobody reads it, and it is not counted as a server error.
const StatusClientClosedRequest = 499

// kindStatus is the one mapping from an error kind to an HTTP status.
var kindStatus = map[gateway.Kind]int{
	gateway.KindInternal:         http.StatusInternalServerError,
	gateway.KindInvalid:          http.StatusBadRequest,
	gateway.KindTooLarge:         http.StatusRequestEntityTooLarge,
	gateway.KindUnsupportedMedia: http.StatusUnsupportedMediaType,
	gateway.KindUnprocessable:    http.StatusUnprocessableEntity,
	gateway.KindOverloaded:       http.StatusTooManyRequests,
	gateway.KindBadGateway:       http.StatusBadGateway,
	gateway.KindUnavailable:      http.StatusServiceUnavailable,
	gateway.KindDeadline:         http.StatusGatewayTimeout,
	gateway.KindCanceled:         StatusClientClosedRequest,
}

// fiberCodes names the statuses fiber and fasthttp produce themselves (no
// route, wrong method, body or headers too large, read timeout).
var fiberCodes = map[int]string{
	http.StatusBadRequest:                  gateway.KindInvalid.String(),
	http.StatusNotFound:                    "not_found",
	http.StatusMethodNotAllowed:            "method_not_allowed",
	http.StatusRequestTimeout:              "request_timeout",
	http.StatusRequestEntityTooLarge:       gateway.KindTooLarge.String(),
	http.StatusRequestHeaderFieldsTooLarge: "headers_too_large",
	http.StatusTooManyRequests:             gateway.KindOverloaded.String(),
	http.StatusInternalServerError:         gateway.KindInternal.String(),
	http.StatusBadGateway:                  gateway.KindBadGateway.String(),
	http.StatusServiceUnavailable:          gateway.KindUnavailable.String(),
	http.StatusGatewayTimeout:              gateway.KindDeadline.String(),
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// problem is what an error becomes on the wire.
type problem struct {
	status     int
	code       string
	message    string
	retryAfter time.Duration // sent as Retry-After when positive
	allow      string        // sent as Allow when not empty (405)
}

// describe maps err to its status, code, public message and retry hint.
func (s *Server) describe(err error) problem {
	var me *methodError
	if errors.As(err, &me) {
		return problem{status: http.StatusMethodNotAllowed, code: fiberCodes[http.StatusMethodNotAllowed], message: me.Error(), allow: me.allow}
	}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		p := problem{status: fe.Code, code: fiberCodes[fe.Code], message: fe.Message}
		if p.code == "" {
			p.code = strings.ReplaceAll(strings.ToLower(http.StatusText(fe.Code)), " ", "_")
		}
		switch fe.Code {
		case http.StatusRequestEntityTooLarge:
			p.message = fmt.Sprintf("request body too large: the limit is %d bytes", s.cfg.BodyLimit)
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			p.retryAfter = time.Second
		}
		if fe.Code >= 500 {
			p.message = "internal error"
		}
		return p
	}
	kind := gateway.KindOf(err)
	p := problem{status: kindStatus[kind], code: kind.String(), message: gateway.PublicMessage(err)}
	if p.status == 0 {
		p.status = http.StatusInternalServerError
	}
	if p.status == http.StatusTooManyRequests || p.status == http.StatusServiceUnavailable {
		p.retryAfter = max(gateway.RetryAfter(err), time.Second)
	}
	return p
}

// handleError is the API's only error handler: fiber calls it for errors raised
// before routing (body limit, read timeout, malformed request), and the observe
// middleware for every error a route or the router returns. It writes the JSON
// error body; the access log and the metrics record it.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	st, observed := c.Locals(stateKey{}).(*requestState)
	if !observed {
		// The request never reached the routes (framing.go). When it began
		// reading is not known (c.Context().Time() is still the previous
		// request's), so the duration is the time to answer.
		st = s.begin(c, time.Now())
		st.endpoint = s.endpointOf(c.Path())
		st.upload = s.isUpload(c.Method(), c.Path())
	}
	p := s.describe(err)
	st.err, st.code = err, p.code
	if p.retryAfter > 0 {
		c.Set(fiber.HeaderRetryAfter, retryAfterSeconds(p.retryAfter))
	}
	if p.allow != "" {
		c.Set(fiber.HeaderAllow, p.allow)
	}
	c.Status(p.status)
	jsonErr := c.JSON(errorBody{Error: errorDetail{Code: p.code, Message: p.message, RequestID: st.id}})
	if !observed {
		s.finish(c, st, nil) // refused before routing: no span
	}
	return jsonErr
}

// retryAfterSeconds renders d as Retry-After: whole seconds, rounded up, at
// least 1.
func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}
