// Package readyq is the priority queue of node indices shared by dag's
// topological sort and the executor's scheduler: higher priority first, then
// lower index (the order nodes were given in). It is a plain binary heap with
// no interface dispatch, because it sits on the scheduler's hot path, plus a
// sorted base run (typically the graph's roots) that is consumed in O(1).
// When every node has the same priority (a nil prio, see Uniform) the order
// is the index alone, and the queue is a two-level bitmap instead of a heap:
// Push and Pop touch two words each, whatever the length.
package readyq

import "math/bits"

// Queue holds node indices ordered by (priority desc, index asc). The zero
// value is not usable; make one with New. Not safe for concurrent use.
type Queue struct {
	base  []int32 // sorted by (priority desc, index asc); consumed from the front
	items []int32 // binary heap (prio != nil)
	prio  []int

	// With prio nil, the queued indices: bit i%64 of words[i/64], and bit
	// w%64 of summary[w/64] set while words[w] != 0. lo is a summary word
	// below which all are zero; n counts the indices.
	words   []uint64
	summary []uint64
	lo      int
	n       int
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
	clear(q.words)
	clear(q.summary)
	q.lo, q.n = 0, 0
}

// Len returns the number of queued indices.
func (q *Queue) Len() int { return len(q.base) + len(q.items) + q.n }

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

// Push adds node index i. With uniform priorities (a nil prio) an index
// already queued stays queued once.
func (q *Queue) Push(i int32) {
	if q.prio == nil {
		q.pushBit(i)
		return
	}
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
	if q.prio == nil {
		if q.n > 0 {
			if m := q.minBit(); len(q.base) == 0 || m < q.base[0] {
				q.clearBit(m)
				return m
			}
		}
		top := q.base[0]
		q.base = q.base[1:]
		return top
	}
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
	if q.prio == nil {
		if q.n > 0 {
			if m := q.minBit(); len(q.base) == 0 || m < q.base[0] {
				return m
			}
		}
		return q.base[0]
	}
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

// pushBit queues i in the bitmap, growing it to hold i.
func (q *Queue) pushBit(i int32) {
	w := int(i) >> 6
	if w >= len(q.words) {
		q.words = append(q.words, make([]uint64, w+1-len(q.words))...)
		if sw := w>>6 + 1; sw > len(q.summary) {
			q.summary = append(q.summary, make([]uint64, sw-len(q.summary))...)
		}
	}
	bit := uint64(1) << (uint(i) & 63)
	if q.words[w]&bit != 0 {
		return
	}
	q.words[w] |= bit
	q.summary[w>>6] |= 1 << (uint(w) & 63)
	q.lo = min(q.lo, w>>6)
	q.n++
}

// minBit is the lowest index in the bitmap, which is not empty.
func (q *Queue) minBit() int32 {
	for q.summary[q.lo] == 0 {
		q.lo++
	}
	w := q.lo<<6 + bits.TrailingZeros64(q.summary[q.lo])
	return int32(w<<6 + bits.TrailingZeros64(q.words[w]))
}

// clearBit removes queued index i from the bitmap.
func (q *Queue) clearBit(i int32) {
	w := int(i) >> 6
	q.words[w] &^= 1 << (uint(i) & 63)
	if q.words[w] == 0 {
		q.summary[w>>6] &^= 1 << (uint(w) & 63)
	}
	q.n--
}
