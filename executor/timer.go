package executor

import (
	"fmt"
	"time"
)

// Timer kinds. A retry timer queues a node again once its backoff has
// passed; an abandon timer gives up on an attempt that outlived its timeout
// (or the run's stop) by AbandonAfter.
const (
	timerAbandon = iota
	timerRetry
)

// timerEntry is one pending timer of a run, kept in run.timers. tok is the
// slot token of the attempt an abandon timer is for.
type timerEntry struct {
	at   time.Time
	idx  int32
	kind uint8
	tok  uint64
}

// pushTimer adds a timer entry, kicking the coordinator when it becomes the
// earliest. Called with mu held.
func (r *run) pushTimer(t timerEntry) {
	r.timers.push(t)
	if r.timers[0] == t {
		r.kick = true
	}
}

// nextTimer is the earliest deadline the coordinator must wake for. Called
// with mu held.
func (r *run) nextTimer() time.Time {
	var next time.Time
	if len(r.timers) > 0 {
		next = r.timers[0].at
	}
	if !r.delayUntil.IsZero() && r.readyLen() > 0 && (next.IsZero() || r.delayUntil.Before(next)) {
		next = r.delayUntil
	}
	return next
}

// fireTimers handles the timer entries due at now. Called with mu held.
func (r *run) fireTimers(now time.Time) {
	if !r.delayUntil.IsZero() && !now.Before(r.delayUntil) {
		r.delayUntil = time.Time{}
	}
	for len(r.timers) > 0 && !now.Before(r.timers[0].at) {
		t := r.timers.pop()
		switch t.kind {
		case timerRetry:
			r.retries--
			if !r.stopping {
				if r.readyPaused != nil {
					r.readyPaused[t.idx] = r.res.Paused
				}
				r.ready[r.slots[t.idx].class].Push(t.idx)
			}
		case timerAbandon:
			sl := &r.slots[t.idx]
			if !sl.token.CompareAndSwap(t.tok, t.tok|1) {
				continue // that attempt already reported
			}
			r.wg.Done() // on behalf of the goroutine, which exits without it
			r.inflight--
			r.running[sl.class]--
			r.res.Abandoned++
			nr := &r.res.Nodes[t.idx]
			nr.Abandoned = true
			nr.End = now
			if r.stopping {
				r.cancelNode(t.idx, fmt.Errorf("executor: node ignored cancellation for %v; goroutine abandoned", r.abandonAfter))
				continue
			}
			r.fail(t.idx, TimedOut, &TimeoutError{Timeout: sl.timeout, Abandoned: true})
		}
	}
}

func (r *run) delayPassed(now time.Time) bool {
	delay := r.e.InterNodeDelay()
	return delay <= 0 || r.lastStart.IsZero() || !now.Before(r.lastStart.Add(delay))
}

// timerHeap is a min-heap of timer entries by time.
type timerHeap []timerEntry

func (h *timerHeap) push(t timerEntry) {
	*h = append(*h, t)
	s := *h
	for j := len(s) - 1; j > 0; {
		p := (j - 1) / 2
		if !s[j].at.Before(s[p].at) {
			break
		}
		s[j], s[p] = s[p], s[j]
		j = p
	}
}

func (h *timerHeap) pop() timerEntry {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	for j := 0; ; {
		l := 2*j + 1
		if l >= n {
			break
		}
		m := l
		if rr := l + 1; rr < n && s[rr].at.Before(s[l].at) {
			m = rr
		}
		if !s[m].at.Before(s[j].at) {
			break
		}
		s[j], s[m] = s[m], s[j]
		j = m
	}
	*h = s
	return top
}
