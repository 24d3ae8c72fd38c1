package paging_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/limit"
	"github.com/cemaf-go/cemaf/paging"
	bolt "go.etcd.io/bbolt"
)

const kib = 1 << 10

// small returns options for a small budget with small pages so that tests
// exercise paging with little data: pages of 4 KiB, a budget of 64 KiB.
func small(dir string) paging.Options {
	return paging.Options{MemoryLimitMB: 64.0 / 1024, PageSizeMB: 4.0 / 1024, StoragePath: dir}
}

func mustGet(t testing.TB, p *paging.Pager, k string, want []byte) {
	t.Helper()
	got, err := p.Get(k)
	if err != nil {
		t.Fatalf("Get(%q): %v", k, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %d bytes, want %d (first difference at %d)", k, len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestOptionsValidation(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		opts  paging.Options
		field string // "" means valid
	}{
		{"zero value", paging.Options{}, ""},
		{"negative limit", paging.Options{MemoryLimitMB: -1}, "MemoryLimitMB"},
		{"limit below four pages", paging.Options{MemoryLimitMB: 1, PageSizeMB: 1}, "MemoryLimitMB"},
		{"page too small", paging.Options{PageSizeMB: 1.0 / 1024}, "PageSizeMB"},
		{"page too large", paging.Options{PageSizeMB: 128}, "PageSizeMB"},
		{"NaN page", paging.Options{PageSizeMB: nanf()}, "PageSizeMB"},
		{"compression", paging.Options{Compression: "zstd"}, "Compression"},
		{"compression none", paging.Options{Compression: paging.CompressionNone}, ""},
		{"mode", paging.Options{Mode: 7}, "Mode"},
		{"durable without path", paging.Options{Mode: paging.ModeDurable}, "StoragePath"},
		{"durable with path", paging.Options{Mode: paging.ModeDurable, StoragePath: filepath.Join(dir, "d")}, ""},
		{"tiny file cap", paging.Options{MaxFileBytes: 1000}, "MaxFileBytes"},
		{"watermark zero-ish", paging.Options{LowWatermarkPercent: -5}, "LowWatermarkPercent"},
		{"watermark above 100", paging.Options{LowWatermarkPercent: 101}, "LowWatermarkPercent"},
		{"watermark 100", paging.Options{LowWatermarkPercent: 100}, ""},
		{"huge pin key", paging.Options{PinKeys: []string{strings.Repeat("k", 40000)}}, "PinKeys"},
		{"file cap above 1 GiB", paging.Options{MaxFileBytes: 2 << 30}, map[bool]string{true: "MaxFileBytes", false: ""}[math.MaxInt == math.MaxInt32]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := paging.Wrap(nil, tt.opts)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Wrap: %v", err)
				}
				if err := p.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				return
			}
			if err == nil {
				p.Close()
				t.Fatal("Wrap accepted invalid options")
			}
			if !strings.Contains(err.Error(), "Options."+tt.field) {
				t.Fatalf("error %q does not name Options.%s", err, tt.field)
			}
		})
	}
}

func nanf() float64 { z := 0.0; return z / z }

