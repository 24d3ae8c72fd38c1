//go:build !linux

package paging

// dropMapped does nothing outside Linux.
func dropMapped(uintptr, int64) {}
