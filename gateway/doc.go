// Package gateway is the domain of the fish-classifier gateway: what a prediction
// is, what an inference backend must do (Inferencer; InferencerFuncs adapts
// functions to it), the one error type with its fixed set of kinds, the request
// id a call's context carries (WithRequestID), and the use case that turns image
// bytes into labelled predictions (Classifier). The Classifier owns the model's
// lifecycle: it starts without a model, loads and refreshes it from the backend
// (Load, Run), answers "model not loaded" until then, and reports loads and
// losses to its Observer; each inference call carries the description it was
// made for (Batch.Model), so backends keep no model of their own.
//
// It imports preprocess and the standard library only. Each technology lives in a
// subpackage that imports this one and never its siblings: httpapi (fiber), triton
// (KServe v2 gRPC), onnx (ONNX Runtime), breaker (gobreaker), prom (Prometheus);
// cmd/gateway wires them together.
package gateway
