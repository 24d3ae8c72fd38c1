package adaptive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/throttle"
)

// Adaptation is what a pressure changes in how runs execute. Zero fields
// leave that knob alone. When several pressures hold, their adaptations
// combine, the strictest value of each knob winning.
type Adaptation struct {
	// CPUParallel caps the number of CPU-bound nodes running at once.
	CPUParallel int `json:"cpu_parallel,omitempty"`
	// IOParallel caps the number of I/O-bound nodes (LLM and HTTP calls)
	// running at once.
	IOParallel int `json:"io_parallel,omitempty"`
	// InterNodeDelay is the least time between two node starts.
	InterNodeDelay time.Duration `json:"inter_node_delay_ns,omitempty"`
	// QuietLogs raises the log level to Warn: logging off but for
	// warnings and errors (fewer writes to a full disk).
	QuietLogs bool `json:"quiet_logs,omitempty"`
	// PagerFraction shrinks the context pager's RAM budget to this
	// fraction of its normal budget, in (0, 1].
	PagerFraction float64 `json:"pager_fraction,omitempty"`
	// CPUTargetPercent caps the CPU throttler's target, in (0, 100]: the
	// LLM calls it paces heat the board less.
	CPUTargetPercent float64 `json:"cpu_target_percent,omitempty"`
}

// DefaultAdaptations returns the adaptations of each mode. Every mode but
// low_disk narrows the CPU class to one node first; I/O-bound nodes (LLM
// calls waiting on a server) go on, except that low memory also narrows them
// to 4, since each holds its request and response in memory:
//
//	low_memory      1 CPU node, 4 I/O nodes, pager at half its budget
//	high_temp       1 CPU node, 100 ms between node starts, CPU target 50 %
//	low_disk        warnings and errors only in the log
//	cpu_contention  1 CPU node, CPU target 50 %
func DefaultAdaptations() map[Mode]Adaptation {
	return map[Mode]Adaptation{
		LowMemory:     {CPUParallel: 1, IOParallel: 4, PagerFraction: 0.5},
		HighTemp:      {CPUParallel: 1, InterNodeDelay: 100 * time.Millisecond, CPUTargetPercent: 50},
		LowDisk:       {QuietLogs: true},
		CPUContention: {CPUParallel: 1, CPUTargetPercent: 50},
	}
}

// Runner is the executor the adaptive executor drives: *executor.Executor.
type Runner interface {
	RunWith(ctx context.Context, g *dag.Graph, s dag.State, ro executor.RunOptions) (*executor.Result, error)
	Limits() executor.Limits
	SetLimits(l executor.Limits)
	InterNodeDelay() time.Duration
	SetInterNodeDelay(d time.Duration)
}

// Pager is the part of a context pager (*paging.Pager) the low-memory
// adaptation uses.
type Pager interface {
	MemoryLimit() int64
	SetMemoryLimit(bytes int64) error
}

// Throttler is the part of a CPU throttler (*throttle.CPUThrottler) the
// adaptations lower the target of.
type Throttler interface {
	TargetPercent() float64
	SetTargetPercent(pct float64) error
}

// Ladders is where the adaptive executor learns which signal stands on
// which rung: *throttle.Breaker.
type Ladders interface {
	OnChange(fn func(throttle.Change)) (remove func())
	Status() throttle.BreakerStatus
}

// Options configures an Executor. The zero value means the defaults.
type Options struct {
	// Modes says which mode each signal's ladder asks for while the signal
	// is on its Adapt or Pause rung (default DefaultModes). Signals not in
	// the map ask for nothing.
	Modes map[string]Mode
	// Adaptations says what each mode changes (default
	// DefaultAdaptations). A mode missing from a non-nil map changes
	// nothing.
	Adaptations map[Mode]Adaptation
	// Priority orders simultaneous pressures (default DefaultPriority); it
	// must list each of low_memory, high_temp, low_disk and cpu_contention
	// once.
	Priority []Mode
	// Guard, if set, is what Guarded waits on (normally the Breaker, the
	// same guard the wrapped executor uses as its Gate).
	Guard throttle.Guard
	// Pager, if set, is shrunk under memory pressure (PagerFraction).
	Pager Pager
	// Throttler, if set, has its target lowered (CPUTargetPercent).
	Throttler Throttler
	// LogLevel, if set, is the level QuietLogs raises; normally the level
	// of the application's slog handler.
	LogLevel *slog.LevelVar
	// Logger receives mode changes. nil discards them.
	Logger *slog.Logger
}

