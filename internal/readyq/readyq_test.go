package readyq

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestPopsByPriorityThenIndex(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		n := 1 + r.IntN(64)
		prio := make([]int, n)
		for i := range prio {
			prio[i] = r.IntN(4) - 2
		}
		q := New(prio, 0)
		for _, i := range r.Perm(n) {
			q.Push(int32(i))
		}
		var got []int32
		for q.Len() > 0 {
			got = append(got, q.Pop())
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
