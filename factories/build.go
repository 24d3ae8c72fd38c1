package factories

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/paging"
	"github.com/cemaf-go/cemaf/thermal"
	"github.com/cemaf-go/cemaf/throttle"
)

// GuardBreaker is the name of the Breaker in the composite guard built by
// CreateResourceGuard; GuardOptions.Guards adds members by other names.
const GuardBreaker = "breaker"

// GuardOptions complete a ResourceConfig for CreateResourceGuard. The zero
// value is valid.
type GuardOptions struct {
	// Guards adds members to the composite guard by name (a remote
	// connection, a maintenance switch), or replaces the Breaker
	// (GuardBreaker). A nil guard removes the member of that name.
	Guards map[string]throttle.Guard
	// StorageDirs are the directories the application writes to (pages,
	// checkpoints, reports). The disk ladder watches the file system of
	// each (once per file system). Empty means the pager's storage path,
	// or the temporary directory where the pager then puts its file.
	StorageDirs []string
	// HelperEndpoints are URLs of services the agent calls (its LLM
	// endpoint). A server listening on this host for one of them is one
	// of the agent's helpers: its CPU is the agent's own (see
	// throttle.Helpers). They add to the configuration's CPU_HELPERS.
	HelperEndpoints []string
	// SampleSource replaces the procfs sampler (tests, exotic platforms).
	SampleSource throttle.SampleSource
	// Logger receives the components' logs; nil discards them.
	Logger *slog.Logger
}

// ResourceGuard is the composite guard of the runtime with the components
// it reads: a Monitor sampling the host, the Sampler (with the helper
// processes it found), a thermal Manager (nil on machines without thermal
// zones), the Breaker that owns every signal's ladder, and the Reclaimer
// that pages memory out above the soft limit. It owns the Monitor's
// goroutine: Close stops it. It satisfies throttle.Guard and executor.Gate.
type ResourceGuard struct {
	*throttle.CompositeGuard
	Monitor   *throttle.Monitor
	Sampler   *throttle.Sampler // nil when GuardOptions.SampleSource is set
	Thermal   *thermal.Manager  // nil without usable thermal zones
	Breaker   *throttle.Breaker
	Reclaimer *throttle.Reclaimer
	// ThermalErr says why Thermal is nil (thermal.ErrNoSensors on a
	// machine without zones).
	ThermalErr error
	// DiskPaths are the directories whose file systems the disk ladder
	// watches, one per file system.
	DiskPaths []string
	// Helpers are the helper processes declared and to be found.
	Helpers throttle.Helpers

	closers []func() error
}

