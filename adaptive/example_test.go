package adaptive_test

import (
	"fmt"
	"time"

	"github.com/cemaf-go/cemaf/adaptive"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/throttle"
)

func Example() {
	base, _ := executor.New(executor.Options{Limits: executor.Limits{CPU: 4}})
	a, _ := adaptive.New(base, adaptive.Options{})
	a.OnModeChange(func(c adaptive.ModeChange) {
		fmt.Printf("%s -> %s (%s)\n", c.From, c.To, c.Reason)
	})
	// In an application, a.Attach(monitor) delivers the samples.
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	a.Observe(&throttle.Sample{Time: t0, MemoryUsedPercent: 91, MemoryTotalBytes: 4 << 30})
	fmt.Println("max parallel:", base.Limits().CPU)

	a.Observe(&throttle.Sample{Time: t0.Add(time.Minute), MemoryUsedPercent: 40, MemoryTotalBytes: 4 << 30})
	fmt.Println("max parallel:", base.Limits().CPU)
	// Output:
	// normal -> low_memory (low_memory: memory_percent 91.0 ≥ 80.0)
	// max parallel: 1
	// low_memory -> normal (no pressure)
	// max parallel: 4
}
