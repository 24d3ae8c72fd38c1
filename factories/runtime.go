package factories

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"

	"github.com/cemaf-go/cemaf/adaptive"
	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/disk"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/metrics"
	"github.com/cemaf-go/cemaf/paging"
	"github.com/cemaf-go/cemaf/throttle"
)

// RuntimeOptions complete a ResourceConfig for NewRuntime. The zero value is
// valid. What the runtime builds from the configuration (the executor's
// limits and gate, the adaptive executor's guard, pager, throttler and log
// level) cannot also be set here: NewRuntime refuses, naming the field and
// where to set it instead, rather than overwrite it silently.
type RuntimeOptions struct {
	// Guard completes the resource guard: guards of the application's
	// own, extra storage directories and helper endpoints.
	Guard GuardOptions
	// State is the State the pager wraps; nil means a new MemoryState.
	State dag.State
	// Pager sets the pager's other options (pinned and prefetched keys,
	// durable mode); size and storage come from the config.
	Pager paging.Options
	// CheckpointPath, if set, is the checkpoint file that makes runs
	// resumable after a crash.
	CheckpointPath string
	Checkpoints    executor.CheckpointOptions
	// Executor and Adaptive set the executors' other options (timeouts,
	// retries, observers; modes, adaptations, priority).
	Executor executor.Options
	Adaptive adaptive.Options
	// Metrics sets the options of the run metrics (histogram buckets, node
	// label); see Runtime.Metrics.
	Metrics metrics.Options
	// LogLevel is the application's log level, turned down in low_disk
	// mode; Logger receives the components' logs (nil: discarded) unless
	// a component's own options name another.
	LogLevel *slog.LevelVar
	Logger   *slog.Logger
}

// Runtime is the whole resource-aware stack of an application, built from
// one ResourceConfig: the resource guard (monitor, sampler with the helper
// processes, thermal manager, the Breaker with every signal's ladder, the
// Reclaimer), the context pager (registered with the Reclaimer, so memory
// pressure pages it out), an optional checkpoint store, the CPU and disk
// throttlers, the adaptive executor over the base executor, and the run
// metrics. Close stops and releases all of it.
type Runtime struct {
	Config      ResourceConfig
	Guard       *ResourceGuard
	Pager       *paging.Pager
	Checkpoints *executor.CheckpointStore // nil without CheckpointPath
	CPU         *throttle.CPUThrottler
	Disk        *disk.Throttler
	Base        *executor.Executor
	Executor    *adaptive.Executor
	// Metrics counts the runs and nodes of the base executor (it is one
	// of its observers) and the adaptive executor's mode changes; feed it
	// LLM calls with ObserveLLM. WritePrometheus writes it with the
	// device signals.
	Metrics *metrics.Metrics

	closers []func() error
}

// checkOptions refuses options that the runtime sets from the
// configuration.
func (o *RuntimeOptions) checkOptions() error {
	var errs []error
	refuse := func(field, instead string) {
		errs = append(errs, fmt.Errorf("factories: RuntimeOptions.%s is set, but the runtime sets it: %s", field, instead))
	}
	if o.Executor.Limits != (executor.Limits{}) {
		refuse("Executor.Limits", "set CEMAF_RESOURCE_CPU_PARALLEL and IO_PARALLEL (or ResourceConfig.CPUParallel and IOParallel) instead")
	}
	if o.Executor.Gate != nil {
		refuse("Executor.Gate", "add it to RuntimeOptions.Guard.Guards instead, where it joins the resource guard")
	}
	if o.Executor.Checkpoints != nil && o.CheckpointPath != "" {
		refuse("Executor.Checkpoints", "give either a store or RuntimeOptions.CheckpointPath, not both")
	}
	if o.Adaptive.Guard != nil {
		refuse("Adaptive.Guard", "it is the resource guard; add guards to RuntimeOptions.Guard.Guards instead")
	}
	if o.Adaptive.Pager != nil {
		refuse("Adaptive.Pager", "it is the runtime's pager; configure it with RuntimeOptions.Pager")
	}
	if o.Adaptive.Throttler != nil {
		refuse("Adaptive.Throttler", "it is the runtime's CPU throttler (CEMAF_RESOURCE_CPU_TARGET_PERCENT)")
	}
	if o.Adaptive.LogLevel != nil {
		refuse("Adaptive.LogLevel", "set RuntimeOptions.LogLevel instead")
	}
	return errors.Join(errs...)
}

