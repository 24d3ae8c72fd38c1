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
// combine, strictest value first.
type Adaptation struct {
	// MaxParallel caps the number of CPU-class nodes running at once
	// (executor.Limits.CPU).
	MaxParallel int `json:"max_parallel,omitempty"`
	// InterNodeDelay is the least time between two node starts.
	InterNodeDelay time.Duration `json:"inter_node_delay,omitempty"`
	// QuietLogs raises the log level to Warn: logging off but for
	// warnings and errors (fewer writes to a full disk).
	QuietLogs bool `json:"quiet_logs,omitempty"`
	// PagerFraction shrinks the context pager's RAM budget to this
	// fraction of its normal budget, in (0, 1].
	PagerFraction float64 `json:"pager_fraction,omitempty"`
}

// DefaultAdaptations returns the blueprint's adaptations: low memory runs
// one node at a time and halves the pager's budget; high temperature waits
// 100 ms between node starts; low disk logs only warnings and errors.
func DefaultAdaptations() map[Mode]Adaptation {
	return map[Mode]Adaptation{
		LowMemory: {MaxParallel: 1, PagerFraction: 0.5},
		HighTemp:  {InterNodeDelay: 100 * time.Millisecond},
		LowDisk:   {QuietLogs: true},
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

// Source delivers samples: *throttle.Monitor.
type Source interface {
	Subscribe(fn func(*throttle.Sample)) (cancel func())
}

// Options configures an Executor. The zero value means the defaults.
type Options struct {
	// Triggers says when each pressure holds (default DefaultTriggers).
	// A mode with no triggers never becomes active.
	Triggers map[Mode][]Trigger
	// Adaptations says what each pressure changes (default
	// DefaultAdaptations). A mode missing from a non-nil map changes
	// nothing.
	Adaptations map[Mode]Adaptation
	// Priority orders simultaneous pressures (default DefaultPriority); it
	// must list each of LowMemory, HighTemp and LowDisk once.
	Priority []Mode
	// Margin is the hysteresis: a pressure ends only once every trigger's
	// signal is below Threshold × (1 − Margin). Default 0.05, in [0, 0.5).
	Margin float64
	// TransitionPeriod is the least time a pressure lasts after the last
	// sample over its threshold (the kubelet's pressure-transition period),
	// so a value wobbling around a threshold cannot flap the mode. Default
	// 30 s.
	TransitionPeriod time.Duration
	// Breaker, if set, is what Guarded waits on (a *throttle.Breaker or any
	// guard). To pause runs node by node, give the same guard to the
	// wrapped executor as its Gate.
	Breaker throttle.Guard
	// Pager, if set, is shrunk under memory pressure (PagerFraction).
	Pager Pager
	// LogLevel, if set, is the level QuietLogs raises; normally the level
	// of the application's slog handler.
	LogLevel *slog.LevelVar
	// Logger receives mode changes. nil discards them.
	Logger *slog.Logger
}

// Settings are the values of the knobs the adaptive executor turns.
type Settings struct {
	MaxParallel    int           `json:"max_parallel"`
	InterNodeDelay time.Duration `json:"inter_node_delay"`
	LogLevel       string        `json:"log_level,omitempty"`
	PagerLimit     int64         `json:"pager_limit_bytes,omitempty"`
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
	Since    time.Time  `json:"since"`
	Active   []Pressure `json:"active,omitempty"`
	Settings Settings   `json:"settings"`
}

// Reason describes the pressures that hold, as ModeChange.Reason does.
func (s Status) Reason() string { return describe(s.Active) }

const maxHistory = 128

// Executor runs graphs on a wrapped executor and adapts how it runs to the
// pressure on the device. Feed it samples with Attach (or Observe); it owns
// no goroutine. It is safe for concurrent use.
//
// While attached, it owns the wrapped executor's CPU limit (Limits.CPU) and
// InterNodeDelay, the LogLevel and the pager's memory limit: it records their
// values at New as the normal settings and restores them when the pressure
// ends and on Close.
type Executor struct {
	base    Runner
	opts    Options
	logger  *slog.Logger
	normal  Settings
	normalL slog.Level

	// applyMu serialises applying settings (which may evict pages) so
	// that they land in the order decided, without holding mu.
	applyMu sync.Mutex

	// mu guards the fields below.
	mu        sync.Mutex
	det       *detector
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
	e := &Executor{base: base, opts: opts, logger: opts.Logger, mode: Normal, listeners: map[int]func(ModeChange){}}
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	e.normal = Settings{MaxParallel: base.Limits().CPU, InterNodeDelay: base.InterNodeDelay()}
	if opts.LogLevel != nil {
		e.normalL = opts.LogLevel.Level()
		e.normal.LogLevel = e.normalL.String()
	}
	if opts.Pager != nil {
		e.normal.PagerLimit = opts.Pager.MemoryLimit()
	}
	e.applied = e.normal
	e.det = newDetector(opts.Triggers, opts.Priority, opts.Margin, opts.TransitionPeriod)
	return e, nil
}

func fillDefaults(o *Options) error {
	var errs []error
	bad := func(field string, v any, want string) {
		errs = append(errs, fmt.Errorf("adaptive: Options.%s = %v: %s", field, v, want))
	}
	if o.Triggers == nil {
		o.Triggers = DefaultTriggers()
	}
	if o.Adaptations == nil {
		o.Adaptations = DefaultAdaptations()
	}
	if o.Priority == nil {
		o.Priority = DefaultPriority
	}
	if o.Margin == 0 {
		o.Margin = 0.05
	}
	if o.TransitionPeriod == 0 {
		o.TransitionPeriod = 30 * time.Second
	}
	for m, ts := range o.Triggers {
		if !validMode(m) {
			bad("Triggers", m, "keys must be low_memory, high_temp or low_disk")
		}
		for _, t := range ts {
			if t.Signal == "" || math.IsNaN(t.Threshold) || math.IsInf(t.Threshold, 0) || t.Threshold <= 0 {
				bad(fmt.Sprintf("Triggers[%s]", m), fmt.Sprintf("%+v", t), "needs a signal name and a finite threshold > 0")
			}
		}
	}
	for m, a := range o.Adaptations {
		switch {
		case !validMode(m):
			bad("Adaptations", m, "keys must be low_memory, high_temp or low_disk")
		case a.MaxParallel < 0:
			bad(fmt.Sprintf("Adaptations[%s].MaxParallel", m), a.MaxParallel, "must be ≥ 0 (0 = unchanged)")
		case a.InterNodeDelay < 0:
			bad(fmt.Sprintf("Adaptations[%s].InterNodeDelay", m), a.InterNodeDelay, "must be ≥ 0 (0 = unchanged)")
		case a.PagerFraction < 0 || a.PagerFraction > 1 || math.IsNaN(a.PagerFraction):
			bad(fmt.Sprintf("Adaptations[%s].PagerFraction", m), a.PagerFraction, "must be in (0, 1] (0 = unchanged)")
		}
	}
	seen := map[Mode]bool{}
	for _, m := range o.Priority {
		if !validMode(m) || seen[m] {
			bad("Priority", o.Priority, "must list low_memory, high_temp and low_disk once each")
			break
		}
		seen[m] = true
	}
	if len(seen) != 3 && len(errs) == 0 {
		bad("Priority", o.Priority, "must list low_memory, high_temp and low_disk once each")
	}
	if o.Margin < 0 || o.Margin >= 0.5 || math.IsNaN(o.Margin) {
		bad("Margin", o.Margin, "must be in [0, 0.5)")
	}
	if o.TransitionPeriod < 0 {
		bad("TransitionPeriod", o.TransitionPeriod, "must be ≥ 0 (0 = 30s)")
	}
	return errors.Join(errs...)
}

// Attach feeds the executor every sample of src, starting with its latest
// one when src also has a Snapshot method (as *throttle.Monitor does), so an
// executor attached to a running monitor does not wait a check interval to
// see the pressure. Detach (or Close) stops it.
func (e *Executor) Attach(src Source) (detach func()) {
	cancel := src.Subscribe(e.Observe)
	if ss, ok := src.(interface{ Snapshot() throttle.Snapshot }); ok {
		e.Observe(ss.Snapshot().Sample)
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

// Observe feeds one sample: it updates the pressures, picks the mode, and
// applies the adaptations of the pressures that hold. Samples not newer than
// the last one are ignored. Mode-change listeners are called before Observe
// returns, outside locks.
func (e *Executor) Observe(s *throttle.Sample) {
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	e.mu.Lock()
	if e.closed || !e.det.observe(s) {
		e.mu.Unlock()
		return
	}
	active := e.det.active()
	mode := modeOf(active)
	want := e.settingsFor(active)
	changed := mode != e.mode
	var ev ModeChange
	if changed {
		ev = ModeChange{Time: s.Time, From: e.mode, To: mode, Active: active, Reason: describe(active)}
		e.mode, e.since = mode, s.Time
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
	level := slog.LevelWarn
	if mode == Normal {
		level = slog.LevelInfo
	}
	e.logger.Log(context.Background(), level, "adaptive: mode change", "from", ev.From, "to", ev.To, "reason", ev.Reason,
		"max_parallel", want.MaxParallel, "inter_node_delay", want.InterNodeDelay, "log_level", want.LogLevel, "pager_limit_bytes", want.PagerLimit)
	for _, fn := range listeners {
		e.notify(fn, ev)
	}
}

// settingsFor combines the adaptations of the active pressures with the
// normal settings. Called with mu held.
func (e *Executor) settingsFor(active []Pressure) Settings {
	s := e.normal
	quiet := false
	fraction := 1.0
	for _, p := range active {
		a := e.opts.Adaptations[p.Mode]
		if a.MaxParallel > 0 && a.MaxParallel < s.MaxParallel {
			s.MaxParallel = a.MaxParallel
		}
		s.InterNodeDelay = max(s.InterNodeDelay, a.InterNodeDelay)
		quiet = quiet || a.QuietLogs
		if a.PagerFraction > 0 {
			fraction = min(fraction, a.PagerFraction)
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
	lim := e.base.Limits()
	lim.CPU = s.MaxParallel
	e.base.SetLimits(lim)
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
// locks, on the goroutine that delivered the sample. remove unregisters it.
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

// Guarded runs fn once the breaker (Options.Breaker) lets work proceed: the
// counterpart of the blueprint's `with executor.guarded()`. While the breaker
// is open Guarded waits; it returns the breaker's error if ctx ends first.
// Inside fn, runs pause node by node while the wrapped executor's Gate
// (normally the same breaker) is closed. Without a breaker fn runs at once.
func (e *Executor) Guarded(ctx context.Context, fn func(ctx context.Context) error) error {
	if b := e.opts.Breaker; b != nil {
		if err := b.Wait(ctx); err != nil {
			return fmt.Errorf("adaptive: waiting for the resource breaker: %w", err)
		}
	}
	return fn(ctx)
}

// Close detaches from the sample source and restores the normal settings.
// Runs in progress go on under them.
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
