package paging_test

import (
	"encoding/binary"
	"hash/crc32"
	"sync"
	"testing"

	"github.com/cemaf-go/cemaf/paging"
)

// hotValue is a one-page value that carries its key, its version and a
// checksum of itself, so that a reader can tell a torn or recycled buffer.
func hotValue(k, version int) []byte {
	v := corpus(uint64(k*1000+version), 3*kib)
	binary.LittleEndian.PutUint32(v[0:], uint32(k))
	binary.LittleEndian.PutUint32(v[4:], uint32(version))
	binary.LittleEndian.PutUint32(v[len(v)-4:], crc32.ChecksumIEEE(v[:len(v)-4]))
	return v
}

func checkHotValue(v []byte, k int) bool {
	return len(v) == 3*kib && binary.LittleEndian.Uint32(v) == uint32(k) &&
		binary.LittleEndian.Uint32(v[len(v)-4:]) == crc32.ChecksumIEEE(v[:len(v)-4])
}

// TestHotPathUnderEviction runs lock-free Get hits against constant
// eviction, page-ins, replacement and deletion on a budget of 16 pages:
// every buffer Get returns is a complete version of its key, and it still
// is after the pager has evicted and recycled pages many times over (a
// buffer handed out is never reused). Run it with -race.
func TestHotPathUnderEviction(t *testing.T) {
	leakCheck(t)
	p := open(t, small(""))
	const keys = 48
	for k := range keys {
		if err := p.Put(key(k), hotValue(k, 0)); err != nil {
			t.Fatal(err)
		}
	}
	rounds := 3000
	if testing.Short() {
		rounds = 500
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for r := range 3 {
		wg.Go(func() {
			var held [][]byte
			var heldKeys []int
			for i := range rounds {
				k := (i*7 + r*13) % keys
				v, err := p.Get(key(k))
				if err != nil {
					continue // deleted meanwhile
				}
				if !checkHotValue(v, k) {
					errs <- "Get returned a torn value"
					return
				}
				if i%50 == 0 {
					held, heldKeys = append(held, v), append(heldKeys, k)
				}
			}
			for i, v := range held {
				if !checkHotValue(v, heldKeys[i]) {
					errs <- "a buffer returned by Get changed afterwards"
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range rounds {
			k := i % keys
			switch i % 5 {
			case 0:
				_ = p.Delete(key(k))
			default:
				if err := p.Put(key(k), hotValue(k, i)); err != nil {
					errs <- err.Error()
					return
				}
			}
			if i%97 == 0 {
				if _, err := p.Evict(16 * kib); err != nil {
					errs <- err.Error()
					return
				}
			}
		}
	})
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if err := p.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Hits == 0 {
		t.Fatalf("no hits: %+v", s)
	}
}

// The lock-free hit path counts in Stats and AccessCount like the locked
// one, and a value replaced or deleted is never served from it.
func TestHotPathCountsAndForgets(t *testing.T) {
	p := open(t, paging.Options{MemoryLimitMB: 1})
	if err := p.Put("k", []byte("one")); err != nil {
		t.Fatal(err)
	}
	before, acc := p.Stats().Hits, p.AccessCount()
	for range 10 {
		mustGet(t, p, "k", []byte("one"))
	}
	if s := p.Stats(); s.Hits != before+10 || p.AccessCount() != acc+10 {
		t.Fatalf("hits %d → %d, accesses %d → %d, want +10 each", before, s.Hits, acc, p.AccessCount())
	}
	p.Put("k", []byte("two"))
	mustGet(t, p, "k", []byte("two"))
	p.Delete("k")
	if _, err := p.Get("k"); err == nil {
		t.Fatal("Get of a deleted key succeeded")
	}
	p.Close()
	if _, err := p.Get("gone"); err != paging.ErrClosed {
		t.Fatalf("Get after Close = %v", err)
	}
}