// TestStateModel runs random operations against the pager and against
// dag.MemoryState and compares every observable result, through paging,
// write-back, read-back and reopening.
func TestStateModel(t *testing.T) {
	for _, mode := range []paging.Mode{paging.ModeCache, paging.ModeDurable} {
		t.Run(mode.String(), func(t *testing.T) {
			leakCheck(t)
			dir := t.TempDir()
			opts := small(dir)
			opts.Mode = mode
			model := dag.NewMemoryState()
			p := open(t, opts)
			r := rand.New(rand.NewPCG(1, uint64(mode)))
			sizes := []int{0, 1, 100, 4 * kib, 4*kib + 1, 30 * kib, 90 * kib}
			steps := 1500
			if testing.Short() {
				steps = 400
			}
			for step := range steps {
				k := key(r.IntN(40))
				switch op := r.IntN(20); {
				case op < 8:
					v := corpus(uint64(step), sizes[r.IntN(len(sizes))])
					if err := p.Put(k, v); err != nil {
						t.Fatalf("step %d: Put: %v", step, err)
					}
					model.Put(k, v)
				case op < 15:
					want, werr := model.Get(k)
					got, err := p.Get(k)
					if int64(len(want)) > p.MemoryLimit() {
						// Larger than the budget: Get refuses, a reader streams it.
						if !errors.Is(err, limit.ErrExceeded) {
							t.Fatalf("step %d: Get of a value larger than the budget = %v", step, err)
						}
						got = make([]byte, len(want))
						if _, err = p.ReadAt(k, got, 0); err != nil {
							t.Fatalf("step %d: ReadAt(%q): %v", step, k, err)
						}
					}
					if (werr == nil) != (err == nil) || !bytes.Equal(got, want) {
						t.Fatalf("step %d: Get(%q) = %d bytes, %v; want %d bytes, %v", step, k, len(got), err, len(want), werr)
					}
					if err != nil && !errors.Is(err, dag.ErrNotFound) {
						t.Fatalf("step %d: Get(%q) error %v does not wrap dag.ErrNotFound", step, k, err)
					}
				case op < 17:
					if err := p.Delete(k); err != nil {
						t.Fatalf("step %d: Delete: %v", step, err)
					}
					model.Delete(k)
				case op == 17:
					off := int64(r.IntN(100 * kib))
					buf := make([]byte, r.IntN(20*kib))
					want, werr := model.Get(k)
					n, err := p.ReadAt(k, buf, off)
					switch {
					case werr != nil:
						if !errors.Is(err, dag.ErrNotFound) {
							t.Fatalf("step %d: ReadAt missing key: %v", step, err)
						}
					default:
						wantN := max(0, min(len(buf), len(want)-int(off)))
						if n != wantN || !bytes.Equal(buf[:n], want[min(int(off), len(want)):][:n]) {
							t.Fatalf("step %d: ReadAt(%q, %d, %d) = %d, %v; want %d bytes", step, k, len(buf), off, n, err, wantN)
						}
						if n < len(buf) && err != io.EOF {
							t.Fatalf("step %d: short ReadAt without io.EOF: %v", step, err)
						}
					}
				case op == 18:
					if err := p.CheckInvariants(); err != nil {
						t.Fatalf("step %d: %v", step, err)
					}
					if mode == paging.ModeDurable {
						if err := p.Checkpoint(); err != nil {
							t.Fatalf("step %d: Checkpoint: %v", step, err)
						}
					}
				default:
					// Reopen: everything must survive a clean Close.
					if err := p.Close(); err != nil {
						t.Fatalf("step %d: Close: %v", step, err)
					}
					p = open(t, opts)
				}
				if got, want := p.Size(), model.Size(); got != want {
					t.Fatalf("step %d: Size = %d, want %d", step, got, want)
				}
				if n, ok := p.SizeOf(k); func() bool { m, mok := model.SizeOf(k); return n != m || ok != mok }() {
					t.Fatalf("step %d: SizeOf(%q) = %d, %v", step, k, n, ok)
				}
				if res, lim := p.ResidentBytes(), p.MemoryLimit(); res > lim {
					t.Fatalf("step %d: resident %d > limit %d", step, res, lim)
				}
			}
			if got, want := strings.Join(p.Keys(), ","), strings.Join(model.Keys(), ","); got != want {
				t.Fatalf("Keys = %s, want %s", got, want)
			}
			s := p.Stats()
			if s.PageOuts == 0 || s.PageIns == 0 || s.Evictions == 0 {
				t.Fatalf("the test did not page: %+v", s)
			}
		})
	}
}

func TestGetSharesPutCopies(t *testing.T) {
	p := open(t, small(""))
	v := []byte("hello")
	if err := p.Put("k", v); err != nil {
		t.Fatal(err)
	}
	v[0] = 'j'
	a, _ := p.Get("k")
	b, _ := p.Get("k")
	if string(a) != "hello" {
		t.Fatalf("Put did not copy: %q", a)
	}
	if &a[0] != &b[0] {
		t.Fatal("Get copied a one-page value")
	}
	if err := p.Put("empty", nil); err != nil {
		t.Fatal(err)
	}
	if e, err := p.Get("empty"); err != nil || e == nil || len(e) != 0 {
		t.Fatalf("Get(empty) = %v, %v; want a non-nil empty slice", e, err)
	}
	if _, err := p.Get("missing"); !errors.Is(err, dag.ErrNotFound) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Get(missing) = %v", err)
	}
}

