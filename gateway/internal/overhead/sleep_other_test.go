//go:build !linux

package overhead

import "time"

// spinWindow covers time.Sleep's lateness, up to ~1 ms.
const spinWindow = 1500 * time.Microsecond

// preciseSleep is time.Sleep where nanosleep(2) is not at hand.
func preciseSleep(d time.Duration) { time.Sleep(d) }
