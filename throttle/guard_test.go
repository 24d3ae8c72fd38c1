package throttle_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/limit"
	"github.com/cemaf-go/cemaf/throttle"
)

// fakeGuard is a Guard whose state the test sets.
type fakeGuard struct {
	mu      sync.Mutex
	err     error
	changed chan struct{}
	waits   atomic.Int32
}

func newFakeGuard(err error) *fakeGuard { return &fakeGuard{err: err, changed: make(chan struct{})} }

func (g *fakeGuard) set(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.err = err
	close(g.changed)
	g.changed = make(chan struct{})
}

func (g *fakeGuard) Check() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

func (g *fakeGuard) Wait(ctx context.Context) error {
	g.waits.Add(1)
	for {
		g.mu.Lock()
		err, ch := g.err, g.changed
		g.mu.Unlock()
		if err == nil {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

func tripped(name string) error {
	return &limit.Error{Kind: limit.CPU, Subject: name, Current: 2, Limit: 1}
}

func TestCompositeGuardCheck(t *testing.T) {
	a, b := newFakeGuard(nil), newFakeGuard(nil)
	g, err := throttle.NewCompositeGuard(throttle.CompositeMember{Name: "a", Guard: a}, throttle.CompositeMember{Name: "b", Guard: b})
	require.NoError(t, err)
	require.NoError(t, g.Check())
	b.set(tripped("memory"))
	err = g.Check()
	var ce *throttle.CompositeError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, []string{"b"}, ce.Names())
	require.ErrorIs(t, err, limit.ErrExceeded)
	var le *limit.Error
	require.ErrorAs(t, err, &le)
	require.Equal(t, "memory", le.Subject)
	a.set(errors.New("maintenance")) // not a limit error: still a limit hit of the composite
	err = g.Check()
	require.ErrorAs(t, err, &ce)
	require.Equal(t, []string{"a", "b"}, ce.Names())
	require.ErrorIs(t, err, limit.ErrExceeded)
	require.Contains(t, err.Error(), "throttle: a: maintenance; b: cpu (memory) limit exceeded")
}

func TestCompositeGuardWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := newFakeGuard(tripped("a")), newFakeGuard(tripped("b"))
		g, err := throttle.NewCompositeGuard(throttle.CompositeMember{Name: "a", Guard: a}, throttle.CompositeMember{Name: "b", Guard: b})
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- g.Wait(t.Context()) }()
		synctest.Wait()
		a.set(nil)
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Wait returned %v while b trips", err)
		default:
		}
		a.set(tripped("a")) // a trips again while waiting on b
		b.set(nil)
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Wait returned %v while a trips again", err)
		default:
		}
		a.set(nil)
		require.NoError(t, <-done)

		ctx, cancel := context.WithCancel(t.Context())
		b.set(tripped("b"))
		go func() { done <- g.Wait(ctx) }()
		synctest.Wait()
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	})
}

func TestCompositeGuardRecoversPanickingWait(t *testing.T) {
	g, err := throttle.NewCompositeGuard(throttle.CompositeMember{Name: "bad", Guard: panicGuard{}})
	require.NoError(t, err)
	err = g.Wait(context.Background())
	var pe *throttle.PanicError
	require.ErrorAs(t, err, &pe)
}

type panicGuard struct{}

func (panicGuard) Check() error                   { return errors.New("tripped") }
func (panicGuard) Wait(ctx context.Context) error { panic("guard bug") }

func TestNewCompositeGuardRejectsBadInput(t *testing.T) {
	ok := throttle.CompositeMember{Name: "a", Guard: newFakeGuard(nil)}
	for _, tt := range []struct {
		members []throttle.CompositeMember
		want    string
	}{
		{nil, "no members"},
		{[]throttle.CompositeMember{{Guard: newFakeGuard(nil)}}, "members[0].Name is empty"},
		{[]throttle.CompositeMember{ok, ok}, `members[1].Name = "a": duplicate name`},
		{[]throttle.CompositeMember{{Name: "x"}}, `members[0].Guard ("x") is nil`},
	} {
		_, err := throttle.NewCompositeGuard(tt.members...)
		require.ErrorContains(t, err, tt.want)
	}
}

func TestStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newFakeGuard(nil)
		items := func(yield func(int) bool) {
			for i := range 5 {
				if i == 2 {
					g.set(tripped("memory"))
					go func() { time.Sleep(time.Second); g.set(nil) }()
				}
				if !yield(i) {
					return
				}
			}
		}
		start := time.Now()
		var got []int
		for v, err := range throttle.Stream(context.Background(), g, items) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, v)
		}
		if len(got) != 5 || got[4] != 4 {
			t.Errorf("got %v", got)
		}
		if waited := time.Since(start); waited != time.Second {
			t.Errorf("paused %v between items, want 1s", waited)
		}

		// A wait that fails ends the stream with the error.
		g.set(tripped("memory"))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var errs, vals int
		for _, err := range throttle.Stream(ctx, g, func(yield func(int) bool) { _ = yield(1) && yield(2) }) {
			if err != nil {
				errs++
			} else {
				vals++
			}
		}
		if errs != 1 || vals != 0 {
			t.Errorf("%d errors and %d values, want 1 error and nothing else", errs, vals)
		}
	})
}
