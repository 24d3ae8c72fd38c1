package disk

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/cemaf-go/cemaf/limit"
)

// BytesPerMB is the size of the MB in every MB/s of this package: the SI
// megabyte that storage vendors rate SD cards and eMMC in.
const BytesPerMB = 1_000_000

// Bounds of the token bucket size (Options.Burst).
const (
	minAutoBurst = 64 << 10
	maxAutoBurst = 16 << 20
	minBurst     = 4 << 10
	maxBurst     = 1 << 30
	// autoBurstWindow is how much time at the configured rate the automatic
	// burst holds.
	autoBurstWindow = 100 * time.Millisecond
)

// Options configure a Throttler. The zero value is a Throttler that limits
// nothing (both rates unlimited).
type Options struct {
	// WriteMBps and ReadMBps are the maximum write and read rates in MB/s
	// (1 MB = 1,000,000 bytes). 0 means unlimited; negative values, NaN and
	// infinities are rejected.
	WriteMBps, ReadMBps float64

	// Burst is the token bucket size in bytes: the most that passes without
	// waiting after an idle period, and the size of the pieces larger
	// requests are split into. 0 means automatic: 100 ms worth of the rate,
	// kept within [64 KiB, 16 MiB] and recomputed when the rate changes.
	// Otherwise it must be in [4096, 1<<30] and stays fixed.
	Burst int64
}

// Throttler limits the byte rate of the readers, writers and files it
// wraps, with one token bucket (golang.org/x/time/rate) for writes and one
// for reads shared by everything it wraps. Requests larger than the bucket
// are split into bucket-sized pieces. Rates can be changed while in use.
//
// A Throttler starts no goroutine and needs no Close. It is safe for
// concurrent use. Its zero value is not usable: call NewThrottler.
type Throttler struct {
	write, read *bucket
}

// NewThrottler validates opts and returns a Throttler.
func NewThrottler(opts Options) (*Throttler, error) {
	if err := checkMBps("Options.WriteMBps", opts.WriteMBps); err != nil {
		return nil, err
	}
	if err := checkMBps("Options.ReadMBps", opts.ReadMBps); err != nil {
		return nil, err
	}
	if opts.Burst != 0 && (opts.Burst < minBurst || opts.Burst > maxBurst) {
		return nil, fmt.Errorf("disk: Options.Burst = %d: must be in [%d, %d] bytes (0 means automatic)", opts.Burst, minBurst, maxBurst)
	}
	return &Throttler{
		write: newBucket("write", opts.WriteMBps, opts.Burst),
		read:  newBucket("read", opts.ReadMBps, opts.Burst),
	}, nil
}

func checkMBps(field string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return fmt.Errorf("disk: %s = %g: must be ≥ 0 MB/s (0 means unlimited)", field, v)
	}
	return nil
}

// SetWriteMBps changes the write rate (0 = unlimited) for everything the
// Throttler wraps, including writes in progress: a wait under way is
// recomputed at the new rate. It rejects negative rates, NaN and infinities.
func (t *Throttler) SetWriteMBps(mbps float64) error {
	if err := checkMBps("SetWriteMBps", mbps); err != nil {
		return err
	}
	t.write.set(mbps)
	return nil
}

// SetReadMBps changes the read rate like SetWriteMBps.
func (t *Throttler) SetReadMBps(mbps float64) error {
	if err := checkMBps("SetReadMBps", mbps); err != nil {
		return err
	}
	t.read.set(mbps)
	return nil
}

// WriteMBps returns the current write rate in MB/s (0 = unlimited).
func (t *Throttler) WriteMBps() float64 { return t.write.mbps() }

// ReadMBps returns the current read rate in MB/s (0 = unlimited).
func (t *Throttler) ReadMBps() float64 { return t.read.mbps() }

// WaitWrite blocks until n bytes may be written, for callers that do their
// own I/O. It returns at once when the write rate is unlimited, ctx's error
// (its cause, if set) when ctx ends first, and fails fast, with an error
// matching context.DeadlineExceeded and a *limit.Error of kind disk_io,
// when ctx's deadline is too close for n bytes at the current rate.
func (t *Throttler) WaitWrite(ctx context.Context, n int64) error {
	return t.write.pay(ctx, n)
}

// WaitRead blocks until n bytes may be read, like WaitWrite.
func (t *Throttler) WaitRead(ctx context.Context, n int64) error {
	return t.read.pay(ctx, n)
}

