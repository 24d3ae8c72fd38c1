package throttle

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// CompositeStrategy says how many members of a CompositeGuard must trip for
// the composite to trip.
type CompositeStrategy int

const (
	// CompositeAny trips when any member trips (work proceeds only when
	// every member allows it). It is the zero value.
	CompositeAny CompositeStrategy = iota
	// CompositeAll trips only when every member trips.
	CompositeAll
	// CompositeKOfN trips when at least CompositeOptions.K members trip.
	CompositeKOfN
)

// String returns "any", "all" or "k-of-n".
func (s CompositeStrategy) String() string {
	switch s {
	case CompositeAny:
		return "any"
	case CompositeAll:
		return "all"
	case CompositeKOfN:
		return "k-of-n"
	}
	return fmt.Sprintf("CompositeStrategy(%d)", int(s))
}

// ParseCompositeStrategy parses "any", "all" or "k-of-n" (as written by
// String), for configuration files and environment variables.
func ParseCompositeStrategy(s string) (CompositeStrategy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "any":
		return CompositeAny, nil
	case "all":
		return CompositeAll, nil
	case "k-of-n", "kofn", "k_of_n":
		return CompositeKOfN, nil
	}
	return 0, fmt.Errorf("throttle: composite strategy %q: must be any, all or k-of-n", s)
}

// CompositeMember is a named guard of a CompositeGuard. The name appears in
// the CompositeError.
type CompositeMember struct {
	Name  string // distinct, non-empty
	Guard Guard  // non-nil
}

// CompositeOptions configures a CompositeGuard. The zero value is the "any"
// strategy.
type CompositeOptions struct {
	// Strategy is any (the default), all or k-of-n.
	Strategy CompositeStrategy
	// K is the number of tripped members that trips the composite, for
	// CompositeKOfN; in [1, number of members]. Ignored otherwise.
	K int
}

// CompositeGuard combines guards. Its Check is the members' Checks in
// order; it allocates nothing while the composite does not trip. It is safe
// for concurrent use if its members are.
type CompositeGuard struct {
	members  []CompositeMember
	strategy CompositeStrategy
	k        int // tripped members needed to trip the composite
}

// NewCompositeGuard returns a guard over members (at least one, with
// distinct non-empty names and non-nil guards).
func NewCompositeGuard(members []CompositeMember, opts CompositeOptions) (*CompositeGuard, error) {
	n := len(members)
	if n == 0 {
		return nil, errors.New("throttle: NewCompositeGuard: no members: need at least 1")
	}
	seen := make(map[string]bool, n)
	for i, m := range members {
		switch {
		case m.Name == "":
			return nil, fmt.Errorf("throttle: NewCompositeGuard: members[%d].Name is empty: must name the guard", i)
		case seen[m.Name]:
			return nil, fmt.Errorf("throttle: NewCompositeGuard: members[%d].Name = %q: duplicate name", i, m.Name)
		case m.Guard == nil:
			return nil, fmt.Errorf("throttle: NewCompositeGuard: members[%d].Guard (%q) is nil: must be a Guard", i, m.Name)
		}
		seen[m.Name] = true
	}
	g := &CompositeGuard{members: append([]CompositeMember(nil), members...), strategy: opts.Strategy}
	switch opts.Strategy {
	case CompositeAny:
		g.k = 1
	case CompositeAll:
		g.k = n
	case CompositeKOfN:
		if opts.K < 1 || opts.K > n {
			return nil, fmt.Errorf("throttle: CompositeOptions.K = %d: must be in [1, %d] (the number of members)", opts.K, n)
		}
		g.k = opts.K
	default:
		return nil, fmt.Errorf("throttle: CompositeOptions.Strategy = %d: must be CompositeAny, CompositeAll or CompositeKOfN", int(opts.Strategy))
	}
	return g, nil
}

// Check calls every member's Check and returns a *CompositeError listing
// the tripped members when the strategy says the composite trips, nil
// otherwise. The error matches ErrLimitExceeded with errors.Is, and
// errors.As finds the members' *LimitError values.
func (g *CompositeGuard) Check() error {
	tripped := g.check(nil)
	if len(tripped) < g.k {
		return nil
	}
	return &CompositeError{Strategy: g.strategy, K: g.k, N: len(g.members), Tripped: tripped}
}

