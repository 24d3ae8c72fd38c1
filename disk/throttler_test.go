package disk_test

import (
	"context"
	"errors"
	"io"
	"math"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cemaf-go/cemaf/disk"
	"github.com/cemaf-go/cemaf/limit"
)

func TestNewThrottlerBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts disk.Options
		want []string
	}{
		{"negative write", disk.Options{WriteMBps: -1}, []string{"Options.WriteMBps = -1", "≥ 0"}},
		{"negative read", disk.Options{ReadMBps: -0.5}, []string{"Options.ReadMBps = -0.5"}},
		{"NaN write", disk.Options{WriteMBps: math.NaN()}, []string{"Options.WriteMBps = NaN"}},
		{"infinite read", disk.Options{ReadMBps: math.Inf(1)}, []string{"Options.ReadMBps = +Inf"}},
		{"tiny burst", disk.Options{Burst: 100}, []string{"Options.Burst = 100", "[4096, 1073741824]"}},
		{"negative burst", disk.Options{Burst: -1}, []string{"Options.Burst = -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := disk.NewThrottler(tt.opts)
			if err == nil {
				t.Fatal("NewThrottler succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	th, err := disk.NewThrottler(disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := th.SetWriteMBps(-2); err == nil || !strings.Contains(err.Error(), "SetWriteMBps = -2") {
		t.Errorf("SetWriteMBps(-2) = %v", err)
	}
	if err := th.SetReadMBps(math.NaN()); err == nil || !strings.Contains(err.Error(), "SetReadMBps") {
		t.Errorf("SetReadMBps(NaN) = %v", err)
	}
}

// chunkRecorder is an io.Writer that records the size of every Write.
type chunkRecorder struct {
	mu     sync.Mutex
	sizes  []int
	total  int64
	failAt int64 // fail once total reaches this (0 = never)
}

func (c *chunkRecorder) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failAt > 0 && c.total >= c.failAt {
		return 0, errors.New("device full")
	}
	c.sizes = append(c.sizes, len(p))
	c.total += int64(len(p))
	return len(p), nil
}

// writeAll writes total bytes to w in pieces of chunk bytes.
func writeAll(w io.Writer, total int64, chunk int) error {
	buf := make([]byte, chunk)
	for total > 0 {
		n := min(int64(chunk), total)
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
		total -= n
	}
	return nil
}

// The accuracy requirement: 200 MB through a 20 MB/s limit takes 10 s of
// virtual time ± 2 %, whatever the size of the writes.
func TestWriteAccuracy(t *testing.T) {
	for _, tt := range []struct {
		name  string
		chunk int
		burst int64
	}{
		{"16 KiB writes", 16 << 10, 0},
		{"1 MiB writes", 1 << 20, 0},
		{"64 MiB writes split", 64 << 20, 0},
		{"fixed 256 KiB burst", 1 << 20, 256 << 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				th, err := disk.NewThrottler(disk.Options{WriteMBps: 20, Burst: tt.burst})
				if err != nil {
					t.Fatal(err)
				}
				rec := &chunkRecorder{}
				start := time.Now()
				if err := writeAll(th.Writer(t.Context(), rec), 200*disk.BytesPerMB, tt.chunk); err != nil {
					t.Fatal(err)
				}
				elapsed := time.Since(start)
				t.Logf("200 MB at 20 MB/s: %v of virtual time", elapsed)
				if want := 10 * time.Second; math.Abs(float64(elapsed-want)) > 0.02*float64(want) {
					t.Errorf("200 MB at 20 MB/s took %v, want 10s ± 2%%", elapsed)
				}
				if rec.total != 200*disk.BytesPerMB {
					t.Errorf("wrote %d bytes", rec.total)
				}
				burst := tt.burst
				if burst == 0 {
					burst = 2 * disk.BytesPerMB // 100 ms at 20 MB/s
				}
				for _, s := range rec.sizes {
					if int64(s) > burst {
						t.Fatalf("a %d-byte piece reached the writer, above the %d-byte burst", s, burst)
					}
				}
			})
		})
	}
}

func TestReadAccuracy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th, err := disk.NewThrottler(disk.Options{ReadMBps: 50})
		if err != nil {
			t.Fatal(err)
		}
		src := io.LimitReader(zeroReader{}, 500*disk.BytesPerMB)
		start := time.Now()
		// Hide io.Discard's ReadFrom so that the 8 MiB buffer is used.
		n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, th.Reader(t.Context(), src), make([]byte, 8<<20))
		if err != nil || n != 500*disk.BytesPerMB {
			t.Fatalf("copied %d, %v", n, err)
		}
		if elapsed, want := time.Since(start), 10*time.Second; math.Abs(float64(elapsed-want)) > 0.02*float64(want) {
			t.Errorf("500 MB at 50 MB/s took %v, want 10s ± 2%%", elapsed)
		}
	})
}

// zeroReader is an endless source; it leaves p as it is (the tests read
// into zeroed buffers), which keeps large copies cheap under emulation.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { return len(p), nil }

func TestUnlimitedDoesNotWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th, err := disk.NewThrottler(disk.Options{})
		if err != nil {
			t.Fatal(err)
		}
		rec := &chunkRecorder{}
		start := time.Now()
		if err := writeAll(th.Writer(t.Context(), rec), 1<<30, 64<<20); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, th.Reader(t.Context(), io.LimitReader(zeroReader{}, 1<<30))); err != nil {
			t.Fatal(err)
		}
		if time.Since(start) != 0 {
			t.Errorf("unlimited I/O took %v of virtual time", time.Since(start))
		}
		if len(rec.sizes) != 16 {
			t.Errorf("unlimited writes were split into %d pieces, want 16 (passed through)", len(rec.sizes))
		}
	})
}

