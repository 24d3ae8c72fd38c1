package paging_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/paging"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/pierrec/lz4/v4"
	bolt "go.etcd.io/bbolt"
)

// Benchmarks compare each pager path with the raw library doing the same
// work, in the same run:
//
//	go test -run '^$' -bench . -benchmem -count 5 ./paging/
//
// Hit path: BenchmarkGetHit/pager vs /simplelru (golang-lru Get, no lock).
// Miss path: BenchmarkPageIn/pager vs /bbolt+lz4 (View + Get + frame decode).
// Write-back: BenchmarkWriteBack/pager vs /lz4-block (Compressor) and
// /lz4-frame (Writer), all on the same text corpus.
// Scan: BenchmarkScan/prefetch vs /no-prefetch over a 256 MiB value.
// BenchmarkPageSize sweeps the page size for the miss, write-back and scan
// paths and reports the Go heap in use beyond the budget.

const benchPageSize = int64(paging.DefaultPageSizeMB * paging.MiB)

func BenchmarkGetHit(b *testing.B) {
	const n = 1024
	vals := make([][]byte, n)
	keys := make([]string, n)
	for i := range vals {
		vals[i] = corpus(uint64(i), 1024)
		keys[i] = key(i)
	}
	b.Run("pager", func(b *testing.B) {
		p := open(b, paging.Options{MemoryLimitMB: 64})
		for i := range keys {
			if err := p.Put(keys[i], vals[i]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			if _, err := p.Get(keys[i&(n-1)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("simplelru", func(b *testing.B) {
		lru, _ := simplelru.NewLRU[string, []byte](2*n, nil)
		for i := range keys {
			lru.Add(keys[i], vals[i])
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			if _, ok := lru.Get(keys[i&(n-1)]); !ok {
				b.Fatal("miss")
			}
		}
	})
}

// pageInValues is how many single-page values the page-in benchmarks
// cycle through (at most 256 MiB of them).
func pageInValues(pageSize int64) int { return int(min(64, max(8, (256<<20)/pageSize))) }

// pageInBench measures page-ins of single-page values: values on disk, a
// budget of a quarter of them, read round robin so that every access
// misses. With readAt the value is copied into a reused buffer (the pager
// may then recycle evicted page buffers); otherwise Get returns a buffer
// the caller keeps.
func pageInBench(b *testing.B, pageSize int64, readAt bool) {
	n := pageInValues(pageSize)
	p := open(b, paging.Options{MemoryLimitMB: float64(int64(max(4, n/4))*pageSize) / paging.MiB, PageSizeMB: float64(pageSize) / paging.MiB, ReadAheadPages: -1})
	for i := range n {
		if err := p.Put(key(i), corpus(uint64(i), int(pageSize))); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.DropResident(); err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, pageSize)
	b.SetBytes(pageSize)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		var err error
		if readAt {
			_, err = p.ReadAt(key(i%n), dst, 0)
		} else {
			_, err = p.Get(key(i % n))
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if s := p.Stats(); s.Misses < uint64(b.N) {
		b.Fatalf("%d misses for %d reads", s.Misses, b.N)
	}
}

// rawPageInBench is the baseline: the same records in a bbolt file, read
// with View + Get and decoded with an lz4.Reader, into a new buffer per
// read (what Get must return; the last quarter of the buffers are kept, as
// the pager's budget keeps them, so that both run with the same live heap)
// or into a reused one (readAt).
func rawPageInBench(b *testing.B, pageSize int64, reuse bool) {
	n := pageInValues(pageSize)
	db, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	bucket := []byte("pages")
	err = db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucket(bucket)
		if err != nil {
			return err
		}
		for i := range n {
			rec, isLZ4, err := paging.EncodePage(corpus(uint64(i), int(pageSize)), true)
			if err != nil || !isLZ4 {
				return fmt.Errorf("encode: %v lz4=%v", err, isLZ4)
			}
			if err := bk.Put(binary.BigEndian.AppendUint64(nil, uint64(i)), rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var br bytes.Reader
	zr := lz4.NewReader(&br)
	var k [8]byte
	dst := make([]byte, pageSize)
	kept := make([][]byte, max(4, n/4))
	b.SetBytes(pageSize)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		binary.BigEndian.PutUint64(k[:], uint64(i%n))
		if !reuse {
			dst = make([]byte, pageSize)
			kept[i%len(kept)] = dst
		}
		err := db.View(func(tx *bolt.Tx) error {
			br.Reset(tx.Bucket(bucket).Get(k[:]))
			zr.Reset(&br)
			_, err := io.ReadFull(zr, dst)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPageIn(b *testing.B) {
	b.Run("get/pager", func(b *testing.B) { pageInBench(b, benchPageSize, false) })
	b.Run("get/bbolt+lz4", func(b *testing.B) { rawPageInBench(b, benchPageSize, false) })
	b.Run("readat/pager", func(b *testing.B) { pageInBench(b, benchPageSize, true) })
	b.Run("readat/bbolt+lz4", func(b *testing.B) { rawPageInBench(b, benchPageSize, true) })
}

// writeBackBench measures writing dirty pages back: each iteration Puts
// 16 MiB of corpus (untimed), then Evict pages it all out (timed): LZ4
// frames with checksums, committed to bbolt in cache mode.
func writeBackBench(b *testing.B, pageSize int64) {
	const total = 16 << 20
	n := max(1, total/pageSize)
	pages := make([][]byte, n)
	for i := range pages {
		pages[i] = corpus(uint64(i), int(pageSize))
	}
	p := open(b, paging.WithFaults(paging.Options{MemoryLimitMB: float64(max(4, 2*n)*pageSize) / paging.MiB,
		PageSizeMB: float64(pageSize) / paging.MiB}, nil, true))
	b.SetBytes(n * pageSize)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		for i := range pages {
			if err := p.Put(key(int(i)), pages[i]); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		if _, err := p.Evict(1 << 40); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	s := p.Stats()
	b.ReportMetric(s.CompressionRatio, "ratio")
}

func BenchmarkWriteBack(b *testing.B) {
	b.Run("pager", func(b *testing.B) { writeBackBench(b, benchPageSize) })
	const total = 16 << 20
	n := total / benchPageSize
	pages := make([][]byte, n)
	for i := range pages {
		pages[i] = corpus(uint64(i), int(benchPageSize))
	}
	b.Run("lz4-block", func(b *testing.B) {
		var c lz4.Compressor
		dst := make([]byte, lz4.CompressBlockBound(int(benchPageSize)))
		var in, out int64
		b.SetBytes(total)
		b.ResetTimer()
		for b.Loop() {
			for _, pg := range pages {
				m, err := c.CompressBlock(pg, dst)
				if err != nil {
					b.Fatal(err)
				}
				in += int64(len(pg))
				out += int64(m)
			}
		}
		b.ReportMetric(float64(in)/float64(out), "ratio")
	})
	b.Run("lz4-frame", func(b *testing.B) {
		var buf bytes.Buffer
		zw := lz4.NewWriter(&buf)
		b.SetBytes(total)
		b.ResetTimer()
		for b.Loop() {
			for _, pg := range pages {
				buf.Reset()
				zw.Reset(&buf)
				if _, err := zw.Write(pg); err != nil {
					b.Fatal(err)
				}
				if err := zw.Close(); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// scanBench reads a 256 MiB value sequentially through dag.NewValueReader
// with a 64 MiB budget, starting from nothing resident.
func scanBench(b *testing.B, pageSize int64, readAhead int, size int64) {
	p := open(b, paging.WithFaults(paging.Options{MemoryLimitMB: 64, PageSizeMB: float64(pageSize) / paging.MiB,
		ReadAheadPages: readAhead}, nil, true))
	w, err := p.Create("doc")
	if err != nil {
		b.Fatal(err)
	}
	chunk := corpus(7, 8<<20)
	for written := int64(0); written < size; written += int64(len(chunk)) {
		if _, err := w.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		if err := p.DropResident(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		r, err := dag.NewValueReader(p, "doc")
		if err != nil {
			b.Fatal(err)
		}
		var got int64
		for {
			n, err := r.Read(buf)
			got += int64(n)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		if got != size {
			b.Fatalf("read %d of %d bytes", got, size)
		}
	}
	b.StopTimer()
	s := p.Stats()
	b.ReportMetric(float64(s.PrefetchUsed)/float64(b.N), "prefetched/op")
}

func BenchmarkScan(b *testing.B) {
	if testing.Short() {
		b.Skip("writes 256 MiB")
	}
	b.Run("prefetch", func(b *testing.B) { scanBench(b, benchPageSize, 0, 256<<20) })
	b.Run("no-prefetch", func(b *testing.B) { scanBench(b, benchPageSize, -1, 256<<20) })
}

// BenchmarkPageSize sweeps the page size: page-in and write-back MB/s, a
// 64 MiB sequential scan with read-ahead, and (heap) the peak Go heap
// beyond the budget while writing ten times a 32 MiB budget, in MiB.
func BenchmarkPageSize(b *testing.B) {
	if testing.Short() {
		b.Skip("sweep")
	}
	for _, ps := range []int64{64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20} {
		name := fmt.Sprintf("%dKiB", ps>>10)
		b.Run(name+"/pagein", func(b *testing.B) { pageInBench(b, ps, true) })
		b.Run(name+"/writeback", func(b *testing.B) { writeBackBench(b, ps) })
		if ps <= 4<<20 {
			b.Run(name+"/scan", func(b *testing.B) { scanBench(b, ps, 0, 64<<20) })
		}
		b.Run(name+"/heap", func(b *testing.B) {
			var over int64
			for b.Loop() {
				o, _ := heapRun(b, paging.Options{MemoryLimitMB: max(32, 4*float64(ps)/paging.MiB), PageSizeMB: float64(ps) / paging.MiB}, false)
				over = max(over, o)
			}
			b.ReportMetric(mib(over), "overhead-MiB")
		})
	}
}

// BenchmarkMemory runs the workload of TestMemoryBound (32 MiB budget,
// 10 × the budget written in 64 KiB text-like values and read back in
// random order) through the pager, reading with AppendValue and with Get,
// and on bbolt + LZ4 directly, reporting the peak live heap, the peak heap
// in use (runtime/metrics, sampled) and the bytes allocated per byte moved.
func BenchmarkMemory(b *testing.B) {
	if testing.Short() {
		b.Skip("moves 640 MiB per iteration")
	}
	w := newHeapWorkload(32<<20, 64<<10)
	report := func(b *testing.B, run func() heapPeaks) {
		var worst heapPeaks
		var allocated uint64
		n := 0
		for b.Loop() {
			pk := run()
			worst.live = max(worst.live, pk.live)
			worst.inUse = max(worst.inUse, pk.inUse)
			allocated += pk.allocated
			n++
		}
		b.SetBytes(w.moved())
		b.ReportMetric(mib(int64(worst.live)), "peak-live-MiB")
		b.ReportMetric(mib(int64(worst.inUse)), "peak-inuse-MiB")
		b.ReportMetric(float64(allocated)/float64(int64(n)*w.moved()), "alloc-B/B")
	}
	b.Run("pager/append", func(b *testing.B) {
		report(b, func() heapPeaks { return w.runPager(b, paging.Options{}, readAppendValue) })
	})
	b.Run("pager/get", func(b *testing.B) { report(b, func() heapPeaks { return w.runPager(b, paging.Options{}, readGet) }) })
	b.Run("bbolt+lz4", func(b *testing.B) { report(b, func() heapPeaks { return w.runBaseline(b) }) })
}
