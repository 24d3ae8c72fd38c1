//go:build !linux

package throttle

import (
	"fmt"
	"os"

	"github.com/shirou/gopsutil/v3/cpu"
	"github.com/shirou/gopsutil/v3/load"
	"github.com/shirou/gopsutil/v3/mem"
	"github.com/shirou/gopsutil/v3/process"
)

// defaultHostReader reads the host through gopsutil on systems without
// procfs. There is no cgroup and no PSI there.
func defaultHostReader(SamplerOptions) hostReader {
	r := &gopsutilReader{}
	r.proc, r.procErr = process.NewProcess(int32(os.Getpid()))
	return r
}

type gopsutilReader struct {
	proc    *process.Process
	procErr error
}

func (r *gopsutilReader) counters() (counters, error) {
	ts, err := cpu.Times(false)
	if err != nil || len(ts) == 0 {
		return counters{}, fmt.Errorf("cpu: %v", err)
	}
	t := ts[0]
	c := counters{
		total: t.User + t.Nice + t.System + t.Idle + t.Iowait + t.Irq + t.Softirq + t.Steal,
		idle:  t.Idle + t.Iowait,
	}
	if r.procErr != nil {
		return counters{}, fmt.Errorf("cpu: %w", r.procErr)
	}
	pt, err := r.proc.Times()
	if err != nil {
		return counters{}, fmt.Errorf("cpu: %w", err)
	}
	c.proc = pt.User + pt.System
	return c, nil
}

func (r *gopsutilReader) memory(s *Sample) []error {
	var errs []error
	if vm, err := mem.VirtualMemory(); err != nil {
		errs = append(errs, fmt.Errorf("memory: %w", err))
	} else {
		s.MemoryTotalBytes = toInt64(vm.Total)
		s.MemoryAvailableBytes = toInt64(min(vm.Available, vm.Total))
		if vm.Total > 0 {
			s.MemoryUsedPercent = clampPercent(float64(vm.Total-min(vm.Available, vm.Total)) / float64(vm.Total) * 100)
		}
	}
	if sw, err := mem.SwapMemory(); err != nil {
		errs = append(errs, fmt.Errorf("swap: %w", err))
	} else {
		s.SwapTotalBytes = toInt64(sw.Total)
		if sw.Total > 0 {
			s.SwapUsedPercent = clampPercent(sw.UsedPercent)
		}
	}
	if r.procErr != nil {
		errs = append(errs, fmt.Errorf("process memory: %w", r.procErr))
	} else if mi, err := r.proc.MemoryInfo(); err != nil {
		errs = append(errs, fmt.Errorf("process memory: %w", err))
	} else {
		s.ProcessRSSBytes = toInt64(mi.RSS)
		s.ProcessAnonBytes = toInt64(mi.RSS)
	}
	return errs
}

func (r *gopsutilReader) load(s *Sample) error {
	a, err := load.Avg()
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	s.Load1, s.Load5, s.Load15 = a.Load1, a.Load5, a.Load15
	return nil
}

func (r *gopsutilReader) psi(*Sample) error { return nil }
