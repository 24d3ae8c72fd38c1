package llm

import (
	"container/heap"
	"context"
	"sync"
)

// slots limits the calls under way to one model. A call takes a slot with
// acquire, under the limit of the profile it runs with, and gives it back
// with release. Calls that find no free slot wait in a queue served by
// priority, higher first, in arrival order within a priority. A waiter
// blocks on its own channel: no goroutine per waiter.
type slots struct {
	// mu guards the fields below.
	mu       sync.Mutex
	inflight int
	queue    waitQueue
	seq      uint64 // arrival counter
}

// waiter is a call waiting for a slot.
type waiter struct {
	priority int
	seq      uint64
	limit    int           // the most calls under way this waiter accepts
	ready    chan struct{} // closed when the slot is granted
	index    int           // in queue; -1 once granted
}

// acquire takes a slot, waiting while limit calls or more are under way or
// calls of higher priority (or of the same priority, arrived earlier) wait.
// It returns context.Cause(ctx) if ctx ends first, holding no slot then.
// waiting is called (without the lock) when the call has to queue.
func (s *slots) acquire(ctx context.Context, priority, limit int, waiting func()) error {
	s.mu.Lock()
	if s.inflight < limit && len(s.queue) == 0 {
		s.inflight++
		s.mu.Unlock()
		return nil
	}
	s.seq++
	w := &waiter{priority: priority, seq: s.seq, limit: limit, ready: make(chan struct{})}
	heap.Push(&s.queue, w)
	s.grant()
	s.mu.Unlock()
	if waiting != nil {
		waiting()
	}
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	if w.index >= 0 {
		heap.Remove(&s.queue, w.index)
		s.grant() // the waiters behind may fit now
		s.mu.Unlock()
		return context.Cause(ctx)
	}
	s.mu.Unlock()
	// Granted as ctx ended: hand the slot on.
	s.release()
	return context.Cause(ctx)
}

// release gives a slot back and grants it to the next waiters that fit.
func (s *slots) release() {
	s.mu.Lock()
	s.inflight--
	s.grant()
	s.mu.Unlock()
}

// grant admits waiters from the head of the queue while the head's limit
// allows. mu must be held.
func (s *slots) grant() {
	for len(s.queue) > 0 && s.inflight < s.queue[0].limit {
		w := heap.Pop(&s.queue).(*waiter)
		s.inflight++
		close(w.ready)
	}
}

// waitQueue is a heap of waiters, highest priority then earliest first.
type waitQueue []*waiter

func (q waitQueue) Len() int { return len(q) }

func (q waitQueue) Less(i, j int) bool {
	if q[i].priority != q[j].priority {
		return q[i].priority > q[j].priority
	}
	return q[i].seq < q[j].seq
}

func (q waitQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index = i
	q[j].index = j
}

func (q *waitQueue) Push(x any) {
	w := x.(*waiter)
	w.index = len(*q)
	*q = append(*q, w)
}

func (q *waitQueue) Pop() any {
	old := *q
	n := len(old)
	w := old[n-1]
	old[n-1] = nil
	w.index = -1
	*q = old[:n-1]
	return w
}
