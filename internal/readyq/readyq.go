// Package readyq is the priority queue of node indices shared by dag's
// topological sort and the executor's scheduler: higher priority first, then
// lower index (the order nodes were given in). It is a plain binary heap with
// no interface dispatch, because it sits on the scheduler's hot path, plus a
// sorted base run (typically the graph's roots) that is consumed in O(1).
package readyq

// Queue holds node indices ordered by (priority desc, index asc). The zero
// value is not usable; make one with New. Not safe for concurrent use.
type Queue struct {
	base  []int32 // sorted by (priority desc, index asc); consumed from the front
	items []int32 // binary heap
	prio  []int
}

// New returns an empty queue over nodes whose priorities are prio[i]. The
// queue keeps prio; it must not change while the queue is in use. A nil
// prio means every node has the same priority (the queue is in index
// order), which spares a comparison its two loads from prio; see Uniform.
func New(prio []int, capacity int) *Queue {
	return &Queue{items: make([]int32, 0, capacity), prio: prio}
}

// Reset empties q and makes it a queue over prio, reusing its storage when
// it can hold capacity indices: a scheduler that runs the same graph again
// allocates nothing.
func (q *Queue) Reset(prio []int, capacity int) {
	if cap(q.items) < capacity {
		q.items = make([]int32, 0, capacity)
	}
	q.items, q.base, q.prio = q.items[:0], nil, prio
}

// Len returns the number of queued indices.
func (q *Queue) Len() int { return len(q.base) + len(q.items) }

func (q *Queue) less(a, b int32) bool {
	if q.prio == nil {
		return a < b
	}
	pa, pb := q.prio[a], q.prio[b]
	if pa != pb {
		return pa > pb
	}
	return a < b
}

// Less reports whether index a is ordered before index b.
func (q *Queue) Less(a, b int32) bool { return q.less(a, b) }

// SetBase replaces the base run with sorted, which must already be in queue
// order (see Less) and must not be modified while queued. Pushes may
// interleave with it freely.
func (q *Queue) SetBase(sorted []int32) { q.base = sorted }

// Push adds node index i.
func (q *Queue) Push(i int32) {
	q.items = append(q.items, i)
	j := len(q.items) - 1
	for j > 0 {
		p := (j - 1) / 2
		if !q.less(q.items[j], q.items[p]) {
			break
		}
		q.items[j], q.items[p] = q.items[p], q.items[j]
		j = p
	}
}

// Pop removes and returns the first index. It panics on an empty queue.
func (q *Queue) Pop() int32 {
	if len(q.base) > 0 && (len(q.items) == 0 || q.less(q.base[0], q.items[0])) {
		top := q.base[0]
		q.base = q.base[1:]
		return top
	}
	top := q.items[0]
	n := len(q.items) - 1
	q.items[0] = q.items[n]
	q.items = q.items[:n]
	j := 0
	for {
		l := 2*j + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && q.less(q.items[r], q.items[l]) {
			m = r
		}
		if !q.less(q.items[m], q.items[j]) {
			break
		}
		q.items[j], q.items[m] = q.items[m], q.items[j]
		j = m
	}
	return top
}

// Peek returns the first index without removing it. It panics on an empty
// queue.
func (q *Queue) Peek() int32 {
	if len(q.base) > 0 && (len(q.items) == 0 || q.less(q.base[0], q.items[0])) {
		return q.base[0]
	}
	return q.items[0]
}

// Uniform returns prio, or nil when every priority in it is the same: the
// argument to give New and Reset.
func Uniform(prio []int) []int {
	for _, p := range prio {
		if p != prio[0] {
			return prio
		}
	}
	return nil
}
