package paging_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cemaf-go/cemaf/limit"
	"github.com/cemaf-go/cemaf/paging"
)

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
	// No background reclaimer: a write-back of its committing between
	// ResidentBytes and Evict would lower the resident bytes by pages
	// Evict did not free.
	p := open(t, paging.WithFaults(small(""), nil, true))
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