func TestWrapAdoptsState(t *testing.T) {
	dir := t.TempDir()
	// The file already holds "shared" and "old".
	p := open(t, small(dir))
	if err := p.Put("shared", []byte("from the file")); err != nil {
		t.Fatal(err)
	}
	if err := p.Put("old", []byte("old value")); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	inner := dag.NewMemoryState()
	want := map[string][]byte{"old": []byte("old value")}
	for i := range 30 {
		v := corpus(uint64(i), i*2*kib)
		inner.Put(key(i), v)
		want[key(i)] = v
	}
	inner.Put("shared", []byte("from the state"))
	want["shared"] = []byte("from the state")

	p, err := paging.Wrap(inner, small(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if n := len(inner.Keys()); n != 0 || inner.Size() != 0 {
		t.Fatalf("wrapped state still holds %d keys", n)
	}
	for k, v := range want {
		mustGet(t, p, k, v)
	}
	if got := len(p.Keys()); got != len(want) {
		t.Fatalf("%d keys, want %d", got, len(want))
	}
	if p.ResidentBytes() > p.MemoryLimit() {
		t.Fatal("adoption exceeded the budget")
	}
}

func TestWrapFailureRestoresState(t *testing.T) {
	inner := dag.NewMemoryState()
	want := map[string][]byte{}
	for i := range 10 {
		v := corpus(uint64(i), 5*kib)
		inner.Put(key(i), v)
		want[key(i)] = v
	}
	// A pinned value larger than half the budget makes Wrap fail.
	big := corpus(99, 40*kib)
	inner.Put("pinned", big)
	want["pinned"] = big
	opts := small(t.TempDir())
	opts.PinKeys = []string{"pinned"}
	_, err := paging.Wrap(inner, opts)
	var le *limit.Error
	if !errors.As(err, &le) || le.Kind != limit.Memory || !errors.Is(err, limit.ErrExceeded) {
		t.Fatalf("Wrap = %v, want a memory *limit.Error", err)
	}
	for k, v := range want {
		got, err := inner.Get(k)
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("state lost %q after a failed Wrap: %v", k, err)
		}
	}
}

// TestBudgetHeldAfterEveryPut writes ten times the budget from several
// goroutines and checks after every Put that the accounted resident bytes
// are within the limit.
func TestBudgetHeldAfterEveryPut(t *testing.T) {
	leakCheck(t)
	p := open(t, small(""))
	lim := p.MemoryLimit()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 2))
			var written int64
			for i := 0; written < 10*lim/4; i++ {
				v := corpus(uint64(i), r.IntN(20*kib))
				if err := p.Put(fmt.Sprintf("g%d-%d", g, i%50), v); err != nil {
					errs <- err
					return
				}
				written += int64(len(v))
				if res := p.ResidentBytes(); res > lim {
					errs <- fmt.Errorf("resident %d > limit %d after Put", res, lim)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestPins(t *testing.T) {
	opts := small("")
	opts.PinKeys = []string{"prompt", "prefs"}
	p := open(t, opts)
	prompt := corpus(1, 10*kib)
	if err := p.Put("prompt", prompt); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := p.Put(key(i), corpus(uint64(i), 8*kib)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Evict(1 << 30); err != nil {
		t.Fatal(err)
	}
	before := p.Stats()
	mustGet(t, p, "prompt", prompt)
	if after := p.Stats(); after.Misses != before.Misses || after.PinnedBytes != int64(len(prompt)) {
		t.Fatalf("pinned value was paged out: misses %d -> %d, pinned %d", before.Misses, after.Misses, after.PinnedBytes)
	}
	// Pins may take at most half of the 64 KiB budget.
	err := p.Put("prefs", corpus(2, 23*kib))
	var le *limit.Error
	if !errors.As(err, &le) || le.Kind != limit.Memory || le.Limit != 32*kib {
		t.Fatalf("pinning past half the budget: %v", err)
	}
	if _, ok := p.SizeOf("prefs"); ok {
		t.Fatal("refused pinned value was stored")
	}
	// Replacing a pinned value counts the new size, not both.
	if err := p.Put("prompt", corpus(3, 30*kib)); err != nil {
		t.Fatalf("replacing a pinned value: %v", err)
	}
	if err := p.SetMemoryLimit(32 * kib); err == nil {
		t.Fatal("SetMemoryLimit below twice the pinned bytes was accepted")
	}
}

func TestEvictAndSetMemoryLimit(t *testing.T) {
	p := open(t, small(""))
	for i := range 12 {
		if err := p.Put(key(i), corpus(uint64(i), 5*kib)); err != nil {
			t.Fatal(err)
		}
	}
	res := p.ResidentBytes()
	freed, err := p.Evict(20 * kib)
	if err != nil || freed < 20*kib || p.ResidentBytes() != res-freed {
		t.Fatalf("Evict(20 KiB) = %d, %v; resident %d -> %d", freed, err, res, p.ResidentBytes())
	}
	if err := p.SetMemoryLimit(16 * kib); err != nil {
		t.Fatal(err)
	}
	if p.MemoryLimit() != 16*kib || p.ResidentBytes() > 16*kib {
		t.Fatalf("limit %d, resident %d", p.MemoryLimit(), p.ResidentBytes())
	}
	err = p.SetMemoryLimit(8 * kib)
	var le *limit.Error
	if !errors.As(err, &le) || le.Kind != limit.Memory {
		t.Fatalf("SetMemoryLimit below four pages: %v", err)
	}
	for i := range 12 {
		mustGet(t, p, key(i), corpus(uint64(i), 5*kib))
	}
	if n, err := p.Evict(0); n != 0 || err != nil {
		t.Fatalf("Evict(0) = %d, %v", n, err)
	}
}

func TestLRUOrder(t *testing.T) {
	// A budget of 4 pages of 4 KiB and a low watermark of 100 %: each new
	// page evicts exactly the least recently used one.
	opts := small("")
	opts.MemoryLimitMB = 16.0 / 1024
	opts.LowWatermarkPercent = 100
	p := open(t, paging.WithFaults(opts, nil, true))
	page := func(c byte) []byte { return bytes.Repeat([]byte{c}, 4*kib) }
	for _, k := range []string{"a", "b", "c", "d"} {
		if err := p.Put(k, page(k[0])); err != nil {
			t.Fatal(err)
		}
	}
	mustGet(t, p, "a", page('a')) // order, oldest first: b c d a
	if err := p.Put("e", page('e')); err != nil {
		t.Fatal(err) // evicts b
	}
	hits := func(k string) bool {
		before := p.Stats().Misses
		mustGet(t, p, k, page(k[0]))
		return p.Stats().Misses == before
	}
	for _, k := range []string{"a", "c", "d", "e"} {
		if !hits(k) {
			t.Fatalf("%q was evicted, want b", k)
		}
	}
	if hits("b") {
		t.Fatal("b is still resident")
	}
}

func TestCorruptPageNamesKey(t *testing.T) {
	tests := []struct {
		name        string
		compression string
		data        []byte
		offset      int
	}{
		{"lz4 frame header", paging.CompressionLZ4, corpus(1, 4*kib), 5},
		{"lz4 block data", paging.CompressionLZ4, corpus(1, 4*kib), 300},
		{"lz4 content checksum", paging.CompressionLZ4, corpus(1, 4*kib), -1},
		{"raw data", paging.CompressionNone, corpus(1, 4*kib), 100},
		{"raw checksum", paging.CompressionNone, corpus(1, 4*kib), 5},
		{"magic", paging.CompressionNone, corpus(1, 4*kib), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := small("")
			opts.Compression = tt.compression
			p := open(t, opts)
			if err := p.Put("doc/1", tt.data); err != nil {
				t.Fatal(err)
			}
			if err := p.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			if err := p.DropResident(); err != nil {
				t.Fatal(err)
			}
			rec, err := p.StoredPage("doc/1", 0)
			if err != nil {
				t.Fatal(err)
			}
			off := tt.offset
			if off < 0 {
				off += len(rec)
			}
			if err := p.CorruptStoredPage("doc/1", 0, off); err != nil {
				t.Fatal(err)
			}
			got, err := p.Get("doc/1")
			if !errors.Is(err, paging.ErrCorrupt) || !strings.Contains(err.Error(), `"doc/1"`) || got != nil {
				t.Fatalf("Get of a corrupt page = %d bytes, %v; want ErrCorrupt naming the key", len(got), err)
			}
			buf := make([]byte, 10)
			if n, err := p.ReadAt("doc/1", buf, 0); !errors.Is(err, paging.ErrCorrupt) || n != 0 {
				t.Fatalf("ReadAt of a corrupt page = %d, %v", n, err)
			}
			// The rest of the pager keeps working.
			if err := p.Put("other", []byte("fine")); err != nil {
				t.Fatal(err)
			}
			mustGet(t, p, "other", []byte("fine"))
		})
	}
}

func TestForeignFileUntouched(t *testing.T) {
	bboltFile := func(t *testing.T, path string) {
		// A bbolt database of some other program.
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		db.Update(func(tx *bolt.Tx) error {
			b, _ := tx.CreateBucket([]byte("meta"))
			return b.Put([]byte("format"), []byte("someone-else/1"))
		})
		db.Close()
	}
	tests := []struct {
		name  string
		write func(t *testing.T, path string)
		want  error
	}{
		{"random bytes", func(t *testing.T, path string) { os.WriteFile(path, randomBytes(1, 64*kib), 0o600) }, paging.ErrForeignFile},
		{"text", func(t *testing.T, path string) { os.WriteFile(path, []byte("my notes\n"), 0o600) }, paging.ErrForeignFile},
		{"empty", func(t *testing.T, path string) { os.WriteFile(path, nil, 0o600) }, paging.ErrForeignFile},
		{"other bbolt", bboltFile, paging.ErrForeignFile},
		{"directory", func(t *testing.T, path string) { os.Mkdir(path, 0o700) }, paging.ErrForeignFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "pages.db")
			tt.write(t, path)
			before, _ := os.ReadFile(path)
			p, err := paging.Wrap(nil, paging.Options{StoragePath: dir})
			if err == nil {
				p.Close()
				t.Fatal("Wrap accepted a foreign file")
			}
			if !errors.Is(err, tt.want) && !errors.Is(err, paging.ErrCorrupt) {
				t.Fatalf("Wrap = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name the path", err)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(before, after) {
				t.Fatal("the foreign file was modified")
			}
		})
	}
}

func TestFileLockedByAnotherPager(t *testing.T) {
	dir := t.TempDir()
	p := open(t, small(dir))
	_ = p
	_, err := paging.Wrap(nil, small(dir))
	if !errors.Is(err, paging.ErrLocked) {
		t.Fatalf("second Wrap = %v, want ErrLocked", err)
	}
}

// TestFileCap fills a capped page file with incompressible pages: the write
// that does not fit fails with a file-size limit error, every value stays
// readable and the pager keeps working. It runs on 32-bit ARM too.
func TestFileCap(t *testing.T) {
	opts := small("")
	opts.MaxFileBytes = 512 * kib
	p := open(t, paging.WithFaults(opts, nil, true))
	var stored []string
	var err error
	for i := 0; i < 1000; i++ {
		if err = p.Put(key(i), randomBytes(uint64(i), 8*kib)); err != nil {
			break
		}
		stored = append(stored, key(i))
	}
	var le *limit.Error
	if !errors.As(err, &le) || le.Kind != limit.FileSize || le.Limit != 512*kib {
		t.Fatalf("filling the file: %v, want a file-size *limit.Error", err)
	}
	if len(stored) < 30 {
		t.Fatalf("only %d values fit in 512 KiB", len(stored))
	}
	for i, k := range stored {
		mustGet(t, p, k, randomBytes(uint64(i), 8*kib))
	}
	if s := p.Stats(); s.FileBytes > 512*kib || s.WriteErrors == 0 {
		t.Fatalf("file %d bytes, %d write errors", s.FileBytes, s.WriteErrors)
	}
	// Freeing space lets writes through again.
	for _, k := range stored[:len(stored)/2] {
		p.Delete(k)
	}
	if err := p.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if err := p.Put("after", randomBytes(5, 8*kib)); err != nil {
		t.Fatalf("Put after deleting: %v", err)
	}
}

// TestWriteFailureKeepsValues simulates a failing disk: write-backs fail,
// the Put that needs one fails with the error, and nothing held in RAM is
// lost; reads keep working; once the disk recovers, writes go through.
func TestWriteFailureKeepsValues(t *testing.T) {
	tests := []struct {
		name     string
		fault    error
		wantKind limit.Kind // "" means no limit error
	}{
		{"I/O error", errors.New("input/output error (injected)"), ""},
		{"disk full", fmt.Errorf("write pages.db (injected): %w", syscall.ENOSPC), limit.Disk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var fail error
			inject := func() error { mu.Lock(); defer mu.Unlock(); return fail }
			set := func(err error) { mu.Lock(); fail = err; mu.Unlock() }
			p := open(t, paging.WithFaults(small(""), inject, true))
			for i := range 10 {
				if err := p.Put(key(i), corpus(uint64(i), 4*kib)); err != nil {
					t.Fatal(err)
				}
			}
			set(tt.fault)
			var err error
			i := 10
			for ; i < 100 && err == nil; i++ {
				err = p.Put(key(i), corpus(uint64(i), 4*kib))
			}
			if !errors.Is(err, tt.fault) {
				t.Fatalf("Put with a failing disk = %v", err)
			}
			var le *limit.Error
			if got := errors.As(err, &le); got != (tt.wantKind != "") || (got && le.Kind != tt.wantKind) {
				t.Fatalf("Put error %v: limit error %v, want kind %q", err, got, tt.wantKind)
			}
			failed := key(i - 1)
			if _, ok := p.SizeOf(failed); ok {
				t.Fatal("the failed Put stored its value")
			}
			for j := 0; j < i-1; j++ {
				mustGet(t, p, key(j), corpus(uint64(j), 4*kib))
			}
			if err := p.Checkpoint(); !errors.Is(err, tt.fault) {
				t.Fatalf("Checkpoint with a failing disk = %v", err)
			}
			if s := p.Stats(); s.WriteErrors == 0 || !strings.Contains(s.LastError, "injected") {
				t.Fatalf("stats do not report the failure: %+v", s)
			}
			set(nil)
			if err := p.Put(failed, corpus(uint64(i-1), 4*kib)); err != nil {
				t.Fatalf("Put after the disk recovered: %v", err)
			}
			if err := p.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			for j := 0; j < i; j++ {
				mustGet(t, p, key(j), corpus(uint64(j), 4*kib))
			}
		})
	}
}

