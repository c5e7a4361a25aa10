// Package gateway is the domain of the fish-classifier gateway: what a prediction
// is, what an inference backend must do (Inferencer), the one error type with its
// fixed set of kinds, the request id a call's context carries (WithRequestID),
// and the use case that turns image bytes into labelled predictions
// (Classifier).
//
// It imports preprocess and the standard library only. Each technology lives in a
// subpackage that imports this one and never its siblings: httpapi (fiber), triton
// (KServe v2 gRPC), onnx (ONNX Runtime), breaker (gobreaker), prom (Prometheus);
// cmd/gateway wires them together.
package gateway
