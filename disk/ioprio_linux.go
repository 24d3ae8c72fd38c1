package disk

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// SetIOPriority sets the I/O priority of every thread of the process, as a
// best-effort hint: Linux keeps I/O priorities per thread and a Go program
// runs goroutines on many threads, so it walks /proc/self/task and calls
// ioprio_set(2) on each. Threads the runtime creates later inherit the
// priority of the thread that creates them. It only affects I/O schedulers
// that honour priorities (BFQ; mq-deadline only orders classes; "none"
// ignores them). Lowering the priority needs no privilege. Threads started
// while it runs may keep the old priority: call it early, from main.
//
// It returns an error for an invalid p, when /proc is not mounted, or when
// the kernel refuses; threads that exit during the walk are ignored.
// Outside Linux it validates p and does nothing.
func SetIOPriority(p IOPriority) error {
	if err := p.validate(); err != nil {
		return err
	}
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("disk: SetIOPriority: listing threads: %w", err)
	}
	set := 0
	for _, e := range entries {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := ioprioSet(tid, p); err != nil {
			if errors.Is(err, unix.ESRCH) {
				continue
			}
			return fmt.Errorf("disk: SetIOPriority(%v) on thread %d: %w", p, tid, err)
		}
		set++
	}
	if set == 0 {
		return fmt.Errorf("disk: SetIOPriority(%v): no thread found in /proc/self/task", p)
	}
	return nil
}

// SetThreadIOPriority sets the I/O priority of the calling OS thread only.
// Use it from a goroutine locked to its thread (runtime.LockOSThread) that
// does the I/O, for example a background compaction. Outside Linux it
// validates p and does nothing.
func SetThreadIOPriority(p IOPriority) error {
	if err := p.validate(); err != nil {
		return err
	}
	if err := ioprioSet(0, p); err != nil {
		return fmt.Errorf("disk: SetThreadIOPriority(%v): %w", p, err)
	}
	return nil
}

// ThreadIOPriority returns the I/O priority of the calling OS thread.
func ThreadIOPriority() (IOPriority, error) {
	v, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, 0, 0)
	if errno != 0 {
		return IOPriority{}, fmt.Errorf("disk: ioprio_get: %w", errno)
	}
	return priorityFromValue(int(v)), nil
}

func ioprioSet(tid int, p IOPriority) error {
	_, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), uintptr(p.value()))
	if errno != 0 {
		return errno
	}
	return nil
}
