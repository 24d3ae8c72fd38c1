package throttle

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"syscall"

	"github.com/cemaf-go/cemaf/internal/boundedread"
)

// procfsReader reads the host from procfs and cgroupfs files under the
// configured roots. It is used on Linux, and anywhere ProcRoot is set (tests
// run on the fixture trees in testdata/). It is not safe for concurrent use;
// Sampler serialises it.
type procfsReader struct {
	procRoot   string
	cgroupRoot string
	pageSize   int64
	buf        []byte

	cg         *cgroupLoc // resolved memory cgroup; nil until resolved
	cgResolved bool
}

func newProcfsReader(opts SamplerOptions) *procfsReader {
	r := &procfsReader{
		procRoot:   opts.ProcRoot,
		cgroupRoot: opts.CgroupRoot,
		pageSize:   int64(os.Getpagesize()),
		buf:        make([]byte, 0, 4096),
	}
	if r.procRoot == "" {
		r.procRoot = "/proc"
	}
	if r.cgroupRoot == "" {
		sys := opts.SysRoot
		if sys == "" {
			sys = "/sys"
		}
		r.cgroupRoot = filepath.Join(sys, "fs", "cgroup")
	}
	r.procRoot = filepath.Clean(r.procRoot)
	r.cgroupRoot = filepath.Clean(r.cgroupRoot)
	return r
}

// maxFileBytes bounds what is read of any procfs or cgroup file.
const maxFileBytes = 64 << 10

// read returns the content of path (at most limit bytes) in r's buffer,
// which the next call overwrites. Files that are not regular (a FIFO or a
// device planted in a fixture or a container mount) are refused without
// blocking.
func (r *procfsReader) read(path string, limit int) ([]byte, error) {
	b, err := boundedread.AppendPrefix(r.buf[:0], path, int64(limit))
	if err != nil {
		return nil, err
	}
	r.buf = b[:0]
	return b, nil
}

func (r *procfsReader) counters() (counters, error) {
	// Only the first line of /proc/stat is needed; the rest (per-CPU
	// lines, the long "intr" line) is not read.
	b, err := r.read(procPath(r.procRoot, "stat"), 1024)
	if err != nil {
		return counters{}, fmt.Errorf("cpu: %w", err)
	}
	t, err := parseProcStat(b)
	if err != nil {
		return counters{}, fmt.Errorf("cpu: %w", err)
	}
	b, err = r.read(procPath(r.procRoot, "self", "stat"), 4096)
	if err != nil {
		return counters{}, fmt.Errorf("cpu: %w", err)
	}
	p, err := parseSelfStat(b)
	if err != nil {
		return counters{}, fmt.Errorf("cpu: %w", err)
	}
	return counters{total: float64(t.total), idle: float64(t.idle), proc: float64(p)}, nil
}

func (r *procfsReader) memory(s *Sample) []error {
	var errs []error
	b, err := r.read(procPath(r.procRoot, "meminfo"), maxFileBytes)
	var mi memInfo
	if err == nil {
		mi, err = parseMeminfo(b)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("memory: %w", err))
	} else {
		s.MemoryTotalBytes = mi.total
		s.MemoryAvailableBytes = mi.available
		used := mi.total - mi.available
		cg, err := r.cgroupMemory()
		if err != nil {
			errs = append(errs, fmt.Errorf("memory: cgroup: %w", err))
		}
		if cg.limit > 0 && cg.limit < uint64(mi.total) {
			limit := int64(cg.limit)
			if cg.hasUsage {
				used = min(toInt64(cg.usage), limit)
			} else {
				used = min(used, limit)
			}
			s.MemoryTotalBytes = limit
			s.MemoryAvailableBytes = max(0, min(limit-used, mi.available))
			s.MemoryLimitedByCgroup = true
		}
		if s.MemoryTotalBytes > 0 {
			s.MemoryUsedPercent = clampPercent(float64(used) / float64(s.MemoryTotalBytes) * 100)
		}
		s.SwapTotalBytes = mi.swapTotal
		if mi.swapTotal > 0 {
			s.SwapUsedPercent = clampPercent(float64(mi.swapTotal-mi.swapFree) / float64(mi.swapTotal) * 100)
		}
	}

	b, err = r.read(procPath(r.procRoot, "self", "statm"), 4096)
	var resident, shared uint64
	if err == nil {
		resident, shared, err = parseStatm(b)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("process memory: %w", err))
	} else {
		s.ProcessRSSBytes = toInt64(mulSat(resident, uint64(r.pageSize)))
		s.ProcessAnonBytes = toInt64(mulSat(resident-shared, uint64(r.pageSize)))
	}
	return errs
}

