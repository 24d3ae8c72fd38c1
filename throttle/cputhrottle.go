package throttle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cemaf-go/cemaf/limit"
)

// CPUThrottlerOptions configures a CPUThrottler. The zero value holds the
// process at 70 % of one core over a 5 s window, measuring the process's CPU
// time with ProcessCPUTime.
type CPUThrottlerOptions struct {
	// TargetPercent is the CPU use to stay at or under, in percent (0, 100]
	// of Cores cores. Default 70.
	TargetPercent float64
	// Cores is the capacity TargetPercent applies to, in cores: 1 (the
	// default) makes 70 mean 0.7 of one core; 4 makes it 2.8 cores.
	Cores float64
	// Window is the sliding window over which the average is kept. Usage
	// can burst up to the budget of one window after idling. Default 5s.
	Window time.Duration
	// CPUTime returns the cumulative CPU time to pace. Default
	// ProcessCPUTime (this process only). For an agent whose LLM runs in
	// another process on the same board, Sampler.AgentCPUTime counts that
	// process too; with no helper on the board, Sampler.BoardCPUTime paces
	// against the whole board (set Cores to the board's CPUs then).
	CPUTime func() (time.Duration, error)
	// Logger receives CPU time read failures. Nil discards them.
	Logger *slog.Logger
}

// CPUThrottler keeps CPU use (this process's, or what CPUTime measures) at
// or under a target over a sliding window by delaying operations: before each one it computes, from
// the process's CPU time history, how long to wait for the window's usage
// plus the expected cost of the operation to fit in the budget, and sleeps
// that long. The expected cost is a moving average of the CPU time the
// process used during the previous operations run by Do (or Call); an
// operation costing more than the whole budget runs alone in its window.
//
// The measure is the whole process's CPU time, not only the throttled
// operations', so other work of the process counts against the budget.
// Concurrent callers are delayed alike; a burst they cause together is paid
// back by longer delays afterwards. It starts no goroutine and is safe for
// concurrent use.
type CPUThrottler struct {
	window  time.Duration
	cores   float64
	cpuTime func() (time.Duration, error)
	log     *slog.Logger

	// mu guards the fields below.
	mu      sync.Mutex
	rate    float64       // CPU seconds per wall second allowed
	budget  time.Duration // CPU time allowed per window
	pct     float64
	marks   []cpuMark     // CPU time history, oldest first
	opCost  time.Duration // moving average of the CPU time per operation
	lastErr string
	delays  uint64
	delayed time.Duration
}

// cpuMark is the process's cumulative CPU time at a wall-clock instant.
type cpuMark struct {
	t time.Time
	c time.Duration
}

// NewCPUThrottler validates opts and returns a throttler whose window
// starts now (CPU used before this call does not count).
func NewCPUThrottler(opts CPUThrottlerOptions) (*CPUThrottler, error) {
	if opts.TargetPercent == 0 {
		opts.TargetPercent = 70
	}
	if err := checkPercent("CPUThrottlerOptions.TargetPercent", opts.TargetPercent); err != nil {
		return nil, err
	}
	if opts.Cores == 0 {
		opts.Cores = 1
	}
	if err := checkPositive("CPUThrottlerOptions.Cores", opts.Cores); err != nil {
		return nil, err
	}
	if err := positiveDuration("CPUThrottlerOptions.Window", opts.Window); err != nil {
		return nil, err
	}
	if opts.Window == 0 {
		opts.Window = 5 * time.Second
	}
	if opts.CPUTime == nil {
		opts.CPUTime = ProcessCPUTime
	}
	rate := opts.TargetPercent / 100 * opts.Cores
	t := &CPUThrottler{
		rate:    rate,
		window:  opts.Window,
		budget:  time.Duration(float64(opts.Window) * rate),
		pct:     opts.TargetPercent,
		cores:   opts.Cores,
		cpuTime: opts.CPUTime,
		log:     loggerOrDiscard(opts.Logger),
	}
	if c, err := t.cpuTime(); err == nil {
		t.marks = append(t.marks, cpuMark{t: time.Now(), c: c})
	}
	return t, nil
}

// TargetPercent returns the target in force, in percent of Cores cores.
func (t *CPUThrottler) TargetPercent() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pct
}

