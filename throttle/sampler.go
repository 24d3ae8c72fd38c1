package throttle

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// SamplerOptions configures a Sampler. The zero value reads the host's
// /proc, /sys and /sys/fs/cgroup, watches no disk and has no extra signal.
type SamplerOptions struct {
	// ProcRoot is where procfs is mounted. Default "/proc". A container
	// that mounts the host's procfs at /host/proc sets it to that. Files
	// under <ProcRoot>/self describe this process as seen from that procfs.
	ProcRoot string
	// SysRoot is where sysfs is mounted. Default "/sys". It only serves
	// as the parent of the default CgroupRoot.
	SysRoot string
	// CgroupRoot is where the cgroup file system is mounted. Default
	// <SysRoot>/fs/cgroup. On cgroup v1 hosts it holds one directory per
	// controller (memory/...); on v2 it is the unified hierarchy.
	CgroupRoot string
	// DiskPaths lists paths whose file system usage is sampled.
	DiskPaths []string
	// Signals are extra signals read with every sample.
	Signals []Signal
	// Helpers names the processes that do this agent's work elsewhere (a
	// local LLM server). Their CPU use, and that of this process's
	// children, is reported as HelpersCPUPercent and never counts as CPU
	// contention (OthersCPUPercent). Read from procfs only.
	Helpers Helpers
	// HelperRescan is how often helper processes are looked for again.
	// Default DefaultHelperRescan (30 s).
	HelperRescan time.Duration
	// MinCPUWindow is the shortest interval over which CPU percentages
	// are computed for the first sample: the first call to Sample waits
	// until this long after the Sampler was created, so that its CPU
	// figures describe a real interval. Default 100ms.
	MinCPUWindow time.Duration
	// Logger receives warnings about partial read failures (each distinct
	// failure once, until it clears). Nil discards them.
	Logger *slog.Logger
}

// Sampler reads one full Sample of the resource signals per call to Sample.
// It keeps the previous CPU counters to compute percentages from deltas, so
// successive calls measure the interval between them.
//
// A Sampler starts no goroutine and holds no open file between calls. It
// is safe for concurrent use, though a single caller (a Monitor) is the
// intended use: concurrent calls split the CPU interval between them.
//
// On Linux (and on any system when ProcRoot is set) the signals come from
// the procfs and cgroup files under the configured roots; elsewhere, with
// ProcRoot unset, from gopsutil.
type Sampler struct {
	disks     []string
	signals   []Signal
	minWindow time.Duration
	log       *slog.Logger

	procRoot string
	helpers  *helperTracker // nil without procfs

	// mu guards the fields below and serialises the use of host.
	mu         sync.Mutex
	host       hostReader
	prev       counters
	primed     bool      // prev holds a reading
	primedAt   time.Time // when prev was first read
	sampled    bool      // a sample has been computed
	cpu        cpuShares // last computed CPU shares
	helperList []HelperProcess
	reported   map[string]bool
	reported2  map[string]bool
}

// counters are cumulative CPU times in a unit consistent within one reader
// (USER_HZ ticks for procfs, seconds for gopsutil).
type counters struct {
	total, idle, proc, helpers float64
}

// hostReader is one way of reading the host: the procfs files under the
// configured roots, or gopsutil. Calls are serialised by Sampler.mu.
type hostReader interface {
	// counters reads the cumulative CPU times of the machine and of this
	// process.
	counters() (counters, error)
	// memory fills the memory, swap and process memory fields of s.
	memory(s *Sample) []error
	// load fills the load averages.
	load(s *Sample) error
	// psi fills s.PSI; absence of PSI support is not an error.
	psi(s *Sample) error
}

