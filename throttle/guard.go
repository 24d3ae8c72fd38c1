package throttle

import (
	"context"
	"fmt"
	"math"
)

// Guard is the small interface of everything that can hold work back: the
// Breaker, a CompositeGuard, and guards of the user's own (a remote
// connection, a maintenance switch). It is a superset of the executor's Gate
// and Checker interfaces.
type Guard interface {
	// Wait blocks while the resource is over its limit. It returns nil
	// when work may proceed, or an error when ctx ends first
	// (context.Cause(ctx)) or when the wait cannot succeed.
	Wait(ctx context.Context) error
	// Check reports, without blocking, why Wait would block now: nil when
	// work may proceed, otherwise an error, normally a *limit.Error (or
	// one that wraps several), saying which resource is over which limit.
	Check() error
}

// checkPercent validates a percentage option: (0, 100].
func checkPercent(field string, v float64) error {
	if !(v > 0 && v <= 100) {
		return fmt.Errorf("throttle: %s = %v: must be in (0, 100]", field, v)
	}
	return nil
}

// checkPositive validates a positive finite option.
func checkPositive(field string, v float64) error {
	if !(v > 0) || math.IsInf(v, 1) {
		return fmt.Errorf("throttle: %s = %v: must be > 0 and finite", field, v)
	}
	return nil
}