// check returns the tripped members, skipping those in admitted (indexes of
// members that admitted this caller during the current Wait). It stops
// early, returning fewer than k, once k can no longer be reached.
func (g *CompositeGuard) check(admitted []bool) []TrippedGuard {
	var tripped []TrippedGuard
	n := len(g.members)
	for i := range g.members {
		if admitted == nil || !admitted[i] {
			if err := g.members[i].Guard.Check(); err != nil {
				tripped = append(tripped, TrippedGuard{Name: g.members[i].Name, Err: err, index: i})
				continue
			}
		}
		if len(tripped)+n-(i+1) < g.k {
			return tripped
		}
	}
	return tripped
}

// Wait blocks until the composite does not trip, or ctx ends. It waits on
// the tripped members' own Wait: with CompositeAny one after the other, with
// the other strategies on all of them at once (one goroutine each, all
// joined before Wait returns) until one lets the caller through. A member
// whose Wait has returned nil counts as passing for the rest of this call,
// so that a Breaker in half-open state is asked for one probe admission only.
func (g *CompositeGuard) Wait(ctx context.Context) error {
	var admitted []bool
	for {
		tripped := g.check(admitted)
		if len(tripped) < g.k {
			return nil
		}
		if admitted == nil {
			admitted = make([]bool, len(g.members))
		}
		if g.k == 1 {
			for _, t := range tripped {
				if err := g.members[t.index].Guard.Wait(ctx); err != nil {
					return err
				}
				admitted[t.index] = true
			}
			continue
		}
		i, err := g.waitAny(ctx, tripped)
		if err != nil {
			return err
		}
		admitted[i] = true
	}
}

// waitAny waits on the tripped members concurrently and returns the index of
// the first whose Wait returned nil. It returns only after every goroutine
// it started has returned.
func (g *CompositeGuard) waitAny(ctx context.Context, tripped []TrippedGuard) (int, error) {
	if len(tripped) == 1 {
		i := tripped[0].index
		return i, g.members[i].Guard.Wait(ctx)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		index int
		err   error
	}
	results := make(chan result, len(tripped))
	var wg sync.WaitGroup
	for _, t := range tripped {
		wg.Go(func() {
			err := callProtected("CompositeGuard member Wait", func() error {
				return g.members[t.index].Guard.Wait(cctx)
			})
			results <- result{t.index, err}
		})
	}
	first := result{index: -1}
	for range tripped {
		r := <-results
		if first.index >= 0 || first.err != nil {
			continue
		}
		if r.err == nil || ctx.Err() == nil {
			first = r
			cancel()
		}
	}
	wg.Wait()
	if first.index < 0 && first.err == nil {
		return -1, context.Cause(ctx)
	}
	return first.index, first.err
}

// CompositeError is returned by CompositeGuard.Check when the composite
// trips. It lists the tripped members in member order.
type CompositeError struct {
	// Strategy is the composite's strategy.
	Strategy CompositeStrategy
	// K is the number of tripped members that trips the composite; N the
	// number of members.
	K, N int
	// Tripped lists the tripped members.
	Tripped []TrippedGuard
}

// TrippedGuard is a member of a CompositeGuard that tripped, and its Check
// error.
type TrippedGuard struct {
	Name  string // the member's name
	Err   error  // what its Check returned
	index int
}

// Error returns "throttle: guard cpu: cpu (cpu_percent) limit exceeded: ...".
func (t TrippedGuard) Error() string { return "throttle: guard " + t.Name + ": " + t.Err.Error() }

// Unwrap returns the member's error.
func (t TrippedGuard) Unwrap() error { return t.Err }

// Error lists the tripped members and their reasons.
func (e *CompositeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "throttle: composite guard tripped (%s, %d of %d members): ", e.Strategy, len(e.Tripped), e.N)
	for i, t := range e.Tripped {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(t.Name)
		b.WriteString(": ")
		b.WriteString(t.Err.Error())
	}
	return b.String()
}

// Unwrap returns the tripped members' errors (as TrippedGuard values), so
// that errors.As finds a member's *LimitError.
func (e *CompositeError) Unwrap() []error {
	errs := make([]error, len(e.Tripped))
	for i, t := range e.Tripped {
		errs[i] = t
	}
	return errs
}

// Is reports whether target is ErrLimitExceeded: a tripped composite is a
// limit hit even when a member's own error is not a *LimitError.
func (e *CompositeError) Is(target error) bool { return target == ErrLimitExceeded }

// Names returns the names of the tripped members.
func (e *CompositeError) Names() []string {
	names := make([]string, len(e.Tripped))
	for i, t := range e.Tripped {
		names[i] = t.Name
	}
	return names
}
