package throttle

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Evictable is something holding memory that it can give back on request:
// the context pager implements it. Evict frees about n bytes (more or less,
// as its granularity allows) and returns how many it freed. It is called
// from the goroutine running a reclaim (the Monitor's, when the guard is
// attached), never under a lock of this package, and must be safe for
// concurrent use with its owner's other methods.
type Evictable interface {
	Evict(n int64) (freed int64, err error)
}

// ResidentSizer is optionally implemented by an Evictable to report the
// bytes it holds in memory; the SIZE strategy evicts the largest first, and
// an Evictable reporting 0 is skipped.
type ResidentSizer interface {
	ResidentBytes() int64
}

// AccessTimer is optionally implemented by an Evictable to report when it
// was last used; the LRU strategy evicts the least recently used first.
type AccessTimer interface {
	LastAccess() time.Time
}

// AccessCounter is optionally implemented by an Evictable to report how
// often it was used; the LFU strategy evicts the least frequently used first.
type AccessCounter interface {
	AccessCount() uint64
}

// EvictionStrategy orders the registered Evictables during a reclaim.
// Evictables that do not implement the interface a strategy needs come
// after those that do; ties are broken by priority (lowest first), then by
// registration order.
type EvictionStrategy int

const (
	// EvictLRU asks the least recently used first (AccessTimer). It is the
	// zero value.
	EvictLRU EvictionStrategy = iota
	// EvictLFU asks the least frequently used first (AccessCounter).
	EvictLFU
	// EvictPriority asks the lowest priority (given at Register) first.
	EvictPriority
	// EvictSize asks the largest first (ResidentSizer).
	EvictSize
)

// String returns "LRU", "LFU", "PRIORITY" or "SIZE".
func (s EvictionStrategy) String() string {
	switch s {
	case EvictLRU:
		return "LRU"
	case EvictLFU:
		return "LFU"
	case EvictPriority:
		return "PRIORITY"
	case EvictSize:
		return "SIZE"
	}
	return fmt.Sprintf("EvictionStrategy(%d)", int(s))
}

// ParseEvictionStrategy parses "LRU", "LFU", "PRIORITY" or "SIZE" (any
// case).
func ParseEvictionStrategy(s string) (EvictionStrategy, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "LRU":
		return EvictLRU, nil
	case "LFU":
		return EvictLFU, nil
	case "PRIORITY":
		return EvictPriority, nil
	case "SIZE":
		return EvictSize, nil
	}
	return 0, fmt.Errorf("throttle: eviction strategy %q: must be LRU, LFU, PRIORITY or SIZE", s)
}

// MemoryGuardOptions configures a MemoryGuard. MB means 2^20 bytes. The
// zero value sets no MB limit and trips when memory use is over 85 % of the
// effective memory.
//
// The MB limits apply to this process's anonymous resident memory
// (Sample.ProcessAnonBytes: RSS minus file-backed and shared pages, from
// /proc/self/statm). That is the memory the kernel's OOM killer and the
// cgroup limit charge to the process and cannot reclaim by dropping caches:
// it includes Go's heap and stacks as well as memory allocated by C
// libraries, which Go's runtime metrics do not see, and excludes the pages
// of memory-mapped files (bbolt's database) that the kernel can drop at
// will.
type MemoryGuardOptions struct {
	// SoftLimitMB: above it, a reclaim asks the registered Evictables to
	// free memory down to SoftLimitMB − ReclaimMarginMB. 0: no soft limit.
	SoftLimitMB int64
	// HardLimitMB: above it, Check fails and Wait blocks. 0: no hard
	// limit. Must be >= SoftLimitMB when both are set.
	HardLimitMB int64
	// MaxUsedPercent: when the effective memory (host or cgroup) is more
	// used than this, in percent (0, 100], Check fails, Wait blocks, and
	// a reclaim asks for enough bytes to bring use 5 % (of this value)
	// below it. 0: 85 when neither MB limit is set, otherwise off.
	MaxUsedPercent float64
	// ReclaimMarginMB is how far below the soft limit a reclaim aims.
	// Default 5 % of SoftLimitMB, at least 1; must be < SoftLimitMB.
	ReclaimMarginMB int64
	// Strategy orders the Evictables during a reclaim. Default LRU.
	Strategy EvictionStrategy
	// SetGoMemoryLimit sets the Go runtime's soft memory limit
	// (debug.SetMemoryLimit) to SoftLimitMB when the guard is created, and
	// restores the previous limit on Close. The Go limit is process-wide:
	// let one guard set it.
	SetGoMemoryLimit bool
	// NoFreeOSMemory disables the debug.FreeOSMemory call after a reclaim
	// that freed memory. That call runs a garbage collection and returns
	// the freed pages to the kernel, so that the next sample's RSS shows
	// the effect of the reclaim instead of prompting another one.
	NoFreeOSMemory bool
	// Logger receives reclaims and eviction failures. Nil discards them.
	Logger *slog.Logger
}

