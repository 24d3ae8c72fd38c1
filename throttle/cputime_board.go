package throttle

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/cemaf-go/cemaf/internal/boundedread"
)

// AgentCPUTime returns the CPU time used so far by this process (user and
// system, from getrusage) plus what its helpers and children used since the
// Sampler found them. It is a CPUThrottlerOptions.CPUTime for an agent whose
// LLM runs in another process on this machine: the throttler then paces the
// calls against the CPU that heats the board, the server's included.
//
// Cost: one getrusage call, one /proc/<pid>/stat read per helper process
// and one cpu.stat read per helper cgroup (and a rescan now and then; see
// SamplerOptions.HelperRescan). Safe for concurrent use with Sample.
func (s *Sampler) AgentCPUTime() (time.Duration, error) {
	self, err := ProcessCPUTime()
	if err != nil {
		return 0, err
	}
	if s.helpers == nil {
		return self, nil
	}
	return self + time.Duration(s.helpers.ticks(time.Now()))*(time.Second/userHZ), nil
}

// BoardCPUTime returns the busy time of all CPUs of the machine since boot
// (the non-idle ticks of /proc/stat, summed over CPUs). It is a
// CPUThrottlerOptions.CPUTime for an agent that has no helper on this
// machine: the throttler then paces calls against the whole board's CPU.
// It needs procfs (Linux, or SamplerOptions.ProcRoot).
//
// Cost: one read of the first line of /proc/stat. Safe for concurrent use.
func (s *Sampler) BoardCPUTime() (time.Duration, error) {
	if s.procRoot == "" {
		return 0, fmt.Errorf("throttle: board CPU time: %w", ErrUnsupported)
	}
	var buf [1024]byte
	b, err := boundedread.AppendPrefix(buf[:0], filepath.Join(s.procRoot, "stat"), int64(len(buf)))
	if err != nil {
		return 0, fmt.Errorf("throttle: board CPU time: %w", err)
	}
	t, err := parseProcStat(b)
	if err != nil {
		return 0, fmt.Errorf("throttle: board CPU time: %w", err)
	}
	return time.Duration(t.total-t.idle) * (time.Second / userHZ), nil
}

// Helpers returns the helper processes found at the latest sample, with
// their CPU share over its interval.
func (s *Sampler) Helpers() []HelperProcess {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]HelperProcess(nil), s.helperList...)
}
