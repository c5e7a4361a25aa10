//go:build !linux

package triton

import "errors"

// shmSupported tells whether this platform has POSIX shared memory the way
// Triton opens it; Config.Validate refuses SharedMemory "system" elsewhere.
const shmSupported = false

var errNoSharedMemory = errors.New("system shared memory needs Linux")

type mapping struct{ mem []byte }

func createMapping(string, string, int) (*mapping, error) { return nil, errNoSharedMemory }

func (*mapping) close() error { return nil }

func (*mapping) unlink() error { return nil }

func removeStale(string, string) ([]string, error) { return nil, errNoSharedMemory }

func objectExists(string, string) bool { return false }
