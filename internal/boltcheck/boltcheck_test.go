package boltcheck

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// makeFile writes a bbolt file with nested buckets, small and large values
// and free pages (deletes), and returns its bytes.
func makeFile(t testing.TB, noFreelistSync bool) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "src.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoFreelistSync: noFreelistSync})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			nb, err := b.CreateBucketIfNotExists([]byte("nested"))
			if err != nil {
				return err
			}
			if err := nb.Put([]byte(fmt.Sprint("k", i)), make([]byte, 100+i*300)); err != nil {
				return err
			}
			if i%3 == 0 {
				return nb.Delete([]byte(fmt.Sprint("k", i/2)))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func write(t testing.TB, raw []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f.db")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHealthyFilePasses(t *testing.T) {
	for _, nfs := range []bool{false, true} {
		path := write(t, makeFile(t, nfs))
		called := false
		err := Verify(path, time.Second, func(tx *bolt.Tx) error {
			called = tx.Bucket([]byte("b")) != nil
			return nil
		})
		if err != nil || !called {
			t.Fatalf("NoFreelistSync=%v: Verify = %v, inspect saw bucket = %v", nfs, err, called)
		}
	}
}

func TestNotBolt(t *testing.T) {
	path := write(t, []byte("just some text, long enough to have a page header and more bytes than that......................."))
	if err := Verify(path, time.Second, nil); !errors.Is(err, ErrNotBolt) {
		t.Fatalf("Verify = %v, want ErrNotBolt", err)
	}
}

// Damage must be reported, never crash the process, and a damaged file
// that passes Verify must be safe to use: opened read-write, read in full,
// checked by bbolt and written to without a panic or a fault. Damage covers
// random byte flips all over the file, scribbled stripes, truncation,
// corrupted element counts and page types with extra bits set beside their
// own (bbolt panics on a leaf page whose flags are not exactly a leaf's).
func TestDamageIsAnErrorNotACrash(t *testing.T) {
	for _, nfs := range []bool{false, true} {
		orig := makeFile(t, nfs)
		r := rand.New(rand.NewPCG(1, uint64(len(orig))))
		detected, passedAndSafe := 0, 0
		for trial := range 240 {
			raw := append([]byte(nil), orig...)
			class := trial % 6
			switch class {
			case 0: // flip bytes after the meta pages
				for range 1 + r.IntN(40) {
					raw[8192+r.IntN(len(raw)-8192)] ^= byte(1 + r.IntN(255))
				}
			case 1: // scribble a stripe of pages
				start := 8192 + r.IntN(len(raw)-8192)
				for i := start; i < len(raw) && i < start+4096; i += 1 + r.IntN(7) {
					raw[i] = byte(r.IntN(256))
				}
			case 2: // truncate below the high-water mark
				raw = raw[:8192+r.IntN(len(raw)/2-8192)]
			case 3: // corrupt page headers' element counts
				for range 1 + r.IntN(5) {
					pg := 2 + r.IntN(len(raw)/4096-2)
					binary.LittleEndian.PutUint16(raw[pg*4096+10:], uint16(r.IntN(65536)))
				}
			case 4: // flip bytes anywhere, meta pages included
				for range 1 + r.IntN(10) {
					raw[r.IntN(len(raw))] ^= byte(1 + r.IntN(255))
				}
			case 5: // set other bits beside a branch, leaf or freelist page's type
				for range 1 + r.IntN(3) {
					pg := 2 + r.IntN(len(raw)/4096-2)
					flags := binary.LittleEndian.Uint16(raw[pg*4096+8:])
					if flags == branchFlag || flags == leafFlag || flags == freelistFlag {
						extra := uint16(1+r.IntN(255)) << 8
						if r.IntN(2) == 0 {
							extra = 0x20 << r.IntN(3) // bits bbolt does not use
						}
						binary.LittleEndian.PutUint16(raw[pg*4096+8:], flags|extra)
					}
				}
			}
			path := write(t, raw)
			err := Verify(path, time.Second, nil)
			if err != nil {
				detected++
				if !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrNotBolt) {
					t.Fatalf("trial %d: unexpected error %v", trial, err)
				}
				continue
			}
			if class == 2 {
				t.Fatalf("trial %d: a file truncated below its high-water mark passed", trial)
			}
			if err := useFully(path); err != nil {
				t.Fatalf("trial %d (damage class %d): passed Verify but is not safe to use: %v", trial, class, err)
			}
			passedAndSafe++
		}
		t.Logf("NoFreelistSync=%v: %d of 240 damaged files reported, %d passed and were used safely (damage in values or free pages)",
			nfs, detected, passedAndSafe)
	}
}

