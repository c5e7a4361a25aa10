package gateway

import (
	"context"
	"testing"
)

func TestRequestID(t *testing.T) {
	if id, ok := RequestID(context.Background()); ok || id != "" {
		t.Errorf("RequestID of a bare context = %q, %v; want none", id, ok)
	}
	ctx := WithRequestID(context.Background(), "abc-123")
	if id, ok := RequestID(ctx); !ok || id != "abc-123" {
		t.Errorf("RequestID = %q, %v; want abc-123, true", id, ok)
	}
	if id, ok := RequestID(WithRequestID(ctx, "")); !ok || id != "abc-123" {
		t.Errorf("after WithRequestID(ctx, \"\"): %q, %v; want the id kept", id, ok)
	}
	if id, _ := RequestID(WithRequestID(ctx, "def-456")); id != "def-456" {
		t.Errorf("RequestID = %q, want the innermost def-456", id)
	}
}
