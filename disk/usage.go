package disk

// Usage is the space of the file system holding a path, as df reports it.
type Usage struct {
	// Path is the path that was queried.
	Path string
	// TotalBytes is the file system's size.
	TotalBytes int64
	// FreeBytes is the space available to unprivileged users (blocks
	// reserved for root are not counted).
	FreeBytes int64
	// UsedBytes is the space in use.
	UsedBytes int64
	// UsedPercent is UsedBytes / (UsedBytes + FreeBytes) × 100, df's "Use%":
	// it reaches 100 when unprivileged writers can write no more, even
	// though root-reserved blocks remain.
	UsedPercent float64
}

// usageFromBlocks computes a Usage from statfs block counts.
func usageFromBlocks(path string, blocks, bfree, bavail, bsize uint64) Usage {
	mul := func(n uint64) int64 {
		if bsize != 0 && n > uint64(1<<63-1)/bsize {
			return 1<<63 - 1
		}
		return int64(n * bsize)
	}
	if bfree > blocks {
		bfree = blocks
	}
	u := Usage{
		Path:       path,
		TotalBytes: mul(blocks),
		FreeBytes:  mul(bavail),
		UsedBytes:  mul(blocks - bfree),
	}
	if d := float64(u.UsedBytes) + float64(u.FreeBytes); d > 0 {
		u.UsedPercent = float64(u.UsedBytes) / d * 100
	}
	return u
}
