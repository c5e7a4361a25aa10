package gateway

import "context"

// requestIDKey is the context key of the request id.
type requestIDKey struct{}

// WithRequestID returns ctx carrying id, the id of the request being served
// (the HTTP layer's X-Request-ID), for the adapters: the Triton adapter sends
// it with its inference call, so the backend's logs name the same request.
// An empty id leaves ctx as it is.
func WithRequestID(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id that WithRequestID put in ctx, and whether
// there is one.
func RequestID(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(requestIDKey{}).(string)
	return id, ok
}