// SetTargetPercent changes the target, in percent (0, 100] of Cores
// cores, from the next operation on (the adaptive executor lowers it while
// the board is hot). The error names the accepted range.
func (t *CPUThrottler) SetTargetPercent(pct float64) error {
	if err := checkPercent("CPUThrottler.SetTargetPercent", pct); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pct = pct
	t.rate = pct / 100 * t.cores
	t.budget = time.Duration(float64(t.window) * t.rate)
	return nil
}

// Delay returns how long an operation starting now should wait for the
// window's CPU use, plus the operation's expected cost, to be within the
// budget (0 when it is), and the CPU use of the last window in percent of
// the capacity. It does not block.
func (t *CPUThrottler) Delay() (time.Duration, float64) {
	d, used, _ := t.delay()
	return d, used
}

// delay also returns the expected cost of the next operation, in percent
// of the window's capacity.
func (t *CPUThrottler) delay() (d time.Duration, usedPct, costPct float64) {
	now := time.Now()
	c, err := t.cpuTime()
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		if msg := err.Error(); msg != t.lastErr {
			t.lastErr = msg
			t.log.Warn("throttle: CPU throttler: reading CPU time failed; not delaying", "error", err)
		}
		return 0, 0, 0
	}
	t.lastErr = ""
	window, budget := t.window, t.budget
	if t.opCost > budget {
		// An operation costing more than the budget runs alone in a
		// window stretched to hold it at the target rate.
		window, budget = t.effectiveWindow(), t.opCost
	}
	d, used := throttleDelay(t.marks, now, c, window, budget-min(t.opCost, budget))
	t.marks = recordMark(t.marks, now, c, window)
	return d, t.percent(used), t.percent(min(t.opCost, budget))
}

// effectiveWindow is the window, stretched when one operation costs more
// than its budget. mu must be held.
func (t *CPUThrottler) effectiveWindow() time.Duration {
	if t.opCost > t.budget {
		return time.Duration(float64(t.opCost) / t.rate)
	}
	return t.window
}

func (t *CPUThrottler) percent(d time.Duration) float64 {
	return float64(d) / float64(t.window) / t.cores * 100
}

// observeCost folds the CPU time used during one operation into the
// moving average.
func (t *CPUThrottler) observeCost(c time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.opCost == 0 {
		t.opCost = c
		return
	}
	t.opCost += (c - t.opCost) / 4
}

// throttleDelay is the delay math. marks is the CPU time history (oldest
// first, non-decreasing), cur the CPU time at now. The history is the
// piecewise-linear function through the marks and (now, cur), flat before
// the first mark. used is the CPU time of the window ending now; when it
// exceeds budget, the delay is the time until the window, sliding forward
// over an idle wait, has dropped enough of its oldest usage.
func throttleDelay(marks []cpuMark, now time.Time, cur, window, budget time.Duration) (delay, used time.Duration) {
	pts := append(marks[:len(marks):len(marks)], cpuMark{t: now, c: cur})
	at := func(t time.Time) time.Duration { // CPU time at t
		if !t.After(pts[0].t) {
			return pts[0].c
		}
		for i := 1; i < len(pts); i++ {
			if !t.After(pts[i].t) {
				a, b := pts[i-1], pts[i]
				return a.c + time.Duration(float64(b.c-a.c)*float64(t.Sub(a.t))/float64(b.t.Sub(a.t)))
			}
		}
		return pts[len(pts)-1].c
	}
	used = max(0, cur-at(now.Add(-window)))
	if used <= budget {
		return 0, used
	}
	// The earliest instant whose CPU time is at least cur - budget: once
	// the window starts there, it holds budget of CPU time.
	goal := cur - budget
	start := pts[0].t
	for i := 1; i < len(pts); i++ {
		a, b := pts[i-1], pts[i]
		if b.c < goal {
			continue
		}
		start = a.t
		if b.c > a.c && goal > a.c {
			start = a.t.Add(time.Duration(float64(b.t.Sub(a.t)) * float64(goal-a.c) / float64(b.c-a.c)))
		}
		break
	}
	return max(0, start.Add(window).Sub(now)), used
}

// markResolution is the number of marks kept per window: between marks the
// CPU time is interpolated linearly.
const markResolution = 64