func TestReadAtAndValueReader(t *testing.T) {
	leakCheck(t)
	p := open(t, small(""))
	v := corpus(9, 300*kib) // 75 pages, 4.7 times the budget
	if err := p.Put("doc", v); err != nil {
		t.Fatal(err)
	}
	if err := p.DropResident(); err != nil {
		t.Fatal(err)
	}
	// Two consecutive pages start read-ahead of the next ones: once it has
	// run they are hits.
	page := make([]byte, 4*kib)
	for i := range int64(2) {
		if _, err := p.ReadAt("doc", page, i*4*kib); err != nil {
			t.Fatal(err)
		}
	}
	p.WaitReadAhead()
	before := p.Stats()
	if before.PrefetchIssued < 2 {
		t.Fatalf("read-ahead issued %d page-ins", before.PrefetchIssued)
	}
	if _, err := p.ReadAt("doc", page, 2*4*kib); err != nil {
		t.Fatal(err)
	}
	if after := p.Stats(); after.Misses != before.Misses || after.PrefetchUsed != before.PrefetchUsed+1 {
		t.Fatalf("page 2 was not read ahead: misses %d -> %d, used %d -> %d", before.Misses, after.Misses, before.PrefetchUsed, after.PrefetchUsed)
	}
	r, err := dag.NewValueReader(p, "doc")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, v) {
		t.Fatalf("streamed %d bytes, %v", len(got), err)
	}
	p.WaitReadAhead()
	if s := p.Stats(); s.PrefetchUsed+s.PrefetchWasted > s.PrefetchIssued || s.BytesInMemory > s.MemoryLimitBytes {
		t.Fatalf("read-ahead accounting: %+v", s)
	}
	tests := []struct {
		name    string
		off, n  int
		wantN   int
		wantEOF bool
	}{
		{"inside a page", 10, 100, 100, false},
		{"across pages", 4*kib - 10, 30, 30, false},
		{"many pages", 1000, 100 * kib, 100 * kib, false},
		{"to the end", len(v) - 50, 50, 50, false},
		{"past the end", len(v) - 50, 100, 50, true},
		{"at the end", len(v), 10, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := make([]byte, tt.n)
			n, err := p.ReadAt("doc", buf, int64(tt.off))
			if n != tt.wantN || (err == io.EOF) != tt.wantEOF || (err != nil && err != io.EOF) {
				t.Fatalf("ReadAt = %d, %v", n, err)
			}
			if !bytes.Equal(buf[:n], v[tt.off:tt.off+n]) {
				t.Fatal("wrong bytes")
			}
		})
	}
	if _, err := p.ReadAt("doc", make([]byte, 1), -1); err == nil {
		t.Fatal("negative offset accepted")
	}
	// Get of a value larger than the budget is refused with a limit error.
	if _, err := p.Get("doc"); !errors.Is(err, limit.ErrExceeded) {
		t.Fatalf("Get of a value larger than the budget = %v", err)
	}
	if err := p.SetMemoryLimit(512 * kib); err != nil {
		t.Fatal(err)
	}
	mustGet(t, p, "doc", v)
}

