package throttle_test

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cemaf-go/cemaf/throttle"
)

const kB = 1024

func newFixtureSampler(t *testing.T, root string, opts throttle.SamplerOptions) *throttle.Sampler {
	t.Helper()
	opts.ProcRoot = filepath.Join(root, "proc")
	opts.SysRoot = filepath.Join(root, "sys")
	if opts.MinCPUWindow == 0 {
		opts.MinCPUWindow = time.Nanosecond
	}
	s, err := throttle.NewSampler(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func approx(a, b float64) bool { return math.Abs(a-b) < 1e-9*math.Max(1, math.Abs(b)) }

// TestSamplerFixtures reads each fixture tree and checks every field
// against the numbers in the fixture files (the arithmetic is spelled out).
func TestSamplerFixtures(t *testing.T) {
	page := int64(os.Getpagesize())
	type want struct {
		memTotal, memAvail int64
		memPct             float64
		limited            bool
		swapTotal          int64
		swapPct            float64
		rss, anon          int64
		load               [3]float64
		psi                throttle.PSI
	}
	tests := []struct {
		name string
		want want
	}{
		{
			// memory.limit_in_bytes 512 MiB, hierarchical_memory_limit
			// 384 MiB: the smaller wins. Working set = usage 220 MiB -
			// (total_inactive_file 20 + total_active_file 20 -
			// total_mapped_file 8 MiB) = 188 MiB.
			name: "cgroupv1",
			want: want{
				memTotal: 384 << 20, memAvail: (384 - 188) << 20, memPct: 188.0 / 384 * 100, limited: true,
				swapTotal: 102396 * kB, swapPct: 50,
				rss: 24567 * page, anon: (24567 - 6123) * page,
				load: [3]float64{0.52, 0.58, 0.59},
				psi:  throttle.PSI{Available: true, CPUSomeAvg10: 3.25, MemorySomeAvg10: 1.5, MemoryFullAvg10: 0.75, IOSomeAvg10: 0.4, IOFullAvg10: 0.1},
			},
		},
		{
			// memory.max: max / max / 1 GiB / max from the root down:
			// the pod slice's 1 GiB applies. Working set = memory.current
			// 300 MiB - (inactive_file 50 + active_file 30 - file_mapped
			// 16 MiB) = 236 MiB.
			name: "cgroupv2",
			want: want{
				memTotal: 1 << 30, memAvail: (1024 - 236) << 20, memPct: 236.0 / 1024 * 100, limited: true,
				swapTotal: 3810000 * kB, swapPct: 0,
				rss: 40960 * page, anon: (40960 - 10240) * page,
				load: [3]float64{1.07, 0.95, 0.81},
				psi:  throttle.PSI{Available: true, CPUSomeAvg10: 8.5, MemorySomeAvg10: 2, MemoryFullAvg10: 1, IOSomeAvg10: 5.55, IOFullAvg10: 2.22},
			},
		},
		{
			// No MemAvailable: available = MemFree + Buffers + Cached =
			// 301220 + 40960 + 250000 kB. Root cgroup: no limit.
			name: "nopsi",
			want: want{
				memTotal: 948304 * kB, memAvail: 592180 * kB, memPct: float64(948304-592180) / 948304 * 100,
				swapTotal: 102396 * kB, swapPct: float64(102396-81920) / 102396 * 100,
				rss: 12000 * page, anon: (12000 - 3000) * page,
				load: [3]float64{2.10, 1.80, 1.50},
			},
		},
		{
			// memory.max is "max" all the way up: the host's memory
			// applies.
			name: "noswap",
			want: want{
				memTotal: 8245328 * kB, memAvail: 7012008 * kB, memPct: float64(8245328-7012008) / 8245328 * 100,
				rss: 20000 * page, anon: (20000 - 5000) * page,
				load: [3]float64{0.05, 0.10, 0.08},
				psi:  throttle.PSI{Available: true, IOSomeAvg10: 0.12, IOFullAvg10: 0.05},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := copyTree(t, tt.name)
			s := newFixtureSampler(t, root, throttle.SamplerOptions{})
			got, err := s.Sample(time.Unix(1700000000, 0))
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Errors) != 0 {
				t.Errorf("Errors = %q, want none", got.Errors)
			}
			w := tt.want
			if got.MemoryTotalBytes != w.memTotal || got.MemoryAvailableBytes != w.memAvail ||
				!approx(got.MemoryUsedPercent, w.memPct) || got.MemoryLimitedByCgroup != w.limited {
				t.Errorf("memory = total %d avail %d %.4f%% limited %v; want %d %d %.4f%% %v",
					got.MemoryTotalBytes, got.MemoryAvailableBytes, got.MemoryUsedPercent, got.MemoryLimitedByCgroup,
					w.memTotal, w.memAvail, w.memPct, w.limited)
			}
			if got.SwapTotalBytes != w.swapTotal || !approx(got.SwapUsedPercent, w.swapPct) {
				t.Errorf("swap = %d %.4f%%, want %d %.4f%%", got.SwapTotalBytes, got.SwapUsedPercent, w.swapTotal, w.swapPct)
			}
			if got.ProcessRSSBytes != w.rss || got.ProcessAnonBytes != w.anon {
				t.Errorf("process memory = rss %d anon %d, want %d %d", got.ProcessRSSBytes, got.ProcessAnonBytes, w.rss, w.anon)
			}
			if [3]float64{got.Load1, got.Load5, got.Load15} != w.load {
				t.Errorf("load = %v %v %v, want %v", got.Load1, got.Load5, got.Load15, w.load)
			}
			if got.PSI != w.psi {
				t.Errorf("PSI = %+v, want %+v", got.PSI, w.psi)
			}
			for _, name := range []string{throttle.SignalPSICPUSome, throttle.SignalPSIMemorySome, throttle.SignalPSIIOFull} {
				if _, ok := got.Value(name); ok != w.psi.Available {
					t.Errorf("Value(%s) ok = %v, want %v", name, ok, w.psi.Available)
				}
			}
			if v, ok := got.Value(throttle.SignalSwapPercent); !ok || v != got.SwapUsedPercent {
				t.Errorf("Value(swap_percent) = %v, %v", v, ok)
			}
			if v, ok := got.Value(throttle.SignalMemoryPercent); !ok || v != got.MemoryUsedPercent {
				t.Errorf("Value(memory_percent) = %v, %v", v, ok)
			}
		})
	}
}

func TestSamplerCPUDeltas(t *testing.T) {
	root := copyTree(t, "cgroupv1")
	s := newFixtureSampler(t, root, throttle.SamplerOptions{})
	steps := []struct {
		name             string
		busy, idle, proc uint64
		wantCPU, wantPrc float64
	}{
		{"three quarters busy, this process an eighth", 300, 100, 50, 75, 12.5},
		{"idle machine", 0, 1000, 0, 0, 0},
		{"no tick elapsed: previous values repeat", 0, 0, 0, 0, 0},
		{"fully busy, all of it this process", 200, 0, 200, 100, 100},
	}
	for _, st := range steps {
		addCPU(t, root, st.busy, st.idle, st.proc)
		got, err := s.Sample(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if !approx(got.CPUPercent, st.wantCPU) || !approx(got.ProcessCPUPercent, st.wantPrc) {
			t.Errorf("%s: cpu %v%% process %v%%, want %v%% %v%%", st.name, got.CPUPercent, got.ProcessCPUPercent, st.wantCPU, st.wantPrc)
		}
	}
}

// TestSamplerFirstSampleWaitsForWindow checks that the first sample covers
// at least MinCPUWindow since the Sampler was created, so its CPU figures
// are meaningful.
func TestSamplerFirstSampleWaitsForWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		root := copyTree(t, "noswap")
		start := time.Now()
		s := newFixtureSampler(t, root, throttle.SamplerOptions{MinCPUWindow: 250 * time.Millisecond})
		addCPU(t, root, 10, 30, 5)
		got, err := s.Sample(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited < 250*time.Millisecond {
			t.Errorf("first sample after %v, want >= 250ms", waited)
		}
		if !approx(got.CPUPercent, 25) || !approx(got.ProcessCPUPercent, 12.5) {
			t.Errorf("first sample: cpu %v%% process %v%%, want 25%% 12.5%%", got.CPUPercent, got.ProcessCPUPercent)
		}
		before := time.Now()
		if _, err := s.Sample(time.Now()); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(before); d != 0 {
			t.Errorf("second sample waited %v, want no wait", d)
		}
	})
}

