package factories

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/cemaf-go/cemaf/adaptive"
	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/disk"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/paging"
	"github.com/cemaf-go/cemaf/throttle"
)

// RuntimeOptions complete a ResourceConfig for NewRuntime. The zero value is
// valid.
type RuntimeOptions struct {
	Overrides Overrides
	// State is the State the pager wraps; nil means a new MemoryState.
	State dag.State
	// Pager sets the pager's other options (pinned and prefetched keys,
	// durable mode); size and storage come from the config.
	Pager paging.Options
	// CheckpointPath, if set, is the checkpoint file that makes runs
	// resumable after a crash.
	CheckpointPath string
	Checkpoints    executor.CheckpointOptions
	// Executor and Adaptive set the executors' other options.
	Executor executor.Options
	Adaptive adaptive.Options
	// LogLevel is the application's log level, turned down in low_disk
	// mode; Logger receives the components' logs (nil: discarded).
	LogLevel *slog.LevelVar
	Logger   *slog.Logger
}

// Runtime is the whole resource-aware stack of an application, built from one
// ResourceConfig: the resource guard (monitor, thermal manager, breaker,
// memory and disk guards), the context pager (registered with the memory
// guard, so memory pressure pages it out), an optional checkpoint store, the
// CPU and disk throttlers, and the adaptive executor over the base
// executor. Close stops and releases all of it.
type Runtime struct {
	Config      ResourceConfig
	Guard       *ResourceGuard
	Pager       *paging.Pager
	Checkpoints *executor.CheckpointStore // nil without CheckpointPath
	CPU         *throttle.CPUThrottler
	Disk        *disk.Throttler
	Base        *executor.Executor
	Executor    *adaptive.Executor

	closers []func() error
}

// NewRuntime builds and starts a Runtime. On error, whatever was started is
// stopped again.
func NewRuntime(cfg ResourceConfig, opts RuntimeOptions) (*Runtime, error) {
	if opts.Overrides.Logger == nil {
		opts.Overrides.Logger = opts.Logger
	}
	rt := &Runtime{Config: cfg}
	ok := false
	defer func() {
		if !ok {
			rt.Close()
		}
	}()
	g, err := CreateResourceGuard(cfg, opts.Overrides)
	if err != nil {
		return nil, err
	}
	rt.Guard = g
	rt.closers = append(rt.closers, g.Close)

	if opts.Pager.Logger == nil {
		opts.Pager.Logger = opts.Logger
	}
	p, err := CreateContextPager(cfg, opts.State, opts.Pager)
	if err != nil {
		return nil, err
	}
	rt.Pager = p
	rt.closers = append(rt.closers, p.Close, noErr(g.Memory.Register(p, 0)))

	if opts.CheckpointPath != "" {
		if opts.Checkpoints.Logger == nil {
			opts.Checkpoints.Logger = opts.Logger
		}
		cs, err := executor.OpenCheckpoints(opts.CheckpointPath, opts.Checkpoints)
		if err != nil {
			return nil, fmt.Errorf("factories: %w", err)
		}
		rt.Checkpoints = cs
		rt.closers = append(rt.closers, cs.Close)
		opts.Executor.Checkpoints = cs
	}

	if rt.CPU, err = throttle.NewCPUThrottler(throttle.CPUThrottlerOptions{TargetPercent: cfg.CPUTargetPercent, Logger: opts.Logger}); err != nil {
		return nil, fmt.Errorf("factories: CPU throttler: %w", err)
	}
	if rt.Disk, err = disk.NewThrottler(disk.Options{WriteMBps: cfg.DiskMaxWriteMBps, ReadMBps: cfg.DiskMaxReadMBps}); err != nil {
		return nil, fmt.Errorf("factories: disk throttler: %w", err)
	}

	ae, base, err := CreateAdaptiveExecutor(cfg, AdaptiveDeps{
		Guard: g, Pager: p, LogLevel: opts.LogLevel, Logger: opts.Logger,
		Executor: opts.Executor, Adaptive: opts.Adaptive,
	})
	if err != nil {
		return nil, err
	}
	rt.Base, rt.Executor = base, ae
	rt.closers = append(rt.closers, ae.Close)
	ok = true
	return rt, nil
}

// State is the paged State runs should use.
func (rt *Runtime) State() dag.State { return rt.Pager }

// Close stops the runtime: the adaptive executor detaches and restores its
// settings, the pager flushes and closes, the checkpoint store closes, and
// the monitor and thermal manager stop. Runs must have returned. It is
// idempotent.
func (rt *Runtime) Close() error {
	var errs []error
	for i := len(rt.closers) - 1; i >= 0; i-- {
		errs = append(errs, rt.closers[i]())
	}
	rt.closers = nil
	return errors.Join(errs...)
}
