//go:build !cgo

package preprocess

// ReleaseMemory returns the C heap's free memory to the operating system; this
// build decodes in Go and has none (memory_cgo.go).
func ReleaseMemory() {}