// recordMark appends (now, c) to marks when the newest mark is at least
// window/markResolution old, and drops the marks no future window can reach
// back to.
func recordMark(marks []cpuMark, now time.Time, c, window time.Duration) []cpuMark {
	if n := len(marks); n == 0 || now.Sub(marks[n-1].t) >= window/markResolution {
		if n > 0 && c < marks[n-1].c {
			c = marks[n-1].c // a CPU clock never goes back
		}
		marks = append(marks, cpuMark{t: now, c: c})
	}
	drop := 0
	for drop+1 < len(marks) && !marks[drop+1].t.After(now.Add(-window)) {
		drop++
	}
	if drop > 0 {
		marks = append(marks[:0], marks[drop:]...)
	}
	return marks
}

// Wait sleeps for the delay Delay computes, and returns nil. It returns
// context.Cause(ctx) if ctx ends first, and fails fast, without sleeping,
// when ctx's deadline comes before the delay ends.
func (t *CPUThrottler) Wait(ctx context.Context) error {
	d, used, cost := t.delay()
	if d <= 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return fmt.Errorf("throttle: CPU throttler: delay of %v would exceed the context deadline: %w",
			d, errors.Join(context.DeadlineExceeded, t.limitError(used+cost)))
	}
	t.mu.Lock()
	t.delays++
	t.delayed += d
	t.mu.Unlock()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	// Mark the end of the idle wait, so that the history does not spread
	// the next operation's CPU time over the wait.
	if c, err := t.cpuTime(); err == nil {
		t.note(time.Now(), c)
	}
	return nil
}

// note records the CPU time c at now in the history.
func (t *CPUThrottler) note(now time.Time, c time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.marks = recordMark(t.marks, now, c, t.effectiveWindow())
}

// Check returns a *limit.Error (limit.CPU, Subject "paced CPU", unit "%") when
// an operation starting now would be delayed, nil otherwise; Current is the
// window's CPU use plus the next operation's expected cost. It reads the
// process CPU time (one system call) and does not block.
func (t *CPUThrottler) Check() error {
	if d, used, cost := t.delay(); d > 0 {
		return t.limitError(used + cost)
	}
	return nil
}

func (t *CPUThrottler) limitError(projectedPct float64) *limit.Error {
	t.mu.Lock()
	pct := t.pct
	t.mu.Unlock()
	return &limit.Error{Kind: limit.CPU, Subject: "paced CPU", Current: projectedPct, Limit: pct, Unit: "%",
		Detail: fmt.Sprintf("over the last %v, with the next operation's expected cost", t.window)}
}

// Do waits like Wait, then runs fn, measuring the process CPU time it takes
// to refine the expected cost of the next operation. A panic in fn is
// returned as a *PanicError.
func (t *CPUThrottler) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	if err := t.Wait(ctx); err != nil {
		return err
	}
	c0, err0 := t.cpuTime()
	if err0 == nil {
		t.note(time.Now(), c0)
	}
	err := callProtected("CPUThrottler.Do", func() error { return fn(ctx) })
	if c1, err1 := t.cpuTime(); err0 == nil && err1 == nil && c1 >= c0 {
		t.observeCost(c1 - c0)
	}
	return err
}

// Call runs fn through t like CPUThrottler.Do, for calls that return a
// value, such as a client's completion call:
//
//	resp, err := throttle.Call(ctx, t, func(ctx context.Context) (*Response, error) {
//		return client.Complete(ctx, req)
//	})
func Call[T any](ctx context.Context, t *CPUThrottler, fn func(ctx context.Context) (T, error)) (T, error) {
	var v T
	err := t.Do(ctx, func(ctx context.Context) error {
		var err error
		v, err = fn(ctx)
		return err
	})
	return v, err
}

// CPUThrottlerStats counts the delays a CPUThrottler inserted.
type CPUThrottlerStats struct {
	// Delays counts the waits that slept; Delayed is their total length.
	Delays  uint64
	Delayed time.Duration
}

// Stats returns the delay counters.
func (t *CPUThrottler) Stats() CPUThrottlerStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return CPUThrottlerStats{Delays: t.delays, Delayed: t.delayed}
}
