package throttle

import (
	"time"

	"github.com/cemaf-go/cemaf/limit"
)

// Names of the built-in signals. Sample.Value, the Breaker's thresholds and
// the Prometheus exposition use them. Percent signals are in [0, 100].
const (
	// SignalCPUPercent is the busy share of all online CPUs, in percent,
	// over the interval since the previous sample.
	SignalCPUPercent = "cpu_percent"
	// SignalProcessCPUPercent is this process's share of all online CPUs,
	// in percent (so it is at most SignalCPUPercent).
	SignalProcessCPUPercent = "process_cpu_percent"
	// SignalHelpersCPUPercent is the share of all online CPUs used by this
	// process's helpers (SamplerOptions.Helpers) and its children.
	SignalHelpersCPUPercent = "helpers_cpu_percent"
	// SignalCPUOthersPercent is CPU contention: the share of all online
	// CPUs used by everything except this process and its helpers
	// (SignalCPUPercent − SignalProcessCPUPercent − SignalHelpersCPUPercent).
	// A CPU kept busy by the agent's own work never raises it.
	SignalCPUOthersPercent = "cpu_others_percent"
	// SignalMemoryPercent is memory in use relative to the effective limit
	// (the smaller of the host's memory and the cgroup limit), in percent.
	SignalMemoryPercent = "memory_percent"
	// SignalSwapPercent is swap in use, in percent; 0 when there is no swap.
	SignalSwapPercent = "swap_percent"
	// SignalDiskPercent is the highest usage, in percent, over the
	// configured disk paths. Absent when no path is configured.
	SignalDiskPercent = "disk_percent"
	// SignalLoad1, SignalLoad5 and SignalLoad15 are the load averages.
	SignalLoad1  = "load1"
	SignalLoad5  = "load5"
	SignalLoad15 = "load15"
	// PSI avg10 figures (percent of wall time stalled over 10 s), present
	// only when the kernel exposes /proc/pressure.
	SignalPSICPUSome    = "psi_cpu_some_avg10"
	SignalPSIMemorySome = "psi_memory_some_avg10"
	SignalPSIMemoryFull = "psi_memory_full_avg10"
	SignalPSIIOSome     = "psi_io_some_avg10"
	SignalPSIIOFull     = "psi_io_full_avg10"
	// SignalProcessMemoryMB is this process's anonymous resident memory
	// (RSS minus file-backed and shared pages), in MB: the figure
	// MemoryGuard compares with its limits.
	SignalProcessMemoryMB = "process_memory_mb"
	// SignalTemperatureC is the name the thermal package's extra signal
	// uses (degrees Celsius). It is not read by the Sampler itself.
	SignalTemperatureC = "temperature_c"
)

// MB is the number of bytes in the MB unit used throughout the package
// (2^20).
const MB = 1 << 20

