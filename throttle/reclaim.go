package throttle

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Evictable is something holding memory that it can give back on request:
// the context pager implements it. Evict frees about n bytes (more or less,
// as its granularity allows) and returns how many it freed. It is called
// from the goroutine running a reclaim (the Monitor's, when the Reclaimer
// is attached), never under a lock of this package, and must be safe for
// concurrent use with its owner's other methods.
type Evictable interface {
	Evict(n int64) (freed int64, err error)
}

// ResidentSizer is optionally implemented by an Evictable to report the
// bytes it holds in memory; one reporting 0 is not asked.
type ResidentSizer interface {
	ResidentBytes() int64
}

// ReclaimerOptions configures a Reclaimer. MB means 2^20 bytes.
type ReclaimerOptions struct {
	// SoftLimitMB is the process memory above which a reclaim runs: the
	// adapt level of the process_memory_mb ladder. Required, > 0.
	SoftLimitMB int64
	// MarginMB is how far below the soft limit a reclaim aims. 0 means 5 %
	// of SoftLimitMB (rounded down); must be below SoftLimitMB.
	MarginMB int64
	// NoFreeOSMemory disables the debug.FreeOSMemory call after a reclaim
	// that freed memory. That call runs a garbage collection and returns
	// the freed pages to the kernel, so that the next sample's RSS shows
	// the effect of the reclaim instead of prompting another one.
	NoFreeOSMemory bool
	// Logger receives reclaims and eviction failures. Nil discards them.
	Logger *slog.Logger
}

// Reclaimer asks the Evictables registered with it to free memory when
// this process's anonymous resident memory (Sample.ProcessAnonBytes: RSS
// minus file-backed and shared pages, the memory the OOM killer and the
// cgroup limit charge to the process) goes over a soft limit, down to the
// limit minus a margin. That is the adaptation of the process memory
// ladder; the Breaker owns its pause level (the hard limit).
//
// Reclaims run in Observe, on the goroutine that calls it: attach the
// Reclaimer to a Monitor (Attach) to observe every sample on the monitor's
// goroutine. A reclaim runs at most once per fresh sample and never
// concurrently with another; Evictables are asked lowest priority first,
// without any lock held, and their panics are recovered. All methods are
// safe for concurrent use.
type Reclaimer struct {
	soft   int64 // bytes
	margin int64 // bytes
	freeOS bool
	log    *slog.Logger

	reclaiming atomic.Bool
	reclaims   atomic.Uint64
	freed      atomic.Int64

	// mu guards the fields below.
	mu       sync.Mutex
	entries  []*evictEntry
	seq      uint64
	lastSeen time.Time
	detach   []func()
	closed   bool
}

type evictEntry struct {
	e        Evictable
	priority int
	seq      uint64
}

// NewReclaimer validates opts and returns a Reclaimer. The error names the
// field and the accepted range.
func NewReclaimer(opts ReclaimerOptions) (*Reclaimer, error) {
	const maxMB = math.MaxInt64 / MB
	if opts.SoftLimitMB < 1 || opts.SoftLimitMB > maxMB {
		return nil, fmt.Errorf("throttle: ReclaimerOptions.SoftLimitMB = %d: must be in [1, %d]", opts.SoftLimitMB, int64(maxMB))
	}
	if opts.MarginMB < 0 || opts.MarginMB >= opts.SoftLimitMB {
		return nil, fmt.Errorf("throttle: ReclaimerOptions.MarginMB = %d: must be in [0, %d) (below SoftLimitMB; 0: 5 %% of it)", opts.MarginMB, opts.SoftLimitMB)
	}
	if opts.MarginMB == 0 {
		opts.MarginMB = opts.SoftLimitMB / 20
	}
	return &Reclaimer{
		soft:   opts.SoftLimitMB * MB,
		margin: opts.MarginMB * MB,
		freeOS: !opts.NoFreeOSMemory,
		log:    loggerOrDiscard(opts.Logger),
	}, nil
}

// Register adds e to the Evictables asked to free memory, with a priority:
// lower is asked first; ties go in registration order. unregister removes
// it; it is idempotent.
func (r *Reclaimer) Register(e Evictable, priority int) (unregister func()) {
	r.mu.Lock()
	r.seq++
	ent := &evictEntry{e: e, priority: priority, seq: r.seq}
	r.entries = append(r.entries, ent)
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.entries = slices.DeleteFunc(r.entries, func(x *evictEntry) bool { return x == ent })
	}
}

