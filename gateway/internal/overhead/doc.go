// Package overhead holds benchmarks, and nothing else, of what the gateway adds
// to the latency of an inference call: the same KServe v2 test server is called
// once directly over gRPC and once through the whole gateway over HTTP, each at
// a fixed request rate, and the latency distributions are compared. See
// README.md for how to run them and how to read the numbers.
package overhead
