package throttle

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// Guard is the small interface every resource guard of the module
// implements: the Breaker, CPUGuard, MemoryGuard, DiskGuard, CompositeGuard,
// and the guards of packages thermal and disk. It is a superset of the
// executor's Gate and Checker interfaces.
type Guard interface {
	// Wait blocks while the resource is over its limit. It returns nil
	// when work may proceed, or an error when ctx ends first
	// (context.Cause(ctx)) or when the wait cannot succeed.
	Wait(ctx context.Context) error
	// Check reports, without blocking, why Wait would block now: nil when
	// work may proceed, otherwise an error, normally a *LimitError (or
	// one that wraps several), saying which resource is over which limit.
	Check() error
}

// waitFresh implements Wait for the guards that read a SnapshotSource:
// while check fails it waits for the next sample and checks again.
func waitFresh(ctx context.Context, src SnapshotSource, check func() error) error {
	for {
		next := src.Next()
		if check() == nil {
			return nil
		}
		select {
		case <-next:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// CPUGuardOptions configures a CPUGuard. The zero value trips when the
// system CPU use is over 90 %.
type CPUGuardOptions struct {
	// MaxPercent is the CPU use, in percent (0, 100], above which the
	// guard trips. Default 90.
	MaxPercent float64
	// Process makes the guard compare this process's share of all CPUs
	// (process_cpu_percent) instead of the system's (cpu_percent).
	Process bool
}

// CPUGuard trips when the CPU use in the latest sample is over a percentage.
// It reads the SnapshotSource only (an atomic load), never /proc. Before the
// first sample it does not trip. It is safe for concurrent use.
type CPUGuard struct {
	src    SnapshotSource
	max    float64
	signal string
}

// NewCPUGuard returns a CPUGuard over src (normally a *Monitor).
func NewCPUGuard(src SnapshotSource, opts CPUGuardOptions) (*CPUGuard, error) {
	if src == nil {
		return nil, errors.New("throttle: NewCPUGuard: src is nil: must be a SnapshotSource")
	}
	if opts.MaxPercent == 0 {
		opts.MaxPercent = 90
	}
	if err := checkPercent("CPUGuardOptions.MaxPercent", opts.MaxPercent); err != nil {
		return nil, err
	}
	g := &CPUGuard{src: src, max: opts.MaxPercent, signal: SignalCPUPercent}
	if opts.Process {
		g.signal = SignalProcessCPUPercent
	}
	return g, nil
}

// Check returns a *LimitError (KindCPU, unit "%") when the latest sample's
// CPU use is over the limit, nil otherwise. It does not block and does not
// allocate when under the limit.
func (g *CPUGuard) Check() error {
	s := g.src.Snapshot().Sample
	if s == nil {
		return nil
	}
	v := s.CPUPercent
	if g.signal == SignalProcessCPUPercent {
		v = s.ProcessCPUPercent
	}
	if v > g.max {
		return &LimitError{Kind: KindCPU, Subject: g.signal, Current: v, Limit: g.max, Unit: "%"}
	}
	return nil
}

// Wait blocks until a sample says the CPU use is at or under the limit, or
// ctx ends.
func (g *CPUGuard) Wait(ctx context.Context) error { return waitFresh(ctx, g.src, g.Check) }

// DiskGuardOptions configures a DiskGuard. The zero value trips when any
// sampled disk path is over 95 % used.
type DiskGuardOptions struct {
	// Path is the sampled disk path (one of SamplerOptions.DiskPaths) to
	// watch; empty watches the fullest of them.
	Path string
	// MaxPercent is the usage, in percent (0, 100], above which the guard
	// trips. Default 95.
	MaxPercent float64
}

// DiskGuard trips when the file system usage of a sampled path is over a
// percentage. It reads the SnapshotSource only; a path absent from the
// sample (not configured, or unreadable) does not trip it. It is safe for
// concurrent use.
type DiskGuard struct {
	src  SnapshotSource
	path string
	max  float64
}

// NewDiskGuard returns a DiskGuard over src (normally a *Monitor whose
// Sampler has opts.Path among its DiskPaths).
func NewDiskGuard(src SnapshotSource, opts DiskGuardOptions) (*DiskGuard, error) {
	if src == nil {
		return nil, errors.New("throttle: NewDiskGuard: src is nil: must be a SnapshotSource")
	}
	if opts.MaxPercent == 0 {
		opts.MaxPercent = 95
	}
	if err := checkPercent("DiskGuardOptions.MaxPercent", opts.MaxPercent); err != nil {
		return nil, err
	}
	return &DiskGuard{src: src, path: opts.Path, max: opts.MaxPercent}, nil
}

// Check returns a *LimitError (KindDisk, unit "%", Subject the path) when
// the watched path is over the limit, nil otherwise. It does not block and
// does not allocate when under the limit.
func (g *DiskGuard) Check() error {
	s := g.src.Snapshot().Sample
	if s == nil {
		return nil
	}
	for i := range s.Disks {
		d := &s.Disks[i]
		if (g.path == "" || d.Path == g.path) && d.UsedPercent > g.max {
			return &LimitError{Kind: KindDisk, Subject: d.Path, Current: d.UsedPercent, Limit: g.max, Unit: "%"}
		}
	}
	return nil
}

// Wait blocks until a sample says the usage is at or under the limit, or
// ctx ends.
func (g *DiskGuard) Wait(ctx context.Context) error { return waitFresh(ctx, g.src, g.Check) }

// checkPercent validates a percentage option: (0, 100].
func checkPercent(field string, v float64) error {
	if !(v > 0 && v <= 100) {
		return fmt.Errorf("throttle: %s = %v: must be in (0, 100]", field, v)
	}
	return nil
}

// checkPositive validates a positive finite option.
func checkPositive(field string, v float64) error {
	if !(v > 0) || math.IsInf(v, 1) {
		return fmt.Errorf("throttle: %s = %v: must be > 0 and finite", field, v)
	}
	return nil
}
