package executor

import (
	"fmt"
	"time"

	"github.com/cemaf-go/cemaf/internal/panicerr"
)

func (r *run) signalCommitter() {
	select {
	case r.commitWake <- struct{}{}:
	default:
	}
}

// committer makes pending completions durable, in groups (see
// CommitPolicy), then releases their dependents. It is owned by the run and
// exits when the coordinator sets commitStop with nothing pending.
func (r *run) committer() {
	defer close(r.commitDone)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		now := r.now()
		r.mu.Lock()
		batch, wait, exit := r.takeBatch(now)
		idx := r.pendingIdx
		if batch != nil {
			r.pendingIdx = nil
		}
		r.mu.Unlock()
		if batch != nil {
			var err error
			if r.durable != nil {
				// The values stay in the State: make them durable first,
				// then record the completions.
				if err = panicerr.Call("DurableState.Checkpoint", r.durable.Checkpoint); err != nil {
					err = fmt.Errorf("checkpoint the State: %w", err)
				}
			}
			if err == nil {
				err = r.store.commit(r.id, batch, r.now())
			}
			reason, fault := r.check()
			r.mu.Lock()
			r.committing = false
			if err != nil && r.ckptErr == nil {
				r.ckptErr = fmt.Errorf("executor: checkpoint run %s: %w", r.id, err)
				r.stop(r.ckptErr)
			}
			if fault != nil {
				r.gateFailed(fault)
			}
			for _, i := range idx {
				if err == nil {
					nr := &r.res.Nodes[i]
					nr.Checkpointed = true
					r.emit(Event{Kind: NodeCheckpointed, Node: nr.ID, Attempt: nr.Attempts, Time: r.now(), Status: Succeeded})
				}
				r.release(i)
			}
			r.dispatch(r.now(), reason, false)
			r.mu.Unlock()
			r.signal()
			continue
		}
		if exit {
			return
		}
		var timerC <-chan time.Time
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			timerC = timer.C
		}
		select {
		case <-r.commitWake:
		case <-timerC:
		}
	}
}

// starved reports whether holding completions back may leave the run idle:
// nothing runs and nothing is ready, or a class has a free slot, nothing
// ready, and nodes still waiting for their dependencies. Called with mu
// held.
func (r *run) starved() bool {
	if r.inflight == 0 && r.readyLen() == 0 {
		return true
	}
	lim := r.e.classLimits()
	for c := range r.ready {
		if r.running[c] < lim[c] && r.ready[c].Len() == 0 && r.unreleased[c] > 0 {
			return true
		}
	}
	return false
}

// takeBatch decides whether to commit now. It returns the batch to commit,
// or how long to wait (0: until signalled), or exit. Called with mu held.
func (r *run) takeBatch(now time.Time) (batch []completionRecord, wait time.Duration, exit bool) {
	if len(r.pending) == 0 {
		return nil, 0, r.commitStop
	}
	p := r.policy
	due := len(r.pending) >= max(p.MaxNodes, 1) ||
		(p.MaxDelay > 0 && now.Sub(r.pendingSince) >= p.MaxDelay) ||
		r.starved() ||
		r.stopping || r.commitStop
	if !due {
		if p.MaxDelay > 0 {
			wait = r.pendingSince.Add(p.MaxDelay).Sub(now)
		}
		return nil, wait, false
	}
	batch = r.pending
	r.pending = nil
	r.committing = true
	return batch, 0, false
}
