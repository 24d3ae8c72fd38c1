package thermal

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cemaf-go/cemaf/limit"
)

// GuardOptions configure a Guard. The zero value trips at Critical only.
type GuardOptions struct {
	// TripAtWarning makes the guard block in the Warning state too, not
	// only in Critical.
	TripAtWarning bool
}

// Guard blocks work while its Manager is Critical (or, with
// GuardOptions.TripAtWarning, Warning). It satisfies the module's guard
// interface (executor.Gate and executor.Checker). A Guard reads the
// Manager's atomic snapshot: it never touches sysfs and relies on the
// Manager being polled (Start or Poll). Safe for concurrent use.
type Guard struct {
	m    *Manager
	trip State
}

// NewGuard returns a Guard over m. It starts nothing.
func NewGuard(m *Manager, opts GuardOptions) (*Guard, error) {
	if m == nil {
		return nil, errors.New("thermal: NewGuard: Manager is nil")
	}
	g := &Guard{m: m, trip: Critical}
	if opts.TripAtWarning {
		g.trip = Warning
	}
	return g, nil
}

// Check reports, without blocking, whether work may proceed: nil, or a
// *limit.Error (throttle.LimitError) of kind temperature whose Current is
// the hottest reading since the state left Normal and whose Limit is the
// threshold that tripped; Detail gives the current reading and what must
// happen before work resumes. Before the first poll the state is Normal; a
// poll that can read no sensor keeps the state it had (it neither trips nor
// releases the guard).
//
// Cost: one atomic load; it allocates only when it returns an error.
func (g *Guard) Check() error {
	s := g.m.snap.Load()
	if s.state < g.trip {
		return nil
	}
	return g.limitError(s)
}

func (g *Guard) limitError(s *snapshot) *limit.Error {
	cfg := g.m.cfg
	e := &limit.Error{
		Kind:    limit.Temperature,
		Subject: s.sensor,
		Current: s.peakC,
		Limit:   cfg.CriticalC,
		Unit:    "°C",
	}
	now := fmtC(s.tempC)
	if s.state == Critical {
		e.Detail = "now " + now + "; cooling down until " + s.until.Format(time.RFC3339) +
			" and below " + fmtC(cfg.CriticalC-cfg.HysteresisC)
	} else {
		e.Limit = cfg.WarningC
		e.Detail = "now " + now + "; warning until below " + fmtC(cfg.WarningC-cfg.HysteresisC)
	}
	return e
}

func fmtC(c float64) string { return strconv.FormatFloat(c, 'f', 1, 64) + " °C" }

// Wait blocks while Check would return an error, and returns nil as soon as
// a poll brings the state below the trip level. It returns ctx's error (its
// cause, if one was set) when ctx ends first; it fails fast, with an error
// matching both context.DeadlineExceeded and the *limit.Error, when ctx's
// deadline falls before the end of the current cooldown; and it returns an
// error wrapping ErrClosed if the Manager is closed while it waits.
//
// Wait wakes once per poll; it does no I/O.
func (g *Guard) Wait(ctx context.Context) error {
	for {
		s := g.m.snap.Load()
		if s.state < g.trip {
			return nil
		}
		lerr := g.limitError(s)
		if d, ok := ctx.Deadline(); ok && s.state == Critical && d.Before(s.until) {
			return fmt.Errorf("thermal: cooldown ends after the context deadline: %w: %w", context.DeadlineExceeded, lerr)
		}
		select {
		case <-s.next:
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-g.m.closedCh:
			return fmt.Errorf("%w while waiting: %w", ErrClosed, lerr)
		}
	}
}
