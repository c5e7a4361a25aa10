// Package smoke holds the load smoke test that `go test ./...` runs: the real
// gateway binary, serving the committed model on the embedded ONNX Runtime
// backend on a loopback port, under a fixed request rate from vegeta; every
// request must succeed. See smoke_test.go. It has no code of its own.
package smoke