// MemoryGuard guards memory with a soft limit that triggers eviction and a
// hard limit (and a percentage of the effective memory) that pauses new work.
//
// Check and Wait read the SnapshotSource (an atomic load), never /proc.
// Reclaims run in Observe, on the goroutine that calls it: attach the guard
// to a Monitor (Attach) to observe every sample on the monitor's goroutine.
// A reclaim runs at most once per fresh sample and never concurrently with
// another; Evictables are called without any lock held.
//
// All methods are safe for concurrent use. Close restores the Go memory
// limit and detaches the guard.
type MemoryGuard struct {
	src      SnapshotSource
	soft     int64 // bytes; 0 none
	hard     int64 // bytes; 0 none
	maxPct   float64
	margin   int64 // bytes
	strategy EvictionStrategy
	freeOS   bool
	log      *slog.Logger

	reclaiming atomic.Bool
	reclaims   atomic.Uint64
	freed      atomic.Int64

	// mu guards the fields below.
	mu          sync.Mutex
	entries     []*evictEntry
	seq         uint64
	lastSeen    time.Time // time of the last sample observed
	detachers   map[uint64]func()
	closed      bool
	goLimitSet  bool
	prevGoLimit int64
}

type evictEntry struct {
	e        Evictable
	priority int
	seq      uint64
}

// NewMemoryGuard validates opts and returns a guard over src (normally a
// *Monitor). With SetGoMemoryLimit it sets the Go memory limit now.
func NewMemoryGuard(src SnapshotSource, opts MemoryGuardOptions) (*MemoryGuard, error) {
	if src == nil {
		return nil, errors.New("throttle: NewMemoryGuard: src is nil: must be a SnapshotSource")
	}
	const maxMB = math.MaxInt64 / MB
	for _, f := range []struct {
		name string
		v    int64
	}{{"SoftLimitMB", opts.SoftLimitMB}, {"HardLimitMB", opts.HardLimitMB}, {"ReclaimMarginMB", opts.ReclaimMarginMB}} {
		if f.v < 0 || f.v > maxMB {
			return nil, fmt.Errorf("throttle: MemoryGuardOptions.%s = %d: must be in [0, %d]", f.name, f.v, int64(maxMB))
		}
	}
	if opts.SoftLimitMB > 0 && opts.HardLimitMB > 0 && opts.SoftLimitMB > opts.HardLimitMB {
		return nil, fmt.Errorf("throttle: MemoryGuardOptions.SoftLimitMB = %d > HardLimitMB = %d: the soft limit must not exceed the hard limit",
			opts.SoftLimitMB, opts.HardLimitMB)
	}
	if opts.MaxUsedPercent == 0 && opts.SoftLimitMB == 0 && opts.HardLimitMB == 0 {
		opts.MaxUsedPercent = 85
	}
	if opts.MaxUsedPercent != 0 {
		if err := checkPercent("MemoryGuardOptions.MaxUsedPercent", opts.MaxUsedPercent); err != nil {
			return nil, err
		}
	}
	if opts.SoftLimitMB > 0 {
		if opts.ReclaimMarginMB == 0 {
			opts.ReclaimMarginMB = max(1, opts.SoftLimitMB/20)
		}
		if opts.ReclaimMarginMB >= opts.SoftLimitMB {
			return nil, fmt.Errorf("throttle: MemoryGuardOptions.ReclaimMarginMB = %d: must be < SoftLimitMB (%d)", opts.ReclaimMarginMB, opts.SoftLimitMB)
		}
	}
	if opts.Strategy < EvictLRU || opts.Strategy > EvictSize {
		return nil, fmt.Errorf("throttle: MemoryGuardOptions.Strategy = %d: must be EvictLRU, EvictLFU, EvictPriority or EvictSize", int(opts.Strategy))
	}
	if opts.SetGoMemoryLimit && opts.SoftLimitMB == 0 {
		return nil, errors.New("throttle: MemoryGuardOptions.SetGoMemoryLimit is set but SoftLimitMB = 0: the Go limit is taken from the soft limit")
	}
	g := &MemoryGuard{
		src:       src,
		soft:      opts.SoftLimitMB * MB,
		hard:      opts.HardLimitMB * MB,
		maxPct:    opts.MaxUsedPercent,
		margin:    opts.ReclaimMarginMB * MB,
		strategy:  opts.Strategy,
		freeOS:    !opts.NoFreeOSMemory,
		log:       loggerOrDiscard(opts.Logger),
		detachers: make(map[uint64]func()),
	}
	if opts.SetGoMemoryLimit {
		g.prevGoLimit = debug.SetMemoryLimit(g.soft)
		g.goLimitSet = true
		g.log.Info("throttle: Go memory limit set from the soft limit", "limit_mb", opts.SoftLimitMB)
	}
	return g, nil
}

