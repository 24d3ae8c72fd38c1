package paging

import (
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"strconv"
)

// MiB is the number of bytes in one MB as the pager's options count them:
// MemoryLimitMB and PageSizeMB are binary megabytes (2^20 bytes).
const MiB = 1 << 20

// Defaults applied for zero-valued Options fields.
const (
	// DefaultMemoryLimitMB is the RAM budget when Options.MemoryLimitMB is 0.
	DefaultMemoryLimitMB = 256
	// DefaultPageSizeMB is the page size when Options.PageSizeMB is 0:
	// 256 KiB, chosen by measurement (see "Page size" in the package
	// documentation).
	DefaultPageSizeMB = 0.25
	// DefaultLowWatermarkPercent is the share of the memory limit that
	// eviction shrinks the resident set to once the limit is reached.
	DefaultLowWatermarkPercent = 90
	// DefaultReadAheadPages is the largest read-ahead window, in pages.
	DefaultReadAheadPages = 8
	// DefaultMaxFileBytes32 is the page-file cap on 32-bit platforms, where
	// bbolt cannot map much more than 1 GiB of address space.
	DefaultMaxFileBytes32 = 1 << 30
	// DefaultMaxFileBytes64 is the page-file cap on 64-bit platforms.
	DefaultMaxFileBytes64 = 64 << 30
)

// Bounds enforced by Wrap.
const (
	minPageSize = 4 << 10  // 4 KiB
	maxPageSize = 64 << 20 // 64 MiB
	// minFileBytes is the smallest accepted page-file cap: an empty bbolt
	// file with the pager's buckets takes about 32 KiB.
	minFileBytes = 256 << 10
)

// is32Bit reports whether the platform has a 32-bit address space.
const is32Bit = math.MaxInt == math.MaxInt32

// Mode selects the durability of the page file.
type Mode int

const (
	// ModeCache (the default) writes pages without fsync. A clean Close
	// leaves a consistent file that the next Wrap reuses; after an unclean
	// shutdown the file is verified at open and whatever does not verify is
	// discarded.
	ModeCache Mode = iota
	// ModeDurable commits every write-back batch with fsync (one fsync per
	// batch of pages: group commit) and offers Checkpoint: after a crash,
	// including kill -9, every key that a successful Checkpoint covered
	// reads back intact.
	ModeDurable
)

// String returns "cache" or "durable".
func (m Mode) String() string {
	switch m {
	case ModeCache:
		return "cache"
	case ModeDurable:
		return "durable"
	default:
		return "Mode(" + strconv.Itoa(int(m)) + ")"
	}
}

// Compression names accepted in Options.Compression.
const (
	CompressionLZ4  = "lz4"
	CompressionNone = "none"
)

// Options configures a Pager. The zero value means: 256 MB of RAM, pages of
// DefaultPageSizeMB, LZ4 compression, cache mode, a private temporary
// directory removed at Close, no pinned or prefetched keys, read-ahead on,
// logging discarded, the Go memory limit advised (see LeaveGoMemoryLimit).
type Options struct {
	// MemoryLimitMB is the RAM budget for value bytes, in MB (2^20 bytes);
	// fractions are allowed. 0 means DefaultMemoryLimitMB. It must hold at
	// least 4 pages, and be at most 1024 on 32-bit platforms.
	MemoryLimitMB float64
	// PageSizeMB is the unit of paging, in MB (2^20 bytes); fractions are
	// allowed (0.25 is 256 KiB). 0 means DefaultPageSizeMB. Accepted range:
	// 4 KiB to 64 MiB. Values written with another page size keep theirs.
	PageSizeMB float64
	// StoragePath is the directory that holds the page file (pages.db). It
	// is created (mode 0700) if missing. Empty means a fresh temporary
	// directory that Close removes; that is only allowed in ModeCache. On
	// a board whose /tmp is a tmpfs that directory is RAM, and paged-out
	// values still take memory: Wrap logs a warning then.
	StoragePath string
	// Compression is CompressionLZ4 (the default when empty) or
	// CompressionNone.
	Compression string
	// PinKeys are keys whose values are never paged out. Pinned bytes count
	// toward the budget and may use at most half of it.
	PinKeys []string
	// PrefetchKeys are keys paged in by Wrap, as far as the budget allows.
	PrefetchKeys []string
	// Mode is ModeCache (the zero value) or ModeDurable.
	Mode Mode
	// MaxFileBytes caps the page file. 0 means DefaultMaxFileBytes32 on
	// 32-bit platforms and DefaultMaxFileBytes64 on 64-bit ones. On 32-bit
	// platforms it may not exceed 1 GiB. A write that would grow the file
	// past the cap fails with a *limit.Error of Kind limit.FileSize.
	MaxFileBytes int64
	// LowWatermarkPercent is the share of the memory limit that eviction
	// shrinks the resident set to once a write reaches the limit, in
	// (0, 100]. 0 means DefaultLowWatermarkPercent.
	LowWatermarkPercent float64
	// ReadAheadPages is the largest number of pages read ahead of a
	// sequential reader. 0 means DefaultReadAheadPages; a negative value
	// turns read-ahead off.
	ReadAheadPages int
	// Logger receives open/recovery/compaction notes and background write
	// errors. nil means slog.New(slog.DiscardHandler).
	Logger *slog.Logger
	// LeaveGoMemoryLimit keeps the pager from advising the Go runtime's
	// memory limit. By default an open pager sets the limit so that the
	// process's heap in use stays within 1.5 × MemoryLimitMB + 8 MiB (its
	// advice adds to other pagers' and to a large heap outside them), and
	// never touches a limit set by GOMEMLIMIT or by debug.SetMemoryLimit;
	// see "Memory bound" in the package documentation.
	LeaveGoMemoryLimit bool

	// faults is set only by tests (export_test.go).
	faults *faults
}

