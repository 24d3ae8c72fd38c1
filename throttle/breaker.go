package throttle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cemaf-go/cemaf/limit"
)

// ErrPaused is matched (errors.Is) by the error Check and Wait return while
// a ladder is on its Pause rung.
var ErrPaused = errors.New("throttle: paused")

// BreakerOptions configures a Breaker. The zero value uses DefaultLadders.
type BreakerOptions struct {
	// Ladders are the policies of the signals, at most one per signal.
	// Nil means DefaultLadders(); a non-nil slice replaces them entirely
	// (an empty one watches nothing).
	Ladders []Ladder
	// CheckInterval is the interval at which samples are expected (the
	// Monitor's); Status reports the breaker as Stale when no sample was
	// observed for 3 intervals. Default 5s.
	CheckInterval time.Duration
	// Logger receives rung changes. Nil discards them.
	Logger *slog.Logger
}

// Change is a signal moving from one rung of its ladder to another, passed
// to the functions registered with OnChange.
type Change struct {
	Signal string    `json:"signal"`
	From   Rung      `json:"from"`
	To     Rung      `json:"to"`
	At     time.Time `json:"at"` // the time of the sample that caused it
	// Value is the signal's value in that sample (Known false when the
	// sample did not have it), in Unit.
	Value float64 `json:"value"`
	Known bool    `json:"known"`
	Unit  string  `json:"unit,omitempty"`
	// Level is the level crossed: Adapt or Pause on the way up, the
	// resume value on the way down.
	Level float64 `json:"level"`
	// Cooldown and Until are set on a change to Pause: the cooldown in
	// force and the earliest end of the pause.
	Cooldown time.Duration `json:"cooldown_ns,omitempty"`
	Until    time.Time     `json:"until,omitzero"`
}

// String describes the change: "temperature_c 86.0 °C > 80.0 °C: normal -> pause".
func (c Change) String() string {
	op := " ≥ "
	switch {
	case c.To == Pause:
		op = " > "
	case c.To < c.From:
		op = " < "
	}
	v := "no reading"
	if c.Known {
		v = FormatValue(c.Value, c.Unit)
	}
	return c.Signal + " " + v + op + FormatValue(c.Level, c.Unit) + ": " + c.From.String() + " -> " + c.To.String()
}

// LadderStatus is where one signal stands on its ladder.
type LadderStatus struct {
	Ladder
	// Rung is the current rung, entered at Since (zero before the first
	// change).
	Rung  Rung      `json:"rung"`
	Since time.Time `json:"since,omitzero"`
	// Value is the latest value of the signal, in Unit; Known is false when
	// the latest sample did not have it.
	Value float64 `json:"value"`
	Known bool    `json:"known"`
	Unit  string  `json:"unit,omitempty"`
	// Cooldown is the cooldown the current pause uses, or that the next
	// one would start from; Until is the earliest end of the current pause.
	Cooldown time.Duration `json:"cooldown_ns"`
	Until    time.Time     `json:"until,omitzero"`
	// Trips counts the pauses since the cooldown last decayed.
	Trips int `json:"trips"`
}

// BreakerStatus is a consistent view of a Breaker.
type BreakerStatus struct {
	// Paused reports that at least one ladder is on its Pause rung.
	Paused bool `json:"paused"`
	// Ladders lists every ladder in configuration order.
	Ladders []LadderStatus `json:"ladders"`
	// LastSample is the time of the last fresh sample observed; Stale
	// reports that none arrived for 3 check intervals.
	LastSample time.Time `json:"last_sample,omitzero"`
	Stale      bool      `json:"stale"`
}

// Ladder returns the status of the ladder of signal, and false if there is
// none.
func (s BreakerStatus) Ladder(signal string) (LadderStatus, bool) {
	for _, l := range s.Ladders {
		if l.Signal == signal {
			return l, true
		}
	}
	return LadderStatus{}, false
}

// Breaker is the resource circuit breaker: the one owner of every signal's
// Ladder. It watches samples (Observe, or Attach to a Monitor) and keeps
// each signal on its rung: Normal, Adapt or Pause. While any signal is on
// Pause the breaker is open: Check fails and Wait blocks, which is how a
// DAG run pauses before its next node. The adaptive executor follows the
// Adapt rungs (OnChange, Status).
//
// It is a pure state machine over samples, using each sample's Time as the
// current time; it owns no goroutine and no timer. All methods are safe for
// concurrent use. Check is one atomic load while nothing is paused. Change
// listeners are called outside the lock, on the goroutine calling Observe.
type Breaker struct {
	interval time.Duration
	log      *slog.Logger

	paused atomic.Int32 // ladders on Pause, written under mu

	// mu guards the fields below.
	mu        sync.Mutex
	ladders   []ladderState
	last      time.Time // time of the last fresh sample
	changed   chan struct{}
	listenSeq uint64
	listeners []changeListener
}

