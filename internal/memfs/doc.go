// Package memfs tells whether a directory lives in RAM (a tmpfs or ramfs
// mount), where a file spooled "to disk" takes memory instead: on many
// boards /tmp is one. It has no state and starts no goroutines.
package memfs
