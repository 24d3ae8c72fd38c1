//go:build unix

package throttle

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// ProcessCPUTime returns the CPU time (user + system) this process has used
// since it started, from getrusage(RUSAGE_SELF). On Linux it is accounted
// to the nanosecond scheduler clock, not to ticks. It costs one system call.
func ProcessCPUTime() (time.Duration, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("throttle: getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
