package throttle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// BreakerState is the state of a Breaker.
type BreakerState int32

const (
	// BreakerClosed: resources are healthy; work proceeds.
	BreakerClosed BreakerState = iota
	// BreakerOpen: a signal went over its threshold; work is paused.
	BreakerOpen
	// BreakerHalfOpen: the cooldown has passed and every signal is back
	// under its threshold minus the margin; a bounded number of probes may
	// proceed until the next sample decides.
	BreakerHalfOpen
)

// String returns "closed", "open" or "half-open".
func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("BreakerState(%d)", int32(s))
}

var (
	// ErrBreakerOpen is matched (errors.Is) by the error Check returns
	// while the breaker is open.
	ErrBreakerOpen = errors.New("throttle: breaker open")
	// ErrBreakerHalfOpen is returned by Check while the breaker is
	// half-open: work must be admitted as a probe through Wait or Do.
	ErrBreakerHalfOpen = errors.New("throttle: breaker half-open: work is admitted as probes through Wait")
)

// DefaultThresholds returns a new map of the blueprint's default
// thresholds: cpu_percent 90, memory_percent 85, temperature_c 80,
// disk_percent 95.
func DefaultThresholds() map[string]float64 {
	return map[string]float64{
		SignalCPUPercent:    90,
		SignalMemoryPercent: 85,
		SignalTemperatureC:  80,
		SignalDiskPercent:   95,
	}
}

// BreakerOptions configures a Breaker. The zero value uses
// DefaultThresholds, a 5 % margin, trips on the first sample over a
// threshold, cools down for 30 s (doubling on repeated trips up to 5 min)
// and admits 1 probe when half-open.
type BreakerOptions struct {
	// Thresholds maps signal names (the Signal... constants, or extra
	// signal names such as "temperature_c") to the value above which the
	// signal is unhealthy. Nil means DefaultThresholds(); a non-nil map
	// replaces the defaults entirely. Percent signals accept (0, 100],
	// others any positive value. Signals absent from a sample are
	// ignored for that sample.
	Thresholds map[string]float64
	// MarginPercent is the hysteresis margin, in percent of each
	// threshold: the breaker leaves the open state only when every signal
	// is below threshold × (1 − MarginPercent/100). In (0, 100); default 5.
	MarginPercent float64
	// TripAfter is the number of consecutive fresh samples a signal must
	// be over its threshold to open a closed breaker. Default 1.
	TripAfter int
	// Cooldown is the minimum time the breaker stays open after a trip.
	// Default 30s.
	Cooldown time.Duration
	// BackoffFactor multiplies the cooldown on each consecutive trip
	// (a trip from half-open, or within ResetAfter of the last close).
	// At least 1; default 2.
	BackoffFactor float64
	// MaxCooldown caps the backed-off cooldown. At least Cooldown;
	// default 10 × Cooldown.
	MaxCooldown time.Duration
	// ResetAfter is how long the breaker must stay closed for the backoff
	// to start again from Cooldown. Default MaxCooldown.
	ResetAfter time.Duration
	// HalfOpenProbes is how many callers Wait and Do admit while
	// half-open. Default 1.
	HalfOpenProbes int
	// CheckInterval is the interval at which samples are expected (the
	// Monitor's). Status reports the breaker as Stale when no sample was
	// observed for 3 intervals. Default 5s.
	CheckInterval time.Duration
	// Logger receives state transitions. Nil discards them.
	Logger *slog.Logger
}

// Reason is one signal's contribution to the breaker's state: its latest
// value, its threshold, and the value it must fall below to recover.
type Reason struct {
	Signal      string  // the signal name
	Value       float64 // its value in the latest sample
	Threshold   float64 // over this it is unhealthy
	ResumeBelow float64 // threshold minus the margin
	Unit        string  // "%", "°C", ...
}

// LimitError returns the reason as a *LimitError whose Kind is derived from
// the signal name (KindCPU for cpu_percent, KindTemperature for
// temperature_c, ...; the signal name itself for extra signals).
func (r Reason) LimitError() *LimitError {
	return &LimitError{Kind: metaOf(r.Signal, nil).kind, Subject: r.Signal, Current: r.Value, Limit: r.Threshold, Unit: r.Unit}
}

