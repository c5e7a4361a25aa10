//go:build !cgo

package onnx

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fish-classifier/fish-classifier/gateway"
)

// errNoCgo is what every entry point answers in a build without cgo.
var errNoCgo = errors.New("onnx: the embedded ONNX backend needs cgo: build with CGO_ENABLED=1 and a C compiler (gcc), or use BACKEND=triton")

// Backend is the embedded ONNX Runtime backend; this build (without cgo) has none.
type Backend struct{}

// New fails: the embedded ONNX backend needs cgo.
func New(Config, prometheus.Registerer, ...Option) (*Backend, error) { return nil, errNoCgo }

func (*Backend) Model(context.Context) (gateway.ModelInfo, error) {
	return gateway.ModelInfo{}, &gateway.Error{Kind: gateway.KindUnavailable, Message: "the embedded ONNX backend is not built in", Err: errNoCgo}
}

func (*Backend) Infer(context.Context, gateway.Batch) (gateway.Scores, error) {
	return gateway.Scores{}, &gateway.Error{Kind: gateway.KindUnavailable, Message: "the embedded ONNX backend is not built in", Err: errNoCgo}
}

func (*Backend) Ready(context.Context) error {
	return &gateway.Error{Kind: gateway.KindUnavailable, Message: "the embedded ONNX backend is not built in", Err: errNoCgo}
}

func (*Backend) Close() error { return nil }
