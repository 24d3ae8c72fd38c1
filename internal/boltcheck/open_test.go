package boltcheck

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var testBolt = &bolt.Options{Timeout: 50 * time.Millisecond}

// dataFile writes a bbolt file of the given page size holding keys k0..k39
// in bucket "b", one transaction each, followed by two transactions that
// only touch "tick": whichever meta page is lost, every k is there.
func dataFile(t *testing.T, pageSize int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{PageSize: pageSize})
	if err != nil {
		t.Fatal(err)
	}
	put := func(k string, v []byte) {
		t.Helper()
		if err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			return b.Put([]byte(k), v)
		}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 40 {
		put(fmt.Sprint("k", i), bytes.Repeat([]byte{byte(i)}, 100+i*50))
	}
	put("tick", []byte("1"))
	put("tick", []byte("2"))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkData reads every key of a file made by dataFile and runs bbolt's
// consistency check.
func checkData(t *testing.T, db *bolt.DB) {
	t.Helper()
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("b"))
		if b == nil {
			return errors.New("bucket missing")
		}
		for i := range 40 {
			if v := b.Get([]byte(fmt.Sprint("k", i))); !bytes.Equal(v, bytes.Repeat([]byte{byte(i)}, 100+i*50)) {
				return fmt.Errorf("k%d: %d bytes", i, len(v))
			}
		}
		for err := range tx.Check() {
			return fmt.Errorf("bbolt check: %w", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenHealthyAndNew(t *testing.T) {
	path := dataFile(t, 4096)
	called := false
	db, err := Open(path, Options{Bolt: testBolt, Inspect: func(tx *bolt.Tx) error {
		called = tx.Bucket([]byte("b")) != nil
		return nil
	}})
	if err != nil || !called {
		t.Fatalf("Open = %v, inspect saw the bucket: %v", err, called)
	}
	checkData(t, db)
	db.Close()

	for _, name := range []string{"missing.db", "empty.db"} {
		p := filepath.Join(t.TempDir(), name)
		if name == "empty.db" {
			os.WriteFile(p, nil, 0o600)
		}
		db, err := Open(p, Options{Bolt: testBolt, Inspect: func(*bolt.Tx) error { return errors.New("not called for a new file") }})
		if err != nil {
			t.Fatalf("%s: Open = %v", name, err)
		}
		if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("x")); return err }); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
}

// An inspect error is returned as is and the file is not written: a file
// of another program stays byte for byte as it was, even when bbolt would
// otherwise have rewritten a damaged meta page of it.
func TestOpenInspectRefusesUntouched(t *testing.T) {
	errForeign := errors.New("not mine")
	for _, damage := range []bool{false, true} {
		path := dataFile(t, 4096)
		if damage {
			zeroMeta(t, path, 0, 4096)
		}
		before, _ := os.ReadFile(path)
		_, err := Open(path, Options{Bolt: testBolt, Inspect: func(*bolt.Tx) error { return errForeign }})
		if err != errForeign {
			t.Fatalf("damaged meta %v: Open = %v, want the inspect error as is", damage, err)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
			t.Fatalf("damaged meta %v: the refused file was modified", damage)
		}
	}
}

func TestOpenLocked(t *testing.T) {
	path := dataFile(t, 4096)
	db, err := Open(path, Options{Bolt: testBolt})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = Open(path, Options{Bolt: testBolt})
	if !errors.Is(err, ErrLocked) || !errors.Is(err, berrors.ErrTimeout) {
		t.Fatalf("second Open = %v, want ErrLocked wrapping bbolt's timeout", err)
	}
}

func TestOpenNotBoltUntouched(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.txt")
	text := bytes.Repeat([]byte("my notes, not a database\n"), 1000)
	os.WriteFile(path, text, 0o600)
	if _, err := Open(path, Options{Bolt: testBolt}); !errors.Is(err, ErrNotBolt) {
		t.Fatalf("Open = %v, want ErrNotBolt", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(text, after) {
		t.Fatal("the file was modified")
	}
	if _, err := Open(path, Options{Bolt: &bolt.Options{ReadOnly: true}}); err == nil || !strings.Contains(err.Error(), "ReadOnly") {
		t.Fatalf("Open with ReadOnly = %v, want a refusal naming ReadOnly", err)
	}
}

// zeroMeta zeroes meta page i of a file of the given page size.
func zeroMeta(t *testing.T, path string, i, pageSize int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, pageSize), int64(i*pageSize)); err != nil {
		t.Fatal(err)
	}
}

// A file with one damaged meta page opens on the other one, with its data
// intact; Open rewrites the damaged page (so bbolt's own check passes and
// the file has two good meta pages again) and logs it. With both damaged,
// Open reports ErrDamaged in words and leaves the file alone.
func TestOpenDamagedMetaPages(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string, pageSize int)
		ok     bool
	}{
		{"meta page 0 zeroed", func(t *testing.T, p string, ps int) { zeroMeta(t, p, 0, ps) }, true},
		{"meta page 1 zeroed", func(t *testing.T, p string, ps int) { zeroMeta(t, p, 1, ps) }, true},
		{"meta page 0 checksum", func(t *testing.T, p string, ps int) { flip(t, p, int64(metaOffset+20)) }, true},
		{"meta page 1 page header", func(t *testing.T, p string, ps int) { flip(t, p, int64(ps+8)) }, true},
		{"both zeroed", func(t *testing.T, p string, ps int) { zeroMeta(t, p, 0, ps); zeroMeta(t, p, 1, ps) }, false},
	}
	for _, pageSize := range []int{4096, 16384} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/page-%d", tt.name, pageSize), func(t *testing.T) {
				path := dataFile(t, pageSize)
				tt.damage(t, path, pageSize)
				before, _ := os.ReadFile(path)
				var log bytes.Buffer
				db, err := Open(path, Options{Bolt: testBolt, Logger: slog.New(slog.NewTextHandler(&log, nil))})
				if !tt.ok {
					if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "both meta pages") {
						t.Fatalf("Open = %v, want ErrDamaged saying both meta pages are unreadable", err)
					}
					if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
						t.Fatal("the damaged file was modified")
					}
					return
				}
				if err != nil {
					t.Fatalf("Open = %v", err)
				}
				checkData(t, db)
				db.Close()
				if !strings.Contains(log.String(), "rewrote it from the other one") {
					t.Fatalf("no warning logged: %q", log.String())
				}
				f, _ := os.Open(path)
				st, _ := f.Stat()
				mp, err := readMeta(f, st.Size())
				f.Close()
				if err != nil || mp.needsRepair() || mp.invalid[0] || mp.invalid[1] {
					t.Fatalf("after Open: meta pages %+v, %v", mp, err)
				}
			})
		}
	}
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	f.ReadAt(b[:], off)
	b[0] ^= 0x5a
	f.WriteAt(b[:], off)
}

// A file whose meta pages disagree with its size, or whose page tree is
// damaged, is ErrDamaged from Open as from Verify, and bbolt never opens
// it read-write.
func TestOpenDamagedTree(t *testing.T) {
	path := dataFile(t, 4096)
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	var hdr [8]byte
	binary.LittleEndian.PutUint64(hdr[:], 12345)
	// Page 3 onwards holds the tree: break one page's own ID.
	st, _ := f.Stat()
	for pg := int64(2); pg*4096 < st.Size(); pg++ {
		f.WriteAt(hdr[:], pg*4096)
	}
	f.Close()
	before, _ := os.ReadFile(path)
	if _, err := Open(path, Options{Bolt: testBolt}); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Open = %v, want ErrDamaged", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("the damaged file was modified")
	}
}