// Transition describes a change of state, passed to transition listeners.
type Transition struct {
	// From and To are the states before and after.
	From, To BreakerState
	// At is the time of the sample that caused the transition.
	At time.Time
	// Reasons lists the signals over their threshold (to open) or not yet
	// recovered (staying open); empty when closing.
	Reasons []Reason
	// Cooldown is the cooldown in force after a transition to open.
	Cooldown time.Duration
}

// BreakerStatus is a consistent view of a Breaker.
type BreakerStatus struct {
	// State is the current state.
	State BreakerState
	// Since is the time of the sample that caused the current state
	// (zero before the first transition).
	Since time.Time
	// Reasons: when open, the signals not yet recovered; when closed or
	// half-open, the signals currently over their threshold (not yet
	// enough consecutive samples to trip).
	Reasons []Reason
	// Cooldown is the current cooldown (grown by backoff), and ProbeAt
	// the earliest time the open breaker can become half-open.
	Cooldown time.Duration
	ProbeAt  time.Time
	// Trips counts consecutive trips, the backoff exponent.
	Trips int
	// Probes is the number of probes admitted in the current half-open
	// period, out of MaxProbes.
	Probes, MaxProbes int
	// LastSample is the time of the last fresh sample observed; Stale
	// reports that none arrived for 3 check intervals.
	LastSample time.Time
	Stale      bool
}

// Breaker is a resource circuit breaker: closed → open → half-open →
// closed. It is a pure state machine driven by Observe, using each sample's
// Time as the current time; it owns no goroutine and no timer. Attach it to
// a Monitor (Attach) to drive it with every sample.
//
// All methods are safe for concurrent use. Check and State are lock-free
// while closed. Transition listeners are called outside the lock, on the
// goroutine calling Observe.
type Breaker struct {
	margin      float64 // fraction of the threshold
	tripAfter   int
	cooldown    time.Duration
	factor      float64
	maxCooldown time.Duration
	resetAfter  time.Duration
	maxProbes   int
	interval    time.Duration
	log         *slog.Logger

	state atomic.Int32 // BreakerState, written under mu

	// mu guards the fields below.
	mu         sync.Mutex
	th         []threshold
	st         BreakerState
	since      time.Time
	closedAt   time.Time // start of the current healthy period
	openedAt   time.Time
	curCool    time.Duration
	trips      int
	probes     int
	last       time.Time // time of the last fresh sample
	lastSample *Sample
	reasons    []Reason
	changed    chan struct{} // closed and replaced on every transition
	listenSeq  uint64
	listeners  []listener
}

type threshold struct {
	name   string
	limit  float64
	resume float64
	meta   signalMeta
	over   int // consecutive fresh samples over limit
}

type listener struct {
	id uint64
	fn func(Transition)
}

