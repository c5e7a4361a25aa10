// Package kserve holds the Go stubs of the KServe v2 (Open Inference
// Protocol) gRPC API that Triton Inference Server serves: the
// GRPCInferenceService client and server, and its messages.
//
// The stubs are generated from grpc_service.proto and model_config.proto in
// this directory, which we wrote from the protocol's published field numbers
// and which cover only the RPCs the gateway uses. The generated files are
// committed; regenerate them with `make generate` (protoc 3.21.12 and the
// plugins pinned in go.mod), never by hand. wire_test.go pins every field
// number, so a change that would break compatibility with Triton fails it.
package kserve

//go:generate bash generate.sh