// CreateResourceGuard builds and starts the resource guard of cfg: a
// Monitor over the host's procfs, sysfs and cgroup files, with the
// temperature of the board's sensors and the usage of the storage file
// systems; the Breaker with cfg's ladders; the Reclaimer at cfg's soft
// limit; combined with the guards of opts. The caller must Close it.
func CreateResourceGuard(cfg ResourceConfig, opts GuardOptions) (*ResourceGuard, error) {
	logger := opts.Logger
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

	tm, err := thermal.New(thermal.Options{
		SysfsRoot:  cfg.SysfsRoot,
		SensorPath: cfg.ThermalSensorPath,
		AdaptC:     cfg.TempAdaptC,
		PauseC:     cfg.TempThreshold,
		Logger:     logger,
	})
	switch {
	case err == nil:
		g.Thermal = tm
	case errors.Is(err, thermal.ErrNoSensors) && cfg.ThermalSensorPath == "":
		g.ThermalErr = err
		logger.Info("factories: no thermal sensors; temperature is not watched", "sysfs_root", cfg.SysfsRoot)
	default:
		return nil, fmt.Errorf("factories: thermal manager: %w", err)
	}

	g.DiskPaths = storageFileSystems(cfg, opts.StorageDirs)
	g.Helpers = cfg.Helpers()
	g.Helpers.Endpoints = append(g.Helpers.Endpoints, opts.HelperEndpoints...)
	src := opts.SampleSource
	if src == nil {
		var signals []throttle.Signal
		if g.Thermal != nil {
			signals = append(signals, throttle.Signal{Name: throttle.SignalTemperatureC, Unit: "°C", Read: g.Thermal.ReadTemperatureC})
		}
		s, err := throttle.NewSampler(throttle.SamplerOptions{
			ProcRoot: cfg.ProcfsRoot, SysRoot: cfg.SysfsRoot, CgroupRoot: cfg.CgroupRoot,
			DiskPaths: g.DiskPaths, Signals: signals, Helpers: g.Helpers, Logger: logger,
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

	br, err := throttle.NewBreaker(throttle.BreakerOptions{Ladders: cfg.Ladders(), CheckInterval: cfg.CheckInterval, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("factories: breaker: %w", err)
	}
	g.Breaker = br
	g.closers = append(g.closers, noErr(br.Attach(mon)))

	rc, err := throttle.NewReclaimer(throttle.ReclaimerOptions{SoftLimitMB: cfg.MemorySoftLimitMB, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("factories: reclaimer: %w", err)
	}
	g.Reclaimer = rc
	g.closers = append(g.closers, noErr(rc.Attach(mon)), rc.Close)

	members := map[string]throttle.Guard{GuardBreaker: br}
	for name, og := range opts.Guards {
		if og == nil {
			delete(members, name)
		} else {
			members[name] = og
		}
	}
	if len(members) == 0 {
		return nil, errors.New("factories: GuardOptions.Guards removes every guard: keep at least one")
	}
	list := make([]throttle.CompositeMember, 0, len(members))
	for _, n := range slices.Sorted(maps.Keys(members)) {
		list = append(list, throttle.CompositeMember{Name: n, Guard: members[n]})
	}
	cg, err := throttle.NewCompositeGuard(list...)
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
	return CreateResourceGuard(cfg, GuardOptions{})
}

// NewCPUThrottler returns the CPU throttler of cfg over g: it paces calls
// against the CPU of this process and its helpers when helpers are declared
// or an endpoint is on this host (a local LLM server then is what gets
// paced), and against the whole board's CPU otherwise, at
// CPU_TARGET_PERCENT of the board's CPUs.
func (g *ResourceGuard) NewCPUThrottler(cfg ResourceConfig, logger *slog.Logger) (*throttle.CPUThrottler, error) {
	o := throttle.CPUThrottlerOptions{TargetPercent: cfg.CPUTargetPercent, Logger: logger}
	if g.Sampler != nil {
		o.Cores = float64(runtime.NumCPU())
		o.CPUTime = g.Sampler.BoardCPUTime
		if g.Helpers.Declared() {
			o.CPUTime = g.Sampler.AgentCPUTime
		}
	}
	t, err := throttle.NewCPUThrottler(o)
	if err != nil {
		return nil, fmt.Errorf("factories: CPU throttler: %w", err)
	}
	return t, nil
}

// Close stops the monitor and waits for its goroutine. It is idempotent.
func (g *ResourceGuard) Close() error {
	var errs []error
	for i := len(g.closers) - 1; i >= 0; i-- {
		errs = append(errs, g.closers[i]())
	}
	g.closers = nil
	return errors.Join(errs...)
}

func noErr(f func()) func() error { return func() error { f(); return nil } }

// storageFileSystems returns one existing directory per file system among
// the storage directories: those given, else the pager's storage path, else
// the temporary directory (where a pager without a storage path puts its
// file). A directory that does not exist yet stands for its nearest
// existing parent.
func storageFileSystems(cfg ResourceConfig, dirs []string) []string {
	if len(dirs) == 0 {
		dirs = []string{cfg.PagerStoragePath}
		if cfg.PagerStoragePath == "" {
			dirs = []string{os.TempDir()}
		}
	}
	var out []string
	seen := map[uint64]bool{}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		p := existingDir(d)
		if dev, ok := fileSystemID(p); ok {
			if seen[dev] {
				continue
			}
			seen[dev] = true
		}
		out = append(out, p)
	}
	return out
}

// existingDir is p, or its nearest existing parent directory.
func existingDir(p string) string {
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
