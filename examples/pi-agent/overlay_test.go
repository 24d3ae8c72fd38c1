package main

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/limit"
	"github.com/cemaf-go/cemaf/paging"
)

// TestOverlayReadsLargeValuesInRanges: a request's overlay reads a value
// of the shared index that is larger than the pager's budget (a long
// posting list) range by range, as run does, where reading it whole is
// refused; its own keys and deletions shadow the base's.
func TestOverlayReadsLargeValuesInRanges(t *testing.T) {
	base, err := paging.Wrap(nil, paging.Options{MemoryLimitMB: 1, StoragePath: t.TempDir(), LeaveGoMemoryLimit: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = base.Close() })
	big := bytes.Repeat([]byte("posting-"), 3<<20/8) // 3 MiB, three times the budget
	if err := base.Put("big", big); err != nil {
		t.Fatal(err)
	}
	if err := base.Put("shadowed", []byte("base")); err != nil {
		t.Fatal(err)
	}
	if err := base.Put("deleted", []byte("base")); err != nil {
		t.Fatal(err)
	}
	o := newOverlay(base, dag.NewMemoryState())

	if _, err := o.Get("big"); !errors.As(err, new(*limit.Error)) {
		t.Fatalf("Get of a value over the budget: %v, want a *limit.Error", err)
	}
	r, err := dag.NewValueReader(o, "big")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading a value over the budget through the overlay: %v", err)
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("read %d bytes, want the %d written", len(got), len(big))
	}

	if err := o.Put("shadowed", []byte("local")); err != nil {
		t.Fatal(err)
	}
	if err := o.Delete("deleted"); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 3)
	if n, err := dag.ReadAt(o, "shadowed", p, 2); err != nil || string(p[:n]) != "cal" {
		t.Errorf("ReadAt of a key the request wrote: %q, %v; want \"cal\"", p[:n], err)
	}
	if _, err := dag.ReadAt(o, "deleted", p, 0); !errors.Is(err, dag.ErrNotFound) {
		t.Errorf("ReadAt of a key the request deleted: %v, want dag.ErrNotFound", err)
	}
}