// Register adds e to the Evictables asked to free memory during a reclaim,
// with a priority used by the PRIORITY strategy (lower is evicted first)
// and to break ties. unregister removes it; it is idempotent.
func (g *MemoryGuard) Register(e Evictable, priority int) (unregister func()) {
	g.mu.Lock()
	g.seq++
	ent := &evictEntry{e: e, priority: priority, seq: g.seq}
	g.entries = append(g.entries, ent)
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.entries = slices.DeleteFunc(g.entries, func(x *evictEntry) bool { return x == ent })
	}
}

// Check returns nil when the latest sample is within the limits. Over the
// hard limit it returns a *LimitError (KindMemory, Subject "process", unit
// "MB"); over MaxUsedPercent, one with Subject "memory_percent" and unit
// "%"; both joined when both apply. Before the first sample it returns nil.
// It does not block and does not allocate within the limits.
func (g *MemoryGuard) Check() error {
	s := g.src.Snapshot().Sample
	if s == nil {
		return nil
	}
	var hardErr, pctErr error
	if g.hard > 0 && s.ProcessAnonBytes > g.hard {
		hardErr = &LimitError{
			Kind: KindMemory, Subject: "process", Unit: "MB",
			Current: float64(s.ProcessAnonBytes) / MB, Limit: float64(g.hard) / MB,
			Detail: "anonymous resident memory over the hard limit",
		}
	}
	if g.maxPct > 0 && s.MemoryTotalBytes > 0 && s.MemoryUsedPercent > g.maxPct {
		pctErr = &LimitError{
			Kind: KindMemory, Subject: SignalMemoryPercent, Unit: "%",
			Current: s.MemoryUsedPercent, Limit: g.maxPct,
		}
	}
	switch {
	case hardErr != nil && pctErr != nil:
		return errors.Join(hardErr, pctErr)
	case hardErr != nil:
		return hardErr
	case pctErr != nil:
		return pctErr
	}
	return nil
}

// Wait blocks until a sample says memory is within the limits, or ctx ends.
func (g *MemoryGuard) Wait(ctx context.Context) error { return waitFresh(ctx, g.src, g.Check) }

// Protected waits like Wait, then runs fn. A panic in fn is returned as a
// *PanicError.
func (g *MemoryGuard) Protected(ctx context.Context, fn func(ctx context.Context) error) error {
	if err := g.Wait(ctx); err != nil {
		return err
	}
	return callProtected("MemoryGuard.Protected", func() error { return fn(ctx) })
}

// Attach subscribes the guard to sub (normally the *Monitor it reads) so
// that every sample is observed and reclaims run on the monitor's
// goroutine. detach undoes it; Close detaches everything.
func (g *MemoryGuard) Attach(sub Subscriber) (detach func()) {
	cancel := sub.Subscribe(g.Observe)
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		cancel()
		return func() {}
	}
	g.seq++
	id := g.seq
	g.detachers[id] = cancel
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		c, ok := g.detachers[id]
		delete(g.detachers, id)
		g.mu.Unlock()
		if ok {
			c()
		}
	}
}

// Observe runs a reclaim when the fresh sample s shows memory over the soft
// limit or over MaxUsedPercent. Samples not newer than the last observed are
// ignored, so one sample causes at most one reclaim. It blocks while the
// Evictables work.
func (g *MemoryGuard) Observe(s *Sample) {
	if s == nil {
		return
	}
	g.mu.Lock()
	fresh := s.Time.After(g.lastSeen) && !g.closed
	if fresh {
		g.lastSeen = s.Time
	}
	g.mu.Unlock()
	if !fresh {
		return
	}
	if need := g.excess(s); need > 0 {
		freed, err := g.Reclaim(need)
		g.log.Info("throttle: memory guard reclaim", "need_bytes", need, "freed_bytes", freed,
			"process_anon_mb", s.ProcessAnonBytes/MB, "memory_used_percent", s.MemoryUsedPercent)
		if err != nil {
			g.log.Warn("throttle: memory guard: eviction failed", "error", err)
		}
	}
}

