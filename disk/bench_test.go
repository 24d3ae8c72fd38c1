package disk_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cemaf-go/cemaf/disk"
)

// rewindingFile is a real file that the benchmarks rewind every 64 MiB so
// that long runs do not fill the disk.
type rewindingFile struct {
	f       *os.File
	written int64
}

func openBenchFile(b *testing.B) *rewindingFile {
	b.Helper()
	f, err := os.Create(filepath.Join(b.TempDir(), "bench"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return &rewindingFile{f: f}
}

func (r *rewindingFile) Write(p []byte) (int, error) {
	if r.written >= 64<<20 {
		if _, err := r.f.Seek(0, io.SeekStart); err != nil {
			return 0, err
		}
		r.written = 0
	}
	n, err := r.f.Write(p)
	r.written += int64(n)
	return n, err
}

// BenchmarkThrottledWrite writes to a real file through a limited Throttler
// and reports the achieved rate against the configured one (wall clock).
func BenchmarkThrottledWrite(b *testing.B) {
	for _, mbps := range []float64{20, 100} {
		b.Run(strconv.FormatFloat(mbps, 'f', -1, 64)+"MBps", func(b *testing.B) {
			th, err := disk.NewThrottler(disk.Options{WriteMBps: mbps})
			if err != nil {
				b.Fatal(err)
			}
			w := th.Writer(context.Background(), openBenchFile(b))
			buf := make([]byte, 256<<10)
			// Start from an empty bucket, so the figure is the sustained
			// rate rather than the initial burst.
			if err := th.WaitWrite(context.Background(), int64(mbps*disk.BytesPerMB/10)); err != nil { // the automatic burst: 100 ms of the rate
				b.Fatal(err)
			}
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			start := time.Now()
			var total int64
			for b.Loop() {
				n, err := w.Write(buf)
				if err != nil {
					b.Fatal(err)
				}
				total += int64(n)
			}
			achieved := float64(total) / disk.BytesPerMB / time.Since(start).Seconds()
			b.ReportMetric(achieved, "achieved-MB/s")
			b.ReportMetric(achieved/mbps, "achieved/configured")
		})
	}
}

// BenchmarkUnthrottledWrite compares a Writer with no limit ("wrapper")
// against writing to the same kind of file directly ("baseline").
func BenchmarkUnthrottledWrite(b *testing.B) {
	buf := make([]byte, 64<<10)
	th, err := disk.NewThrottler(disk.Options{})
	if err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, w io.Writer) {
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := w.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("wrapper", func(b *testing.B) { run(b, th.Writer(context.Background(), openBenchFile(b))) })
	b.Run("baseline", func(b *testing.B) { run(b, openBenchFile(b)) })
}
