package factories

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/cemaf-go/cemaf/adaptive"
	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/disk"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/paging"
	"github.com/cemaf-go/cemaf/thermal"
	"github.com/cemaf-go/cemaf/throttle"
)

// Names of the members of the composite guard built by CreateResourceGuard;
// Overrides.Guards replaces them by these names or adds new ones.
const (
	GuardBreaker = "breaker" // CPU, memory %, temperature and disk % with cooldown
	GuardMemory  = "memory"  // process memory soft/hard MB limits
	GuardThermal = "thermal" // the thermal manager's critical temperature
	GuardDisk    = "disk"    // usage of the pager's file system
)

// Overrides replace components that the factories would build.
type Overrides struct {
	// Guards replaces members of the composite guard by name (GuardBreaker,
	// GuardMemory, GuardThermal, GuardDisk) or adds members with other
	// names. A nil guard removes the member.
	Guards map[string]throttle.Guard
	// SampleSource replaces the procfs sampler (tests, exotic platforms).
	SampleSource throttle.SampleSource
	// Logger receives the components' logs; nil discards them.
	Logger *slog.Logger
}

// ResourceGuard is the composite guard of the runtime with the components
// it reads: a Monitor sampling the host, a thermal Manager (nil on machines
// without thermal zones), the circuit Breaker and the MemoryGuard. It owns
// their goroutines: Close stops them. It satisfies throttle.Guard and
// executor.Gate.
type ResourceGuard struct {
	*throttle.CompositeGuard
	Monitor *throttle.Monitor
	Sampler *throttle.Sampler // nil when Overrides.SampleSource is set
	Thermal *thermal.Manager  // nil without usable thermal zones
	Breaker *throttle.Breaker
	Memory  *throttle.MemoryGuard
	// ThermalErr says why Thermal is nil (thermal.ErrNoSensors on a
	// machine without zones).
	ThermalErr error

	closers []func() error
}

// CreateResourceGuard builds and starts the resource guard of cfg: a
// Monitor over the host's procfs, sysfs and cgroup files, a thermal Manager
// when the board has sensors, a circuit Breaker with cfg's thresholds, a
// MemoryGuard with cfg's MB limits, and a disk guard on the file system of
// the pager's storage, combined with the "any" strategy. Overrides replace
// members. The caller must Close it.
func CreateResourceGuard(cfg ResourceConfig, ov Overrides) (*ResourceGuard, error) {
	logger := ov.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g := &ResourceGuard{}
	ok := false
	defer func() {
		if !ok {
			g.Close()
		}
	}()

	// Thermal first: the sampler reads its temperature as a signal.
	tm, err := thermal.New(thermal.Options{
		SysfsRoot:  cfg.SysfsRoot,
		SensorPath: cfg.ThermalSensorPath,
		WarningC:   cfg.ThermalWarningC,
		CriticalC:  cfg.ThermalCriticalC,
		Logger:     logger,
	})
	switch {
	case err == nil:
		if err := tm.Start(context.Background()); err != nil {
			return nil, fmt.Errorf("factories: start thermal manager: %w", err)
		}
		g.Thermal = tm
		g.closers = append(g.closers, tm.Close)
	case errors.Is(err, thermal.ErrNoSensors) && cfg.ThermalSensorPath == "":
		g.ThermalErr = err
		logger.Info("factories: no thermal sensors; temperature is not watched", "sysfs_root", cfg.SysfsRoot)
	default:
		return nil, fmt.Errorf("factories: thermal manager: %w", err)
	}

	fsPath := storageFS(cfg)
	src := ov.SampleSource
	if src == nil {
		var signals []throttle.Signal
		if g.Thermal != nil {
			signals = append(signals, throttle.Signal{Name: throttle.SignalTemperatureC, Unit: "°C", Read: g.Thermal.TemperatureC})
		}
		s, err := throttle.NewSampler(throttle.SamplerOptions{
			ProcRoot: cfg.ProcfsRoot, SysRoot: cfg.SysfsRoot, CgroupRoot: cfg.CgroupRoot,
			DiskPaths: []string{fsPath}, Signals: signals, Logger: logger,
		})
		if err != nil {
			return nil, fmt.Errorf("factories: sampler: %w", err)
		}
		g.Sampler, src = s, s
	}
	mon, err := throttle.NewMonitor(src, throttle.MonitorOptions{CheckInterval: cfg.CheckInterval, MetricsPath: cfg.MetricsPath, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("factories: monitor: %w", err)
	}
	g.Monitor = mon

	br, err := throttle.NewBreaker(throttle.BreakerOptions{
		Thresholds: map[string]float64{
			throttle.SignalCPUPercent:    cfg.CPUThreshold,
			throttle.SignalMemoryPercent: cfg.MemoryThreshold,
			throttle.SignalTemperatureC:  cfg.TempThreshold,
			throttle.SignalDiskPercent:   cfg.DiskThreshold,
		},
		Cooldown:      cfg.Cooldown,
		CheckInterval: cfg.CheckInterval,
		TripAfter:     cfg.TripAfter,
		Logger:        logger,
	})
	if err != nil {
		return nil, fmt.Errorf("factories: breaker: %w", err)
	}
	g.Breaker = br
	g.closers = append(g.closers, noErr(br.Attach(mon)))

	mg, err := throttle.NewMemoryGuard(mon, throttle.MemoryGuardOptions{
		SoftLimitMB: cfg.MemorySoftLimitMB, HardLimitMB: cfg.MemoryHardLimitMB, Logger: logger,
	})
	if err != nil {
		return nil, fmt.Errorf("factories: memory guard: %w", err)
	}
	g.Memory = mg
	g.closers = append(g.closers, noErr(mg.Attach(mon)), mg.Close)

	members := map[string]throttle.Guard{GuardBreaker: br, GuardMemory: mg}
	if g.Thermal != nil {
		tg, err := thermal.NewGuard(g.Thermal, thermal.GuardOptions{})
		if err != nil {
			return nil, fmt.Errorf("factories: thermal guard: %w", err)
		}
		members[GuardThermal] = tg
	}
	if dg, err := disk.NewGuard(fsPath, disk.GuardOptions{MaxUsedPercent: cfg.DiskThreshold, RefreshInterval: cfg.CheckInterval}); err == nil {
		members[GuardDisk] = dg
	} else {
		logger.Info("factories: disk usage not guarded", "path", fsPath, "error", err)
	}
	for name, og := range ov.Guards {
		if og == nil {
			delete(members, name)
		} else {
			members[name] = og
		}
	}
	names := make([]string, 0, len(members))
	for n := range members {
		names = append(names, n)
	}
	slices.Sort(names)
	list := make([]throttle.CompositeMember, 0, len(names))
	for _, n := range names {
		list = append(list, throttle.CompositeMember{Name: n, Guard: members[n]})
	}
	cg, err := throttle.NewCompositeGuard(list, throttle.CompositeOptions{})
	if err != nil {
		return nil, fmt.Errorf("factories: composite guard: %w", err)
	}
	g.CompositeGuard = cg

	if err := mon.Start(); err != nil {
		return nil, fmt.Errorf("factories: start monitor: %w", err)
	}
	g.closers = append(g.closers, mon.Close)
	ok = true
	return g, nil
}

// CreateResourceGuardFromConfig is CreateResourceGuard over FromEnv.
func CreateResourceGuardFromConfig() (*ResourceGuard, error) {
	cfg, err := FromEnv()
	if err != nil {
		return nil, err
	}
	return CreateResourceGuard(cfg, Overrides{})
}

// Close stops the monitor and the thermal manager and waits for their
// goroutines. It is idempotent.
func (g *ResourceGuard) Close() error {
	var errs []error
	for i := len(g.closers) - 1; i >= 0; i-- {
		errs = append(errs, g.closers[i]())
	}
	g.closers = nil
	return errors.Join(errs...)
}

func noErr(f func()) func() error { return func() error { f(); return nil } }

// storageFS is the existing directory whose file system holds the pager's
// storage (the storage path itself may not exist yet).
func storageFS(cfg ResourceConfig) string {
	p := cfg.PagerStoragePath
	if p == "" {
		p = os.TempDir()
	}
	for {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p
		}
		parent := filepath.Dir(p)
		if parent == p {
			return p
		}
		p = parent
	}
}