// bucket is one direction's token bucket.
type bucket struct {
	name      string
	autoBurst bool
	bits      atomic.Uint64 // math.Float64bits of the rate in MB/s; 0 = unlimited
	lim       *rate.Limiter
	// changed is closed and replaced when the rate changes, waking waiters.
	changed atomic.Pointer[chan struct{}]

	// mu serialises set.
	mu sync.Mutex
}

func newBucket(name string, mbps float64, burst int64) *bucket {
	b := &bucket{name: name, autoBurst: burst == 0}
	if b.autoBurst {
		burst = autoBurst(mbps)
	}
	lim := rate.Inf
	if mbps > 0 {
		lim = rate.Limit(mbps * BytesPerMB)
	}
	b.lim = rate.NewLimiter(lim, int(burst))
	b.bits.Store(math.Float64bits(mbps))
	ch := make(chan struct{})
	b.changed.Store(&ch)
	return b
}

// autoBurst is 100 ms of the rate within [64 KiB, 16 MiB].
func autoBurst(mbps float64) int64 {
	v := mbps * BytesPerMB * autoBurstWindow.Seconds()
	return int64(min(max(v, minAutoBurst), maxAutoBurst))
}

func (b *bucket) mbps() float64 { return math.Float64frombits(b.bits.Load()) }

func (b *bucket) unlimited() bool { return b.bits.Load() == 0 }

func (b *bucket) set(mbps float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if mbps == 0 {
		b.lim.SetLimitAt(now, rate.Inf)
	} else {
		if b.autoBurst {
			b.lim.SetBurstAt(now, int(autoBurst(mbps)))
		}
		b.lim.SetLimitAt(now, rate.Limit(mbps*BytesPerMB))
	}
	b.bits.Store(math.Float64bits(mbps))
	ch := make(chan struct{})
	old := b.changed.Swap(&ch)
	close(*old)
}

// fits fails fast when ctx's deadline leaves too little time to pass n
// bytes at the current rate, counting the tokens already in the bucket.
func (b *bucket) fits(ctx context.Context, n int64) error {
	deadline, ok := ctx.Deadline()
	if !ok || b.unlimited() {
		return nil
	}
	now := time.Now()
	bytesPerSec := b.mbps() * BytesPerMB
	missing := float64(n) - b.lim.TokensAt(now)
	if missing <= 0 {
		return nil
	}
	need := time.Duration(missing / bytesPerSec * float64(time.Second))
	if now.Add(need).After(deadline) {
		return b.deadlineError(n, need, deadline.Sub(now))
	}
	return nil
}

func (b *bucket) deadlineError(n int64, need, left time.Duration) error {
	lerr := &limit.Error{
		Kind:    limit.DiskIO,
		Subject: b.name,
		Current: need.Seconds(),
		Limit:   max(left, 0).Seconds(),
		Unit:    "s",
		Detail:  fmt.Sprintf("%d bytes at %g MB/s do not fit before the context deadline", n, b.mbps()),
	}
	return fmt.Errorf("disk: %s throttle: %w: %w", b.name, lerr, context.DeadlineExceeded)
}

// take blocks until up to n bytes (at most one bucket) may pass and returns
// how many. A rate change while waiting cancels the reservation and waits
// again at the new rate.
func (b *bucket) take(ctx context.Context, n int64) (int64, error) {
	for {
		changed := *b.changed.Load()
		if b.unlimited() {
			return n, nil
		}
		if ctx.Err() != nil {
			return 0, context.Cause(ctx)
		}
		k := min(n, int64(b.lim.Burst()))
		now := time.Now()
		r := b.lim.ReserveN(now, int(k))
		if !r.OK() {
			continue // the burst shrank under us; size the piece again
		}
		d := r.DelayFrom(now)
		if d == 0 {
			return k, nil
		}
		if deadline, ok := ctx.Deadline(); ok && now.Add(d).After(deadline) {
			r.CancelAt(now)
			return 0, b.deadlineError(k, d, deadline.Sub(now))
		}
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
			return k, nil
		case <-ctx.Done():
			timer.Stop()
			r.Cancel()
			return 0, context.Cause(ctx)
		case <-changed:
			timer.Stop()
			r.Cancel()
		}
	}
}

// pay blocks until n bytes have passed, piece by piece.
func (b *bucket) pay(ctx context.Context, n int64) error {
	if n <= 0 || b.unlimited() {
		return nil
	}
	if err := b.fits(ctx, n); err != nil {
		return err
	}
	for n > 0 {
		k, err := b.take(ctx, n)
		if err != nil {
			return err
		}
		n -= k
	}
	return nil
}