// excess returns how many bytes a reclaim should free for sample s.
func (g *MemoryGuard) excess(s *Sample) int64 {
	var need int64
	if g.soft > 0 && s.ProcessAnonBytes > g.soft {
		need = s.ProcessAnonBytes - (g.soft - g.margin)
	}
	if g.maxPct > 0 && s.MemoryTotalBytes > 0 && s.MemoryUsedPercent > g.maxPct {
		target := g.maxPct * 0.95
		need = max(need, int64((s.MemoryUsedPercent-target)/100*float64(s.MemoryTotalBytes)))
	}
	return need
}

// Reclaim asks the registered Evictables, in strategy order, to free need
// bytes in total, and returns how many they freed and their errors joined.
// It returns (0, nil) at once if another reclaim is running. After freeing
// something it calls debug.FreeOSMemory unless NoFreeOSMemory is set.
// Evictables are called without any lock held; their panics are returned as
// *PanicError values.
func (g *MemoryGuard) Reclaim(need int64) (freed int64, err error) {
	if need <= 0 || !g.reclaiming.CompareAndSwap(false, true) {
		return 0, nil
	}
	defer g.reclaiming.Store(false)
	g.mu.Lock()
	entries := slices.Clone(g.entries)
	g.mu.Unlock()

	var errs []error
	for _, ent := range g.order(entries) {
		if freed >= need {
			break
		}
		var f int64
		perr := callProtected("Evictable.Evict", func() error {
			var err error
			f, err = ent.e.Evict(need - freed)
			return err
		})
		if perr != nil {
			errs = append(errs, fmt.Errorf("throttle: evict %T: %w", ent.e, perr))
		}
		freed += max(f, 0)
	}
	g.reclaims.Add(1)
	g.freed.Add(freed)
	if freed > 0 && g.freeOS {
		debug.FreeOSMemory()
	}
	return freed, errors.Join(errs...)
}

// order sorts entries for the strategy. It calls the optional interfaces,
// outside any lock, and drops Evictables that report no resident bytes.
func (g *MemoryGuard) order(entries []*evictEntry) []*evictEntry {
	type keyed struct {
		ent    *evictEntry
		hasKey bool
		key    int64 // ascending: evicted first
	}
	ks := make([]keyed, 0, len(entries))
	for _, ent := range entries {
		k := keyed{ent: ent}
		var resident int64 = -1
		_ = callProtected("Evictable key", func() error {
			if rs, ok := ent.e.(ResidentSizer); ok {
				resident = rs.ResidentBytes()
			}
			switch g.strategy {
			case EvictLRU:
				if at, ok := ent.e.(AccessTimer); ok {
					k.hasKey, k.key = true, at.LastAccess().UnixNano()
				}
			case EvictLFU:
				if ac, ok := ent.e.(AccessCounter); ok {
					k.hasKey, k.key = true, int64(min(ac.AccessCount(), math.MaxInt64))
				}
			case EvictPriority:
				k.hasKey, k.key = true, int64(ent.priority)
			case EvictSize:
				if resident >= 0 {
					k.hasKey, k.key = true, -resident
				}
			}
			return nil
		})
		if resident == 0 {
			continue
		}
		ks = append(ks, k)
	}
	slices.SortStableFunc(ks, func(a, b keyed) int {
		if a.hasKey != b.hasKey {
			if a.hasKey {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.ent.priority, b.ent.priority), cmp.Compare(a.ent.seq, b.ent.seq))
	})
	out := make([]*evictEntry, len(ks))
	for i, k := range ks {
		out[i] = k.ent
	}
	return out
}

// MemoryGuardStats counts the reclaims of a MemoryGuard.
type MemoryGuardStats struct {
	// Reclaims counts the reclaims run (by Observe or Reclaim).
	Reclaims uint64
	// FreedBytes is the total the Evictables reported freeing.
	FreedBytes int64
	// Registered is the number of Evictables registered now.
	Registered int
}

// Stats returns the reclaim counters.
func (g *MemoryGuard) Stats() MemoryGuardStats {
	g.mu.Lock()
	n := len(g.entries)
	g.mu.Unlock()
	return MemoryGuardStats{Reclaims: g.reclaims.Load(), FreedBytes: g.freed.Load(), Registered: n}
}

// Close detaches the guard from every Subscriber, restores the Go memory
// limit it set, and makes Observe a no-op. Check and Wait keep working. It
// is idempotent and returns nil.
func (g *MemoryGuard) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	detachers := g.detachers
	g.detachers = nil
	restore, prev := g.goLimitSet, g.prevGoLimit
	g.mu.Unlock()
	for _, d := range detachers {
		d()
	}
	if restore {
		debug.SetMemoryLimit(prev)
	}
	return nil
}