// Settings are the values of the knobs the adaptive executor turns.
type Settings struct {
	CPUParallel      int           `json:"cpu_parallel"`
	IOParallel       int           `json:"io_parallel"`
	InterNodeDelay   time.Duration `json:"inter_node_delay_ns"`
	LogLevel         string        `json:"log_level,omitempty"`
	PagerLimit       int64         `json:"pager_limit_bytes,omitempty"`
	CPUTargetPercent float64       `json:"cpu_target_percent,omitempty"`
}

// ModeChange reports a change of mode. Active lists every pressure that
// holds afterwards, in priority order.
type ModeChange struct {
	Time     time.Time  `json:"time"`
	From     Mode       `json:"from"`
	To       Mode       `json:"to"`
	Active   []Pressure `json:"active,omitempty"`
	Reason   string     `json:"reason"`
	Settings Settings   `json:"settings"`
}

// Status is a consistent view of the adaptive executor.
type Status struct {
	Mode     Mode       `json:"mode"`
	Since    time.Time  `json:"since,omitzero"` // zero: normal since the start
	Active   []Pressure `json:"active,omitempty"`
	Settings Settings   `json:"settings"`
}

// Reason describes the pressures that hold, as ModeChange.Reason does.
func (s Status) Reason() string { return describe(s.Active) }

const maxHistory = 128

// Executor runs graphs on a wrapped executor and adapts how it runs to the
// pressure on the device, as the Breaker's ladders report it: a signal on
// its Adapt or Pause rung is a pressure, and the mode is the
// highest-priority pressure. Feed it with Attach (or Observe); it owns no
// goroutine. It is safe for concurrent use.
//
// While attached, it owns the wrapped executor's Limits and InterNodeDelay,
// the LogLevel, the pager's memory limit and the throttler's target: it
// records their values at New as the normal settings and restores them when
// the pressure ends and on Close.
type Executor struct {
	base    Runner
	opts    Options
	logger  *slog.Logger
	normal  Settings
	normalL slog.Level
	prio    map[Mode]int

	// applyMu serialises applying settings (which may evict pages) so
	// that they land in the order decided, without holding mu.
	applyMu sync.Mutex

	// mu guards the fields below.
	mu        sync.Mutex
	rungs     map[string]Pressure // signals on Adapt or Pause
	mode      Mode
	since     time.Time
	active    []Pressure
	applied   Settings
	listeners map[int]func(ModeChange)
	nextID    int
	history   []ModeChange
	detach    func()
	closed    bool
}

// New returns an adaptive executor over base. It fails, naming the field,
// when an option is out of range.
func New(base Runner, opts Options) (*Executor, error) {
	if base == nil {
		return nil, errors.New("adaptive: nil base executor")
	}
	if err := fillDefaults(&opts); err != nil {
		return nil, err
	}
	e := &Executor{base: base, opts: opts, logger: opts.Logger, mode: Normal, listeners: map[int]func(ModeChange){},
		rungs: map[string]Pressure{}, prio: map[Mode]int{}}
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	for i, m := range opts.Priority {
		e.prio[m] = i
	}
	l := base.Limits()
	e.normal = Settings{CPUParallel: l.CPU, IOParallel: l.IO, InterNodeDelay: base.InterNodeDelay()}
	if opts.LogLevel != nil {
		e.normalL = opts.LogLevel.Level()
		e.normal.LogLevel = e.normalL.String()
	}
	if opts.Pager != nil {
		e.normal.PagerLimit = opts.Pager.MemoryLimit()
	}
	if opts.Throttler != nil {
		e.normal.CPUTargetPercent = opts.Throttler.TargetPercent()
	}
	e.applied = e.normal
	return e, nil
}

