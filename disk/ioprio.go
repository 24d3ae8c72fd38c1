package disk

import (
	"fmt"
	"strconv"
)

// IOClass is a Linux I/O scheduling class (see ioprio_set(2)).
type IOClass int

// The I/O classes a process may choose without privileges.
const (
	// IOClassNone resets to the kernel default, derived from the nice
	// value (best-effort, level (nice+20)/5).
	IOClassNone IOClass = 0
	// IOClassBestEffort shares the disk with other best-effort processes;
	// Level 0 (highest) to 7 (lowest) orders them.
	IOClassBestEffort IOClass = 2
	// IOClassIdle gets the disk only when no other process uses it.
	IOClassIdle IOClass = 3
)

// String returns "none", "best-effort" or "idle".
func (c IOClass) String() string {
	switch c {
	case IOClassNone:
		return "none"
	case IOClassBestEffort:
		return "best-effort"
	case IOClassIdle:
		return "idle"
	case 1:
		return "realtime"
	}
	return "IOClass(" + strconv.Itoa(int(c)) + ")"
}

// IOPriority is an I/O scheduling class and, for IOClassBestEffort, a level
// from 0 (highest) to 7 (lowest). It is the Go counterpart of choosing an
// I/O scheduler: rather than change the device's scheduler for everyone, the
// agent lowers its own I/O priority so that the rest of the system stays
// responsive. The zero value is IOClassNone.
type IOPriority struct {
	Class IOClass
	Level int
}

// String returns "best-effort/7", "idle" or "none".
func (p IOPriority) String() string {
	if p.Class == IOClassBestEffort {
		return p.Class.String() + "/" + strconv.Itoa(p.Level)
	}
	return p.Class.String()
}

const (
	ioprioClassShift = 13
	ioprioWhoProcess = 1
)

func (p IOPriority) validate() error {
	switch p.Class {
	case IOClassNone, IOClassIdle:
		if p.Level != 0 {
			return fmt.Errorf("disk: IOPriority.Level = %d: must be 0 for class %v", p.Level, p.Class)
		}
	case IOClassBestEffort:
		if p.Level < 0 || p.Level > 7 {
			return fmt.Errorf("disk: IOPriority.Level = %d: must be in [0, 7] for class best-effort", p.Level)
		}
	default:
		return fmt.Errorf("disk: IOPriority.Class = %v: must be none, best-effort or idle", p.Class)
	}
	return nil
}

// value encodes p as the kernel's ioprio value.
func (p IOPriority) value() int {
	return int(p.Class)<<ioprioClassShift | p.Level
}

// priorityFromValue decodes a kernel ioprio value.
func priorityFromValue(v int) IOPriority {
	return IOPriority{Class: IOClass(v >> ioprioClassShift), Level: v & (1<<ioprioClassShift - 1)}
}
