//go:build cgo

package preprocess

/*
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
static void fc_release_memory(void) { malloc_trim(0); }
#else
static void fc_release_memory(void) {}
#endif
*/
import "C"

// ReleaseMemory returns to the operating system the C heap's free memory
// that decoding left behind. libjpeg-turbo allocates its working memory with
// malloc from whichever thread runs the decode, and glibc keeps what is freed
// in per-thread arenas (up to 8 per core) for reuse, trimming an arena only
// when its top is free: after a burst of large photos the process kept ~80 MiB
// it no longer used. malloc_trim gives those pages back (on glibc; elsewhere
// this does nothing). It costs a walk of the free lists: call it when idle.
func ReleaseMemory() { C.fc_release_memory() }