func TestSamplerCgroupFallbacks(t *testing.T) {
	t.Run("v1 path missing: the mount root is the process's cgroup", func(t *testing.T) {
		root := copyTree(t, "cgroupv1")
		writeFile(t, root, "proc/self/cgroup", "10:memory:/not/here\n")
		got, err := newFixtureSampler(t, root, throttle.SamplerOptions{}).Sample(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		// The memory root's limit is the "unlimited" 2^63 - 4096.
		if got.MemoryLimitedByCgroup || got.MemoryTotalBytes != 3884292*kB {
			t.Errorf("limited %v total %d, want host memory", got.MemoryLimitedByCgroup, got.MemoryTotalBytes)
		}
	})
	t.Run("no /proc/self/cgroup", func(t *testing.T) {
		root := copyTree(t, "cgroupv2")
		if err := os.Remove(filepath.Join(root, "proc", "self", "cgroup")); err != nil {
			t.Fatal(err)
		}
		got, err := newFixtureSampler(t, root, throttle.SamplerOptions{}).Sample(time.Now())
		if err != nil || len(got.Errors) != 0 {
			t.Fatalf("err %v, Errors %q", err, got.Errors)
		}
		if got.MemoryLimitedByCgroup {
			t.Error("limited by a cgroup that cannot be found")
		}
	})
	t.Run("malformed memory.max is reported, host memory used", func(t *testing.T) {
		root := copyTree(t, "cgroupv2")
		writeFile(t, root, "sys/fs/cgroup/kubepods.slice/memory.max", "lots\n")
		got, err := newFixtureSampler(t, root, throttle.SamplerOptions{}).Sample(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if got.MemoryLimitedByCgroup || len(got.Errors) != 1 || !strings.Contains(got.Errors[0], "memory.max") {
			t.Errorf("limited %v, Errors %q; want host memory and one memory.max error", got.MemoryLimitedByCgroup, got.Errors)
		}
	})
	t.Run("explicit CgroupRoot wins over SysRoot", func(t *testing.T) {
		root := copyTree(t, "cgroupv2")
		s, err := throttle.NewSampler(throttle.SamplerOptions{
			ProcRoot:     filepath.Join(root, "proc"),
			SysRoot:      filepath.Join(root, "nowhere"),
			CgroupRoot:   filepath.Join(root, "sys", "fs", "cgroup"),
			MinCPUWindow: time.Nanosecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := s.Sample(time.Now())
		if !got.MemoryLimitedByCgroup {
			t.Error("CgroupRoot ignored")
		}
	})
}

func TestSamplerPartialFailures(t *testing.T) {
	root := copyTree(t, "cgroupv2")
	for _, f := range []string{"proc/loadavg", "proc/self/statm"} {
		if err := os.Remove(filepath.Join(root, f)); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, root, "proc/pressure/io", "garbage\n")
	s := newFixtureSampler(t, root, throttle.SamplerOptions{})
	got, err := s.Sample(time.Now())
	if err != nil {
		t.Fatalf("partial failures failed the sample: %v", err)
	}
	if len(got.Errors) != 3 {
		t.Errorf("Errors = %q, want 3 (load, process memory, io pressure)", got.Errors)
	}
	if got.MemoryTotalBytes == 0 || !got.PSI.Available {
		t.Error("the readable signals are missing")
	}

	t.Run("nothing readable fails the sample", func(t *testing.T) {
		s := newFixtureSampler(t, t.TempDir(), throttle.SamplerOptions{})
		got, err := s.Sample(time.Now())
		if err == nil || got == nil || len(got.Errors) == 0 {
			t.Errorf("Sample on an empty root = %v, %v; want an error and a sample with Errors", got, err)
		}
	})
}

func TestSamplerExtraSignalsAndDisks(t *testing.T) {
	root := copyTree(t, "noswap")
	disk := t.TempDir()
	s := newFixtureSampler(t, root, throttle.SamplerOptions{
		DiskPaths: []string{disk, filepath.Join(disk, "missing")},
		Signals: []throttle.Signal{
			{Name: throttle.SignalTemperatureC, Unit: "°C", Read: func() (float64, bool) { return 71.5, true }},
			{Name: "gpu_percent", Unit: "%", Read: func() (float64, bool) { return 0, false }},
			{Name: "broken", Read: func() (float64, bool) { panic("sensor gone") }},
			{Name: "nan", Read: func() (float64, bool) { return math.NaN(), true }},
		},
	})
	got, err := s.Sample(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := got.Value(throttle.SignalTemperatureC); !ok || v != 71.5 {
		t.Errorf("temperature = %v, %v; want 71.5", v, ok)
	}
	for _, name := range []string{"gpu_percent", "broken", "nan", "never_registered"} {
		if _, ok := got.Value(name); ok {
			t.Errorf("Value(%q) present", name)
		}
	}
	if len(got.Errors) != 3 { // the missing disk, the panic, the NaN
		t.Errorf("Errors = %q, want 3", got.Errors)
	}
	if len(got.Disks) != 1 || got.Disks[0].Path != disk || got.Disks[0].TotalBytes <= 0 ||
		got.Disks[0].UsedPercent < 0 || got.Disks[0].UsedPercent > 100 || got.Disks[0].FreeBytes > got.Disks[0].TotalBytes {
		t.Errorf("Disks = %+v", got.Disks)
	}
	if v, ok := got.Value(throttle.SignalDiskPercent); !ok || v != got.Disks[0].UsedPercent {
		t.Errorf("disk_percent = %v, %v", v, ok)
	}
}

func TestSampleValueDiskMax(t *testing.T) {
	s := &throttle.Sample{Disks: []throttle.DiskUsage{{Path: "/", UsedPercent: 40}, {Path: "/data", UsedPercent: 91}, {Path: "/boot", UsedPercent: 12}}}
	if v, ok := s.Value(throttle.SignalDiskPercent); !ok || v != 91 {
		t.Errorf("disk_percent = %v, %v; want the fullest, 91", v, ok)
	}
	if d, ok := s.Disk("/boot"); !ok || d.UsedPercent != 12 {
		t.Errorf("Disk(/boot) = %+v, %v", d, ok)
	}
	var nilSample *throttle.Sample
	if _, ok := nilSample.Value(throttle.SignalCPUPercent); ok {
		t.Error("nil sample has a value")
	}
	if _, ok := (&throttle.Sample{}).Value(throttle.SignalDiskPercent); ok {
		t.Error("disk_percent present without disks")
	}
}

func TestNewSamplerRejectsBadOptions(t *testing.T) {
	read := func() (float64, bool) { return 0, true }
	tests := []struct {
		name string
		opts throttle.SamplerOptions
		want string
	}{
		{"negative window", throttle.SamplerOptions{MinCPUWindow: -time.Second}, "MinCPUWindow = -1s"},
		{"unnamed signal", throttle.SamplerOptions{Signals: []throttle.Signal{{Read: read}}}, "Signals[0].Name is empty"},
		{"built-in name", throttle.SamplerOptions{Signals: []throttle.Signal{{Name: "cpu_percent", Read: read}}}, `"cpu_percent": must not be a built-in`},
		{"duplicate", throttle.SamplerOptions{Signals: []throttle.Signal{{Name: "x", Read: read}, {Name: "x", Read: read}}}, `Signals[1].Name = "x": duplicate`},
		{"no Read", throttle.SamplerOptions{Signals: []throttle.Signal{{Name: "x"}}}, "Signals[0].Read is nil"},
		{"empty disk path", throttle.SamplerOptions{DiskPaths: []string{"/", ""}}, "DiskPaths[1] is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := throttle.NewSampler(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "throttle: ") {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestSamplerHost samples the machine running the test.
func TestSamplerHost(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("procfs host test")
	}
	s, err := throttle.NewSampler(throttle.SamplerOptions{DiskPaths: []string{t.TempDir()}, MinCPUWindow: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		got, err := s.Sample(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Errors) > 0 {
			t.Logf("partial errors on this host: %q", got.Errors)
		}
		for name, v := range map[string]float64{
			"cpu": got.CPUPercent, "process cpu": got.ProcessCPUPercent, "memory": got.MemoryUsedPercent,
			"swap": got.SwapUsedPercent, "disk": got.Disks[0].UsedPercent,
		} {
			if v < 0 || v > 100 {
				t.Errorf("%s = %v%%, out of [0, 100]", name, v)
			}
		}
		if got.MemoryTotalBytes <= 0 || got.MemoryAvailableBytes > got.MemoryTotalBytes || got.ProcessRSSBytes <= 0 ||
			got.ProcessAnonBytes > got.ProcessRSSBytes {
			t.Errorf("memory figures inconsistent: %+v", got)
		}
	}
}
