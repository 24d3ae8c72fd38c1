//go:build !unix

package throttle

import (
	"fmt"
	"os"
	"time"

	"github.com/shirou/gopsutil/v3/process"
)

// ProcessCPUTime returns the CPU time (user + system) this process has used
// since it started, through gopsutil on systems without getrusage.
func ProcessCPUTime() (time.Duration, error) {
	p, err := process.NewProcess(int32(os.Getpid()))
	if err != nil {
		return 0, fmt.Errorf("throttle: process CPU time: %w", err)
	}
	t, err := p.Times()
	if err != nil {
		return 0, fmt.Errorf("throttle: process CPU time: %w", err)
	}
	return time.Duration((t.User + t.System) * float64(time.Second)), nil
}