func TestValueWriter(t *testing.T) {
	leakCheck(t)
	p := open(t, small(""))
	if err := p.Put("doc", []byte("previous")); err != nil {
		t.Fatal(err)
	}
	want := corpus(3, 700*kib) // ten times the budget
	w, err := p.Create("doc")
	if err != nil {
		t.Fatal(err)
	}
	for rest := want; len(rest) > 0; {
		n := min(len(rest), 3*kib+7)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
		if p.ResidentBytes() > p.MemoryLimit() {
			t.Fatal("writer exceeded the budget")
		}
	}
	mustGet(t, p, "doc", []byte("previous")) // not visible before Close
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); !errors.Is(err, paging.ErrWriterDone) {
		t.Fatalf("second Close = %v", err)
	}
	r, _ := dag.NewValueReader(p, "doc")
	if got, _ := io.ReadAll(r); !bytes.Equal(got, want) {
		t.Fatal("streamed value differs")
	}

	// ReadFrom, then Abort: the previous value stays.
	w, _ = p.Create("doc")
	if n, err := w.ReadFrom(bytes.NewReader(corpus(4, 100*kib))); n != 100*kib || err != nil {
		t.Fatalf("ReadFrom = %d, %v", n, err)
	}
	w.Abort()
	if n, _ := p.SizeOf("doc"); n != int64(len(want)) {
		t.Fatalf("aborted writer replaced the value (%d bytes)", n)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, paging.ErrWriterDone) {
		t.Fatalf("Write after Abort = %v", err)
	}

	// A writer left open is aborted by Close.
	w, _ = p.Create("left-open")
	w.Write(corpus(5, 10*kib))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); !errors.Is(err, paging.ErrClosed) {
		t.Fatalf("writer Close after Pager.Close = %v", err)
	}
}