func (r *procfsReader) load(s *Sample) error {
	b, err := r.read(procPath(r.procRoot, "loadavg"), 4096)
	if err == nil {
		s.Load1, s.Load5, s.Load15, err = parseLoadavg(b)
	}
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	return nil
}

func (r *procfsReader) psi(s *Sample) error {
	var errs []error
	for _, res := range [...]string{"cpu", "memory", "io"} {
		b, err := r.read(procPath(r.procRoot, "pressure", res), 4096)
		if err != nil {
			if psiAbsent(err) {
				continue
			}
			errs = append(errs, fmt.Errorf("pressure %s: %w", res, err))
			continue
		}
		p, err := parsePSI(b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.PSI.Available = true
		switch res {
		case "cpu":
			s.PSI.CPUSomeAvg10 = p.some
		case "memory":
			s.PSI.MemorySomeAvg10, s.PSI.MemoryFullAvg10 = p.some, p.full
		case "io":
			s.PSI.IOSomeAvg10, s.PSI.IOFullAvg10 = p.some, p.full
		}
	}
	return errors.Join(errs...)
}

// psiAbsent reports whether a pressure file read failed because the kernel
// has no PSI: the file is missing (no CONFIG_PSI) or refuses reads (booted
// with psi=0).
func psiAbsent(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.EOPNOTSUPP)
}

// cgroupLoc is the memory cgroup of this process.
type cgroupLoc struct {
	v2  bool
	dir string // the process's cgroup directory
	// up lists dir and its ancestors up to the root, for memory.max (v2).
	up []string
}

// cgroupMem is the memory limit and usage of the process's cgroup.
type cgroupMem struct {
	limit    uint64 // 0: none
	usage    uint64 // working set: usage minus reclaimable page cache
	hasUsage bool
}

// cgroupMemory reads the memory limit and working set of this process's
// cgroup. A process in no memory cgroup (or on a host without cgroupfs) has
// no limit and no error.
func (r *procfsReader) cgroupMemory() (cgroupMem, error) {
	if !r.cgResolved {
		loc, err := r.resolveCgroup()
		if err != nil {
			return cgroupMem{}, err
		}
		r.cg, r.cgResolved = loc, true
	}
	if r.cg == nil {
		return cgroupMem{}, nil
	}
	m, err := r.readCgroupMem(r.cg)
	if errors.Is(err, fs.ErrNotExist) {
		// The cgroup went away (the process moved): resolve again
		// next time.
		r.cg, r.cgResolved = nil, false
	}
	return m, err
}