func fillDefaults(o *Options) error {
	var errs []error
	bad := func(field string, v any, want string) {
		errs = append(errs, fmt.Errorf("adaptive: Options.%s = %v: %s", field, v, want))
	}
	if o.Modes == nil {
		o.Modes = DefaultModes()
	}
	if o.Adaptations == nil {
		o.Adaptations = DefaultAdaptations()
	}
	if o.Priority == nil {
		o.Priority = DefaultPriority()
	}
	for _, sig := range slices.Sorted(maps.Keys(o.Modes)) {
		if m := o.Modes[sig]; sig == "" || !validMode(m) {
			bad(fmt.Sprintf("Modes[%q]", sig), m, "needs a signal name and one of low_memory, high_temp, low_disk, cpu_contention")
		}
	}
	for _, m := range slices.Sorted(maps.Keys(o.Adaptations)) {
		a := o.Adaptations[m]
		switch {
		case !validMode(m):
			bad("Adaptations", m, "keys must be low_memory, high_temp, low_disk or cpu_contention")
		case a.CPUParallel < 0:
			bad(fmt.Sprintf("Adaptations[%s].CPUParallel", m), a.CPUParallel, "must be ≥ 0 (0 = unchanged)")
		case a.IOParallel < 0:
			bad(fmt.Sprintf("Adaptations[%s].IOParallel", m), a.IOParallel, "must be ≥ 0 (0 = unchanged)")
		case a.InterNodeDelay < 0:
			bad(fmt.Sprintf("Adaptations[%s].InterNodeDelay", m), a.InterNodeDelay, "must be ≥ 0 (0 = unchanged)")
		case a.PagerFraction < 0 || a.PagerFraction > 1 || math.IsNaN(a.PagerFraction):
			bad(fmt.Sprintf("Adaptations[%s].PagerFraction", m), a.PagerFraction, "must be in (0, 1] (0 = unchanged)")
		case a.CPUTargetPercent < 0 || a.CPUTargetPercent > 100 || math.IsNaN(a.CPUTargetPercent):
			bad(fmt.Sprintf("Adaptations[%s].CPUTargetPercent", m), a.CPUTargetPercent, "must be in (0, 100] (0 = unchanged)")
		}
	}
	seen := map[Mode]bool{}
	for _, m := range o.Priority {
		if !validMode(m) || seen[m] {
			break
		}
		seen[m] = true
	}
	if len(seen) != len(pressureModes) || len(o.Priority) != len(pressureModes) {
		bad("Priority", o.Priority, "must list low_memory, high_temp, low_disk and cpu_contention once each")
	}
	return errors.Join(errs...)
}

// Attach follows the ladders of src (normally the *throttle.Breaker),
// starting from where each signal stands now, so an executor attached to a
// running breaker does not wait for the next change to see the pressure.
// Detach (or Close) stops it.
func (e *Executor) Attach(src Ladders) (detach func()) {
	cancel := src.OnChange(e.Observe)
	for _, l := range src.Status().Ladders {
		if l.Rung != throttle.Normal {
			level := l.Adapt
			if l.Rung == throttle.Pause {
				level = l.Pause
			}
			e.Observe(throttle.Change{Signal: l.Signal, From: throttle.Normal, To: l.Rung, At: l.Since, Value: l.Value, Known: l.Known, Unit: l.Unit, Level: level})
		}
	}
	e.mu.Lock()
	prev := e.detach
	e.detach = cancel
	e.mu.Unlock()
	if prev != nil {
		prev()
	}
	return cancel
}

