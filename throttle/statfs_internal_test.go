package throttle

import (
	"math"
	"strings"
	"testing"
)

func TestUsageFromBlocks(t *testing.T) {
	tests := []struct {
		name                      string
		blocks, bfree, bavail, bs uint64
		want                      DiskUsage
	}{
		{
			name: "32 GB SD card, 5 % reserved", blocks: 7_812_500, bfree: 2_000_000, bavail: 1_609_375, bs: 4096,
			want: DiskUsage{Path: "/p", TotalBytes: 32_000_000_000, FreeBytes: 6_592_000_000, UsedPercent: 23_808.0 / (23_808 + 6_592) * 100},
		},
		{
			name: "full for users, root blocks left", blocks: 1000, bfree: 50, bavail: 0, bs: 1024,
			want: DiskUsage{Path: "/p", TotalBytes: 1_024_000, FreeBytes: 0, UsedPercent: 100},
		},
		{name: "empty statfs", want: DiskUsage{Path: "/p"}},
		{
			name: "bogus bfree above blocks", blocks: 10, bfree: 20, bavail: 10, bs: 512,
			want: DiskUsage{Path: "/p", TotalBytes: 5120, FreeBytes: 5120, UsedPercent: 0},
		},
		{
			name: "overflow saturates", blocks: math.MaxUint64 / 2, bfree: 0, bavail: 0, bs: 4096,
			want: DiskUsage{Path: "/p", TotalBytes: math.MaxInt64, UsedPercent: 100},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := usageFromBlocks("/p", tt.blocks, tt.bfree, tt.bavail, tt.bs)
			if got.Path != tt.want.Path || got.TotalBytes != tt.want.TotalBytes || got.FreeBytes != tt.want.FreeBytes ||
				math.Abs(got.UsedPercent-tt.want.UsedPercent) > 1e-9 {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDiskUsageRealFileSystem(t *testing.T) {
	u, err := diskUsage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if u.TotalBytes <= 0 || u.FreeBytes < 0 || u.UsedPercent < 0 || u.UsedPercent > 100 || u.FreeBytes > u.TotalBytes {
		t.Errorf("diskUsage = %+v", u)
	}
	if _, err := diskUsage("/no/such/dir"); err == nil || !strings.Contains(err.Error(), "/no/such/dir") {
		t.Errorf("diskUsage of a missing path = %v", err)
	}
}
