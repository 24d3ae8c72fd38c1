package throttle_test

import (
	"os/exec"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cemaf-go/cemaf/throttle"
)

// guardFixture is a started Monitor (sampling once an hour, so never during
// a benchmark) with a healthy sample, the Breaker with the default ladders
// over it, and the composite guard of a typical deployment: the breaker and
// a user's own guard.
type guardFixture struct {
	m         *throttle.Monitor
	breaker   *throttle.Breaker
	composite *throttle.CompositeGuard
}

func newGuardFixture(tb testing.TB) *guardFixture {
	tb.Helper()
	src := &scriptedSource{fn: func(now time.Time) (*throttle.Sample, error) {
		s := sampleAt(now, 35, 40)
		s.ProcessAnonBytes = 200 * throttle.MB
		s.Disks = []throttle.DiskUsage{{Path: "/", UsedPercent: 60}, {Path: "/data", UsedPercent: 70}}
		s.Signals = []throttle.SignalValue{{Name: throttle.SignalTemperatureC, Unit: "°C", Value: 55}}
		return s, nil
	}}
	m, err := throttle.NewMonitor(src, throttle.MonitorOptions{CheckInterval: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	br, err := throttle.NewBreaker(throttle.BreakerOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(br.Attach(m))
	if err := m.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = m.Close() })
	composite, err := throttle.NewCompositeGuard(
		throttle.CompositeMember{Name: "breaker", Guard: br},
		throttle.CompositeMember{Name: "user", Guard: newFakeGuard(nil)},
	)
	if err != nil {
		tb.Fatal(err)
	}
	return &guardFixture{m: m, breaker: br, composite: composite}
}

// TestCompositeCheckDoesNotAllocate pins the 0 allocs/op of the untripped
// fast path that BenchmarkGuardCheck reports.
func TestCompositeCheckDoesNotAllocate(t *testing.T) {
	f := newGuardFixture(t)
	if err := f.composite.Check(); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() { _ = f.composite.Check() }); n != 0 {
		t.Errorf("CompositeGuard.Check allocates %v times per call, want 0", n)
	}
}

// BenchmarkGuardCheck measures the non-blocking check the executor makes
// before each node. The baseline is the least any such check can do: one
// atomic load of the latest sample and one comparison.
func BenchmarkGuardCheck(b *testing.B) {
	f := newGuardFixture(b)
	b.Run("baseline-atomic-load-compare", func(b *testing.B) {
		var p atomic.Pointer[throttle.Sample]
		p.Store(f.m.Snapshot().Sample)
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			if p.Load().CPUPercent > 90 {
				n++
			}
		}
		if n != 0 {
			b.Fatal("tripped")
		}
	})
	b.Run("breaker", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if f.breaker.Check() != nil {
				b.Fatal("tripped")
			}
		}
	})
	b.Run("composite-2", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if f.composite.Check() != nil {
				b.Fatal("tripped")
			}
		}
	})
	b.Run("composite-2-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if f.composite.Check() != nil {
					b.Error("tripped")
					return
				}
			}
		})
	})
}

// BenchmarkSampleHelpers measures what accounting for helper processes
// adds to a sample of this machine: "none" samples with no helper,
// "helpers" with a helper found by name and one child process (found again
// only every 30 s), "rescan" looks for them again at every sample (the cost
// of a rescan, paid once per 30 s by default). cpu-ns/op is the process CPU
// time per sample; at a 1 Hz check interval cpu-ns/op / 1e7 is the share of
// one core in percent.
func BenchmarkSampleHelpers(b *testing.B) {
	child := exec.Command("sleep", "3600")
	if err := child.Start(); err != nil {
		b.Skip("no sleep(1):", err)
	}
	b.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	named := exec.Command("sleep", "3601")
	if err := named.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = named.Process.Kill(); _ = named.Wait() })
	for _, bc := range []struct {
		name    string
		helpers throttle.Helpers
		rescan  time.Duration
	}{
		{"none", throttle.Helpers{}, 0},
		{"helpers", throttle.Helpers{Names: []string{"sleep"}, PIDs: []int{named.Process.Pid}}, 0},
		{"rescan", throttle.Helpers{Names: []string{"sleep"}, Endpoints: []string{"http://127.0.0.1:" + strconv.Itoa(1)}}, time.Nanosecond},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := throttle.NewSampler(throttle.SamplerOptions{DiskPaths: []string{b.TempDir()}, MinCPUWindow: time.Millisecond, Helpers: bc.helpers, HelperRescan: bc.rescan})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.Sample(time.Now()); err != nil {
				b.Fatal(err)
			}
			if bc.name != "none" && len(s.Helpers()) < 2 {
				b.Fatalf("found helpers %+v, want the two sleep processes", s.Helpers())
			}
			c0, err := throttle.ProcessCPUTime()
			if err != nil {
				b.Skip(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := s.Sample(time.Now()); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			c1, _ := throttle.ProcessCPUTime()
			b.ReportMetric(float64(c1-c0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkSample takes full samples of this machine (procfs, cgroup, PSI,
// one disk path). Besides the wall time per sample it reports the process
// CPU time per sample (cpu-ns/op); at a 1 Hz check interval the sampler's
// own CPU share is cpu-ns/op / 1e9 of a core.
func BenchmarkSample(b *testing.B) {
	s, err := throttle.NewSampler(throttle.SamplerOptions{DiskPaths: []string{b.TempDir()}, MinCPUWindow: time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Sample(time.Now()); err != nil {
		b.Fatal(err)
	}
	c0, err := throttle.ProcessCPUTime()
	if err != nil {
		b.Skip(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Sample(time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c1, _ := throttle.ProcessCPUTime()
	b.ReportMetric(float64(c1-c0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkMonitor1Hz runs a real Monitor over a real Sampler at a 1 s
// interval for b.N intervals and reports the process's CPU use over that
// time in percent of one core (the process does nothing else). Run it with
// a fixed count: -bench Monitor1Hz -benchtime 30x.
func BenchmarkMonitor1Hz(b *testing.B) {
	s, err := throttle.NewSampler(throttle.SamplerOptions{DiskPaths: []string{b.TempDir()}})
	if err != nil {
		b.Fatal(err)
	}
	m, err := throttle.NewMonitor(s, throttle.MonitorOptions{CheckInterval: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Start(); err != nil {
		b.Fatal(err)
	}
	c0, err := throttle.ProcessCPUTime()
	if err != nil {
		b.Skip(err)
	}
	t0 := time.Now()
	b.ResetTimer()
	time.Sleep(time.Duration(b.N) * time.Second)
	b.StopTimer()
	c1, _ := throttle.ProcessCPUTime()
	wall := time.Since(t0)
	if err := m.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(c1-c0)/float64(wall)*100, "%core")
	b.ReportMetric(float64(c1-c0)/float64(m.Snapshot().Seq), "cpu-ns/sample")
}
