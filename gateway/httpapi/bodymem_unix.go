//go:build unix

package httpapi

import "syscall"

// offHeapMin is the least body size held outside the Go heap.
const offHeapMin = 1 << 20

// allocBody returns a zeroed buffer of n bytes for a request body and the
// function that frees it, which must be called once, after the last use of
// the buffer (the handler's end: the classifier uses image bytes only during
// its call, and nothing keeps a slice of them).
//
// Bodies of a megabyte or more are mapped from the kernel rather than taken
// from the Go heap, for three reasons measured under the attacks of
// memory_e2e_test.go: a page becomes resident only when a byte of the body
// arrives in it (a client that declares 32 MiB and sends nothing costs
// nothing); freeing returns the memory to the kernel at once (the heap would
// keep it until the scavenger gets to it, minutes on an idle process); and
// bodies, which are most of the bytes a gateway allocates, no longer drive the
// garbage collector's heap goal to twice their size.
func allocBody(n int) (buf []byte, free func()) {
	if n < offHeapMin {
		return make([]byte, n), func() {}
	}
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]byte, n), func() {} // out of address space: the heap may still do
	}
	return b, func() { _ = syscall.Munmap(b) }
}
