package paging_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/cemaf-go/cemaf/limit"
	"github.com/cemaf-go/cemaf/paging"
	bolt "go.etcd.io/bbolt"
)

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
			root, pageSize := pagesRoot(t, path)
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt(randomBytes(9, int(pageSize)), root*pageSize)
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

// TestCleanFileWithABadPageType gives the root page of the pages bucket,
// in a file closed cleanly, extra bits beside its type: bbolt would panic
// reading it, so Wrap must refuse the file with ErrCorrupt in both modes,
// leave it as it is, and not panic.
func TestCleanFileWithABadPageType(t *testing.T) {
	for _, mode := range []paging.Mode{paging.ModeCache, paging.ModeDurable} {
		t.Run(mode.String(), func(t *testing.T) {
			opts := small(t.TempDir())
			opts.Mode = mode
			p, err := paging.Wrap(nil, opts)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 50 {
				p.Put(key(i), randomBytes(uint64(i), 6*kib))
			}
			path := p.Path()
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			addTypeBits(t, path)
			before, _ := os.ReadFile(path)

			p, err = paging.Wrap(nil, opts)
			if !errors.Is(err, paging.ErrCorrupt) {
				if err == nil {
					p.Close()
				}
				t.Fatalf("Wrap of a file with a bad page type = %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Fatal("Wrap modified the damaged file")
			}
		})
	}
}

// TestDamageWhileOpenIsAnError damages the page file under an open Pager,
// as a failing SD card may: the root page of the pages bucket gets extra
// type bits, which make bbolt panic when it reads the page. Reads of
// values that are not resident, the next checkpoint and Close must return
// errors (reads: ErrCorrupt naming the file), not panic.
func TestDamageWhileOpenIsAnError(t *testing.T) {
	p := reopened(t)
	path := p.Path()
	addTypeBits(t, path)

	_, err := p.Get(key(7))
	if !errors.Is(err, paging.ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Errorf("Get after the damage = %v, want ErrCorrupt naming %s", err, path)
	}
	p.Put("new", []byte("value"))
	t.Logf("Checkpoint: %v", p.Checkpoint()) // may fail: the tree it writes to is damaged
	if err := p.Compact(); !errors.Is(err, paging.ErrCorrupt) {
		t.Errorf("Compact after the damage = %v, want ErrCorrupt", err)
	}
	t.Logf("Close: %v", p.Close())
}

// reopened returns a Pager on a file of 50 values of 6 KiB written by an
// earlier one: none is resident.
func reopened(t *testing.T) *paging.Pager {
	t.Helper()
	opts := small(t.TempDir())
	p, err := paging.Wrap(nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		p.Put(key(i), randomBytes(uint64(i), 6*kib))
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if p, err = paging.Wrap(nil, opts); err != nil {
		t.Fatal(err)
	}
	return p
}

// addTypeBits sets a bit beside the type of the root page of the pages
// bucket of the page file at path (which may be open): the page keeps its
// branch or leaf bit, and bbolt panics reading it.
func addTypeBits(t *testing.T, path string) {
	t.Helper()
	root, pageSize := pagesRoot(t, path)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var flags [2]byte
	if _, err := f.ReadAt(flags[:], root*pageSize+8); err != nil {
		t.Fatal(err)
	}
	flags[1] |= 0x40
	if _, err := f.WriteAt(flags[:], root*pageSize+8); err != nil {
		t.Fatal(err)
	}
}

// pagesRoot returns the root page ID of the pages bucket and the page size
// of the bbolt file at path, read from a copy so that no lock is needed.
func pagesRoot(t *testing.T, path string) (root, pageSize int64) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(cp, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(cp, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		root = int64(tx.Bucket([]byte("pages")).Root())
		pageSize = int64(tx.DB().Info().PageSize)
		return nil
	})
	return root, pageSize
}

// TestDamagedFileNeverPanics writes a page file, closes it (cleanly, or as
// a crash would leave it), damages a copy with random bytes and opens the
// copy, many times. Wrap either refuses it with ErrCorrupt or
// ErrForeignFile, or opens it; then every read returns the value as
// written or ErrCorrupt, and writing, checkpointing and closing go on.
// Nothing may panic.
func TestDamagedFileNeverPanics(t *testing.T) {
	trials := 60
	if testing.Short() {
		trials = 15
	}
	for _, mode := range []paging.Mode{paging.ModeCache, paging.ModeDurable} {
		for _, clean := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/clean=%v", mode, clean), func(t *testing.T) {
				opts := small(t.TempDir())
				opts.Mode = mode
				p, err := paging.Wrap(nil, opts)
				if err != nil {
					t.Fatal(err)
				}
				want := map[string][]byte{}
				for i := range 80 {
					want[key(i)] = randomBytes(uint64(i), 3*kib+i*37)
					p.Put(key(i), want[key(i)])
				}
				if err := p.Checkpoint(); err != nil {
					t.Fatal(err)
				}
				path := p.Path()
				if clean {
					err = p.Close()
				} else {
					p.Crash()
				}
				if err != nil {
					t.Fatal(err)
				}
				orig, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				seed := uint64(0)
				if clean {
					seed = 1
				}
				r := rand.New(rand.NewPCG(uint64(mode), seed))
				opened := 0
				for trial := range trials {
					b := bytes.Clone(orig)
					start, stride := r.IntN(len(b)), 1+r.IntN(97)
					for k := range 1 + r.IntN(64) {
						b[(start+k*stride)%len(b)] = byte(r.Uint32())
					}
					o := opts
					o.StoragePath = t.TempDir()
					if err := os.WriteFile(filepath.Join(o.StoragePath, filepath.Base(path)), b, 0o600); err != nil {
						t.Fatal(err)
					}
					if openDamaged(t, trial, o, want) {
						opened++
					}
				}
				t.Logf("%d of %d damaged files opened (damage in values, free pages or unused bytes; or a cache file discarded after a crash)", opened, trials)
			})
		}
	}
}

