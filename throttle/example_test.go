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

	"github.com/cemaf-go/cemaf/limit"
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
	// memory: 23.0% of 1024 MB (limited by cgroup: true)
	// memory pressure: 2.00% of the last 10 s
}

// The breaker holds one ladder per signal; here it is fed by hand (in a
// program, Attach it to a Monitor). The agent's own CPU use and its local
// LLM server's (a helper) are not contention: only others' use climbs the
// CPU ladder.
func ExampleBreaker() {
	b, err := throttle.NewBreaker(throttle.BreakerOptions{Ladders: []throttle.Ladder{
		{Signal: throttle.SignalTemperatureC, Adapt: 70, Pause: 80, Hysteresis: 3, Cooldown: 30 * time.Second},
		{Signal: throttle.SignalCPUOthersPercent, Adapt: 70, Pause: 95, TripAfter: 3},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	b.OnChange(func(c throttle.Change) { fmt.Println(" ", c) })

	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	sample := func(at time.Duration, temp float64) *throttle.Sample {
		return &throttle.Sample{
			Time: start.Add(at), CPUPercent: 100, ProcessCPUPercent: 10, HelpersCPUPercent: 88, OthersCPUPercent: 2,
			Signals: []throttle.SignalValue{{Name: throttle.SignalTemperatureC, Unit: "°C", Value: temp}},
		}
	}
	b.Observe(sample(0, 72))
	b.Observe(sample(5*time.Second, 81))
	fmt.Println(b.Check())
	b.Observe(sample(40*time.Second, 74)) // 35 s after the last hot sample, below 80 − 3
	fmt.Println(b.Check())
	// Output:
	//   temperature_c 72.0 °C ≥ 70.0 °C: normal -> adapt
	//   temperature_c 81.0 °C > 80.0 °C: adapt -> pause
	// throttle: paused: temperature (temperature_c) limit exceeded: 81 °C > 80 °C: until at least 2025-06-01T12:00:35Z and below 77.0 °C
	//   temperature_c 74.0 °C < 77.0 °C: pause -> adapt
	// <nil>
}

// A CompositeGuard combines the breaker with guards of the application's
// own, and says which of them holds work back.
func ExampleCompositeGuard() {
	b, _ := throttle.NewBreaker(throttle.BreakerOptions{})
	b.Observe(&throttle.Sample{
		Time: time.Now(), MemoryUsedPercent: 91, MemoryTotalBytes: 4 << 30,
		Disks: []throttle.DiskUsage{{Path: "/var/lib/agent", UsedPercent: 40}},
	})
	maintenance := newFakeGuard(nil)
	g, _ := throttle.NewCompositeGuard(
		throttle.CompositeMember{Name: "breaker", Guard: b},
		throttle.CompositeMember{Name: "maintenance", Guard: maintenance},
	)
	err := g.Check()
	var ce *throttle.CompositeError
	if errors.As(err, &ce) {
		fmt.Println("held by:", ce.Names())
	}
	var le *limit.Error
	if errors.As(err, &le) {
		fmt.Printf("reason: %s %.0f%s > %.0f%s\n", le.Kind, le.Current, le.Unit, le.Limit, le.Unit)
	}
	fmt.Println(errors.Is(err, throttle.ErrPaused), errors.Is(err, limit.ErrExceeded))
	// Output:
	// held by: [breaker]
	// reason: memory 91% > 85%
	// true true
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

// Over its soft limit, the Reclaimer asks the registered Evictables to
// free memory, down to the limit minus a margin.
func ExampleReclaimer() {
	src := &scriptedSource{fn: func(now time.Time) (*throttle.Sample, error) {
		return &throttle.Sample{Time: now, ProcessAnonBytes: 3200 * throttle.MB, ProcessRSSBytes: 3200 * throttle.MB,
			MemoryUsedPercent: 50, MemoryTotalBytes: 8 << 30}, nil
	}}
	m, _ := throttle.NewMonitor(src, throttle.MonitorOptions{})
	r, err := throttle.NewReclaimer(throttle.ReclaimerOptions{SoftLimitMB: 3072, NoFreeOSMemory: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	pages := &cache{sizes: []int64{100 * throttle.MB, 100 * throttle.MB, 100 * throttle.MB, 100 * throttle.MB, 100 * throttle.MB}}
	r.Register(pages, 0)
	r.Attach(m)
	// The first sample, 3200 MB, is over the soft limit: a reclaim asks
	// for 3200 - (3072 - 153) = 281 MB, and the cache drops 3 entries.
	if err := m.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	fmt.Println("left in the cache:", pages.ResidentBytes()/throttle.MB, "MB")
	fmt.Printf("%+v\n", r.Stats())
	// Output:
	// left in the cache: 200 MB
	// {Reclaims:1 FreedBytes:314572800 Registered:1 SoftLimitMB:3072}
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
// it holds work back.
func ExampleStream() {
	b, _ := throttle.NewBreaker(throttle.BreakerOptions{})
	b.Observe(&throttle.Sample{Time: time.Now(), MemoryTotalBytes: 1 << 30, MemoryUsedPercent: 30})
	chunks := func(yield func(string) bool) {
		for _, c := range []string{"intro", "body", "appendix"} {
			if !yield(c) {
				return
			}
		}
	}
	for chunk, err := range throttle.Stream(context.Background(), b, chunks) {
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
	// cemaf_cpu_others_percent 0
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
