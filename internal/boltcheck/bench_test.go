package boltcheck

import (
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// buildFile writes n values of size bytes into a bbolt file, in batches.
func buildFile(b *testing.B, n, size int) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bench.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	val := make([]byte, size)
	for i := 0; i < n; i += 1000 {
		err := db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("pages"))
			if err != nil {
				return err
			}
			for j := i; j < min(n, i+1000); j++ {
				var k [8]byte
				binary.BigEndian.PutUint64(k[:], uint64(j))
				if err := bk.Put(k[:], val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkVerify measures Verify against what it replaced at open: bbolt's
// read-only open and Tx.Check, on a file of many small values and on a
// pager-like file of 256 KiB values.
func BenchmarkVerify(b *testing.B) {
	for _, tc := range []struct {
		name    string
		n, size int
	}{
		{"100k-values-of-200B", 100_000, 200},
		{"2k-values-of-256KiB", 2_000, 256 << 10},
	} {
		path := buildFile(b, tc.n, tc.size)
		b.Run(tc.name+"/verify", func(b *testing.B) {
			for b.Loop() {
				if err := Verify(path, time.Second, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/bbolt-check", func(b *testing.B) {
			for b.Loop() {
				db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
				if err != nil {
					b.Fatal(err)
				}
				err = db.View(func(tx *bolt.Tx) error {
					for e := range tx.Check() {
						return e
					}
					return nil
				})
				db.Close()
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
