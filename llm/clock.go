package llm

import (
	"context"
	"time"
)

// Clock is the time source of a Client: Now stamps records and measures
// latencies, Sleep waits between attempts. Tests inject one that does not
// sleep. It must be safe for concurrent use.
type Clock interface {
	Now() time.Time
	// Sleep blocks for d or until ctx ends, and then returns
	// context.Cause(ctx).
	Sleep(ctx context.Context, d time.Duration) error
}

// realClock is the time package.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
