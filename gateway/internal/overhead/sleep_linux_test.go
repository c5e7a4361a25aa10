package overhead

import (
	"syscall"
	"time"
)

// spinWindow is how long before a send the sender stops sleeping: nanosleep
// wakes within the timer slack (50 µs by default) plus the wake-up, ~0.1 ms.
const spinWindow = 250 * time.Microsecond

// preciseSleep blocks the calling thread in nanosleep(2), whose hrtimer wakes
// within the timer slack instead of the Go scheduler's millisecond; the
// runtime lets other goroutines have the thread's processor meanwhile.
func preciseSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for {
		var left syscall.Timespec
		if err := syscall.Nanosleep(&ts, &left); err != syscall.EINTR {
			return
		}
		ts = left
	}
}