// Sample is one full reading of the resource signals. A Sample is immutable
// once published by a Monitor: readers must not modify it, and may keep it.
//
// Fields that could not be read are left zero and the reason is recorded in
// Errors; use Value for the availability of a signal.
type Sample struct {
	// Time is when the sample was taken (the now passed to Sample).
	Time time.Time `json:"time"`

	// CPUPercent is the busy share of all online CPUs over the interval
	// since the previous sample (from /proc/stat deltas).
	CPUPercent float64 `json:"cpu_percent"`
	// ProcessCPUPercent is this process's share of all online CPUs over
	// the same interval: 50 on a 2-CPU machine means one core's worth.
	ProcessCPUPercent float64 `json:"process_cpu_percent"`
	// HelpersCPUPercent is the share used by the helper processes and the
	// children of this process; Helpers lists them.
	HelpersCPUPercent float64         `json:"helpers_cpu_percent"`
	Helpers           []HelperProcess `json:"helpers,omitempty"`
	// OthersCPUPercent is the share used by everything else: CPU
	// contention, the figure the CPU ladder watches.
	OthersCPUPercent float64 `json:"others_cpu_percent"`

	// MemoryUsedPercent is memory in use relative to MemoryTotalBytes.
	MemoryUsedPercent float64 `json:"memory_used_percent"`
	// MemoryAvailableBytes is memory that can still be used without
	// swapping or hitting the cgroup limit.
	MemoryAvailableBytes int64 `json:"memory_available_bytes"`
	// MemoryTotalBytes is the effective memory: the smaller of the host's
	// MemTotal and the cgroup memory limit.
	MemoryTotalBytes int64 `json:"memory_total_bytes"`
	// MemoryLimitedByCgroup reports that MemoryTotalBytes is the cgroup
	// limit, and that usage is the cgroup's working set rather than the
	// host's: its usage less the page cache the kernel can drop (file
	// pages, active or inactive, that are not mapped, dirty or under
	// writeback).
	MemoryLimitedByCgroup bool `json:"memory_limited_by_cgroup"`

	// SwapUsedPercent is swap in use; 0 when SwapTotalBytes is 0.
	SwapUsedPercent float64 `json:"swap_used_percent"`
	// SwapTotalBytes is the size of the swap space.
	SwapTotalBytes int64 `json:"swap_total_bytes"`

	// ProcessRSSBytes is this process's resident set size.
	ProcessRSSBytes int64 `json:"process_rss_bytes"`
	// ProcessAnonBytes is the resident memory not backed by files or
	// shared (RSS minus the "shared" pages of /proc/self/statm): the
	// memory that only this process's exit would give back.
	ProcessAnonBytes int64 `json:"process_anon_bytes"`

	// Load1, Load5 and Load15 are the 1, 5 and 15 minute load averages.
	Load1  float64 `json:"load1"`
	Load5  float64 `json:"load5"`  // see Load1
	Load15 float64 `json:"load15"` // see Load1

	// PSI holds the pressure stall figures when the kernel has them.
	PSI PSI `json:"psi"`

	// Disks holds one entry per configured path that could be read, in
	// configuration order.
	Disks []DiskUsage `json:"disks,omitempty"`

	// Signals holds the extra signals that returned a value.
	Signals []SignalValue `json:"signals,omitempty"`

	// Errors lists the partial read failures of this sample (a missing
	// file, a malformed line, a panicking signal). They do not fail the
	// sample.
	Errors []string `json:"errors,omitempty"`
}

// PSI holds Linux pressure stall information: the share of wall time, in
// percent over the last 10 seconds, in which some (or all, for "full")
// non-idle tasks were stalled on the resource.
type PSI struct {
	// Available reports that at least one /proc/pressure file was read.
	Available bool `json:"available"`
	// CPUSomeAvg10 is the "some" avg10 of /proc/pressure/cpu.
	CPUSomeAvg10 float64 `json:"cpu_some_avg10"`
	// MemorySomeAvg10 and MemoryFullAvg10 are from /proc/pressure/memory.
	MemorySomeAvg10 float64 `json:"memory_some_avg10"`
	MemoryFullAvg10 float64 `json:"memory_full_avg10"` // see MemorySomeAvg10
	// IOSomeAvg10 and IOFullAvg10 are from /proc/pressure/io.
	IOSomeAvg10 float64 `json:"io_some_avg10"`
	IOFullAvg10 float64 `json:"io_full_avg10"` // see IOSomeAvg10
}

// DiskUsage is the usage of the file system holding Path. UsedPercent is
// computed as df does: used blocks over blocks usable by unprivileged users,
// so a disk whose reserved blocks are all that remain reads 100.
type DiskUsage struct {
	// Path is the configured path (SamplerOptions.DiskPaths).
	Path string `json:"path"`
	// UsedPercent is the df-style usage of its file system.
	UsedPercent float64 `json:"used_percent"`
	// FreeBytes is the space available to unprivileged users.
	FreeBytes int64 `json:"free_bytes"`
	// TotalBytes is the size of the file system.
	TotalBytes int64 `json:"total_bytes"`
}

// SignalValue is the value an extra Signal returned for one sample.
type SignalValue struct {
	Name  string  `json:"name"`           // Signal.Name
	Unit  string  `json:"unit,omitempty"` // Signal.Unit
	Value float64 `json:"value"`          // what Signal.Read returned
}