// Attach subscribes the Reclaimer to sub (normally a *Monitor) so that
// every sample is observed and reclaims run on the monitor's goroutine.
// detach undoes it; Close detaches everything.
func (r *Reclaimer) Attach(sub Subscriber) (detach func()) {
	cancel := sub.Subscribe(r.Observe)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		cancel()
		return func() {}
	}
	r.detach = append(r.detach, cancel)
	return cancel
}

// Observe runs a reclaim when the fresh sample s shows this process's
// memory over the soft limit. Samples not newer than the last observed are
// ignored, so one sample causes at most one reclaim. It blocks while the
// Evictables work.
func (r *Reclaimer) Observe(s *Sample) {
	if s == nil {
		return
	}
	r.mu.Lock()
	fresh := s.Time.After(r.lastSeen) && !r.closed
	if fresh {
		r.lastSeen = s.Time
	}
	r.mu.Unlock()
	if !fresh || s.ProcessAnonBytes <= r.soft {
		return
	}
	need := s.ProcessAnonBytes - (r.soft - r.margin)
	freed, err := r.Reclaim(need)
	r.log.Info("throttle: reclaim", "need_bytes", need, "freed_bytes", freed, "process_anon_mb", s.ProcessAnonBytes/MB, "soft_limit_mb", r.soft/MB)
	if err != nil {
		r.log.Warn("throttle: reclaim: eviction failed", "error", err)
	}
}

// Reclaim asks the registered Evictables, lowest priority first, to free
// need bytes in total, and returns how many they freed and their errors
// joined. It returns (0, nil) at once if another reclaim is running. After
// freeing something it calls debug.FreeOSMemory unless NoFreeOSMemory is
// set. Evictables are called without any lock held; their panics are
// returned as *PanicError values.
func (r *Reclaimer) Reclaim(need int64) (freed int64, err error) {
	if need <= 0 || !r.reclaiming.CompareAndSwap(false, true) {
		return 0, nil
	}
	defer r.reclaiming.Store(false)
	r.mu.Lock()
	entries := slices.Clone(r.entries)
	r.mu.Unlock()
	slices.SortStableFunc(entries, func(a, b *evictEntry) int {
		return cmp.Or(cmp.Compare(a.priority, b.priority), cmp.Compare(a.seq, b.seq))
	})
	var errs []error
	for _, ent := range entries {
		if freed >= need {
			break
		}
		if rs, ok := ent.e.(ResidentSizer); ok {
			var resident int64 = -1
			_ = callProtected("ResidentSizer.ResidentBytes", func() error { resident = rs.ResidentBytes(); return nil })
			if resident == 0 {
				continue
			}
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
	r.reclaims.Add(1)
	r.freed.Add(freed)
	if freed > 0 && r.freeOS {
		debug.FreeOSMemory()
	}
	return freed, errors.Join(errs...)
}

// ReclaimerStats counts the reclaims of a Reclaimer.
type ReclaimerStats struct {
	// Reclaims counts the reclaims run (by Observe or Reclaim).
	Reclaims uint64 `json:"reclaims"`
	// FreedBytes is the total the Evictables reported freeing.
	FreedBytes int64 `json:"freed_bytes"`
	// Registered is the number of Evictables registered now.
	Registered int `json:"registered"`
	// SoftLimitMB is the level above which reclaims run.
	SoftLimitMB int64 `json:"soft_limit_mb"`
}

// Stats returns the reclaim counters.
func (r *Reclaimer) Stats() ReclaimerStats {
	r.mu.Lock()
	n := len(r.entries)
	r.mu.Unlock()
	return ReclaimerStats{Reclaims: r.reclaims.Load(), FreedBytes: r.freed.Load(), Registered: n, SoftLimitMB: r.soft / MB}
}

// Close detaches the Reclaimer from every Subscriber and makes Observe a
// no-op. It is idempotent and returns nil.
func (r *Reclaimer) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	detach := r.detach
	r.detach = nil
	r.mu.Unlock()
	for _, d := range detach {
		d()
	}
	return nil
}
