// Package boltcheck verifies a bbolt file before it is opened for writing,
// without letting a damaged file crash the process, and opens it.
//
// # Model
//
// bbolt trusts the file it maps: a damaged page can make it panic on a
// goroutine of its own (Tx.Check, the freelist rebuild of NoFreelistSync)
// or read past the end of the mapping, a memory fault that no recover
// catches. Verify therefore reads the file itself, with ReadAt, where a bad
// offset is an error and not a fault: it finds and checksums the meta
// pages as bbolt does, bounds-checks the high-water mark and the freelist,
// and walks the page tree from the root of the meta page bbolt will use
// (branch and leaf pages, inline and nested buckets), checking every page
// ID, element, key and value extent, the key order, and that no page is
// reached twice or is both in use and free. Values are bounds-checked, not
// read, so the walk costs about one read per page of keys. Only then does
// it open the file with bbolt, read-only, to run the caller's inspect
// function (which checks the caller's own format marks). A file that
// passes can be opened read-write safely.
//
// Open is the one way the module opens an existing bbolt file read-write:
// Verify, then bbolt's read-write open with the caller's options, with
// bbolt's errors mapped onto ErrLocked, ErrNotBolt and ErrDamaged (the
// cause wrapped too) and a panic turned into ErrDamaged. bbolt keeps two
// meta pages and uses the valid one with the higher transaction ID, so a
// file whose other meta page is damaged (a torn write at power loss) is
// usable; Open then rewrites the damaged meta page from the good one, so
// that bbolt's own consistency check passes again, and logs it.
//
// A file can still be damaged or truncated after it was opened. Guard
// runs a use of an open file so that both a panic of bbolt's and a memory
// fault on its mapping become an error, the fault named as one.
//
// Open, Verify and Inspect start one short-lived goroutine each to run the
// inspect function (a memory fault on it becomes an error) and wait for
// it. None keeps state between calls; all are safe for concurrent use on
// different files.
//
// # Caveats
//
//   - The meta layout parsed here is bbolt's version 2 format on
//     little-endian machines (amd64, arm64, arm), the only ones the module
//     builds for.
//   - A file falling back to its older meta page has lost the transaction
//     committed last, if the damaged page held it: that is bbolt's design.
//   - Verify reads the file while the caller does not hold bbolt's lock: a
//     process that writes it between Verify and the read-write open is not
//     guarded against (bbolt's lock keeps writers out once Open has it).
package boltcheck
