package paging_test

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/cemaf-go/cemaf/paging"
	bolt "go.etcd.io/bbolt"
)

// TestMetaPageDamage zeroes bbolt's meta page 0, then meta page 1, then
// both, in real page files left by a clean Close and by a crash, in both
// modes. With one meta page left, Wrap opens the file on it (bbolt keeps
// two for this), every value reads back, the zeroed page is rewritten
// (bbolt's own check passes afterwards) and a later Wrap finds nothing to
// repair. With none left, Wrap refuses with ErrCorrupt in words that name
// the file, what is damaged and what to do, and leaves the file as it is.
func TestMetaPageDamage(t *testing.T) {
	vals := make([][]byte, 20)
	for i := range vals {
		vals[i] = corpus(uint64(i), 3*kib+i*500)
	}
	for _, mode := range []paging.Mode{paging.ModeCache, paging.ModeDurable} {
		for _, ending := range []string{"close", "crash"} {
			for _, zero := range [][]int{{0}, {1}, {0, 1}} {
				name := mode.String() + "/" + ending + "/" + map[int]string{0: "zero-meta-0", 1: "zero-meta-1"}[zero[0]]
				if len(zero) == 2 {
					name = mode.String() + "/" + ending + "/zero-both"
				}
				t.Run(name, func(t *testing.T) {
					dir := t.TempDir()
					opts := small(dir)
					opts.Mode = mode
					p, err := paging.Wrap(nil, opts)
					if err != nil {
						t.Fatal(err)
					}
					for i, v := range vals {
						if err := p.Put(key(i), v); err != nil {
							t.Fatal(err)
						}
					}
					path := p.Path()
					if err := p.Close(); err != nil {
						t.Fatal(err)
					}
					if ending == "crash" {
						// The last two commits (clean mark, open mark)
						// both hold every value: whichever meta page is
						// lost, nothing is.
						p, err := paging.Wrap(nil, opts)
						if err != nil {
							t.Fatal(err)
						}
						p.Crash()
					}
					pageSize := boltPageSize(t, path)
					f, err := os.OpenFile(path, os.O_WRONLY, 0)
					if err != nil {
						t.Fatal(err)
					}
					for _, i := range zero {
						if _, err := f.WriteAt(make([]byte, pageSize), int64(i*pageSize)); err != nil {
							t.Fatal(err)
						}
					}
					f.Close()
					before, _ := os.ReadFile(path)

					p, err = paging.Wrap(nil, opts)
					if len(zero) == 2 {
						if err == nil {
							p.Close()
							t.Fatal("Wrap opened a file without meta pages")
						}
						msg := err.Error()
						for _, want := range []string{path, "damaged", "meta pages", "move it aside", "delete it"} {
							if !strings.Contains(msg, want) {
								t.Fatalf("error %q does not say %q", msg, want)
							}
						}
						if !errors.Is(err, paging.ErrCorrupt) || strings.Contains(msg, "panic") || strings.Contains(msg, "assertion") {
							t.Fatalf("error %q: want ErrCorrupt, in words", msg)
						}
						if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
							t.Fatal("Wrap modified the file it refused")
						}
						return
					}
					if err != nil {
						t.Fatalf("Wrap with meta page %v zeroed: %v", zero, err)
					}
					if _, discarded, _, dropped := p.Recovery(); discarded || dropped != 0 {
						t.Fatalf("discarded %v, dropped %d values", discarded, dropped)
					}
					for i, v := range vals {
						mustGet(t, p, key(i), v)
					}
					if err := p.Close(); err != nil {
						t.Fatal(err)
					}
					// bbolt's own check (which panicked on the zeroed page
					// before it was rewritten) passes.
					db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
					if err != nil {
						t.Fatal(err)
					}
					err = db.View(func(tx *bolt.Tx) error {
						for err := range tx.Check() {
							return err
						}
						return nil
					})
					db.Close()
					if err != nil {
						t.Fatalf("bbolt check after the repair: %v", err)
					}
					p = open(t, opts)
					if unclean, discarded, _, _ := p.Recovery(); unclean || discarded {
						t.Fatalf("after a clean Close: unclean %v discarded %v", unclean, discarded)
					}
					mustGet(t, p, key(3), vals[3])
				})
			}
		}
	}
}

// boltPageSize is the page size of the bbolt file at path (the OS page
// size when the file was created: 4 KiB on amd64, 4 or 16 KiB on arm64).
func boltPageSize(t *testing.T, path string) int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return db.Info().PageSize
}
