package paging_test

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/paging"
)

func TestAppendValue(t *testing.T) {
	p := open(t, small(""))
	vals := map[string][]byte{
		"empty":  {},
		"one":    corpus(1, 3*kib),
		"pages":  corpus(2, 30*kib),
		"budget": corpus(3, 100*kib), // larger than the 64 KiB budget
	}
	for k, v := range vals {
		if err := p.Put(k, v); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range vals {
		got, err := p.AppendValue([]byte("prefix"), k)
		if err != nil {
			t.Fatalf("AppendValue(%q): %v", k, err)
		}
		if !bytes.Equal(got, append([]byte("prefix"), v...)) {
			t.Fatalf("AppendValue(%q): %d bytes, want prefix + %d", k, len(got), len(v))
		}
	}
	if got, err := p.AppendValue([]byte("x"), "missing"); !errors.Is(err, dag.ErrNotFound) || string(got) != "x" {
		t.Fatalf("AppendValue(missing) = %q, %v", got, err)
	}
	// Reading a resident value into a buffer with room allocates nothing;
	// a value read from disk costs a few small objects per page (bbolt's
	// read transaction), not its bytes: the page-ins reuse the buffers of
	// the pages they evict.
	buf := make([]byte, 0, 100*kib)
	if allocs := testing.AllocsPerRun(20, func() { buf, _ = p.AppendValue(buf[:0], "one") }); allocs != 0 {
		t.Errorf("AppendValue of a resident value: %.1f allocations", allocs)
	}
	var before, after runtime.MemStats
	insBefore := p.Stats().PageIns
	runtime.ReadMemStats(&before)
	for range 20 {
		var err error
		if buf, err = p.AppendValue(buf[:0], "budget"); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	ins := p.Stats().PageIns - insBefore
	if perPageIn := float64(after.TotalAlloc-before.TotalAlloc) / float64(ins); ins < 20*16 || perPageIn > 2*kib {
		t.Errorf("AppendValue of a value larger than the budget: %d page-ins, %.0f bytes allocated per page-in of 4 KiB (want < 2 KiB: no page buffer)", ins, perPageIn)
	}
	if s := p.Stats(); s.Misses == 0 || s.BytesInMemory+s.SpareBytes > s.MemoryLimitBytes {
		t.Fatalf("stats %+v: want misses, and resident + spares within the budget", s)
	}
	p.Close()
	if _, err := p.AppendValue(nil, "one"); !errors.Is(err, paging.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}