// Observe feeds one rung change: it updates the pressures, picks the mode,
// and applies the adaptations of the pressures that hold. Mode-change
// listeners are called before Observe returns, outside locks.
func (e *Executor) Observe(c throttle.Change) {
	mode, ok := e.opts.Modes[c.Signal]
	if !ok {
		return
	}
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	if c.To == throttle.Normal {
		delete(e.rungs, c.Signal)
	} else {
		since := c.At
		if p, held := e.rungs[c.Signal]; held {
			since = p.Since // the pressure goes on
		}
		e.rungs[c.Signal] = Pressure{Mode: mode, Signal: c.Signal, Rung: c.To, Value: c.Value, Level: c.Level, Unit: c.Unit, Since: since}
	}
	active := e.activeLocked()
	newMode := modeOf(active)
	want := e.settingsFor(active)
	changed := newMode != e.mode
	var ev ModeChange
	if changed {
		ev = ModeChange{Time: c.At, From: e.mode, To: newMode, Active: active, Reason: describe(active)}
		e.mode, e.since = newMode, c.At
	}
	e.active = active
	apply := want != e.applied
	e.mu.Unlock()

	if apply {
		want = e.apply(want)
	}
	e.mu.Lock()
	e.applied = want
	var listeners []func(ModeChange)
	if changed {
		ev.Settings = want
		e.history = append(e.history, ev)
		if len(e.history) > maxHistory {
			e.history = slices.Delete(e.history, 0, len(e.history)-maxHistory)
		}
		for _, id := range slices.Sorted(maps.Keys(e.listeners)) {
			listeners = append(listeners, e.listeners[id])
		}
	}
	e.mu.Unlock()
	if !changed {
		return
	}
	// A mode change is the system working as designed: Info, not Warn.
	e.logger.Info("adaptive: mode change", "from", ev.From, "to", ev.To, "reason", ev.Reason,
		"cpu_parallel", want.CPUParallel, "io_parallel", want.IOParallel, "inter_node_delay", want.InterNodeDelay,
		"log_level", want.LogLevel, "pager_limit_bytes", want.PagerLimit, "cpu_target_percent", want.CPUTargetPercent)
	for _, fn := range listeners {
		e.notify(fn, ev)
	}
}

// activeLocked returns the pressures in priority order (then by signal),
// one per signal. mu must be held.
func (e *Executor) activeLocked() []Pressure {
	out := make([]Pressure, 0, len(e.rungs))
	for _, p := range e.rungs {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Pressure) int {
		if d := e.prio[a.Mode] - e.prio[b.Mode]; d != 0 {
			return d
		}
		if a.Rung != b.Rung {
			return int(b.Rung) - int(a.Rung) // a paused signal first
		}
		if a.Signal < b.Signal {
			return -1
		}
		return 1
	})
	return out
}

// settingsFor combines the adaptations of the active pressures with the
// normal settings. Called with mu held.
func (e *Executor) settingsFor(active []Pressure) Settings {
	s := e.normal
	quiet := false
	fraction := 1.0
	seen := map[Mode]bool{}
	for _, p := range active {
		if seen[p.Mode] {
			continue
		}
		seen[p.Mode] = true
		a := e.opts.Adaptations[p.Mode]
		if a.CPUParallel > 0 && a.CPUParallel < s.CPUParallel {
			s.CPUParallel = a.CPUParallel
		}
		if a.IOParallel > 0 && a.IOParallel < s.IOParallel {
			s.IOParallel = a.IOParallel
		}
		s.InterNodeDelay = max(s.InterNodeDelay, a.InterNodeDelay)
		quiet = quiet || a.QuietLogs
		if a.PagerFraction > 0 {
			fraction = min(fraction, a.PagerFraction)
		}
		if e.opts.Throttler != nil && a.CPUTargetPercent > 0 {
			s.CPUTargetPercent = min(s.CPUTargetPercent, a.CPUTargetPercent)
		}
	}
	if e.opts.LogLevel != nil {
		lvl := e.normalL
		if quiet && lvl < slog.LevelWarn {
			lvl = slog.LevelWarn
		}
		s.LogLevel = lvl.String()
	}
	if e.opts.Pager != nil {
		s.PagerLimit = int64(float64(e.normal.PagerLimit) * fraction)
	}
	return s
}