// CreateContextPager wraps state (a new MemoryState if nil) in a context
// pager configured by cfg: memory limit, page size, storage path. An empty
// storage path means a temporary directory removed at Close.
func CreateContextPager(cfg ResourceConfig, state dag.State, opts paging.Options) (*paging.Pager, error) {
	if state == nil {
		state = dag.NewMemoryState()
	}
	opts.MemoryLimitMB = cfg.PagerMemoryLimitMB
	opts.PageSizeMB = cfg.PagerPageSizeMB
	if opts.StoragePath == "" {
		opts.StoragePath = cfg.PagerStoragePath
	}
	p, err := paging.Wrap(state, opts)
	if err != nil {
		return nil, fmt.Errorf("factories: context pager: %w", err)
	}
	return p, nil
}

// AdaptiveDeps are the components CreateAdaptiveExecutor wires together.
// All are optional.
type AdaptiveDeps struct {
	Guard    *ResourceGuard // gate of every node, breaker of Guarded, sample source
	Pager    *paging.Pager  // shrunk under memory pressure
	LogLevel *slog.LevelVar // raised under disk pressure
	Logger   *slog.Logger
	// Executor sets the base executor's other options (timeouts, retries,
	// observers, checkpoints); Limits.CPU and Gate are set from cfg and
	// Guard.
	Executor executor.Options
	// Adaptive sets the adaptive executor's options (triggers,
	// adaptations); Breaker, Pager, LogLevel and Logger come from the deps.
	Adaptive adaptive.Options
}

// CreateAdaptiveExecutor builds the base executor (Limits.CPU from cfg,
// the resource guard as its Gate) and the adaptive executor around it,
// attached to the guard's Monitor. Close the adaptive executor to detach.
func CreateAdaptiveExecutor(cfg ResourceConfig, deps AdaptiveDeps) (*adaptive.Executor, *executor.Executor, error) {
	eo := deps.Executor
	eo.Limits = executor.Limits{CPU: cfg.MaxParallel}
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
	ao.LogLevel, ao.Logger = deps.LogLevel, deps.Logger
	if deps.Pager != nil {
		ao.Pager = deps.Pager
	}
	if deps.Guard != nil {
		ao.Breaker = deps.Guard.Breaker
	}
	ae, err := adaptive.New(base, ao)
	if err != nil {
		return nil, nil, fmt.Errorf("factories: adaptive executor: %w", err)
	}
	if deps.Guard != nil {
		ae.Attach(deps.Guard.Monitor)
	}
	return ae, base, nil
}
