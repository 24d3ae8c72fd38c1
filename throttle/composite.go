package throttle

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cemaf-go/cemaf/limit"
)

// CompositeMember is a named guard of a CompositeGuard. The name appears in
// the CompositeError.
type CompositeMember struct {
	Name  string // distinct, non-empty
	Guard Guard  // non-nil
}

// CompositeGuard combines guards: work may proceed only when every member
// lets it. Its Check is the members' Checks in order and allocates nothing
// while none trips; its Wait waits on each tripped member in turn until all
// pass. It is safe for concurrent use if its members are.
type CompositeGuard struct {
	members []CompositeMember
}

// NewCompositeGuard returns a guard over members (at least one, with
// distinct non-empty names and non-nil guards).
func NewCompositeGuard(members ...CompositeMember) (*CompositeGuard, error) {
	if len(members) == 0 {
		return nil, errors.New("throttle: NewCompositeGuard: no members: need at least 1")
	}
	seen := make(map[string]bool, len(members))
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
	return &CompositeGuard{members: append([]CompositeMember(nil), members...)}, nil
}

// Members returns the members, in order.
func (g *CompositeGuard) Members() []CompositeMember {
	return append([]CompositeMember(nil), g.members...)
}

// Check calls every member's Check and returns a *CompositeError listing the
// members that trip, nil when none does. The error matches
// limit.ErrExceeded with errors.Is, and errors.As finds the members' own
// errors (a *PauseError, a *limit.Error).
func (g *CompositeGuard) Check() error {
	var tripped []TrippedGuard
	for i := range g.members {
		if err := g.members[i].Guard.Check(); err != nil {
			tripped = append(tripped, TrippedGuard{Name: g.members[i].Name, Err: err})
		}
	}
	if tripped == nil {
		return nil
	}
	return &CompositeError{Tripped: tripped}
}

// Wait blocks until no member trips, or ctx ends: it waits on the tripped
// members' own Wait one after the other, then checks them all again.
func (g *CompositeGuard) Wait(ctx context.Context) error {
	for {
		waited := false
		for i := range g.members {
			m := &g.members[i]
			if m.Guard.Check() == nil {
				continue
			}
			waited = true
			if err := callProtected("CompositeGuard member "+m.Name+" Wait", func() error { return m.Guard.Wait(ctx) }); err != nil {
				return err
			}
		}
		if !waited {
			return nil
		}
	}
}

// CompositeError is returned by CompositeGuard.Check when members trip. It
// lists them in member order.
type CompositeError struct {
	Tripped []TrippedGuard
}

// TrippedGuard is a member of a CompositeGuard that tripped, and its Check
// error.
type TrippedGuard struct {
	Name string // the member's name
	Err  error  // what its Check returned
}

// Error returns "throttle: guard breaker: ...".
func (t TrippedGuard) Error() string { return "throttle: guard " + t.Name + ": " + t.Err.Error() }

// Unwrap returns the member's error.
func (t TrippedGuard) Unwrap() error { return t.Err }

// Error lists the tripped members and their reasons: "throttle: breaker:
// paused: ...; quota: exhausted".
func (e *CompositeError) Error() string {
	var b strings.Builder
	b.WriteString("throttle: ")
	for i, t := range e.Tripped {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(t.Name)
		b.WriteString(": ")
		b.WriteString(strings.TrimPrefix(t.Err.Error(), "throttle: "))
	}
	return b.String()
}

// Unwrap returns the tripped members' errors (as TrippedGuard values), so
// that errors.As finds a member's own error.
func (e *CompositeError) Unwrap() []error {
	errs := make([]error, len(e.Tripped))
	for i, t := range e.Tripped {
		errs[i] = t
	}
	return errs
}

// Is reports whether target is limit.ErrExceeded: a tripped guard is a
// limit hit even when a member's own error is not a *limit.Error.
func (e *CompositeError) Is(target error) bool { return target == limit.ErrExceeded }

// Names returns the names of the tripped members.
func (e *CompositeError) Names() []string {
	names := make([]string, len(e.Tripped))
	for i, t := range e.Tripped {
		names[i] = t.Name
	}
	return names
}
