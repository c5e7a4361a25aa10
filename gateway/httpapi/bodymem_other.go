//go:build !unix

package httpapi

// allocBody returns a buffer of n bytes for a request body from the Go heap,
// and a function to call after its last use (bodymem_unix.go keeps large
// bodies off the heap).
func allocBody(n int) (buf []byte, free func()) { return make([]byte, n), func() {} }