// Value returns the value of the signal called name: one of the Signal...
// constants or the name of an extra signal. The boolean is false when the
// signal was not part of this sample (PSI without kernel support, disk
// without configured paths, an extra signal that had no reading). It is safe
// to call on a nil *Sample, which has no signals. It does not allocate.
func (s *Sample) Value(name string) (float64, bool) {
	if s == nil {
		return 0, false
	}
	switch name {
	case SignalCPUPercent:
		return s.CPUPercent, true
	case SignalProcessCPUPercent:
		return s.ProcessCPUPercent, true
	case SignalHelpersCPUPercent:
		return s.HelpersCPUPercent, true
	case SignalCPUOthersPercent:
		return s.OthersCPUPercent, true
	case SignalMemoryPercent:
		return s.MemoryUsedPercent, s.MemoryTotalBytes > 0
	case SignalSwapPercent:
		return s.SwapUsedPercent, true
	case SignalDiskPercent:
		return s.maxDiskPercent()
	case SignalLoad1:
		return s.Load1, true
	case SignalLoad5:
		return s.Load5, true
	case SignalLoad15:
		return s.Load15, true
	case SignalProcessMemoryMB:
		return float64(s.ProcessAnonBytes) / MB, s.ProcessRSSBytes > 0
	case SignalPSICPUSome:
		return s.PSI.CPUSomeAvg10, s.PSI.Available
	case SignalPSIMemorySome:
		return s.PSI.MemorySomeAvg10, s.PSI.Available
	case SignalPSIMemoryFull:
		return s.PSI.MemoryFullAvg10, s.PSI.Available
	case SignalPSIIOSome:
		return s.PSI.IOSomeAvg10, s.PSI.Available
	case SignalPSIIOFull:
		return s.PSI.IOFullAvg10, s.PSI.Available
	}
	for i := range s.Signals {
		if s.Signals[i].Name == name {
			return s.Signals[i].Value, true
		}
	}
	return 0, false
}

// Disk returns the usage recorded for path and whether there is one.
func (s *Sample) Disk(path string) (DiskUsage, bool) {
	if s == nil {
		return DiskUsage{}, false
	}
	for _, d := range s.Disks {
		if d.Path == path {
			return d, true
		}
	}
	return DiskUsage{}, false
}

func (s *Sample) maxDiskPercent() (float64, bool) {
	if len(s.Disks) == 0 {
		return 0, false
	}
	m := s.Disks[0].UsedPercent
	for _, d := range s.Disks[1:] {
		m = max(m, d.UsedPercent)
	}
	return m, true
}

// signalMeta describes a signal for error messages and validation.
type signalMeta struct {
	kind    limit.Kind
	unit    string
	percent bool // accepted thresholds are in (0, 100]
}

// metaOf returns what the package knows about a signal name. Unknown names
// (extra signals) are reported with their own name as the kind and the unit
// found in s, if any.
func metaOf(name string, s *Sample) signalMeta {
	switch name {
	case SignalCPUPercent, SignalProcessCPUPercent, SignalHelpersCPUPercent, SignalCPUOthersPercent:
		return signalMeta{limit.CPU, "%", true}
	case SignalMemoryPercent:
		return signalMeta{limit.Memory, "%", true}
	case SignalProcessMemoryMB:
		return signalMeta{limit.Memory, "MB", false}
	case SignalSwapPercent:
		return signalMeta{limit.Swap, "%", true}
	case SignalDiskPercent:
		return signalMeta{limit.Disk, "%", true}
	case SignalLoad1, SignalLoad5, SignalLoad15:
		return signalMeta{limit.CPU, "", false}
	case SignalPSICPUSome, SignalPSIMemorySome, SignalPSIMemoryFull, SignalPSIIOSome, SignalPSIIOFull:
		return signalMeta{limit.Pressure, "%", true}
	case SignalTemperatureC:
		return signalMeta{limit.Temperature, "°C", false}
	}
	m := signalMeta{kind: limit.Kind(name)}
	if s != nil {
		for _, v := range s.Signals {
			if v.Name == name {
				m.unit = v.Unit
				break
			}
		}
	}
	return m
}

// usageFromBlocks computes a DiskUsage from statfs block counts.
func usageFromBlocks(path string, blocks, bfree, bavail, bsize uint64) DiskUsage {
	bfree = min(bfree, blocks)
	used := mulSat(blocks-bfree, bsize)
	free := mulSat(bavail, bsize)
	u := DiskUsage{Path: path, TotalBytes: toInt64(mulSat(blocks, bsize)), FreeBytes: toInt64(free)}
	if d := float64(used) + float64(free); d > 0 {
		u.UsedPercent = clampPercent(float64(used) / d * 100)
	}
	return u
}