type ladderState struct {
	l          Ladder
	unit       string
	kind       limit.Kind
	rung       Rung
	since      time.Time
	value      float64
	known      bool
	over       int           // consecutive samples above Pause
	lastAdapt  time.Time     // last sample at or above Adapt
	trips      int           // pauses since the cooldown last decayed
	cooldown   time.Duration // of the current (or last) pause
	until      time.Time     // earliest end of the current pause
	leftPause  time.Time     // when the last pause ended
	hadPaused  bool
	pauseLevel float64 // cached resume values
	adaptLevel float64
}

type changeListener struct {
	id uint64
	fn func(Change)
}

// NewBreaker validates opts and returns a Breaker with every signal on
// Normal. The error names the ladder and field at fault.
func NewBreaker(opts BreakerOptions) (*Breaker, error) {
	if opts.Ladders == nil {
		opts.Ladders = DefaultLadders()
	}
	if err := positiveDuration("BreakerOptions.CheckInterval", opts.CheckInterval); err != nil {
		return nil, err
	}
	if opts.CheckInterval == 0 {
		opts.CheckInterval = 5 * time.Second
	}
	b := &Breaker{interval: opts.CheckInterval, log: loggerOrDiscard(opts.Logger), changed: make(chan struct{})}
	var errs []error
	seen := map[string]bool{}
	for _, l := range opts.Ladders {
		l, err := l.withDefaults()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[l.Signal] {
			errs = append(errs, fmt.Errorf("throttle: BreakerOptions.Ladders: two ladders for %q: a signal has one ladder", l.Signal))
			continue
		}
		seen[l.Signal] = true
		meta := metaOf(l.Signal, nil)
		b.ladders = append(b.ladders, ladderState{
			l: l, unit: meta.unit, kind: meta.kind, cooldown: l.Cooldown,
			pauseLevel: l.PauseResume(), adaptLevel: l.AdaptResume(),
		})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return b, nil
}

// Attach subscribes the breaker to sub (normally a *Monitor) so that every
// published sample is observed. detach undoes it.
func (b *Breaker) Attach(sub Subscriber) (detach func()) { return sub.Subscribe(b.Observe) }

// Ladders returns the ladders in force, with their defaults filled in.
func (b *Breaker) Ladders() []Ladder {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Ladder, len(b.ladders))
	for i := range b.ladders {
		out[i] = b.ladders[i].l
	}
	return out
}

// Observe moves every ladder with the fresh sample s, using s.Time as the
// current time. A nil sample, or one not newer than the last observed, is
// ignored. Listeners of the changes it causes are called before it returns,
// outside the lock, in ladder order.
func (b *Breaker) Observe(s *Sample) {
	if s == nil {
		return
	}
	b.mu.Lock()
	if !s.Time.After(b.last) {
		b.mu.Unlock()
		return
	}
	b.last = s.Time
	var changes []Change
	paused := int32(0)
	for i := range b.ladders {
		st := &b.ladders[i]
		if st.unit == "" {
			st.unit = metaOf(st.l.Signal, s).unit
		}
		v, ok := s.Value(st.l.Signal)
		if c, moved := st.observe(s.Time, v, ok); moved {
			changes = append(changes, c)
		}
		if st.rung == Pause {
			paused++
		}
	}
	if len(changes) > 0 {
		b.paused.Store(paused)
		close(b.changed)
		b.changed = make(chan struct{})
	}
	listeners := b.listeners
	b.mu.Unlock()

	for _, c := range changes {
		b.logChange(c)
		for _, l := range listeners {
			b.notify(l, c)
		}
	}
}