// resolveCgroup finds the memory cgroup directory from /proc/self/cgroup.
func (r *procfsReader) resolveCgroup() (*cgroupLoc, error) {
	b, err := r.read(procPath(r.procRoot, "self", "cgroup"), maxFileBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sc, err := parseSelfCgroup(b)
	if err != nil {
		return nil, err
	}
	switch {
	case sc.hasV1:
		base := filepath.Join(r.cgroupRoot, "memory")
		dir := filepath.Join(base, filepath.Clean("/"+sc.v1Memory))
		if !isDir(dir) {
			// In a cgroup namespace the mount's root is the
			// process's own cgroup.
			dir = base
		}
		if !isDir(dir) {
			return nil, nil
		}
		return &cgroupLoc{dir: dir}, nil
	case sc.hasV2:
		root := r.cgroupRoot
		dir := filepath.Join(root, filepath.Clean("/"+sc.v2))
		if !isDir(dir) {
			dir = root
		}
		if !isFile(filepath.Join(dir, "cgroup.controllers")) {
			// Not a cgroup v2 mount (for example a v1 tmpfs).
			return nil, nil
		}
		loc := &cgroupLoc{v2: true, dir: dir}
		for d := dir; ; d = filepath.Dir(d) {
			loc.up = append(loc.up, d)
			if d == root || len(loc.up) > 64 || d == filepath.Dir(d) {
				break
			}
		}
		return loc, nil
	}
	return nil, nil
}

func (r *procfsReader) readCgroupMem(loc *cgroupLoc) (cgroupMem, error) {
	var m cgroupMem
	limit := uint64(math.MaxUint64)
	var usageFile string
	keys := cacheKeysV2
	if loc.v2 {
		for _, d := range loc.up {
			b, err := r.read(filepath.Join(d, "memory.max"), 256)
			if errors.Is(err, fs.ErrNotExist) {
				continue // the root cgroup has no memory.max
			}
			if err != nil {
				return cgroupMem{}, err
			}
			v, err := parseCgroupValue(b)
			if err != nil {
				return cgroupMem{}, fmt.Errorf("%s: %w", filepath.Join(d, "memory.max"), err)
			}
			limit = min(limit, v)
		}
		usageFile = "memory.current"
	} else {
		b, err := r.read(filepath.Join(loc.dir, "memory.limit_in_bytes"), 256)
		if err != nil {
			return cgroupMem{}, err
		}
		v, err := parseCgroupValue(b)
		if err != nil {
			return cgroupMem{}, fmt.Errorf("memory.limit_in_bytes: %w", err)
		}
		limit = v
		usageFile, keys = "memory.usage_in_bytes", cacheKeysV1
	}

	// memory.stat: the hierarchical limit (v1) and the page cache the
	// kernel reclaims before it OOM-kills.
	var reclaimable uint64
	if b, err := r.read(filepath.Join(loc.dir, "memory.stat"), maxFileBytes); err == nil {
		if !loc.v2 {
			if h, ok := parseKeyed(b, "hierarchical_memory_limit"); ok {
				limit = min(limit, h)
			}
		}
		reclaimable = reclaimableCache(b, keys)
	}
	if limit != math.MaxUint64 {
		m.limit = limit
	}
	if b, err := r.read(filepath.Join(loc.dir, usageFile), 256); err == nil {
		if u, err := parseCgroupValue(b); err == nil && u != math.MaxUint64 {
			m.usage = u - min(u, reclaimable)
			m.hasUsage = true
		}
	}
	return m, nil
}

// cacheKeys name the memory.stat fields reclaimableCache reads.
type cacheKeys struct{ inactive, active, mapped, dirty, writeback string }

var (
	cacheKeysV2 = cacheKeys{"inactive_file", "active_file", "file_mapped", "file_dirty", "file_writeback"}
	cacheKeysV1 = cacheKeys{"total_inactive_file", "total_active_file", "total_mapped_file", "total_dirty", "total_writeback"}
)

// reclaimableCache is the page cache of a cgroup that the kernel can drop
// without writing anything or taking a page a process has mapped: the
// file pages on both LRU lists (active ones included: a corpus read twice
// is active, and still only cache) less those mapped, dirty or under
// writeback. tmpfs and shared memory are not on the file lists, so they
// stay in use, as MemAvailable counts them on the host.
func reclaimableCache(stat []byte, k cacheKeys) uint64 {
	inactive, _ := parseKeyed(stat, k.inactive)
	active, _ := parseKeyed(stat, k.active)
	mapped, _ := parseKeyed(stat, k.mapped)
	dirty, _ := parseKeyed(stat, k.dirty)
	writeback, _ := parseKeyed(stat, k.writeback)
	file := addSat(inactive, active)
	held := addSat(addSat(mapped, dirty), writeback)
	return file - min(file, held)
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}
