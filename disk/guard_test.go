package disk_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cemaf-go/cemaf/disk"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/limit"
)

var (
	_ executor.Gate    = (*disk.Guard)(nil)
	_ executor.Checker = (*disk.Guard)(nil)
)

func TestUsageFromBlocks(t *testing.T) {
	tests := []struct {
		name                      string
		blocks, bfree, bavail, bs uint64
		want                      disk.Usage
	}{
		{
			name: "32 GB SD card, 5 % reserved", blocks: 7_812_500, bfree: 2_000_000, bavail: 1_609_375, bs: 4096,
			want: disk.Usage{Path: "/p", TotalBytes: 32_000_000_000, FreeBytes: 6_592_000_000, UsedBytes: 23_808_000_000, UsedPercent: 23_808.0 / (23_808 + 6_592) * 100},
		},
		{
			name: "full for users, root blocks left", blocks: 1000, bfree: 50, bavail: 0, bs: 1024,
			want: disk.Usage{Path: "/p", TotalBytes: 1_024_000, FreeBytes: 0, UsedBytes: 972_800, UsedPercent: 100},
		},
		{name: "empty statfs", want: disk.Usage{Path: "/p"}},
		{
			name: "bogus bfree above blocks", blocks: 10, bfree: 20, bavail: 10, bs: 512,
			want: disk.Usage{Path: "/p", TotalBytes: 5120, FreeBytes: 5120, UsedBytes: 0, UsedPercent: 0},
		},
		{
			name: "overflow saturates", blocks: math.MaxUint64 / 2, bfree: 0, bavail: 0, bs: 4096,
			want: disk.Usage{Path: "/p", TotalBytes: math.MaxInt64, UsedBytes: math.MaxInt64, UsedPercent: 100},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := disk.UsageFromBlocks("/p", tt.blocks, tt.bfree, tt.bavail, tt.bs)
			if got.Path != tt.want.Path || got.TotalBytes != tt.want.TotalBytes || got.FreeBytes != tt.want.FreeBytes ||
				got.UsedBytes != tt.want.UsedBytes || math.Abs(got.UsedPercent-tt.want.UsedPercent) > 1e-9 {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestStatRealFileSystem(t *testing.T) {
	u, err := disk.Stat(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if u.TotalBytes <= 0 || u.FreeBytes < 0 || u.UsedBytes < 0 || u.UsedPercent < 0 || u.UsedPercent > 100 || u.FreeBytes > u.TotalBytes {
		t.Errorf("Stat = %+v", u)
	}
	if _, err := disk.Stat("/no/such/dir"); err == nil || !strings.Contains(err.Error(), "/no/such/dir") {
		t.Errorf("Stat of a missing path = %v", err)
	}
}

func TestNewGuardBadOptions(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
		opts disk.GuardOptions
		want string
	}{
		{"percent above 100", dir, disk.GuardOptions{MaxUsedPercent: 101}, "GuardOptions.MaxUsedPercent = 101: must be in (0, 100]"},
		{"negative percent", dir, disk.GuardOptions{MaxUsedPercent: -5}, "GuardOptions.MaxUsedPercent = -5"},
		{"negative free", dir, disk.GuardOptions{MinFreeBytes: -1}, "GuardOptions.MinFreeBytes = -1"},
		{"negative interval", dir, disk.GuardOptions{RefreshInterval: -time.Second}, "GuardOptions.RefreshInterval = -1s"},
		{"missing path", dir + "/missing", disk.GuardOptions{}, dir + "/missing"},
		{"empty path", "", disk.GuardOptions{}, "path is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := disk.NewGuard(tt.path, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "disk: ") {
				t.Errorf("NewGuard = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// On the real file system: thresholds that cannot hold trip, lenient ones
// pass.
func TestGuardRealThresholds(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		opts disk.GuardOptions
		unit string // "" = Check passes
	}{
		{"lenient", disk.GuardOptions{MaxUsedPercent: 100, MinFreeBytes: 1}, ""},
		{"any use is too much", disk.GuardOptions{MaxUsedPercent: 1e-9}, "%"},
		{"more free space than exists", disk.GuardOptions{MaxUsedPercent: 100, MinFreeBytes: math.MaxInt64}, "bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := disk.NewGuard(dir, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			err = g.Check()
			if tt.unit == "" {
				if err != nil {
					t.Fatalf("Check() = %v", err)
				}
				return
			}
			var le *limit.Error
			if !errors.As(err, &le) || !errors.Is(err, limit.ErrExceeded) {
				t.Fatalf("Check() = %v, want a *limit.Error", err)
			}
			if le.Kind != limit.Disk || le.Subject != dir || le.Unit != tt.unit || le.Current <= le.Limit {
				t.Errorf("Check() = %#v", le)
			}
		})
	}
}

// fakeDisk is a statfs stand-in whose fill level the test sets.
type fakeDisk struct {
	usedPct atomic.Int64 // percent × 100
	calls   atomic.Int32
	fail    atomic.Bool
}

func (f *fakeDisk) stat(path string) (disk.Usage, error) {
	f.calls.Add(1)
	if f.fail.Load() {
		return disk.Usage{}, errors.New("disk: statfs " + path + ": input/output error")
	}
	pct := float64(f.usedPct.Load()) / 100
	used := int64(pct * 1e7)
	return disk.Usage{Path: path, TotalBytes: 1e9, UsedBytes: used, FreeBytes: 1e9 - used, UsedPercent: pct}, nil
}

func TestGuardCachesAndWaits(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		g, err := disk.NewGuard(dir, disk.GuardOptions{MaxUsedPercent: 90, RefreshInterval: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		var fd fakeDisk
		fd.usedPct.Store(9700)
		disk.SetStat(g, fd.stat)
		time.Sleep(5 * time.Second) // the real reading from NewGuard is now stale

		var le *limit.Error
		if err := g.Check(); !errors.As(err, &le) || le.Current != 97 || le.Limit != 90 || le.Unit != "%" {
			t.Fatalf("Check() = %v", err)
		}
		for range 1000 {
			_ = g.Check()
		}
		if n := fd.calls.Load(); n != 1 {
			t.Errorf("statfs called %d times for 1001 checks within the interval, want 1", n)
		}

		released := make(chan time.Duration, 1)
		start := time.Now()
		go func() {
			if err := g.Wait(context.Background()); err != nil {
				t.Error(err)
			}
			released <- time.Since(start)
		}()
		time.Sleep(12 * time.Second)
		fd.usedPct.Store(8000) // space freed 12 s into the wait
		if d := <-released; d != 15*time.Second {
			t.Errorf("Wait returned after %v, want 15s (first refresh after the space was freed)", d)
		}
		if u, err := g.Usage(); err != nil || u.UsedPercent != 80 {
			t.Errorf("Usage() = %+v, %v", u, err)
		}

		// A statfs failure blocks too, and Wait ends with ctx.
		fd.fail.Store(true)
		time.Sleep(5 * time.Second)
		if err := g.Check(); err == nil || !strings.Contains(err.Error(), "input/output error") {
			t.Errorf("Check() with a failing statfs = %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 7*time.Second)
		defer cancel()
		if err := g.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Wait = %v, want DeadlineExceeded", err)
		}
	})
}

func TestGuardMinFree(t *testing.T) {
	g, err := disk.NewGuard(t.TempDir(), disk.GuardOptions{MaxUsedPercent: 100, MinFreeBytes: 200e6, RefreshInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	var fd fakeDisk
	fd.usedPct.Store(8500) // 850 MB used, 150 MB free of 1 GB
	disk.SetStat(g, fd.stat)
	var le *limit.Error
	if err := g.Check(); !errors.As(err, &le) || le.Current != 850e6 || le.Limit != 800e6 || le.Unit != "bytes" ||
		le.Detail != "150.0 MB free, below the minimum of 200.0 MB" {
		t.Fatalf("Check() = %#v", err)
	}
	fd.usedPct.Store(7900)
	if err := g.Check(); err != nil {
		t.Errorf("Check() with 210 MB free = %v", err)
	}
}
