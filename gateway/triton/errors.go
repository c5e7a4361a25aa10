package triton

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fish-classifier/fish-classifier/gateway"
)

// unavailableRetryAfter is the retry hint of an unavailable or overloaded
// Triton: about the time a restarted server or a drained queue needs.
const unavailableRetryAfter = time.Second

// mapError turns the error of a call (rpc) into a *gateway.Error with the kind
// its gRPC status, or ctx, calls for. Messages are safe to show a client:
// addresses and transport details stay in Err, for the log.
//
//	UNAVAILABLE                      KindUnavailable (RetryAfter 1s)
//	DEADLINE_EXCEEDED, ctx deadline  KindDeadline
//	CANCELED, ctx canceled           KindCanceled
//	NOT_FOUND                        KindUnavailable (RetryAfter 1s): the model is not
//	                                 loaded (Triton answers an unloaded or loading model's
//	                                 calls so); MODEL_NAME is the gateway's configuration,
//	                                 never the client's, so it is no caller fault
//	INVALID_ARGUMENT                 KindInvalid: Triton's reason in the message
//	RESOURCE_EXHAUSTED               KindOverloaded (RetryAfter 1s), except grpc-go's
//	                                 own message size limits (KindBadGateway on receive,
//	                                 KindInternal on send)
//	anything else                    KindBadGateway: the backend failed
func mapError(ctx context.Context, rpc string, err error) *gateway.Error {
	if err == nil {
		return nil
	}
	if e, ok := errors.AsType[*gateway.Error](err); ok {
		return e
	}
	st, isStatus := status.FromError(err)
	code := st.Code()
	if !isStatus {
		code = codes.Unknown
		if ctxErr := ctx.Err(); ctxErr != nil {
			code = status.FromContextError(ctxErr).Code()
		}
	}
	// The caller's budget ran out or the caller left: that is the reason,
	// whatever the attempt in flight then answered.
	if code != codes.DeadlineExceeded && code != codes.Canceled {
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			code = codes.DeadlineExceeded
		case errors.Is(ctx.Err(), context.Canceled):
			code = codes.Canceled
		}
	}
	msg := st.Message()
	switch code {
	case codes.Unavailable:
		return &gateway.Error{
			Kind:       gateway.KindUnavailable,
			Message:    fmt.Sprintf("inference server unavailable: %s failed", rpc),
			RetryAfter: unavailableRetryAfter,
			Err:        err,
		}
	case codes.DeadlineExceeded:
		return &gateway.Error{Kind: gateway.KindDeadline, Message: fmt.Sprintf("inference server: %s did not finish before the deadline", rpc), Err: err}
	case codes.Canceled:
		return &gateway.Error{Kind: gateway.KindCanceled, Message: fmt.Sprintf("inference server: %s canceled", rpc), Err: err}
	case codes.NotFound:
		return &gateway.Error{
			Kind:       gateway.KindUnavailable,
			Message:    fmt.Sprintf("model not available on the inference server: %s", msg),
			RetryAfter: unavailableRetryAfter,
			Err:        err,
		}
	case codes.InvalidArgument:
		return &gateway.Error{Kind: gateway.KindInvalid, Message: fmt.Sprintf("the inference server rejected the request: %s", msg), Err: err}
	case codes.ResourceExhausted:
		switch {
		case strings.HasPrefix(msg, "grpc: received message larger than max"):
			return &gateway.Error{Kind: gateway.KindBadGateway, Message: fmt.Sprintf("inference server answered %s with a message over the client's MaxRecvMsgBytes", rpc), Err: err}
		case strings.HasPrefix(msg, "grpc: trying to send message larger than max"):
			return &gateway.Error{Kind: gateway.KindInternal, Message: fmt.Sprintf("%s request over the client's send limit", rpc), Err: err}
		}
		return &gateway.Error{
			Kind:       gateway.KindOverloaded,
			Message:    "inference server overloaded: " + msg,
			RetryAfter: unavailableRetryAfter,
			Err:        err,
		}
	}
	return &gateway.Error{Kind: gateway.KindBadGateway, Message: fmt.Sprintf("inference server failed: %s answered %s", rpc, code), Err: err}
}

// badGateway is the error of an answer the client cannot use.
func badGateway(format string, args ...any) *gateway.Error {
	return &gateway.Error{Kind: gateway.KindBadGateway, Message: "inference server answered " + fmt.Sprintf(format, args...)}
}