// NewSampler validates opts and returns a Sampler. It reads the CPU
// counters once so that the first Sample has a baseline (a failure there is
// reported by the first Sample, not here).
func NewSampler(opts SamplerOptions) (*Sampler, error) {
	if opts.MinCPUWindow < 0 {
		return nil, fmt.Errorf("throttle: SamplerOptions.MinCPUWindow = %v: must be >= 0", opts.MinCPUWindow)
	}
	if opts.MinCPUWindow == 0 {
		opts.MinCPUWindow = 100 * time.Millisecond
	}
	seen := make(map[string]bool)
	for i, sig := range opts.Signals {
		switch {
		case sig.Name == "":
			return nil, fmt.Errorf("throttle: SamplerOptions.Signals[%d].Name is empty: must name the signal", i)
		case isBuiltinSignal(sig.Name):
			return nil, fmt.Errorf("throttle: SamplerOptions.Signals[%d].Name = %q: must not be a built-in signal name", i, sig.Name)
		case seen[sig.Name]:
			return nil, fmt.Errorf("throttle: SamplerOptions.Signals[%d].Name = %q: duplicate signal name", i, sig.Name)
		case sig.Read == nil:
			return nil, fmt.Errorf("throttle: SamplerOptions.Signals[%d].Read is nil: must be a function", i)
		}
		seen[sig.Name] = true
	}
	for i, p := range opts.DiskPaths {
		if p == "" {
			return nil, fmt.Errorf("throttle: SamplerOptions.DiskPaths[%d] is empty: must be a path", i)
		}
	}
	s := &Sampler{
		disks:     slices.Clone(opts.DiskPaths),
		signals:   slices.Clone(opts.Signals),
		minWindow: opts.MinCPUWindow,
		log:       loggerOrDiscard(opts.Logger),
		reported:  make(map[string]bool),
		reported2: make(map[string]bool),
	}
	if opts.HelperRescan < 0 {
		return nil, fmt.Errorf("throttle: SamplerOptions.HelperRescan = %v: must be > 0 (0: %v)", opts.HelperRescan, DefaultHelperRescan)
	}
	if opts.ProcRoot == "" {
		s.host = defaultHostReader(opts)
	} else {
		s.host = newProcfsReader(opts)
	}
	if r, ok := s.host.(*procfsReader); ok {
		s.procRoot = r.procRoot
		s.helpers = newHelperTracker(r.procRoot, r.cgroupRoot, opts.Helpers, opts.HelperRescan)
	}
	s.mu.Lock()
	s.prime(time.Now())
	s.mu.Unlock()
	return s, nil
}

// readCounters reads the CPU counters, the helpers' included. mu must be
// held.
func (s *Sampler) readCounters(now time.Time) (counters, error) {
	c, err := s.host.counters()
	if err == nil && s.helpers != nil {
		c.helpers = float64(s.helpers.ticks(now))
	}
	return c, err
}

// prime reads the baseline counters. mu must be held.
func (s *Sampler) prime(now time.Time) {
	c, err := s.readCounters(now)
	if err != nil {
		return
	}
	s.prev, s.primed, s.primedAt = c, true, now
	if s.helpers != nil {
		s.helpers.processes(0)
	}
}

// Sample reads all signals and returns them with Time set to now. It
// blocks only on file reads, except that the very first call waits until
// MinCPUWindow has passed since the Sampler was created.
//
// Partial failures are recorded in Sample.Errors and logged. The returned
// error is non-nil only when neither CPU nor memory could be read (for
// example a wrong ProcRoot); the Sample is then still returned with
// whatever could be read.
//
// Cost: a handful of small file reads and one statfs per disk path, well
// under a millisecond of CPU on a Raspberry Pi 4 (see BenchmarkSample).
func (s *Sampler) Sample(now time.Time) (*Sample, error) {
	out := &Sample{Time: now}
	var errs []error

	s.mu.Lock()
	if !s.primed {
		s.prime(time.Now())
	}
	if !s.sampled && s.primed {
		if wait := s.minWindow - time.Since(s.primedAt); wait > 0 {
			s.mu.Unlock()
			time.Sleep(wait)
			s.mu.Lock()
		}
	}
	cpuErr := s.readCPU(now, out)
	if cpuErr != nil {
		errs = append(errs, cpuErr)
	}
	memErrs := s.host.memory(out)
	errs = append(errs, memErrs...)
	if err := s.host.load(out); err != nil {
		errs = append(errs, err)
	}
	if err := s.host.psi(out); err != nil {
		errs = append(errs, err)
	}
	s.mu.Unlock()

	for _, p := range s.disks {
		d, err := diskUsage(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out.Disks = append(out.Disks, d)
	}
	for _, sig := range s.signals {
		v, ok, err := readSignal(sig)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			out.Signals = append(out.Signals, SignalValue{Name: sig.Name, Unit: sig.Unit, Value: v})
		}
	}

	for _, err := range errs {
		out.Errors = append(out.Errors, err.Error())
	}
	s.logErrors(out.Errors)

	if cpuErr != nil && out.MemoryTotalBytes == 0 {
		return out, fmt.Errorf("throttle: sample: neither CPU nor memory could be read: %w", errors.Join(errs...))
	}
	return out, nil
}

