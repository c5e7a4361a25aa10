package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Process measurements from Linux's /proc: resident memory and CPU time of a
// server and all its descendants (uvicorn's worker processes, for example).

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100
// on every Linux architecture Go supports.
const clockTicks = 100

// procStat is what /proc/<pid>/stat says that we use.
type procStat struct {
	ppid     int
	cpu      time.Duration // utime + stime, all threads
	rssPages int64
	zombie   bool
}

// readStat parses /proc/<pid>/stat. The command name (field 2) may hold spaces
// and parentheses, so fields are counted after its last ')'.
func readStat(procRoot string, pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(string(b))
}

func parseStat(s string) (procStat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("malformed stat line %q", s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): field n is f[n-3].
	if len(f) < 22 {
		return procStat{}, fmt.Errorf("stat line has %d fields after the name", len(f))
	}
	num := func(n int) int64 {
		v, _ := strconv.ParseInt(f[n-3], 10, 64)
		return v
	}
	st := procStat{
		ppid:     int(num(4)),
		cpu:      time.Duration(num(14)+num(15)) * time.Second / clockTicks,
		rssPages: num(24),
		zombie:   f[0] == "Z" || f[0] == "X",
	}
	return st, nil
}

// tree returns pid and its live descendants.
func tree(procRoot string, pid int) []int {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return []int{pid}
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(procRoot, p)
		if err != nil || st.zombie {
			continue
		}
		children[st.ppid] = append(children[st.ppid], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// statusKB reads a "Key:   N kB" line of /proc/<pid>/status.
func statusKB(procRoot string, pid int, key string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", key, pid)
}

// treeUsage sums over a process tree.
type treeUsage struct {
	procs int
	cpu   time.Duration
	rss   int64 // bytes, summed VmRSS now
	hwm   int64 // bytes, summed VmHWM (each process's own peak): an upper bound of the tree's peak
}

func measureTree(procRoot string, pid int) (treeUsage, error) {
	var u treeUsage
	pids := tree(procRoot, pid)
	for i, p := range pids {
		st, err := readStat(procRoot, p)
		if err != nil {
			if i == 0 {
				return u, fmt.Errorf("process %d: %w", pid, err)
			}
			continue // a descendant that just exited
		}
		u.procs++
		u.cpu += st.cpu
		if rss, err := statusKB(procRoot, p, "VmRSS"); err == nil {
			u.rss += rss << 10
		}
		if hwm, err := statusKB(procRoot, p, "VmHWM"); err == nil {
			u.hwm += hwm << 10
		}
	}
	return u, nil
}

// resetPeak resets VmHWM of every process in the tree to its current RSS
// (writing 5 to /proc/<pid>/clear_refs, Linux 4.0+; needs the right to
// ptrace the process, e.g. the same user).
func resetPeak(procRoot string, pid int) error {
	for _, p := range tree(procRoot, pid) {
		if err := os.WriteFile(filepath.Join(procRoot, strconv.Itoa(p), "clear_refs"), []byte("5"), 0); err != nil {
			return err
		}
	}
	return nil
}

// sampler polls a process tree's summed RSS while a load runs: for a server of
// several processes the peak of the sum is what the machine must hold, which
// no single VmHWM tells.
type sampler struct {
	procRoot string
	pid      int
	stop     chan struct{}
	done     sync.WaitGroup
	peak     int64
	start    treeUsage
	end      treeUsage
	err      error
}

func startSampler(procRoot string, pid int, every time.Duration) *sampler {
	s := &sampler{procRoot: procRoot, pid: pid, stop: make(chan struct{})}
	s.start, s.err = measureTree(procRoot, pid)
	s.peak = s.start.rss
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				if u, err := measureTree(procRoot, pid); err == nil && u.rss > s.peak {
					s.peak = u.rss
				}
			}
		}
	}()
	return s
}

// finish stops polling and returns the tree's CPU time used meanwhile, the
// peak of its summed RSS, and its summed VmHWM at the end.
func (s *sampler) finish() (cpu time.Duration, peakRSS, hwm int64, err error) {
	close(s.stop)
	s.done.Wait()
	if s.err != nil {
		return 0, 0, 0, s.err
	}
	s.end, err = measureTree(s.procRoot, s.pid)
	if err != nil {
		return 0, 0, 0, err
	}
	return s.end.cpu - s.start.cpu, max(s.peak, s.end.rss), s.end.hwm, nil
}

// selfCPU is this process's CPU time so far (the load generator's own cost).
func selfCPU() time.Duration {
	st, err := readStat("/proc", os.Getpid())
	if err != nil {
		return 0
	}
	return st.cpu
}
