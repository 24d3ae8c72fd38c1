package readyq

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestPopsByPriorityThenIndex(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 300 {
		n := 1 + r.IntN(64)
		prio := make([]int, n)
		spread := 4
		if trial%3 == 0 {
			spread = 1 // all the same: the queue runs without prio
		}
		for i := range prio {
			prio[i] = r.IntN(spread) - 2
		}
		q := New(Uniform(prio), 0)
		perm := r.Perm(n)
		// A random share of the indices forms a sorted base run; the rest
		// is pushed, some before and some after the base is set.
		split := r.IntN(n + 1)
		var base []int32
		for _, i := range perm[:split] {
			base = append(base, int32(i))
		}
		slices.SortFunc(base, func(a, b int32) int {
			if q.Less(a, b) {
				return -1
			}
			return 1
		})
		rest := perm[split:]
		half := len(rest) / 2
		for _, i := range rest[:half] {
			q.Push(int32(i))
		}
		q.SetBase(base)
		for _, i := range rest[half:] {
			q.Push(int32(i))
		}
		if q.Len() != n {
			t.Fatalf("Len = %d, want %d", q.Len(), n)
		}
		var got []int32
		for q.Len() > 0 {
			head := q.Peek()
			if p := q.Pop(); p != head {
				t.Fatalf("trial %d: Peek = %d, then Pop = %d", trial, head, p)
			}
			got = append(got, head)
		}
		want := make([]int32, n)
		for i := range want {
			want[i] = int32(i)
		}
		slices.SortStableFunc(want, func(a, b int32) int { return prio[b] - prio[a] })
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d: got %v, want %v (prio %v)", trial, got, want, prio)
		}
	}
}

func TestResetReusesStorage(t *testing.T) {
	var q Queue
	q.Reset([]int{0, 5, 1}, 3)
	for _, i := range []int32{0, 1, 2} {
		q.Push(i)
	}
	if got := q.Pop(); got != 1 {
		t.Fatalf("Pop = %d, want 1 (highest priority)", got)
	}
	q.SetBase([]int32{2})
	prio := []int{3, 0}
	q.Reset(prio, 2)
	if q.Len() != 0 {
		t.Fatalf("Len after Reset = %d, want 0", q.Len())
	}
	q.Push(1)
	q.Push(0)
	if allocs := testing.AllocsPerRun(100, func() {
		q.Reset(prio, 2)
		q.Push(1)
		q.Push(0)
	}); allocs != 0 {
		t.Fatalf("Reset and Push allocate %v times, want 0", allocs)
	}
	if got := q.Pop(); got != 0 {
		t.Fatalf("Pop = %d, want 0 (new priorities)", got)
	}
}

func TestUniform(t *testing.T) {
	if got := Uniform([]int{2, 2, 2}); got != nil {
		t.Fatalf("Uniform(same) = %v, want nil", got)
	}
	if got := Uniform(nil); got != nil {
		t.Fatalf("Uniform(nil) = %v, want nil", got)
	}
	prio := []int{2, 2, 3}
	if got := Uniform(prio); !slices.Equal(got, prio) {
		t.Fatalf("Uniform(%v) = %v, want it back", prio, got)
	}
}

// With uniform priorities (the bitmap), pushes and pops interleave in any
// order, lower indices pushed after higher ones were popped included,
// over a base run, across Resets; against a sorted reference.
func TestUniformInterleaved(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var q Queue
	for trial := range 200 {
		n := 1 + r.IntN(10_000)
		q.Reset(nil, n)
		var ref []int32
		queued := make([]bool, n)
		if trial%4 == 0 { // a sorted base run of some indices
			var base []int32
			for i := range n {
				if r.IntN(8) == 0 {
					base = append(base, int32(i))
					queued[i] = true
				}
			}
			q.SetBase(base)
			ref = append(ref, base...)
		}
		for range 3 * n {
			if r.IntN(3) > 0 || len(ref) == 0 {
				i := int32(r.IntN(n))
				if queued[i] {
					continue
				}
				queued[i] = true
				q.Push(i)
				j, _ := slices.BinarySearch(ref, i)
				ref = slices.Insert(ref, j, i)
				continue
			}
			if got := q.Peek(); got != ref[0] {
				t.Fatalf("trial %d: Peek = %d, want %d", trial, got, ref[0])
			}
			if got := q.Pop(); got != ref[0] {
				t.Fatalf("trial %d: Pop = %d, want %d", trial, got, ref[0])
			}
			queued[ref[0]] = false
			ref = ref[1:]
			if q.Len() != len(ref) {
				t.Fatalf("trial %d: Len = %d, want %d", trial, q.Len(), len(ref))
			}
		}
	}
	q.Reset(nil, 0)
	q.Push(5)
	q.Push(5) // queued once
	if q.Len() != 1 {
		t.Fatalf("Len after pushing 5 twice = %d, want 1", q.Len())
	}
	if allocs := testing.AllocsPerRun(100, func() {
		q.Reset(nil, 0)
		q.Push(9_999)
		q.Push(3)
		q.Pop()
	}); allocs != 0 {
		t.Fatalf("Reset, Push and Pop allocate %v times once grown, want 0", allocs)
	}
}