// readCPU computes the CPU percentages from the counters' deltas. When no
// tick elapsed since the previous sample, the previous percentages are
// repeated and the baseline kept, so the next interval is longer. mu must be
// held.
func (s *Sampler) readCPU(now time.Time, out *Sample) error {
	c, err := s.readCounters(now)
	if err != nil {
		s.fillCPU(out)
		return err
	}
	if !s.primed {
		s.prev, s.primed, s.primedAt = c, true, time.Now()
		return fmt.Errorf("cpu: first reading, no interval to compute percentages over")
	}
	p, ok := cpuPercents(s.prev, c)
	if ok {
		s.cpu = p
		if s.helpers != nil {
			s.helperList = s.helpers.processes(c.total - s.prev.total)
		}
		s.prev = c
		s.sampled = true
	} else if c.total < s.prev.total {
		// The counters went backwards (a different procfs, a
		// wrapped counter): start a new interval.
		s.prev = c
	}
	if !ok && s.helpers != nil {
		s.helperList = s.helpers.list() // found, but no interval to measure yet
	}
	s.fillCPU(out)
	return nil
}

// fillCPU copies the last computed percentages into out. mu must be held.
func (s *Sampler) fillCPU(out *Sample) {
	out.CPUPercent, out.ProcessCPUPercent = s.cpu.cpu, s.cpu.proc
	out.HelpersCPUPercent, out.OthersCPUPercent = s.cpu.helpers, s.cpu.others
	out.Helpers = s.helperList
}

// cpuShares are the CPU percentages of one interval.
type cpuShares struct {
	cpu, proc, helpers, others float64
}

// cpuPercents returns the CPU shares between two readings, and false when
// no time elapsed between them.
func cpuPercents(prev, cur counters) (cpuShares, bool) {
	dt := cur.total - prev.total
	if !(dt > 0) {
		return cpuShares{}, false
	}
	idle := cur.idle - prev.idle
	var p cpuShares
	p.cpu = clampPercent((dt - idle) / dt * 100)
	p.proc = clampPercent((cur.proc - prev.proc) / dt * 100)
	p.helpers = clampPercent((cur.helpers - prev.helpers) / dt * 100)
	p.others = clampPercent(p.cpu - p.proc - p.helpers)
	return p, true
}

func clampPercent(p float64) float64 {
	if !(p > 0) { // also NaN
		return 0
	}
	return min(p, 100)
}

// readSignal calls sig.Read, turning a panic into an error.
func readSignal(sig Signal) (v float64, ok bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, ok, err = 0, false, fmt.Errorf("signal %s: panic: %v", sig.Name, r)
		}
	}()
	v, ok = sig.Read()
	if ok && (v != v) { // NaN carries no information
		return 0, false, fmt.Errorf("signal %s: NaN value", sig.Name)
	}
	return v, ok, nil
}

// logErrors logs each distinct failure once, the first time it appears,
// and again only after it has cleared.
func (s *Sampler) logErrors(msgs []string) {
	s.mu.Lock()
	cur := s.reported2
	clear(cur)
	var fresh []string
	for _, m := range msgs {
		cur[m] = true
		if !s.reported[m] {
			fresh = append(fresh, m)
		}
	}
	s.reported, s.reported2 = cur, s.reported
	s.mu.Unlock()
	for _, m := range fresh {
		s.log.Warn("throttle: partial sample", "error", m)
	}
}

// procPath joins elements under root; used by the readers.
func procPath(root string, elem ...string) string {
	return filepath.Join(append([]string{root}, elem...)...)
}

func loggerOrDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