// useFully opens path read-write with Open, reads every value in full, runs
// bbolt's check and writes a key. A memory fault would crash the test
// binary.
func useFully(path string) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v", v)
		}
	}()
	db, err := Open(path, Options{Bolt: &bolt.Options{Timeout: time.Second}})
	if err != nil {
		return err
	}
	defer db.Close()
	var sink byte
	err = db.View(func(tx *bolt.Tx) error {
		var visit func(b *bolt.Bucket) error
		visit = func(b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				if v == nil {
					if nb := b.Bucket(k); nb != nil {
						return visit(nb)
					}
					return nil
				}
				for _, c := range v {
					sink ^= c
				}
				return nil
			})
		}
		if err := tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return visit(b) }); err != nil {
			return err
		}
		for e := range tx.Check() {
			return fmt.Errorf("bbolt check: %v", e)
		}
		return nil
	})
	_ = sink
	if err != nil {
		return err
	}
	return db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("written-after-verify"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	})
}

func TestLocked(t *testing.T) {
	path := write(t, makeFile(t, false))
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := Verify(path, 50*time.Millisecond, nil); !errors.Is(err, ErrLocked) || !errors.Is(err, berrors.ErrTimeout) {
		t.Fatalf("Verify = %v, want ErrLocked wrapping bbolt's timeout", err)
	}
}

var faultSink byte

// TestGuard turns a memory fault into an error that names it as one, and
// other panics into errors that give their values.
func TestGuard(t *testing.T) {
	path := write(t, makeFile(t, false))
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := syscall.Mmap(int(f.Fd()), 0, 8192, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Skip("mmap:", err)
	}
	defer syscall.Munmap(m)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	wrap := func(what string) error { return errors.New(what) }
	err = Guard(func() error {
		faultSink = m[4096] // past the end of the file: SIGBUS
		return nil
	}, wrap)
	// Under qemu-user the fault's address may not reach the runtime.
	if err == nil || !strings.HasPrefix(err.Error(), "memory fault") {
		t.Errorf("Guard(a fault) = %v", err)
	}
	err = Guard(func() error { panic("page 7: has unexpected type/flags: 4001") }, wrap)
	if err == nil || err.Error() != "bbolt: page 7: has unexpected type/flags: 4001" {
		t.Errorf("Guard(a panic) = %v", err)
	}
	if err := Guard(func() error { return nil }, wrap); err != nil {
		t.Errorf("Guard(no panic) = %v", err)
	}
}

// FuzzVerify damages a real bbolt file at up to three places (a byte
// each, or a 16-bit page field) and, optionally, cuts it short. Verify
// must report the damage, or the file must be safe to use in full
// (useFully): no panic, no fault.
func FuzzVerify(f *testing.F) {
	orig := makeFile(f, false)
	f.Add(uint32(4096*3+8), uint16(0x4002), uint32(0), uint16(0), uint32(0), uint16(0), uint32(0))
	f.Add(uint32(4096*5+10), uint16(0xffff), uint32(4096*2+16), uint16(7), uint32(0), uint16(0), uint32(0))
	f.Add(uint32(100), uint16(1), uint32(5000), uint16(2), uint32(9000), uint16(3), uint32(20000))
	f.Fuzz(func(t *testing.T, p1 uint32, v1 uint16, p2 uint32, v2 uint16, p3 uint32, v3 uint16, cut uint32) {
		raw := bytes.Clone(orig)
		for _, w := range [...]struct {
			pos uint32
			v   uint16
		}{{p1, v1}, {p2, v2}, {p3, v3}} {
			if at := int(w.pos) % (len(raw) - 1); w.v != 0 {
				binary.LittleEndian.PutUint16(raw[at:], w.v)
			}
		}
		if cut != 0 {
			raw = raw[:int(cut)%len(raw)+1]
		}
		path := write(t, raw)
		if Verify(path, time.Second, nil) != nil {
			return
		}
		if err := useFully(path); err != nil {
			t.Fatalf("passed Verify but is not safe to use: %v", err)
		}
	})
}

// TestWedge: a write that panics sets the wedge; later writes are refused
// without running, reads still run.
func TestWedge(t *testing.T) {
	var w Wedge
	wrap := func(what string) error { return errors.New(what) }
	if err := w.Guard(false, func() error { panic("read") }, wrap); err == nil || w.Set() {
		t.Fatalf("a read that panics: err %v, wedged %v", err, w.Set())
	}
	if err := w.Guard(true, func() error { panic("write") }, wrap); err == nil || err.Error() != "bbolt: write" || !w.Set() {
		t.Fatalf("a write that panics: err %v, wedged %v", err, w.Set())
	}
	ran := false
	if err := w.Guard(true, func() error { ran = true; return nil }, wrap); err == nil || err.Error() != Wedged || ran {
		t.Fatalf("a write once wedged: err %v, ran %v", err, ran)
	}
	if err := w.Guard(false, func() error { ran = true; return nil }, wrap); err != nil || !ran {
		t.Fatalf("a read once wedged: err %v, ran %v", err, ran)
	}
}
