package disk

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cemaf-go/cemaf/limit"
)

// Defaults for zero GuardOptions fields.
const (
	DefaultMaxUsedPercent  = 95.0
	DefaultRefreshInterval = 5 * time.Second
)

// GuardOptions configure a Guard. The zero value trips at 95 % used, has no
// free-space minimum and refreshes at most every 5 s.
type GuardOptions struct {
	// MaxUsedPercent is the highest Usage.UsedPercent at which work may
	// proceed, in (0, 100] (default 95).
	MaxUsedPercent float64
	// MinFreeBytes is the least free space (Usage.FreeBytes) at which work
	// may proceed; 0 means no minimum. Must be ≥ 0.
	MinFreeBytes int64
	// RefreshInterval is how old the cached statfs result may get before
	// Check refreshes it (default 5 s, must be ≥ 0).
	RefreshInterval time.Duration
}

// Guard blocks work while the file system holding a path is too full. It
// satisfies the module's guard interface (executor.Gate and
// executor.Checker).
//
// Check is cheap: it serves a cached statfs result and refreshes it, with
// one statfs call on the calling goroutine, at most once per
// RefreshInterval (concurrent callers do not pile up: one refreshes, the
// others use the previous result). A Guard starts no goroutine. Safe for
// concurrent use.
type Guard struct {
	path     string
	maxPct   float64
	minFree  int64
	interval time.Duration
	stat     func(string) (Usage, error)

	cur        atomic.Pointer[cachedUsage]
	refreshing atomic.Bool
}

type cachedUsage struct {
	u   Usage
	err error
	at  time.Time
}

// NewGuard returns a Guard on the file system holding path, which must
// exist: NewGuard takes the first statfs reading and returns its error.
func NewGuard(path string, opts GuardOptions) (*Guard, error) {
	if path == "" {
		return nil, fmt.Errorf("disk: NewGuard: path is empty")
	}
	if opts.MaxUsedPercent == 0 {
		opts.MaxUsedPercent = DefaultMaxUsedPercent
	}
	if math.IsNaN(opts.MaxUsedPercent) || opts.MaxUsedPercent <= 0 || opts.MaxUsedPercent > 100 {
		return nil, fmt.Errorf("disk: GuardOptions.MaxUsedPercent = %g: must be in (0, 100]", opts.MaxUsedPercent)
	}
	if opts.MinFreeBytes < 0 {
		return nil, fmt.Errorf("disk: GuardOptions.MinFreeBytes = %d: must be ≥ 0 (0 means no minimum)", opts.MinFreeBytes)
	}
	if opts.RefreshInterval < 0 {
		return nil, fmt.Errorf("disk: GuardOptions.RefreshInterval = %v: must be > 0 (0 means %v)", opts.RefreshInterval, DefaultRefreshInterval)
	}
	if opts.RefreshInterval == 0 {
		opts.RefreshInterval = DefaultRefreshInterval
	}
	g := &Guard{
		path:     path,
		maxPct:   opts.MaxUsedPercent,
		minFree:  opts.MinFreeBytes,
		interval: opts.RefreshInterval,
		stat:     Stat,
	}
	u, err := g.stat(path)
	if err != nil {
		return nil, err
	}
	g.cur.Store(&cachedUsage{u: u, at: time.Now()})
	return g, nil
}

// latest returns the cached reading, refreshing it first if it is older
// than the interval and no other goroutine is refreshing.
func (g *Guard) latest() *cachedUsage {
	c := g.cur.Load()
	if time.Since(c.at) < g.interval || !g.refreshing.CompareAndSwap(false, true) {
		return c
	}
	defer g.refreshing.Store(false)
	u, err := g.stat(g.path)
	c = &cachedUsage{u: u, err: err, at: time.Now()}
	g.cur.Store(c)
	return c
}

// Usage returns the cached usage (refreshed first if older than the
// interval) and the error of that statfs call.
func (g *Guard) Usage() (Usage, error) {
	c := g.latest()
	return c.u, c.err
}

// Check reports, without blocking, whether work may proceed: nil, or a
// *limit.Error (throttle.LimitError) of kind disk with Subject the path —
// in "%" when UsedPercent is above MaxUsedPercent, in bytes used against
// the bytes usable while keeping MinFreeBytes free otherwise — or the
// statfs error when the file system cannot be queried (a file system that
// cannot be queried is not safe to write to).
//
// Cost: an atomic load and a clock read; one statfs call per
// RefreshInterval. It allocates only when it returns an error.
func (g *Guard) Check() error {
	c := g.latest()
	if c.err != nil {
		return c.err
	}
	u := c.u
	if u.UsedPercent > g.maxPct {
		return &limit.Error{
			Kind:    limit.Disk,
			Subject: g.path,
			Current: math.Round(u.UsedPercent*100) / 100,
			Limit:   g.maxPct,
			Unit:    "%",
			Detail:  fmtBytes(u.FreeBytes) + " free",
		}
	}
	if g.minFree > 0 && u.FreeBytes < g.minFree {
		return &limit.Error{
			Kind:    limit.Disk,
			Subject: g.path,
			Current: float64(u.UsedBytes),
			Limit:   float64(max(u.UsedBytes+u.FreeBytes-g.minFree, 0)),
			Unit:    "bytes",
			Detail:  fmtBytes(u.FreeBytes) + " free, below the minimum of " + fmtBytes(g.minFree),
		}
	}
	return nil
}

// Wait blocks while Check returns an error, re-checking once per
// RefreshInterval, and returns nil as soon as the file system has room. It
// returns ctx's error (its cause, if set) when ctx ends first. Disk space
// has no predictable release time, so Wait does not fail fast on a
// deadline.
func (g *Guard) Wait(ctx context.Context) error {
	for {
		if g.Check() == nil {
			return nil
		}
		c := g.cur.Load()
		d := max(g.interval-time.Since(c.at), time.Millisecond)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}

func fmtBytes(n int64) string {
	return strconv.FormatFloat(float64(n)/BytesPerMB, 'f', 1, 64) + " MB"
}
