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
		for i := range prio {
			prio[i] = r.IntN(4) - 2
		}
		q := New(prio, 0)
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
