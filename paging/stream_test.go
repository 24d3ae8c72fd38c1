package paging_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/limit"
	"github.com/cemaf-go/cemaf/paging"
)

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

// dag.NewValueWriter on a Pager writes through the Pager's own writer:
// page by page within the budget, visible on Commit, and ended with
// dag.ErrValueEnded.
func TestNewValueWriterOnAPager(t *testing.T) {
	leakCheck(t)
	p := open(t, small(""))
	if err := p.Put("doc", []byte("previous")); err != nil {
		t.Fatal(err)
	}
	want := corpus(5, 700*kib) // ten times the budget
	w, err := dag.NewValueWriter(p, "doc")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := w.(*paging.ValueWriter); !ok {
		t.Fatalf("dag.NewValueWriter(pager) = %T, want the pager's *paging.ValueWriter", w)
	}
	for rest := want; len(rest) > 0; {
		n := min(len(rest), 5*kib+3)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
		if p.ResidentBytes() > p.MemoryLimit() {
			t.Fatal("writer exceeded the budget")
		}
	}
	mustGet(t, p, "doc", []byte("previous"))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); !errors.Is(err, dag.ErrValueEnded) || !errors.Is(err, paging.ErrWriterDone) {
		t.Fatalf("second Commit = %v, want dag.ErrValueEnded and paging.ErrWriterDone", err)
	}
	r, _ := dag.NewValueReader(p, "doc")
	if got, _ := io.ReadAll(r); !bytes.Equal(got, want) {
		t.Fatal("value written in parts differs")
	}
	var le *limit.Error
	if _, err := dag.NewValueWriter(p, string(make([]byte, 40000))); !errors.As(err, &le) {
		t.Fatalf("a key of 40,000 bytes: %v, want a *limit.Error", err)
	}
}