// NewBreaker validates opts and returns a closed Breaker.
func NewBreaker(opts BreakerOptions) (*Breaker, error) {
	if opts.Thresholds == nil {
		opts.Thresholds = DefaultThresholds()
	}
	if len(opts.Thresholds) == 0 {
		return nil, errors.New("throttle: BreakerOptions.Thresholds is empty: need at least one signal (or nil for the defaults)")
	}
	switch m := opts.MarginPercent; {
	case m == 0:
		opts.MarginPercent = 5
	case !(m > 0 && m < 100):
		return nil, fmt.Errorf("throttle: BreakerOptions.MarginPercent = %v: must be in (0, 100)", m)
	}
	if opts.TripAfter < 0 {
		return nil, fmt.Errorf("throttle: BreakerOptions.TripAfter = %d: must be >= 1 (or 0 for the default 1)", opts.TripAfter)
	}
	if opts.HalfOpenProbes < 0 {
		return nil, fmt.Errorf("throttle: BreakerOptions.HalfOpenProbes = %d: must be >= 1 (or 0 for the default 1)", opts.HalfOpenProbes)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"Cooldown", opts.Cooldown}, {"MaxCooldown", opts.MaxCooldown},
		{"ResetAfter", opts.ResetAfter}, {"CheckInterval", opts.CheckInterval},
	} {
		if err := positiveDuration("BreakerOptions."+d.name, d.v); err != nil {
			return nil, err
		}
	}
	if opts.BackoffFactor != 0 && !(opts.BackoffFactor >= 1 && opts.BackoffFactor <= 100) {
		return nil, fmt.Errorf("throttle: BreakerOptions.BackoffFactor = %v: must be in [1, 100]", opts.BackoffFactor)
	}
	opts.TripAfter = max(opts.TripAfter, 1)
	opts.HalfOpenProbes = max(opts.HalfOpenProbes, 1)
	if opts.Cooldown == 0 {
		opts.Cooldown = 30 * time.Second
	}
	if opts.BackoffFactor == 0 {
		opts.BackoffFactor = 2
	}
	if opts.MaxCooldown == 0 {
		opts.MaxCooldown = 10 * opts.Cooldown
	}
	if opts.MaxCooldown < opts.Cooldown {
		return nil, fmt.Errorf("throttle: BreakerOptions.MaxCooldown = %v: must be >= Cooldown (%v)", opts.MaxCooldown, opts.Cooldown)
	}
	if opts.ResetAfter == 0 {
		opts.ResetAfter = opts.MaxCooldown
	}
	if opts.CheckInterval == 0 {
		opts.CheckInterval = 5 * time.Second
	}
	b := &Breaker{
		margin:      opts.MarginPercent / 100,
		tripAfter:   opts.TripAfter,
		cooldown:    opts.Cooldown,
		factor:      opts.BackoffFactor,
		maxCooldown: opts.MaxCooldown,
		resetAfter:  opts.ResetAfter,
		maxProbes:   opts.HalfOpenProbes,
		interval:    opts.CheckInterval,
		log:         loggerOrDiscard(opts.Logger),
		curCool:     opts.Cooldown,
		changed:     make(chan struct{}),
	}
	for _, name := range slices.Sorted(maps.Keys(opts.Thresholds)) {
		t, err := b.newThreshold(name, opts.Thresholds[name])
		if err != nil {
			return nil, err
		}
		b.th = append(b.th, t)
	}
	return b, nil
}

func (b *Breaker) newThreshold(name string, limit float64) (threshold, error) {
	if name == "" {
		return threshold{}, errors.New("throttle: BreakerOptions.Thresholds has an empty signal name")
	}
	meta := metaOf(name, nil)
	field := fmt.Sprintf("BreakerOptions.Thresholds[%q]", name)
	var err error
	if meta.percent {
		err = checkPercent(field, limit)
	} else {
		err = checkPositive(field, limit)
	}
	if err != nil {
		return threshold{}, err
	}
	return threshold{name: name, limit: limit, resume: limit * (1 - b.margin), meta: meta}, nil
}

// SetThreshold adds a threshold for the signal called name, or changes an
// existing one, with the same validation as BreakerOptions.Thresholds. It
// takes effect with the next observed sample.
func (b *Breaker) SetThreshold(name string, limit float64) error {
	t, err := b.newThreshold(name, limit)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.th {
		if b.th[i].name == name {
			b.th[i] = t
			return nil
		}
	}
	b.th = append(b.th, t)
	return nil
}

// Attach subscribes the breaker to sub (normally a *Monitor) so that every
// published sample is observed. detach undoes it.
//
//	m, _ := throttle.NewMonitor(sampler, throttle.MonitorOptions{})
//	b, _ := throttle.NewBreaker(throttle.BreakerOptions{})
//	defer b.Attach(m)()
//	_ = m.Start()
func (b *Breaker) Attach(sub Subscriber) (detach func()) { return sub.Subscribe(b.Observe) }