// A rate change applies to writes in progress, including a wait under way.
func TestSetRateWhileWriting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th, err := disk.NewThrottler(disk.Options{WriteMBps: 1, Burst: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan time.Duration)
		start := time.Now()
		go func() {
			if err := writeAll(th.Writer(context.Background(), io.Discard), 30*disk.BytesPerMB, 1<<20); err != nil {
				t.Error(err)
			}
			done <- time.Since(start)
		}()
		time.Sleep(10 * time.Second) // ~10 MB at 1 MB/s
		if err := th.SetWriteMBps(20); err != nil {
			t.Fatal(err)
		}
		if got := th.WriteMBps(); got != 20 {
			t.Errorf("WriteMBps() = %g", got)
		}
		elapsed := <-done
		// 10 s for the first ~10 MB, then ~20 MB at 20 MB/s: about 11 s in
		// all; without the change it would take 30 s.
		if elapsed < 10*time.Second || elapsed > 11500*time.Millisecond {
			t.Errorf("write took %v, want about 11 s", elapsed)
		}

		// Switching to unlimited releases a waiter at once.
		if err := th.SetWriteMBps(0.001); err != nil {
			t.Fatal(err)
		}
		go func() {
			start := time.Now()
			if err := writeAll(th.Writer(context.Background(), io.Discard), 10*disk.BytesPerMB, 1<<20); err != nil {
				t.Error(err)
			}
			done <- time.Since(start)
		}()
		time.Sleep(time.Second)
		if err := th.SetWriteMBps(0); err != nil {
			t.Fatal(err)
		}
		if elapsed := <-done; elapsed != time.Second {
			t.Errorf("write after switching to unlimited took %v, want 1s", elapsed)
		}
	})
}

func TestConcurrentWritersShareTheRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th, err := disk.NewThrottler(disk.Options{WriteMBps: 10})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if err := writeAll(th.Writer(context.Background(), io.Discard), 25*disk.BytesPerMB, 256<<10); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if elapsed, want := time.Since(start), 10*time.Second; math.Abs(float64(elapsed-want)) > 0.02*float64(want) {
			t.Errorf("4 × 25 MB at 10 MB/s took %v, want 10s ± 2%%", elapsed)
		}
	})
}

func TestWaitsEndWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th, err := disk.NewThrottler(disk.Options{WriteMBps: 1, ReadMBps: 1, Burst: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		cause := errors.New("thermal trip")
		ctx, cancel := context.WithCancelCause(context.Background())
		go func() { time.Sleep(3 * time.Second); cancel(cause) }()
		rec := &chunkRecorder{}
		start := time.Now()
		n, err := th.Writer(ctx, rec).Write(make([]byte, 10*disk.BytesPerMB))
		if !errors.Is(err, cause) || time.Since(start) != 3*time.Second {
			t.Errorf("Write = %d, %v after %v; want the cause after 3s", n, err, time.Since(start))
		}
		if int64(n) != rec.total || n == 0 {
			t.Errorf("Write reported %d bytes, the writer got %d", n, rec.total)
		}
		// Reads and WaitWrite on a done ctx return at once.
		if _, err := th.Reader(ctx, zeroReader{}).Read(make([]byte, 10)); !errors.Is(err, cause) {
			t.Errorf("Read on a done ctx = %v", err)
		}
		if err := th.WaitWrite(ctx, 10*disk.BytesPerMB); !errors.Is(err, cause) {
			t.Errorf("WaitWrite on a done ctx = %v", err)
		}
		// A read interrupted mid-wait returns its bytes with the error.
		ctx2, cancel2 := context.WithCancel(context.Background())
		go func() { time.Sleep(500 * time.Millisecond); cancel2() }()
		r := th.Reader(ctx2, zeroReader{})
		var got int
		for {
			n, err := r.Read(make([]byte, 1<<20))
			got += n
			if err != nil {
				if !errors.Is(err, context.Canceled) || n == 0 {
					t.Errorf("Read = %d, %v; want bytes and context.Canceled", n, err)
				}
				break
			}
		}
	})
}

func TestDeadlineFailsFast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th, err := disk.NewThrottler(disk.Options{WriteMBps: 1, ReadMBps: 1})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rec := &chunkRecorder{}
		start := time.Now()
		n, err := th.Writer(ctx, rec).Write(make([]byte, 20*disk.BytesPerMB))
		var le *limit.Error
		if n != 0 || rec.total != 0 || !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &le) || time.Since(start) != 0 {
			t.Fatalf("Write = %d, %v after %v; want an immediate failure writing nothing", n, err, time.Since(start))
		}
		if le.Kind != limit.DiskIO || le.Subject != "write" || le.Unit != "s" || le.Limit != 5 || le.Current < 19 {
			t.Errorf("limit error = %#v", le)
		}
		if err := th.WaitRead(ctx, 20*disk.BytesPerMB); !errors.As(err, &le) || le.Subject != "read" {
			t.Errorf("WaitRead = %v", err)
		}
		// What fits passes.
		if err := th.WaitWrite(ctx, 3*disk.BytesPerMB); err != nil {
			t.Errorf("WaitWrite of 3 MB within 5 s at 1 MB/s = %v", err)
		}
	})
}

func TestWriterErrors(t *testing.T) {
	th, err := disk.NewThrottler(disk.Options{WriteMBps: 1000, Burst: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	rec := &chunkRecorder{failAt: 128 << 10}
	n, err := th.Writer(context.Background(), rec).Write(make([]byte, 1<<20))
	if n != 128<<10 || err == nil || err.Error() != "device full" {
		t.Errorf("Write = %d, %v; want 131072 bytes and the writer's error", n, err)
	}
}
