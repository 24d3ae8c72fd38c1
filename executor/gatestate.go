package executor

import (
	"context"
	"fmt"
	"time"

	"github.com/cemaf-go/cemaf/internal/panicerr"
)

// pauseThreshold is how long Wait of a Gate without Checker must block before
// the executor reports it as a pause.
const pauseThreshold = time.Millisecond

// gatePhase is where a run stands with its Gate.
type gatePhase uint8

const (
	// gateClear: no pause in progress; each start consults Check.
	gateClear gatePhase = iota
	// gateBlocked: Check refused a start; the coordinator must report the
	// pause and wait on the gate.
	gateBlocked
	// gateWaiting: the coordinator's waiter goroutine is in Gate.Wait;
	// nothing starts.
	gateWaiting
	// gateBypass: a wait just returned; the next start skips Check, so that
	// a flapping gate cannot starve the run.
	gateBypass
)

// gateState is a run's progress through a pause of its Gate. It is guarded
// by run.mu.
type gateState struct {
	phase gatePhase
	// reason is Check's answer that blocked the run, for the Paused event.
	reason error
}

// block records that Check refused a start, for reason.
func (g *gateState) block(reason error) { g.phase, g.reason = gateBlocked, reason }

// blocked reports whether a refused start waits for the coordinator to
// begin a wait.
func (g *gateState) blocked() bool { return g.phase == gateBlocked }

// beginWait moves a blocked gate to waiting and returns why it blocked.
func (g *gateState) beginWait() error {
	g.phase = gateWaiting
	return g.reason
}

// waiting reports whether a wait on the gate is in progress.
func (g *gateState) waiting() bool { return g.phase == gateWaiting }

// endWait records the end of a wait; admitted (Wait returned nil) lets the
// next start bypass Check.
func (g *gateState) endWait(admitted bool) {
	g.phase = gateClear
	if admitted {
		g.phase = gateBypass
	}
}

// bypassing reports whether the next start will skip Check.
func (g *gateState) bypassing() bool { return g.phase == gateBypass }

// takeBypass reports whether the next start may skip Check, and consumes
// the bypass.
func (g *gateState) takeBypass() bool {
	if g.phase != gateBypass {
		return false
	}
	g.phase = gateClear
	return true
}

// check asks the gate's Checker whether a node may start: reason is nil
// when it may. A panic in Check is returned as fault (a *PanicError), and
// as reason too; the caller reports it with gateFailed, which stops the
// run. It is called without mu: Check is the gate's code.
func (r *run) check() (reason, fault error) {
	if r.checker == nil {
		return nil, nil
	}
	if err := panicerr.Call("Checker.Check", func() error { reason = r.checker.Check(); return nil }); err != nil {
		return err, err
	}
	return reason, nil
}

// gateFailed stops the run because its gate failed (Wait returned an error
// other than the run's end, or the gate panicked). Called with mu held.
func (r *run) gateFailed(err error) {
	if r.stopping {
		return
	}
	r.gateErr = fmt.Errorf("executor: gate: %w", err)
	r.stop(r.gateErr)
}

// waitGate calls the gate's Wait, turning a panic into a *PanicError.
// Called without mu.
func (r *run) waitGate(ctx context.Context) error {
	return panicerr.Call("Gate.Wait", func() error { return r.gate.Wait(ctx) })
}

// gateAdmits reports whether the gate lets the next node start, given
// Check's answer reason (nil: it may). Called with mu held.
func (r *run) gateAdmits(reason error) bool {
	switch {
	case r.gate == nil:
		return true
	case r.gs.waiting():
		return false
	case r.gs.takeBypass():
		// A wait on the gate just returned: start one node even if Check
		// has flipped back, so a flapping gate cannot starve the run.
		return true
	case r.checker == nil:
		r.kick = true // the coordinator waits on plain gates
		return false
	case reason != nil:
		r.gs.block(reason)
		r.kick = true
		return false
	}
	return true
}

// gateReturned handles the end of a wait on a Checker gate.
func (r *run) gateReturned(parent context.Context, d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gs.endWait(err == nil)
	r.res.Pauses++
	r.res.Paused += d
	r.emit(Event{Kind: Resumed, Time: r.now(), Duration: d, Err: err})
	switch {
	case err == nil:
	case parent.Err() != nil:
		// The wait ended because the caller's context did.
		if !r.cancelled {
			r.cancelled = true
			r.stop(context.Cause(parent))
		}
	default:
		r.gateFailed(err)
	}
}

// waitPlainGate waits, on the coordinator, on a Gate without Checker before
// the next node start, when a node could start. Node goroutines never start
// nodes under such a gate; they kick the coordinator instead.
func (r *run) waitPlainGate() {
	r.mu.Lock()
	can := !r.stopping && !r.gs.bypassing() && r.pick(r.e.classLimits()) != nil && r.delayPassed(r.now())
	r.mu.Unlock()
	if !can {
		return
	}
	start := r.now()
	err := r.waitGate(r.runCtx())
	d := time.Since(start)
	r.mu.Lock()
	defer r.mu.Unlock()
	if d >= pauseThreshold {
		r.res.Pauses++
		r.res.Paused += d
		r.emit(Event{Kind: Paused, Time: start})
		r.emit(Event{Kind: Resumed, Time: start.Add(d), Duration: d})
	}
	switch {
	case err == nil:
		r.gs.endWait(true)
	case r.runCtx().Err() != nil:
		// Cancellation: the coordinator sees it next.
	default:
		r.gateFailed(err)
	}
}