// Observe advances the state machine with s, using s.Time as the current
// time. A nil sample, or one not newer than the last observed, is ignored:
// only fresh samples count. Listeners of the transitions it causes are
// called before it returns, outside the lock.
func (b *Breaker) Observe(s *Sample) {
	if s == nil {
		return
	}
	b.mu.Lock()
	if !s.Time.After(b.last) {
		b.mu.Unlock()
		return
	}
	b.last, b.lastSample = s.Time, s
	now := s.Time

	var tripping, overNow, unrecovered []Reason
	for i := range b.th {
		t := &b.th[i]
		v, ok := s.Value(t.name)
		if !ok {
			t.over = 0
			continue
		}
		r := Reason{Signal: t.name, Value: v, Threshold: t.limit, ResumeBelow: t.resume, Unit: t.meta.unit}
		if r.Unit == "" {
			r.Unit = metaOf(t.name, s).unit
		}
		if v > t.limit {
			t.over++
			overNow = append(overNow, r)
			if t.over >= b.tripAfter {
				tripping = append(tripping, r)
			}
		} else {
			t.over = 0
		}
		if v >= t.resume {
			unrecovered = append(unrecovered, r)
		}
	}

	var events []Transition
	switch b.st {
	case BreakerClosed:
		if b.trips > 0 && now.Sub(b.closedAt) >= b.resetAfter {
			b.trips = 0
		}
		b.reasons = overNow
		if len(tripping) > 0 {
			events = append(events, b.open(now, tripping))
		}
	case BreakerOpen:
		b.reasons = unrecovered
		if !now.Before(b.openedAt.Add(b.curCool)) && len(unrecovered) == 0 {
			events = append(events, b.transition(BreakerHalfOpen, now, nil))
		}
	case BreakerHalfOpen:
		b.reasons = overNow
		switch {
		case len(overNow) > 0:
			events = append(events, b.open(now, overNow))
		case len(unrecovered) == 0:
			b.closedAt = now
			events = append(events, b.transition(BreakerClosed, now, nil))
		}
	}
	listeners := b.listeners
	b.mu.Unlock()

	for _, ev := range events {
		b.logTransition(ev)
		for _, l := range listeners {
			b.notify(l, ev)
		}
	}
}

// open moves to the open state, growing the cooldown. mu must be held.
func (b *Breaker) open(now time.Time, reasons []Reason) Transition {
	b.trips++
	cool := b.cooldown
	for i := 1; i < b.trips && cool < b.maxCooldown; i++ {
		cool = time.Duration(float64(cool) * b.factor)
	}
	b.curCool = min(cool, b.maxCooldown)
	b.openedAt = now
	b.reasons = reasons
	ev := b.transition(BreakerOpen, now, reasons)
	ev.Cooldown = b.curCool
	return ev
}

// transition sets the state and wakes waiters. mu must be held.
func (b *Breaker) transition(to BreakerState, now time.Time, reasons []Reason) Transition {
	ev := Transition{From: b.st, To: to, At: now, Reasons: reasons}
	b.st, b.since, b.probes = to, now, 0
	b.state.Store(int32(to))
	close(b.changed)
	b.changed = make(chan struct{})
	return ev
}

func (b *Breaker) logTransition(ev Transition) {
	attrs := []any{"from", ev.From.String(), "to", ev.To.String()}
	for _, r := range ev.Reasons {
		attrs = append(attrs, slog.Group(r.Signal, "value", r.Value, "threshold", r.Threshold))
	}
	if ev.To == BreakerOpen {
		attrs = append(attrs, "cooldown", ev.Cooldown)
		b.log.Warn("throttle: breaker open: pausing work", attrs...)
		return
	}
	b.log.Info("throttle: breaker "+ev.To.String(), attrs...)
}

func (b *Breaker) notify(l listener, ev Transition) {
	defer func() {
		if r := recover(); r != nil {
			b.log.Error("throttle: breaker transition listener panicked", "panic", r)
		}
	}()
	l.fn(ev)
}

// OnTransition registers fn to be called after every state change, on the
// goroutine that called Observe, outside any lock, in registration order. A
// panic in fn is recovered and logged. remove unregisters it (idempotent).
func (b *Breaker) OnTransition(fn func(Transition)) (remove func()) {
	b.mu.Lock()
	b.listenSeq++
	id := b.listenSeq
	// Copy on write: Observe iterates a snapshot of the slice.
	b.listeners = append(slices.Clip(b.listeners), listener{id: id, fn: fn})
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.listeners = slices.DeleteFunc(slices.Clone(b.listeners), func(l listener) bool { return l.id == id })
	}
}

// State returns the current state. It is lock-free.
func (b *Breaker) State() BreakerState { return BreakerState(b.state.Load()) }