// NewRuntime builds and starts a Runtime. On error, whatever was started is
// stopped again.
func NewRuntime(cfg ResourceConfig, opts RuntimeOptions) (*Runtime, error) {
	if err := opts.checkOptions(); err != nil {
		return nil, err
	}
	if opts.Guard.Logger == nil {
		opts.Guard.Logger = opts.Logger
	}
	if len(opts.Guard.StorageDirs) == 0 {
		dirs := storageFileSystems(cfg, nil)
		if opts.CheckpointPath != "" {
			dirs = append(dirs, filepath.Dir(opts.CheckpointPath))
		}
		opts.Guard.StorageDirs = dirs
	}
	rt := &Runtime{Config: cfg}
	ok := false
	defer func() {
		if !ok {
			rt.Close()
		}
	}()
	g, err := CreateResourceGuard(cfg, opts.Guard)
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
	rt.closers = append(rt.closers, p.Close, noErr(g.Reclaimer.Register(p, 0)))

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

	if rt.CPU, err = g.NewCPUThrottler(cfg, opts.Logger); err != nil {
		return nil, err
	}
	if rt.Disk, err = disk.NewThrottler(disk.Options{WriteMBps: cfg.DiskMaxWriteMBps, ReadMBps: cfg.DiskMaxReadMBps}); err != nil {
		return nil, fmt.Errorf("factories: disk throttler: %w", err)
	}

	if rt.Metrics, err = metrics.New(opts.Metrics); err != nil {
		return nil, fmt.Errorf("factories: %w", err)
	}
	ae, base, err := CreateAdaptiveExecutor(cfg, AdaptiveDeps{
		Guard: g, Pager: p, CPU: rt.CPU, LogLevel: opts.LogLevel, Logger: opts.Logger,
		Executor: opts.Executor, Adaptive: opts.Adaptive, Metrics: rt.Metrics,
	})
	if err != nil {
		return nil, err
	}
	rt.Base, rt.Executor = base, ae
	rt.closers = append(rt.closers, ae.Close)
	ok = true
	return rt, nil
}

// AdaptiveDeps are the components CreateAdaptiveExecutor wires together.
// All are optional.
type AdaptiveDeps struct {
	Guard    *ResourceGuard         // gate of every node, guard of Guarded, ladders to follow
	Pager    *paging.Pager          // shrunk under memory pressure
	CPU      *throttle.CPUThrottler // target lowered when hot or contended
	LogLevel *slog.LevelVar         // raised under disk pressure
	Logger   *slog.Logger
	// Metrics, if set, observes the base executor's runs and the adaptive
	// executor's mode changes (from the first, which attaching to a
	// Breaker already under pressure makes).
	Metrics *metrics.Metrics
	// Executor sets the base executor's other options (timeouts, retries,
	// observers, checkpoints); Limits come from cfg and Gate from Guard.
	Executor executor.Options
	// Adaptive sets the adaptive executor's options (modes, adaptations,
	// priority); Guard, Pager, Throttler and LogLevel come from the deps.
	Adaptive adaptive.Options
}

// CreateAdaptiveExecutor builds the base executor (the concurrency limits
// of cfg, the resource guard as its Gate, deps.Metrics among its observers)
// and the adaptive executor around it, following the guard's Breaker.
// Close the adaptive executor to detach.
func CreateAdaptiveExecutor(cfg ResourceConfig, deps AdaptiveDeps) (*adaptive.Executor, *executor.Executor, error) {
	eo := deps.Executor
	eo.Limits = executor.Limits{CPU: cfg.CPUParallel, IO: cfg.IOParallel}
	if deps.Metrics != nil {
		eo.Observers = append(slices.Clip(eo.Observers), deps.Metrics)
	}
	if deps.Guard != nil {
		eo.Gate = deps.Guard
	}
	if eo.Logger == nil {
		eo.Logger = deps.Logger
	}
	base, err := executor.New(eo)
	if err != nil {
		return nil, nil, fmt.Errorf("factories: executor: %w", err)
	}
	ao := deps.Adaptive
	ao.LogLevel = deps.LogLevel
	if ao.Logger == nil {
		ao.Logger = deps.Logger
	}
	if deps.Pager != nil {
		ao.Pager = deps.Pager
	}
	if deps.CPU != nil {
		ao.Throttler = deps.CPU
	}
	if deps.Guard != nil {
		ao.Guard = deps.Guard
	}
	ae, err := adaptive.New(base, ao)
	if err != nil {
		return nil, nil, fmt.Errorf("factories: adaptive executor: %w", err)
	}
	if m := deps.Metrics; m != nil {
		m.SetMode(string(ae.CurrentMode())) // before any change, which Attach may make
		ae.OnModeChange(func(c adaptive.ModeChange) { m.ModeChanged(string(c.From), string(c.To)) })
	}
	if deps.Guard != nil {
		ae.Attach(deps.Guard.Breaker)
	}
	return ae, base, nil
}

// State is the paged State runs should use.
func (rt *Runtime) State() dag.State { return rt.Pager }

// Close stops the runtime: the adaptive executor detaches and restores its
// settings, the pager flushes and closes, the checkpoint store closes, and
// the monitor stops. Runs must have returned. It is idempotent.
func (rt *Runtime) Close() error {
	var errs []error
	for i := len(rt.closers) - 1; i >= 0; i-- {
		errs = append(errs, rt.closers[i]())
	}
	rt.closers = nil
	return errors.Join(errs...)
}