func TestCloseAndErrClosed(t *testing.T) {
	leakCheck(t)
	p, err := paging.Wrap(nil, paging.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(p.Path())
	if err := p.Put("k", corpus(1, 300*kib)); err != nil {
		t.Fatal(err)
	}
	r, _ := dag.NewValueReader(p, "k")
	io.Copy(io.Discard, r) // starts the read-ahead workers
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("temporary storage %s not removed: %v", dir, err)
	}
	calls := map[string]error{
		"Close":      p.Close(),
		"Put":        p.Put("k", nil),
		"Delete":     p.Delete("k"),
		"Checkpoint": p.Checkpoint(),
		"Compact":    p.Compact(),
	}
	_, calls["Get"] = p.Get("k")
	_, calls["ReadAt"] = p.ReadAt("k", make([]byte, 1), 0)
	_, calls["Evict"] = p.Evict(1)
	calls["SetMemoryLimit"] = p.SetMemoryLimit(1 << 30)
	_, calls["Create"] = p.Create("k")
	for name, err := range calls {
		if !errors.Is(err, paging.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	if p.Keys() != nil {
		t.Error("Keys after Close is not nil")
	}
	_ = p.Stats()
}

func TestPersistenceAndUncleanShutdown(t *testing.T) {
	dir := t.TempDir()
	opts := small(dir)
	p, err := paging.Wrap(nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		p.Put(key(i), corpus(uint64(i), i*2*kib))
	}
	if err := p.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	// Changes after the checkpoint: some written back (the budget forces
	// it), some only in RAM; then a crash.
	for i := range 20 {
		p.Put(key(i), corpus(uint64(i+100), 3*kib))
	}
	p.Delete(key(3))
	p.Crash()

	p, err = paging.Wrap(nil, opts)
	if err != nil {
		t.Fatalf("reopen after a crash: %v", err)
	}
	unclean, discarded, _, _ := p.Recovery()
	if !unclean || discarded {
		t.Fatalf("recovery: unclean=%v discarded=%v", unclean, discarded)
	}
	for _, k := range p.Keys() {
		v, err := p.Get(k)
		if err != nil {
			t.Fatalf("after recovery %q: %v", k, err)
		}
		var i int
		fmt.Sscanf(k, "key-%d", &i)
		if !bytes.Equal(v, corpus(uint64(i), i*2*kib)) && !bytes.Equal(v, corpus(uint64(i+100), 3*kib)) {
			t.Fatalf("after recovery %q holds neither version", k)
		}
	}
	if err := p.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p, err = paging.Wrap(nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if unclean, _, _, _ := p.Recovery(); unclean {
		t.Fatal("clean Close not recognised")
	}
}

func TestDurableCheckpointSurvivesCrash(t *testing.T) {
	dir := t.TempDir()
	opts := small(dir)
	opts.Mode = paging.ModeDurable
	p, err := paging.Wrap(nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 10 {
				p.Put(fmt.Sprintf("g%d-%d", g, i), corpus(uint64(g*10+i), (g+1)*7*kib))
				if err := p.Checkpoint(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	p.Put("after", []byte("not checkpointed"))
	p.Crash()
	p, err = paging.Wrap(nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for g := range 4 {
		for i := range 10 {
			mustGet(t, p, fmt.Sprintf("g%d-%d", g, i), corpus(uint64(g*10+i), (g+1)*7*kib))
		}
	}
	if s := p.Stats(); s.Keys < 40 {
		t.Fatalf("%d keys", s.Keys)
	}
}

func TestCompact(t *testing.T) {
	dir := t.TempDir()
	opts := small(dir)
	opts.MemoryLimitMB = 1
	p, err := paging.Wrap(nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 400 {
		p.Put(key(i), randomBytes(uint64(i), 30*kib))
	}
	if err := p.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	for i := range 380 {
		p.Delete(key(i))
	}
	if err := p.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	before := p.Stats()
	if before.DeadBytes < before.FileBytes/2 {
		t.Fatalf("dead %d of %d bytes", before.DeadBytes, before.FileBytes)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// More than half of the file is dead: Wrap compacts it.
	p, err = paging.Wrap(nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	after := p.Stats()
	if after.Compactions != 1 || after.FileBytes > before.FileBytes/4 {
		t.Fatalf("compaction at open: %d compactions, file %d -> %d bytes", after.Compactions, before.FileBytes, after.FileBytes)
	}
	for i := 380; i < 400; i++ {
		mustGet(t, p, key(i), randomBytes(uint64(i), 30*kib))
	}
	if err := p.Compact(); err != nil {
		t.Fatal(err)
	}
	for i := 380; i < 400; i++ {
		mustGet(t, p, key(i), randomBytes(uint64(i), 30*kib))
	}
}

func TestStatsJSON(t *testing.T) {
	p := open(t, small(""))
	for i := range 30 {
		p.Put(key(i), corpus(uint64(i), 4*kib))
	}
	for i := range 30 {
		p.Get(key(i))
	}
	s := p.Stats()
	if s.Hits+s.Misses != 30 || s.HitRate != float64(s.Hits)/30 || s.Misses == 0 {
		t.Fatalf("hits %d misses %d rate %v", s.Hits, s.Misses, s.HitRate)
	}
	if s.CompressionRatio < 1.5 || s.PagesOnDisk == 0 || s.PagesInMemory == 0 || s.Keys != 30 {
		t.Fatalf("stats: %+v", s)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"pages_in_memory", "pages_on_disk", "hit_rate", "evictions", "page_ins", "page_outs",
		"prefetch_used", "prefetch_wasted", "compression_ratio", "dead_bytes", "file_bytes", "bytes_in_memory"} {
		if !bytes.Contains(b, []byte(`"`+field+`"`)) {
			t.Errorf("JSON lacks %q: %s", field, b)
		}
	}
	if !strings.Contains(s.String(), "hit rate") {
		t.Error(s.String())
	}
}

// memoryGuardTarget is what throttle's memory guard calls on an evictable.
type memoryGuardTarget interface {
	Evict(n int64) (freed int64, err error)
	ResidentBytes() int64
	LastAccess() time.Time
	AccessCount() uint64
}

var _ memoryGuardTarget = (*paging.Pager)(nil)

func TestConcurrentAccess(t *testing.T) {
	leakCheck(t)
	p := open(t, small(""))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	n := 300
	if testing.Short() {
		n = 100
	}
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 3))
			mine := map[string][]byte{}
			for i := range n {
				k := fmt.Sprintf("g%d/%d", g, r.IntN(15))
				switch r.IntN(10) {
				case 0, 1, 2:
					v := corpus(uint64(g*1000+i), r.IntN(30*kib))
					if err := p.Put(k, v); err != nil {
						errs <- err
						return
					}
					mine[k] = v
				case 3:
					p.Delete(k)
					delete(mine, k)
				case 4:
					buf := make([]byte, 5*kib)
					n, err := p.ReadAt(k, buf, 1000)
					if want, ok := mine[k]; ok && (len(want) > 1000) && !bytes.Equal(buf[:n], want[1000:][:n]) {
						errs <- fmt.Errorf("ReadAt(%q) wrong bytes (%v)", k, err)
						return
					}
				case 5:
					p.Keys()
					p.Stats()
					p.Evict(8 * kib)
				default:
					got, err := p.Get(k)
					want, ok := mine[k]
					if ok != (err == nil) || !bytes.Equal(got, want) {
						errs <- fmt.Errorf("Get(%q) = %d bytes, %v; want %d bytes", k, len(got), err, len(want))
						return
					}
				}
			}
		})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			if err := p.Checkpoint(); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := p.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

func TestLastAccessAndAccessCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := paging.Wrap(nil, small(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		opened := time.Now()
		if got := p.LastAccess(); !got.Equal(opened) || p.AccessCount() != 0 {
			t.Fatalf("fresh pager: LastAccess %v (want %v), AccessCount %d", got, opened, p.AccessCount())
		}
		time.Sleep(time.Hour)
		if got := p.LastAccess(); !got.Equal(opened) {
			t.Fatalf("idle pager: LastAccess moved to %v", got)
		}
		p.Put("k", []byte("v"))
		p.Get("k") // hit path: no clock read, stamped by the next LastAccess
		if got := p.LastAccess(); !got.Equal(opened.Add(time.Hour)) || p.AccessCount() != 2 {
			t.Fatalf("after access: LastAccess %v, AccessCount %d", got, p.AccessCount())
		}
		time.Sleep(time.Minute)
		if got := p.LastAccess(); !got.Equal(opened.Add(time.Hour)) {
			t.Fatalf("LastAccess moved without access: %v", got)
		}
	})
}

func TestUnusableStoragePath(t *testing.T) {
	tests := []struct {
		name   string
		path   func(t *testing.T) string
		asRoot bool // whether the case works when running as root
	}{
		{"parent is a file", func(t *testing.T) string {
			f := filepath.Join(t.TempDir(), "file")
			os.WriteFile(f, []byte("x"), 0o600)
			return filepath.Join(f, "pages")
		}, true},
		{"read-only directory", func(t *testing.T) string {
			d := filepath.Join(t.TempDir(), "ro")
			os.Mkdir(d, 0o500)
			return d
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.asRoot && os.Geteuid() == 0 {
				t.Skip("root ignores directory permissions")
			}
			p, err := paging.Wrap(nil, paging.Options{StoragePath: tt.path(t)})
			if err == nil {
				p.Close()
				t.Fatal("Wrap succeeded")
			}
			if !strings.HasPrefix(err.Error(), "paging: ") {
				t.Fatalf("unclear error: %v", err)
			}
		})
	}
}

// TestUncleanCorruptFile damages a page of bbolt's tree in a file that was
// not closed cleanly: cache mode discards the file and starts empty,
// durable mode refuses it and leaves it untouched.
func TestUncleanCorruptFile(t *testing.T) {
	for _, mode := range []paging.Mode{paging.ModeCache, paging.ModeDurable} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			opts := small(dir)
			opts.Mode = mode
			p, err := paging.Wrap(nil, opts)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 50 {
				p.Put(key(i), randomBytes(uint64(i), 6*kib))
			}
			if err := p.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			path := p.Path()
			p.Crash()
			// Overwrite the root page of the pages bucket with garbage.
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			var root uint64
			var pageSize int
			db.View(func(tx *bolt.Tx) error {
				root = uint64(tx.Bucket([]byte("pages")).Root())
				pageSize = tx.DB().Info().PageSize
				return nil
			})
			db.Close()
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt(randomBytes(9, pageSize), int64(root)*int64(pageSize))
			f.Close()
			before, _ := os.ReadFile(path)

			p, err = paging.Wrap(nil, opts)
			if mode == paging.ModeDurable {
				if !errors.Is(err, paging.ErrCorrupt) {
					if err == nil {
						p.Close()
					}
					t.Fatalf("durable Wrap of a damaged file = %v, want ErrCorrupt", err)
				}
				if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
					t.Fatal("durable mode modified the damaged file")
				}
				return
			}
			if err != nil {
				t.Fatalf("cache Wrap of a damaged file: %v", err)
			}
			defer p.Close()
			if _, discarded, _, _ := p.Recovery(); !discarded || len(p.Keys()) != 0 {
				t.Fatalf("damaged cache file not discarded (%d keys)", len(p.Keys()))
			}
			if err := p.Put("k", []byte("v")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPinAndPrefetchAtOpen(t *testing.T) {
	dir := t.TempDir()
	p, err := paging.Wrap(nil, small(dir))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		p.Put(key(i), corpus(uint64(i), 6*kib))
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		pins     []string
		prefetch []string
		wantErr  bool
	}{
		{"pin and prefetch", []string{key(1), key(2)}, []string{key(3), key(4)}, false},
		{"pins over half the budget", []string{key(1), key(2), key(3), key(4), key(5), key(6)}, nil, true},
		{"missing keys are ignored", []string{"nope"}, []string{"nope either"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := small(dir)
			opts.PinKeys, opts.PrefetchKeys = tt.pins, tt.prefetch
			p, err := paging.Wrap(nil, opts)
			if tt.wantErr {
				if !errors.Is(err, limit.ErrExceeded) {
					t.Fatalf("Wrap = %v, want a limit error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if s := p.Stats(); s.PinnedBytes != int64(len(tt.pins))*6*kib && tt.pins[0] != "nope" {
				t.Fatalf("pinned %d bytes", s.PinnedBytes)
			}
			before := p.Stats().Misses
			for _, k := range append(append([]string{}, tt.pins...), tt.prefetch...) {
				var i int
				if _, err := fmt.Sscanf(k, "key-%d", &i); err != nil {
					continue
				}
				mustGet(t, p, k, corpus(uint64(i), 6*kib))
			}
			if after := p.Stats().Misses; after != before {
				t.Fatalf("%d misses reading pinned and prefetched keys", after-before)
			}
		})
	}
}
