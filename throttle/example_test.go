package throttle_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cemaf-go/cemaf/throttle"
)

// A Sampler reads the procfs and cgroup files under its roots; here the
// fixture of a Kubernetes pod on a Jetson, whose pod slice has a 1 GiB
// memory limit.
func ExampleNewSampler() {
	s, err := throttle.NewSampler(throttle.SamplerOptions{
		ProcRoot: "testdata/cgroupv2/proc",
		SysRoot:  "testdata/cgroupv2/sys",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	sample, err := s.Sample(time.Now())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("memory: %.1f%% of %d MB (limited by cgroup: %v)\n",
		sample.MemoryUsedPercent, sample.MemoryTotalBytes/throttle.MB, sample.MemoryLimitedByCgroup)
	psi, _ := sample.Value(throttle.SignalPSIMemorySome)
	fmt.Printf("memory pressure: %.2f%% of the last 10 s\n", psi)
	// Output:
	// memory: 24.4% of 1024 MB (limited by cgroup: true)
	// memory pressure: 2.00% of the last 10 s
}

// The breaker is a pure state machine over samples: here it is fed by hand.
// In a program, Attach it to a Monitor.
func ExampleBreaker() {
	b, err := throttle.NewBreaker(throttle.BreakerOptions{
		Thresholds: map[string]float64{throttle.SignalCPUPercent: 80, throttle.SignalTemperatureC: 75},
		Cooldown:   30 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	b.OnTransition(func(tr throttle.Transition) { fmt.Printf("  %s -> %s\n", tr.From, tr.To) })

	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	temperature := func(at time.Duration, cpu, temp float64) *throttle.Sample {
		return &throttle.Sample{
			Time: start.Add(at), CPUPercent: cpu,
			Signals: []throttle.SignalValue{{Name: throttle.SignalTemperatureC, Unit: "°C", Value: temp}},
		}
	}
	b.Observe(temperature(0, 40, 70))
	b.Observe(temperature(5*time.Second, 40, 77))
	fmt.Println(b.Check())
	b.Observe(temperature(40*time.Second, 40, 72)) // cooldown over, but not below 75 - 5 %
	b.Observe(temperature(45*time.Second, 40, 70)) // below 71.25: half-open, a probe may run
	b.Observe(temperature(50*time.Second, 40, 69)) // still healthy: closed
	fmt.Println(b.State(), b.Check())
	// Output:
	//   closed -> open
	// throttle: breaker open until at least 2025-06-01T12:00:35Z: temperature (temperature_c) limit exceeded: 77 °C > 75 °C
	//   open -> half-open
	//   half-open -> closed
	// closed <nil>
}

// Guards read the Monitor's latest sample; a CompositeGuard tells which of
// them tripped.
func ExampleCompositeGuard() {
	src := &scriptedSource{fn: func(now time.Time) (*throttle.Sample, error) {
		return &throttle.Sample{
			Time: now, CPUPercent: 97, MemoryUsedPercent: 60, MemoryTotalBytes: 4 << 30,
			Disks: []throttle.DiskUsage{{Path: "/var/lib/agent", UsedPercent: 96.5}},
		}, nil
	}}
	m, _ := throttle.NewMonitor(src, throttle.MonitorOptions{})
	if err := m.Start(); err != nil { // the first sample is taken here
		fmt.Println(err)
		return
	}
	defer m.Close()

	cpu, _ := throttle.NewCPUGuard(m, throttle.CPUGuardOptions{MaxPercent: 90})
	mem, _ := throttle.NewMemoryGuard(m, throttle.MemoryGuardOptions{MaxUsedPercent: 85})
	disk, _ := throttle.NewDiskGuard(m, throttle.DiskGuardOptions{Path: "/var/lib/agent"})
	g, _ := throttle.NewCompositeGuard([]throttle.CompositeMember{
		{Name: "cpu", Guard: cpu}, {Name: "memory", Guard: mem}, {Name: "disk", Guard: disk},
	}, throttle.CompositeOptions{Strategy: throttle.CompositeKOfN, K: 2})

	err := g.Check()
	var ce *throttle.CompositeError
	if errors.As(err, &ce) {
		fmt.Println("tripped:", ce.Names())
	}
	var le *throttle.LimitError
	if errors.As(err, &le) {
		fmt.Printf("first reason: %s %.0f%s > %.0f%s\n", le.Kind, le.Current, le.Unit, le.Limit, le.Unit)
	}
	fmt.Println(errors.Is(err, throttle.ErrLimitExceeded))
	// Output:
	// tripped: [cpu disk]
	// first reason: cpu 97% > 90%
	// true
}

// cache is an Evictable: it holds values in memory and drops the oldest
// when asked.
type cache struct {
	sizes []int64
}

func (c *cache) Evict(n int64) (int64, error) {
	var freed int64
	for len(c.sizes) > 0 && freed < n {
		freed += c.sizes[0]
		c.sizes = c.sizes[1:]
	}
	return freed, nil
}

func (c *cache) ResidentBytes() int64 {
	var n int64
	for _, s := range c.sizes {
		n += s
	}
	return n
}

// Over its soft limit, the memory guard asks the registered Evictables to
// free memory; over the hard limit, Check fails and Wait blocks new work.
func ExampleMemoryGuard() {
	var anonMB int64 = 3200
	src := &scriptedSource{fn: func(now time.Time) (*throttle.Sample, error) {
		return &throttle.Sample{Time: now, ProcessAnonBytes: anonMB * throttle.MB, ProcessRSSBytes: anonMB * throttle.MB,
			MemoryUsedPercent: 50, MemoryTotalBytes: 8 << 30}, nil
	}}
	m, _ := throttle.NewMonitor(src, throttle.MonitorOptions{})
	g, err := throttle.NewMemoryGuard(m, throttle.MemoryGuardOptions{
		SoftLimitMB: 3072, HardLimitMB: 3584, Strategy: throttle.EvictSize, NoFreeOSMemory: true,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer g.Close()
	pages := &cache{sizes: []int64{100 * throttle.MB, 100 * throttle.MB, 100 * throttle.MB, 100 * throttle.MB, 100 * throttle.MB}}
	g.Register(pages, 0)
	g.Attach(m)
	// The first sample, 3200 MB, is over the soft limit: a reclaim asks
	// for 3200 - (3072 - 153) = 281 MB, and the cache drops 3 entries.
	if err := m.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	fmt.Println("left in the cache:", pages.ResidentBytes()/throttle.MB, "MB")
	fmt.Println("check:", g.Check())
	// Output:
	// left in the cache: 200 MB
	// check: <nil>
}

// Call paces any client call with a CPU throttler; here a stand-in for a
// local model's completion call.
func ExampleCall() {
	t, err := throttle.NewCPUThrottler(throttle.CPUThrottlerOptions{TargetPercent: 70, Window: 5 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	complete := func(ctx context.Context, prompt string) (string, error) { return "echo: " + prompt, nil }
	reply, err := throttle.Call(context.Background(), t, func(ctx context.Context) (string, error) {
		return complete(ctx, "hello")
	})
	fmt.Println(reply, err)
	// Output: echo: hello <nil>
}

// Stream consults a guard between the items of an iterator, pausing while
// it is tripped.
func ExampleStream() {
	src := &scriptedSource{fn: func(now time.Time) (*throttle.Sample, error) {
		return &throttle.Sample{Time: now, ProcessAnonBytes: 100 * throttle.MB, MemoryTotalBytes: 1 << 30, MemoryUsedPercent: 30}, nil
	}}
	m, _ := throttle.NewMonitor(src, throttle.MonitorOptions{})
	_ = m.Start()
	defer m.Close()
	g, _ := throttle.NewMemoryGuard(m, throttle.MemoryGuardOptions{HardLimitMB: 512})
	chunks := func(yield func(string) bool) {
		for _, c := range []string{"intro", "body", "appendix"} {
			if !yield(c) {
				return
			}
		}
	}
	for chunk, err := range throttle.Stream(context.Background(), g, chunks) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("processing", chunk)
	}
	// Output:
	// processing intro
	// processing body
	// processing appendix
}

// The Monitor serves its latest sample in the Prometheus text format.
func ExampleMonitor_WritePrometheus() {
	src := &scriptedSource{fn: func(now time.Time) (*throttle.Sample, error) {
		return &throttle.Sample{Time: now, CPUPercent: 42.5, MemoryUsedPercent: 61, MemoryTotalBytes: 4 << 30}, nil
	}}
	m, _ := throttle.NewMonitor(src, throttle.MonitorOptions{})
	_ = m.Start()
	defer m.Close()
	var buf bytes.Buffer
	_ = m.WritePrometheus(&buf)
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "cemaf_cpu") || strings.HasPrefix(line, "cemaf_memory_used") {
			fmt.Println(line)
		}
	}
	// Output:
	// cemaf_cpu_percent 42.5
	// cemaf_memory_used_percent 61
}

// A pi-agent main sets process rlimits once, at start, and turns SIGXCPU
// into a cancelled context.
func ExampleApplyRlimits() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	report := throttle.ApplyRlimits(throttle.Rlimits{
		CPUSeconds:    6 * 3600,
		FileSizeBytes: 1 << 30,
		OpenFiles:     4096,
	}, log)
	for _, w := range report.Warnings() {
		log.Warn(w)
	}
	ctx, stop := throttle.NotifyCPULimit(context.Background(), log)
	defer stop()
	_ = throttle.WriteOOMScoreAdj("", 1000) // be the OOM killer's first choice
	<-ctx.Done()
	log.Error("shutting down", "cause", context.Cause(ctx))
}

// The Monitor samples a Sampler in its goroutine; guards and the breaker
// read and observe it.
func ExampleMonitor() {
	s, _ := throttle.NewSampler(throttle.SamplerOptions{DiskPaths: []string{"/"}})
	m, _ := throttle.NewMonitor(s, throttle.MonitorOptions{
		CheckInterval: 5 * time.Second,
		MetricsPath:   filepath.Join(os.TempDir(), "cemaf-metrics.jsonl"),
	})
	b, _ := throttle.NewBreaker(throttle.BreakerOptions{})
	defer b.Attach(m)()
	if err := m.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	snap := m.Snapshot()
	fmt.Printf("cpu %.0f%%, memory %.0f%%, sample %v old\n", snap.Sample.CPUPercent, snap.Sample.MemoryUsedPercent, snap.Age)
}