// observe applies the Ladder rules to one value. It returns the change, if
// the rung moved.
func (st *ladderState) observe(now time.Time, v float64, ok bool) (Change, bool) {
	l := &st.l
	st.value, st.known = v, ok
	if !ok {
		v = 0 // below every level; see Ladder
	}
	above := l.Pause > 0 && v > l.Pause
	if above {
		st.over++
	} else {
		st.over = 0
	}
	if l.Adapt > 0 && v >= l.Adapt {
		st.lastAdapt = now
	}
	from := st.rung
	to, level := from, 0.0
	switch {
	case from == Pause:
		if above {
			st.until = laterOf(st.until, now.Add(st.cooldown))
		}
		if !now.Before(st.until) && v < st.pauseLevel {
			to, level = Normal, st.pauseLevel
			if l.Adapt > 0 && v >= st.adaptLevel {
				to = Adapt
				st.lastAdapt = now
			}
			st.leftPause = now
		}
	case above && st.over >= l.TripAfter:
		if st.hadPaused && now.Sub(st.leftPause) >= st.cooldown {
			st.trips = 0 // a quiet period as long as the cooldown: decay
		}
		st.trips++
		st.cooldown = l.Cooldown
		for i := 1; i < st.trips && st.cooldown < l.MaxCooldown; i++ {
			st.cooldown *= 2
		}
		st.cooldown = min(st.cooldown, l.MaxCooldown)
		st.until = now.Add(st.cooldown)
		st.hadPaused = true
		to, level = Pause, l.Pause
	case l.Adapt > 0 && v >= l.Adapt:
		to, level = Adapt, l.Adapt
	case from == Adapt && v < st.adaptLevel && now.Sub(st.lastAdapt) >= l.Hold:
		to, level = Normal, st.adaptLevel
	}
	if to == from {
		return Change{}, false
	}
	st.rung, st.since = to, now
	c := Change{Signal: l.Signal, From: from, To: to, At: now, Value: st.value, Known: ok, Unit: st.unit, Level: level}
	if to == Pause {
		c.Cooldown, c.Until = st.cooldown, st.until
	}
	return c, true
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (b *Breaker) logChange(c Change) {
	attrs := []any{"signal", c.Signal, "from", c.From.String(), "to", c.To.String(), "value", c.Value, "level", c.Level}
	switch {
	case c.To == Pause:
		b.log.Info("throttle: pausing work", append(attrs, "cooldown", c.Cooldown, "until", c.Until)...)
	case c.From == Pause:
		b.log.Info("throttle: resuming work", attrs...)
	default:
		b.log.Info("throttle: rung change", attrs...)
	}
}

func (b *Breaker) notify(l changeListener, c Change) {
	defer func() {
		if r := recover(); r != nil {
			b.log.Error("throttle: breaker change listener panicked", "panic", r)
		}
	}()
	l.fn(c)
}

// OnChange registers fn to be called after every rung change, on the
// goroutine that called Observe, outside any lock, in registration order. A
// panic in fn is recovered and logged. remove unregisters it (idempotent).
func (b *Breaker) OnChange(fn func(Change)) (remove func()) {
	b.mu.Lock()
	b.listenSeq++
	id := b.listenSeq
	// Copy on write: Observe iterates a snapshot of the slice.
	b.listeners = append(slices.Clip(b.listeners), changeListener{id: id, fn: fn})
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.listeners = slices.DeleteFunc(slices.Clone(b.listeners), func(l changeListener) bool { return l.id == id })
	}
}

// Paused reports whether a ladder is on its Pause rung. It is one atomic
// load.
func (b *Breaker) Paused() bool { return b.paused.Load() > 0 }

// Status returns every ladder's rung, value and timing.
func (b *Breaker) Status() BreakerStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := BreakerStatus{Paused: b.paused.Load() > 0, LastSample: b.last, Ladders: make([]LadderStatus, len(b.ladders))}
	for i := range b.ladders {
		l := &b.ladders[i]
		ls := LadderStatus{Ladder: l.l, Rung: l.rung, Since: l.since, Value: l.value, Known: l.known, Unit: l.unit, Cooldown: l.cooldown, Trips: l.trips}
		if l.rung == Pause {
			ls.Until = l.until
		}
		st.Ladders[i] = ls
	}
	st.Stale = b.last.IsZero() || time.Since(b.last) > 3*b.interval
	return st
}

// Check returns nil unless a ladder is on its Pause rung; then a
// *PauseError naming only the signals that are paused, matching ErrPaused
// and limit.ErrExceeded. It never blocks; while nothing is paused it is one
// atomic load and does not allocate.
func (b *Breaker) Check() error {
	if b.paused.Load() == 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.checkLocked()
}

func (b *Breaker) checkLocked() error {
	var e *PauseError
	for i := range b.ladders {
		st := &b.ladders[i]
		if st.rung != Pause {
			continue
		}
		if e == nil {
			e = &PauseError{}
		}
		e.Signals = append(e.Signals, PausedSignal{
			Signal: st.l.Signal, Kind: st.kind, Value: st.value, Known: st.known, Unit: st.unit,
			Pause: st.l.Pause, ResumeBelow: st.pauseLevel, Until: st.until,
		})
		e.Until = laterOf(e.Until, st.until)
	}
	if e == nil {
		return nil
	}
	return e
}

// Wait blocks while a ladder is on its Pause rung and returns nil once none
// is. It returns context.Cause(ctx) when ctx ends first, and fails fast,
// without waiting, when ctx's deadline comes before the pause can end.
func (b *Breaker) Wait(ctx context.Context) error {
	if b.paused.Load() == 0 {
		return nil
	}
	for {
		b.mu.Lock()
		err := b.checkLocked()
		if err == nil {
			b.mu.Unlock()
			return nil
		}
		if dl, ok := ctx.Deadline(); ok {
			if until := err.(*PauseError).Until; dl.Before(until) {
				b.mu.Unlock()
				return fmt.Errorf("throttle: waiting for the pause to end would exceed the context deadline: %w", errors.Join(context.DeadlineExceeded, err))
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