// openDamaged opens a damaged page file with opts and uses it (see
// TestDamagedFileNeverPanics); it reports whether Wrap took the file.
func openDamaged(t *testing.T, trial int, opts paging.Options, want map[string][]byte) (opened bool) {
	defer func() {
		if v := recover(); v != nil {
			t.Fatalf("trial %d: panic: %v", trial, v)
		}
	}()
	p, err := paging.Wrap(nil, opts)
	if err != nil {
		if !errors.Is(err, paging.ErrCorrupt) && !errors.Is(err, paging.ErrForeignFile) {
			t.Fatalf("trial %d: Wrap = %v, want ErrCorrupt or ErrForeignFile", trial, err)
		}
		return false
	}
	for _, k := range p.Keys() {
		got, err := p.Get(k)
		switch {
		case err == nil && !bytes.Equal(got, want[k]):
			t.Fatalf("trial %d: %s read back changed, without an error", trial, k)
		case err != nil && !errors.Is(err, paging.ErrCorrupt):
			t.Fatalf("trial %d: Get(%s) = %v, want ErrCorrupt", trial, k, err)
		}
	}
	p.Put("after", []byte("damage"))
	_ = p.Checkpoint()
	_ = p.Close()
	return true
}

// TestTruncatedWhileOpenIsAnError truncates the page file under an open
// Pager, as another program, or a failing card whose reads fault, may do:
// bbolt's mapping then ends before the pages it reads, and a read there
// is a memory fault (SIGBUS), which would end the process. Reads of
// values that are not resident must return ErrCorrupt instead.
func TestTruncatedWhileOpenIsAnError(t *testing.T) {
	p := reopened(t)
	st, err := os.Stat(p.Path())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p.Path(), 16*kib); err != nil {
		t.Fatal(err)
	}
	failed := 0
	for i := range 50 {
		if _, err := p.Get(key(i)); err != nil {
			if !errors.Is(err, paging.ErrCorrupt) {
				t.Fatalf("Get(%s) from a file truncated from %d to %d bytes = %v, want ErrCorrupt", key(i), st.Size(), 16*kib, err)
			}
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("every value read back from a truncated file")
	}
	// Writing, checkpointing and closing return (with errors, which they
	// may), rather than fault or wait forever for bbolt's writer lock.
	p.Put("new", []byte("value"))
	t.Logf("Checkpoint: %v", p.Checkpoint())
	t.Logf("Close: %v", p.Close())
}
