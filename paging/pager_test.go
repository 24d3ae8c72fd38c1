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
	"testing"
	"testing/synctest"
	"time"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/limit"
	"github.com/cemaf-go/cemaf/paging"
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
