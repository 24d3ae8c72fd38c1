package adaptive_test

import (
	"fmt"
	"time"

	"github.com/cemaf-go/cemaf/adaptive"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/throttle"
)

// The adaptive executor follows the Breaker's ladders: memory at its adapt
// level puts it in low_memory, which narrows the executor's classes.
func Example() {
	base, _ := executor.New(executor.Options{Limits: executor.Limits{CPU: 4, IO: 64}})
	a, _ := adaptive.New(base, adaptive.Options{})
	a.OnModeChange(func(c adaptive.ModeChange) {
		fmt.Printf("%s -> %s (%s)\n", c.From, c.To, c.Reason)
	})
	b, _ := throttle.NewBreaker(throttle.BreakerOptions{}) // the default ladders
	a.Attach(b)
	// In an application, b.Attach(monitor) delivers the samples.
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	b.Observe(&throttle.Sample{Time: t0, MemoryUsedPercent: 82, MemoryTotalBytes: 4 << 30})
	fmt.Printf("limits: %+v\n", base.Limits())

	b.Observe(&throttle.Sample{Time: t0.Add(time.Minute), MemoryUsedPercent: 40, MemoryTotalBytes: 4 << 30})
	fmt.Printf("limits: %+v\n", base.Limits())
	// Output:
	// normal -> low_memory (low_memory: memory_percent 82.0% ≥ 80.0%)
	// limits: {CPU:1 IO:4}
	// low_memory -> normal (no pressure)
	// limits: {CPU:4 IO:64}
}
