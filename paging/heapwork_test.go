package paging_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/cemaf-go/cemaf/paging"
	"github.com/pierrec/lz4/v4"
	bolt "go.etcd.io/bbolt"
)

// heapPeaks samples the Go heap with runtime/metrics: the live heap (as
// of the latest collection) and the heap in use by objects (live and not
// yet collected), both at their peak, and the bytes allocated since start.
type heapPeaks struct {
	live, inUse   uint64
	allocStart    uint64
	allocated     uint64
	gcCycles      uint64
	gcCyclesStart uint64
}

var heapMetrics = []string{
	"/gc/heap/live:bytes",
	"/memory/classes/heap/objects:bytes",
	"/gc/heap/allocs:bytes",
	"/gc/cycles/total:gc-cycles",
}

// heapSampler owns a goroutine that samples the heap every millisecond
// until stop; sample can also be called from the workload itself after
// each operation (the background goroutine catches what happens inside
// one).
type heapSampler struct {
	mu    sync.Mutex
	peaks heapPeaks
	stopc chan struct{}
	wg    sync.WaitGroup
}

func startHeapSampler() *heapSampler {
	s := &heapSampler{stopc: make(chan struct{})}
	samples := make([]metrics.Sample, len(heapMetrics))
	for i, n := range heapMetrics {
		samples[i].Name = n
	}
	metrics.Read(samples)
	s.peaks.allocStart = samples[2].Value.Uint64()
	s.peaks.gcCyclesStart = samples[3].Value.Uint64()
	s.sample()
	s.wg.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stopc:
				return
			case <-t.C:
				s.sample()
			}
		}
	})
	return s
}

func (s *heapSampler) sample() {
	samples := make([]metrics.Sample, len(heapMetrics))
	for i, n := range heapMetrics {
		samples[i].Name = n
	}
	metrics.Read(samples)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peaks.live = max(s.peaks.live, samples[0].Value.Uint64())
	s.peaks.inUse = max(s.peaks.inUse, samples[1].Value.Uint64())
	s.peaks.allocated = samples[2].Value.Uint64() - s.peaks.allocStart
	s.peaks.gcCycles = samples[3].Value.Uint64() - s.peaks.gcCyclesStart
}

// stop ends the sampling goroutine, waits for it and returns the peaks.
func (s *heapSampler) stop() heapPeaks {
	close(s.stopc)
	s.wg.Wait()
	s.sample()
	return s.peaks
}

// heapWorkload is the memory workload of the package documentation:
// write 10 × the budget of text-like values of valueSize bytes under
// distinct keys, then read every one back once in random order.
type heapWorkload struct {
	budget    int64
	valueSize int
	src       []byte
}

func newHeapWorkload(budget int64, valueSize int) *heapWorkload {
	return &heapWorkload{budget: budget, valueSize: valueSize, src: corpus(42, 256<<10)}
}

func (w *heapWorkload) values() int { return int(10 * w.budget / int64(w.valueSize)) }

// value fills buf with value i: a window of the corpus.
func (w *heapWorkload) value(i int, buf []byte) {
	off := (i * 7919) % (len(w.src) - len(buf))
	copy(buf, w.src[off:])
	binary.LittleEndian.PutUint64(buf, uint64(i))
}

func (w *heapWorkload) order() []int {
	r := rand.New(rand.NewPCG(7, 11))
	return r.Perm(w.values())
}

// moved is the bytes written plus the bytes read by the workload.
func (w *heapWorkload) moved() int64 { return 2 * int64(w.values()) * int64(w.valueSize) }

// readMode is how the pager workload reads values back.
type readMode int

const (
	readGet         readMode = iota // Get: the pager returns its buffer (fresh on a miss)
	readAppendValue                 // AppendValue into one reused buffer
)

func (m readMode) String() string { return [...]string{"get", "append"}[m] }

// runPager runs the workload through a pager with the given options.
func (w *heapWorkload) runPager(tb testing.TB, opts paging.Options, mode readMode) heapPeaks {
	tb.Helper()
	runtime.GC()
	runtime.GC()
	opts.MemoryLimitMB = float64(w.budget) / paging.MiB
	if opts.StoragePath == "" {
		opts.StoragePath = tb.TempDir()
	}
	s := startHeapSampler()
	p, err := paging.Wrap(nil, opts)
	if err != nil {
		tb.Fatal(err)
	}
	buf := make([]byte, w.valueSize)
	for i := range w.values() {
		w.value(i, buf)
		if err := p.Put(key(i), buf); err != nil {
			tb.Fatal(err)
		}
		s.sample()
	}
	var dst []byte
	for _, i := range w.order() {
		var got []byte
		switch mode {
		case readGet:
			got, err = p.Get(key(i))
		case readAppendValue:
			dst, err = p.AppendValue(dst[:0], key(i))
			got = dst
		}
		if err != nil {
			tb.Fatal(err)
		}
		if len(got) != w.valueSize || binary.LittleEndian.Uint64(got) != uint64(i) {
			tb.Fatalf("value %d: read back %d bytes, wrong content", i, len(got))
		}
		s.sample()
	}
	peaks := s.stop()
	if err := p.Close(); err != nil {
		tb.Fatal(err)
	}
	return peaks
}

// runBaseline runs the workload on bbolt and LZ4 directly, as a program
// without a pager would: each value compressed as an LZ4 frame, committed
// in transactions of about 4 MiB (the pager's write-back batch), read
// back and decoded into one reused buffer.
func (w *heapWorkload) runBaseline(tb testing.TB) heapPeaks {
	tb.Helper()
	runtime.GC()
	runtime.GC()
	s := startHeapSampler()
	db, err := bolt.Open(filepath.Join(tb.TempDir(), "raw.db"), 0o600, &bolt.Options{NoSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	bucket := []byte("values")
	buf := make([]byte, w.valueSize)
	zw := lz4.NewWriter(nil)
	var frame appendBuf
	perTx := max(1, (4<<20)/w.valueSize)
	for i := 0; i < w.values(); i += perTx {
		err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucket)
			if err != nil {
				return err
			}
			for j := i; j < min(w.values(), i+perTx); j++ {
				w.value(j, buf)
				frame.b = nil // bbolt keeps the value until the commit
				zw.Reset(&frame)
				if _, err := zw.Write(buf); err != nil {
					return err
				}
				if err := zw.Close(); err != nil {
					return err
				}
				if err := b.Put([]byte(key(j)), frame.b); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
		s.sample()
	}
	zr := lz4.NewReader(nil)
	var br bytesReader
	for _, i := range w.order() {
		err := db.View(func(tx *bolt.Tx) error {
			br.b = tx.Bucket(bucket).Get([]byte(key(i)))
			zr.Reset(&br)
			_, err := io.ReadFull(zr, buf)
			return err
		})
		if err != nil {
			tb.Fatal(err)
		}
		if binary.LittleEndian.Uint64(buf) != uint64(i) {
			tb.Fatalf("baseline value %d: wrong content", i)
		}
		s.sample()
	}
	return s.stop()
}

type appendBuf struct{ b []byte }

func (a *appendBuf) Write(p []byte) (int, error) { a.b = append(a.b, p...); return len(p), nil }

type bytesReader struct{ b []byte }

func (r *bytesReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func (p heapPeaks) String() string {
	return fmt.Sprintf("peak live heap %.1f MiB, peak heap in use %.1f MiB, %.1f MiB allocated, %d GC cycles",
		mib(int64(p.live)), mib(int64(p.inUse)), mib(int64(p.allocated)), p.gcCycles)
}

func lookupGoMemLimit() (string, bool) { return os.LookupEnv("GOMEMLIMIT") }
