//go:build linux

package triton

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// shmSupported tells whether this platform has POSIX shared memory the way
// Triton opens it (shm_open: a file in /dev/shm).
const shmSupported = true

// mapping is one shared-memory object of the gateway: a file in a tmpfs
// directory (what shm_open creates), mapped into the process and locked
// (flock) for as long as the process holds it, so that another gateway can
// tell a live region from one a killed process left behind.
type mapping struct {
	path string
	fd   int
	mem  []byte
}

// createMapping creates the object dir/name of size bytes, mode 0600, and maps
// it. The bytes are reserved at once (fallocate): a full /dev/shm is an error
// now rather than a SIGBUS when a page is first written. The file is created
// under a temporary name, locked and sized, then renamed, so that no other
// gateway ever sees it under its final name without its lock.
func createMapping(dir, name string, size int) (*mapping, error) {
	final := filepath.Join(dir, name)
	tmp := filepath.Join(dir, "."+name+".new")
	fd, err := unix.Open(tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", tmp, err)
	}
	fail := func(err error) (*mapping, error) {
		_ = unix.Unlink(tmp)
		_ = unix.Close(fd)
		return nil, err
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fail(fmt.Errorf("lock %s: %w", tmp, err))
	}
	if err := unix.Fallocate(fd, 0, 0, int64(size)); err != nil {
		if errors.Is(err, unix.ENOSPC) {
			return fail(fmt.Errorf("reserve %d bytes in %s: %w (the tmpfs is too small: raise its size, e.g. compose's shm_size, or lower TRITON_SHARED_MEMORY_BYTES)", size, dir, err))
		}
		return fail(fmt.Errorf("reserve %d bytes in %s: %w", size, dir, err))
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail(fmt.Errorf("map %s: %w", tmp, err))
	}
	if err := unix.Rename(tmp, final); err != nil {
		_ = unix.Munmap(mem)
		return fail(fmt.Errorf("rename %s to %s: %w", tmp, final, err))
	}
	return &mapping{path: final, fd: fd, mem: mem}, nil
}

// close removes the object's name, unmaps it and releases its lock. Triton
// keeps the pages of a region it still has registered until it unregisters
// it.
func (m *mapping) close() error {
	errs := []error{m.unlink()}
	if m.mem != nil {
		errs = append(errs, unix.Munmap(m.mem))
		m.mem = nil
	}
	if m.fd >= 0 {
		errs = append(errs, unix.Close(m.fd))
		m.fd = -1
	}
	return errors.Join(errs...)
}

// unlink removes the object's name; the mapping stays valid.
func (m *mapping) unlink() error {
	if m.path == "" {
		return nil
	}
	path := m.path
	m.path = ""
	if err := unix.Unlink(path); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// removeStale removes the objects in dir whose names start with prefix and
// whose lock nobody holds: regions of gateways that were killed before they
// could remove them. It returns their names. A live gateway holds its
// regions' locks, so they are never touched.
func removeStale(dir, prefix string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var removed []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) || !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, name)
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			continue // gone meanwhile, or not ours to open
		}
		if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) == nil {
			if unix.Unlink(path) == nil {
				removed = append(removed, name)
			}
		}
		_ = unix.Close(fd)
	}
	return removed, nil
}

// objectExists tells whether dir/name exists.
func objectExists(dir, name string) bool {
	var st unix.Stat_t
	return unix.Stat(filepath.Join(dir, name), &st) == nil
}