// Status returns the state with its reasons and timing.
func (b *Breaker) Status() BreakerStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := BreakerStatus{
		State:      b.st,
		Since:      b.since,
		Reasons:    slices.Clone(b.reasons),
		Cooldown:   b.curCool,
		Trips:      b.trips,
		Probes:     b.probes,
		MaxProbes:  b.maxProbes,
		LastSample: b.last,
	}
	if b.st == BreakerOpen {
		st.ProbeAt = b.openedAt.Add(b.curCool)
	}
	st.Stale = b.last.IsZero() || time.Since(b.last) > 3*b.interval
	return st
}

// Check returns nil when closed; while open, a *BreakerOpenError (matching
// ErrBreakerOpen and ErrLimitExceeded, and unwrapping to a *LimitError per
// unrecovered signal); while half-open, ErrBreakerHalfOpen, because work
// must then be admitted through Wait or Do. It never blocks; while closed it
// is one atomic load.
func (b *Breaker) Check() error {
	switch BreakerState(b.state.Load()) {
	case BreakerClosed:
		return nil
	case BreakerHalfOpen:
		return ErrBreakerHalfOpen
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.checkLocked()
}

func (b *Breaker) checkLocked() error {
	switch b.st {
	case BreakerHalfOpen:
		return ErrBreakerHalfOpen
	case BreakerOpen:
		return &BreakerOpenError{ProbeAt: b.openedAt.Add(b.curCool), Reasons: slices.Clone(b.reasons)}
	}
	return nil
}

// Wait blocks while the breaker is open, and while it is half-open with
// every probe admission taken. It returns nil when closed, or when it admits
// the caller as one of the HalfOpenProbes probes. It returns
// context.Cause(ctx) when ctx ends first, and fails fast, without waiting,
// when ctx's deadline comes before the cooldown ends.
func (b *Breaker) Wait(ctx context.Context) error {
	if b.State() == BreakerClosed {
		return nil
	}
	for {
		b.mu.Lock()
		switch b.st {
		case BreakerClosed:
			b.mu.Unlock()
			return nil
		case BreakerHalfOpen:
			if b.probes < b.maxProbes {
				b.probes++
				b.mu.Unlock()
				return nil
			}
		case BreakerOpen:
			probeAt := b.openedAt.Add(b.curCool)
			if dl, ok := ctx.Deadline(); ok && dl.Before(probeAt) {
				err := b.checkLocked()
				b.mu.Unlock()
				return fmt.Errorf("throttle: breaker: Wait would exceed the context deadline (open until at least %s): %w",
					probeAt.Format(time.RFC3339), errors.Join(context.DeadlineExceeded, err))
			}
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// Do waits like Wait, then runs fn. It returns Wait's error without running
// fn, or fn's error; a panic in fn is returned as a *PanicError.
func (b *Breaker) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	if err := b.Wait(ctx); err != nil {
		return err
	}
	return callProtected("Breaker.Do", func() error { return fn(ctx) })
}

// BreakerOpenError is the error Check returns while the breaker is open.
type BreakerOpenError struct {
	// ProbeAt is the earliest time the breaker can become half-open.
	ProbeAt time.Time
	// Reasons are the signals not yet below their resume value; empty
	// when only the cooldown keeps the breaker open.
	Reasons []Reason
}

// Error lists the reasons, or says the breaker is cooling down.
func (e *BreakerOpenError) Error() string {
	var b strings.Builder
	b.WriteString("throttle: breaker open until at least ")
	b.WriteString(e.ProbeAt.Format(time.RFC3339))
	if len(e.Reasons) == 0 {
		b.WriteString(": cooling down")
	}
	for i, r := range e.Reasons {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(r.LimitError().Error())
	}
	return b.String()
}

// Unwrap returns one *LimitError per reason.
func (e *BreakerOpenError) Unwrap() []error {
	errs := make([]error, len(e.Reasons))
	for i, r := range e.Reasons {
		errs[i] = r.LimitError()
	}
	return errs
}

// Is reports whether target is ErrBreakerOpen or ErrLimitExceeded.
func (e *BreakerOpenError) Is(target error) bool {
	return target == ErrBreakerOpen || target == ErrLimitExceeded
}
