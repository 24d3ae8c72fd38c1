//go:build !linux

package throttle

import (
	"context"
	"fmt"

	"github.com/shirou/gopsutil/v3/disk"
)

// diskUsage returns the df-style usage of the file system holding path.
func diskUsage(path string) (DiskUsage, error) {
	u, err := disk.UsageWithContext(context.Background(), path)
	if err != nil {
		return DiskUsage{}, fmt.Errorf("disk %s: %w", path, err)
	}
	return usageFromBlocks(path, u.Total/4096, (u.Total-u.Used)/4096, u.Free/4096, 4096), nil
}
