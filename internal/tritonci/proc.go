//go:build unix

package tritonci

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Processes and shared memory, read from Linux's /proc and /dev/shm.

// procRoot and shmDir are variables so that tests can point them elsewhere.
var (
	procRoot = "/proc"
	shmDir   = "/dev/shm"
)

// shmPrefix starts the name of every shared-memory region Triton's Python
// backend makes: one per model instance, named on its stub's command line and
// mapped by the server and the stub. A stub that is killed leaves it behind.
const shmPrefix = "triton_python_backend_shm_region"

// procState is what /proc/<pid>/stat says that supervision uses.
type procState struct {
	state   byte // R, S, D, Z, ...
	pgrp    int
	threads int
}

// readState parses /proc/<pid>/stat; the command name (field 2) may hold spaces
// and parentheses, so the fields are counted after its last ')'.
func readState(pid int) (procState, bool) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return procState{}, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procState{}, false
	}
	// f[0] is field 3 (state): field n is f[n-3]; 5 is pgrp, 20 num_threads.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 18 || len(f[0]) != 1 {
		return procState{}, false
	}
	pgrp, err1 := strconv.Atoi(f[2])
	threads, err2 := strconv.Atoi(f[17])
	if err1 != nil || err2 != nil {
		return procState{}, false
	}
	return procState{state: f[0][0], pgrp: pgrp, threads: threads}, true
}

// dead says whether a process has exited. A killed multi-threaded process's
// main thread can be a zombie while its other threads still exit, holding the
// process's files (its listening sockets): it has exited once it is a zombie
// of one thread.
func dead(st procState) bool { return st.state == 'X' || st.state == 'Z' && st.threads <= 1 }

// alive says whether pid is a process that has not exited (a zombie has).
func alive(pid int) bool {
	st, ok := readState(pid)
	return ok && !dead(st)
}

// pids lists the processes in /proc.
func pids() []int {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		if p, err := strconv.Atoi(e.Name()); err == nil && p > 0 {
			out = append(out, p)
		}
	}
	return out
}

// groupMembers lists the live processes of process group pgrp: the server
// (which leads it) and its Python backend stubs.
func groupMembers(pgrp int) []int {
	var out []int
	for _, p := range pids() {
		if st, ok := readState(p); ok && st.pgrp == pgrp && !dead(st) {
			out = append(out, p)
		}
	}
	return out
}

// isServer says whether pid is a live tritonserver started from the
// installation under venv (its real path): the check that a pid file is not
// stale and names no other program.
func isServer(pid int, venv string) bool {
	exe, err := os.Readlink(filepath.Join(procRoot, strconv.Itoa(pid), "exe"))
	if err != nil || !strings.HasPrefix(exe, venv+"/") || filepath.Base(exe) != "tritonserver" {
		return false
	}
	return alive(pid)
}

// regionNames returns the shared-memory regions a process uses: named on its
// command line (a stub's) or mapped from /dev/shm (the server's, and a stub's).
func regionNames(pid int) []string {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	var out []string
	if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		for _, arg := range bytes.Split(b, []byte{0}) {
			if name := string(arg); isRegionName(name) {
				out = append(out, name)
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "maps")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			// The path is the sixth field; a removed file's ends in " (deleted)".
			f := strings.Fields(line)
			if len(f) < 6 {
				continue
			}
			if name, ok := strings.CutPrefix(f[5], shmDir+"/"); ok && isRegionName(name) {
				out = append(out, name)
			}
		}
	}
	return out
}

// isRegionName accepts the Python backend's region names: the prefix, then
// letters, digits, '-' and '_' (a UUID), and nothing that leaves /dev/shm.
func isRegionName(name string) bool {
	rest, ok := strings.CutPrefix(name, shmPrefix)
	if !ok {
		return false
	}
	for _, c := range rest {
		if !(c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// groupRegions returns the regions the members of a process group use.
func groupRegions(pgrp int) []string {
	var out []string
	for _, p := range groupMembers(pgrp) {
		out = append(out, regionNames(p)...)
	}
	return out
}

// removeRegions deletes the named regions from /dev/shm; one already gone is
// not an error.
func removeRegions(names []string) error {
	var errs []error
	for _, name := range names {
		if !isRegionName(name) {
			continue
		}
		if err := os.Remove(filepath.Join(shmDir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// orphanAge is how old an unused region must be before Stop removes it: a
// server creates its region and maps it at once, so a minute-old region that
// no process uses belongs to a server that is gone.
const orphanAge = time.Minute

// sweepUnused removes the regions in /dev/shm that this user owns, that were
// last modified between from and to, and that no live process maps or names:
// those of servers that were killed, crashed, or were stopped by something
// other than this package (a region of a server that is running, this one's or
// anyone's, is in use and stays). It returns the names it removed.
func sweepUnused(from, to time.Time) []string {
	entries, err := os.ReadDir(shmDir)
	if err != nil {
		return nil
	}
	uid := os.Geteuid()
	var candidates []string
	for _, e := range entries {
		if !isRegionName(e.Name()) {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.ModTime().Before(from) || info.ModTime().After(to) {
			continue
		}
		if st, ok := info.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != uid {
			continue
		}
		candidates = append(candidates, e.Name())
	}
	if len(candidates) == 0 {
		return nil
	}
	inUse := map[string]bool{}
	for _, p := range pids() {
		for _, name := range regionNames(p) {
			inUse[name] = true
		}
	}
	var removed []string
	for _, name := range candidates {
		if inUse[name] {
			continue
		}
		if err := os.Remove(filepath.Join(shmDir, name)); err == nil {
			removed = append(removed, name)
		}
	}
	return removed
}

// statusKB reads a "Key:   N kB" line of /proc/<pid>/status.
func statusKB(pid int, key string) int64 {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}
