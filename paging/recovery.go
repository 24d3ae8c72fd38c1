package paging

import (
	"bytes"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
)

// recovery describes what opening the file found.
type recovery struct {
	unclean   bool // the previous owner did not Close
	discarded bool // the whole file was replaced by an empty one
	orphans   int  // page records of no value, deleted
	dropped   []string
	broken    []string // durable mode: values whose pages are missing, kept
}

// recover verifies a file that was not closed cleanly. bbolt's own
// consistency check runs first; if it fails, a cache-mode file is replaced
// by an empty one and a durable-mode file is reported as corrupt. Then
// orphan page records (of values whose header never committed) are deleted
// and values with missing pages are dropped (cache) or reported (durable).
// In cache mode every page is also decoded and checksummed, and values with
// a bad page are dropped.
func (s *store) recover(rec *recovery) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("paging: verify %s: %w: %v", s.path, ErrCorrupt, r)
		}
	}()
	var checkErr error
	_ = s.db.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			if checkErr == nil {
				checkErr = e
			}
		}
		return nil
	})
	if checkErr != nil {
		if s.mode == ModeDurable {
			return fmt.Errorf("paging: verify %s: %w: %w", s.path, ErrCorrupt, checkErr)
		}
		s.logger.Warn("paging: page file failed verification after an unclean shutdown; discarding it", "path", s.path, "err", checkErr)
		if err := s.closeDB(); err != nil {
			return fmt.Errorf("paging: discard %s: %w", s.path, err)
		}
		if err := os.Remove(s.path); err != nil {
			return fmt.Errorf("paging: discard %s: %w", s.path, err)
		}
		if err := s.create(); err != nil {
			return err
		}
		rec.discarded = true
		_, err := s.open()
		return err
	}
	fix := func(tx *bolt.Tx) error {
		values, pages := tx.Bucket(bucketValues), tx.Bucket(bucketPages)
		type hinfo struct {
			key   []byte
			h     header
			found int64
			bad   bool
		}
		byBlob := map[uint64]*hinfo{}
		var badHeaders [][]byte
		if err := values.ForEach(func(k, v []byte) error {
			h, err := decodeHeader(v)
			if err != nil {
				badHeaders = append(badHeaders, bytes.Clone(k))
				return nil
			}
			byBlob[h.blob] = &hinfo{key: bytes.Clone(k), h: h}
			return nil
		}); err != nil {
			return err
		}
		var orphans [][]byte
		c := pages.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			blob, idx, ok := parsePageKey(k)
			hi := byBlob[blob]
			if !ok || hi == nil || idx >= hi.h.npages() {
				orphans = append(orphans, bytes.Clone(k))
				continue
			}
			hi.found++
			if s.mode == ModeCache && !hi.bad {
				n := hi.h.psize
				if idx == hi.h.npages()-1 {
					n = hi.h.size - idx*hi.h.psize
				}
				if decodePage(v, make([]byte, n)) != nil {
					hi.bad = true
				}
			}
		}
		for _, k := range orphans {
			if err := pages.Delete(k); err != nil {
				return err
			}
		}
		rec.orphans = len(orphans)
		for _, k := range badHeaders {
			rec.dropped = append(rec.dropped, string(k[1:]))
			if err := values.Delete(k); err != nil {
				return err
			}
		}
		for blob, hi := range byBlob {
			if hi.found == hi.h.npages() && !hi.bad {
				continue
			}
			if s.mode == ModeDurable {
				rec.broken = append(rec.broken, string(hi.key[1:]))
				continue
			}
			rec.dropped = append(rec.dropped, string(hi.key[1:]))
			if err := values.Delete(hi.key); err != nil {
				return err
			}
			if err := deleteBlob(pages, blob); err != nil {
				return err
			}
		}
		return nil
	}
	return s.guard(true, func() error { return s.db.Update(fix) })
}
