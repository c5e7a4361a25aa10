//go:build !cgo

package onnx

import (
	"strings"
	"testing"
)

func TestNewNeedsCgo(t *testing.T) {
	_, err := New(Config{LibraryPath: "x", ModelRepository: "y", Model: "z"}, nil)
	if err == nil || !strings.Contains(err.Error(), "the embedded ONNX backend needs cgo") {
		t.Fatalf("New without cgo: %v", err)
	}
}