// faults injects failures in tests; the zero value injects none.
type faults struct {
	// beforeCommit, when non-nil, runs before each write transaction
	// commits; a non-nil error makes the write fail as a full disk would.
	beforeCommit func() error
	// noBackground keeps the pager from starting its background reclaimer
	// so that tests can drive write-back deterministically.
	noBackground bool
}

// config is Options resolved to bytes and validated.
type config struct {
	limit      int64
	pageSize   int64
	dir        string
	ephemeral  bool
	compress   bool
	pins       map[string]bool
	prefetch   []string
	mode       Mode
	maxFile    int64
	lowPercent float64
	readAhead  int
	logger     *slog.Logger
	goLimit    bool // advise the Go memory limit
	faults     faults
	workers    int // read-ahead goroutines and compression goroutines
}

func optErr(field string, value any, want string) error {
	return fmt.Errorf("paging: Options.%s = %v: %s", field, value, want)
}

func mbToBytes(field string, v, def float64, lo, hi int64) (int64, error) {
	if v == 0 {
		v = def
	}
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0, optErr(field, v, fmt.Sprintf("must be a finite number of MB in [%v, %v]", float64(lo)/MiB, float64(hi)/MiB))
	}
	b := v * MiB
	if b < float64(lo) || b > float64(hi) {
		return 0, optErr(field, v, fmt.Sprintf("must be in [%v, %v] MB", float64(lo)/MiB, float64(hi)/MiB))
	}
	return int64(b), nil
}

func (o *Options) resolve() (config, error) {
	var c config
	var err error
	c.pageSize, err = mbToBytes("PageSizeMB", o.PageSizeMB, DefaultPageSizeMB, minPageSize, maxPageSize)
	if err != nil {
		return c, err
	}
	maxLimit := int64(math.MaxInt64 / 4)
	if is32Bit {
		// Beside the budget, a 32-bit process needs address space for the
		// mapped page file (up to 1 GiB) and the rest of the heap.
		maxLimit = 1 << 30
	}
	c.limit, err = mbToBytes("MemoryLimitMB", o.MemoryLimitMB, DefaultMemoryLimitMB, 4*c.pageSize, maxLimit)
	if err != nil {
		return c, fmt.Errorf("%w (at least 4 pages of %d bytes)", err, c.pageSize)
	}
	switch o.Compression {
	case "", CompressionLZ4:
		c.compress = true
	case CompressionNone:
	default:
		return c, optErr("Compression", strconv.Quote(o.Compression), `must be "lz4", "none" or empty`)
	}
	switch o.Mode {
	case ModeCache, ModeDurable:
		c.mode = o.Mode
	default:
		return c, optErr("Mode", int(o.Mode), "must be ModeCache (0) or ModeDurable (1)")
	}
	c.dir = o.StoragePath
	if c.dir == "" {
		if c.mode == ModeDurable {
			return c, optErr("StoragePath", `""`, "a directory is required in ModeDurable")
		}
		c.ephemeral = true
	}
	c.maxFile = o.MaxFileBytes
	switch {
	case c.maxFile == 0 && is32Bit:
		c.maxFile = DefaultMaxFileBytes32
	case c.maxFile == 0:
		c.maxFile = DefaultMaxFileBytes64
	case c.maxFile < minFileBytes:
		return c, optErr("MaxFileBytes", c.maxFile, fmt.Sprintf("must be 0 (default) or >= %d", minFileBytes))
	case is32Bit && c.maxFile > DefaultMaxFileBytes32:
		return c, optErr("MaxFileBytes", c.maxFile, fmt.Sprintf("must be <= %d on 32-bit platforms", DefaultMaxFileBytes32))
	}
	c.lowPercent = o.LowWatermarkPercent
	if c.lowPercent == 0 {
		c.lowPercent = DefaultLowWatermarkPercent
	}
	if math.IsNaN(c.lowPercent) || c.lowPercent <= 0 || c.lowPercent > 100 {
		return c, optErr("LowWatermarkPercent", o.LowWatermarkPercent, "must be in (0, 100]")
	}
	c.readAhead = o.ReadAheadPages
	if c.readAhead == 0 {
		c.readAhead = DefaultReadAheadPages
	}
	if c.readAhead < 0 {
		c.readAhead = 0
	}
	c.pins = make(map[string]bool, len(o.PinKeys))
	for _, k := range o.PinKeys {
		if err := checkKey(k); err != nil {
			return c, fmt.Errorf("paging: Options.PinKeys: %w", err)
		}
		c.pins[k] = true
	}
	c.prefetch = append([]string(nil), o.PrefetchKeys...)
	c.logger = o.Logger
	c.goLimit = !o.LeaveGoMemoryLimit
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if o.faults != nil {
		c.faults = *o.faults
	}
	c.workers = min(max(runtime.GOMAXPROCS(0), 1), 4)
	return c, nil
}