// apply turns the knobs to s and returns what took effect (the pager may
// refuse a limit). Called with applyMu held, without mu.
func (e *Executor) apply(s Settings) Settings {
	e.base.SetLimits(executor.Limits{CPU: s.CPUParallel, IO: s.IOParallel})
	e.base.SetInterNodeDelay(s.InterNodeDelay)
	if lv := e.opts.LogLevel; lv != nil {
		var l slog.Level
		if err := l.UnmarshalText([]byte(s.LogLevel)); err == nil {
			lv.Set(l)
		}
	}
	if p := e.opts.Pager; p != nil && p.MemoryLimit() != s.PagerLimit {
		if err := p.SetMemoryLimit(s.PagerLimit); err != nil {
			e.logger.Warn("adaptive: pager refused its new memory limit", "limit_bytes", s.PagerLimit, "error", err)
			s.PagerLimit = p.MemoryLimit()
		}
	}
	if t := e.opts.Throttler; t != nil && t.TargetPercent() != s.CPUTargetPercent {
		if err := t.SetTargetPercent(s.CPUTargetPercent); err != nil {
			e.logger.Warn("adaptive: CPU throttler refused its new target", "target_percent", s.CPUTargetPercent, "error", err)
			s.CPUTargetPercent = t.TargetPercent()
		}
	}
	return s
}

func (e *Executor) notify(fn func(ModeChange), ev ModeChange) {
	defer func() {
		if v := recover(); v != nil {
			e.logger.Error("adaptive: mode-change listener panicked", "panic", v)
		}
	}()
	fn(ev)
}

// CurrentMode returns the mode.
func (e *Executor) CurrentMode() Mode {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.mode
}

// Status returns the mode, the pressures that hold and the settings in
// effect.
func (e *Executor) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Status{Mode: e.mode, Since: e.since, Active: slices.Clone(e.active), Settings: e.applied}
}

// History returns the last mode changes (at most 128), oldest first.
func (e *Executor) History() []ModeChange {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.history)
}

// OnModeChange registers fn to be called on every mode change, outside
// locks, on the goroutine that delivered the change. remove unregisters it.
func (e *Executor) OnModeChange(fn func(ModeChange)) (remove func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	id := e.nextID
	e.nextID++
	e.listeners[id] = fn
	return func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		delete(e.listeners, id)
	}
}

// Run runs g over s on the wrapped executor, under the current adaptations,
// which follow the pressure while the run is in progress.
func (e *Executor) Run(ctx context.Context, g *dag.Graph, s dag.State) (*executor.Result, error) {
	return e.RunWith(ctx, g, s, executor.RunOptions{})
}

// RunWith is Run with per-run options.
func (e *Executor) RunWith(ctx context.Context, g *dag.Graph, s dag.State, ro executor.RunOptions) (*executor.Result, error) {
	return e.base.RunWith(ctx, g, s, ro)
}

// Guarded runs fn once the guard (Options.Guard) lets work proceed: a block
// of work that should not even start while the device is in danger. While
// the guard holds work back Guarded waits; it returns the guard's error if
// ctx ends first. Inside fn, runs pause node by node while the wrapped
// executor's Gate (normally the same guard) holds. Without a guard fn runs
// at once.
func (e *Executor) Guarded(ctx context.Context, fn func(ctx context.Context) error) error {
	if g := e.opts.Guard; g != nil {
		if err := g.Wait(ctx); err != nil {
			return fmt.Errorf("adaptive: waiting for the resource guard: %w", err)
		}
	}
	return fn(ctx)
}

// Close detaches from the ladders and restores the normal settings. Runs in
// progress go on under them.
func (e *Executor) Close() error {
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	detach := e.detach
	e.detach = nil
	restore := e.applied != e.normal
	e.mu.Unlock()
	if detach != nil {
		detach()
	}
	if restore {
		e.apply(e.normal)
	}
	return nil
}
