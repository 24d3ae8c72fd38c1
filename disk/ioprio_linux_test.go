package disk_test

import (
	"errors"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cemaf-go/cemaf/disk"
)

// skipIfUnavailable skips when the kernel (or an emulator) does not offer
// ioprio_set.
func skipIfUnavailable(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
		t.Skipf("ioprio_set unavailable here: %v", err)
	}
}

func TestThreadIOPriority(t *testing.T) {
	setErr := make(chan error, 1)
	go func() {
		// The thread stays locked and exits with the goroutine, so the
		// changed priority does not leak into other tests.
		runtime.LockOSThread()
		for _, p := range []disk.IOPriority{
			{Class: disk.IOClassBestEffort, Level: 7},
			{Class: disk.IOClassIdle},
			{Class: disk.IOClassBestEffort, Level: 0},
		} {
			if err := disk.SetThreadIOPriority(p); err != nil {
				setErr <- err
				return
			}
			got, err := disk.ThreadIOPriority()
			if err != nil || got != p {
				t.Errorf("ThreadIOPriority() = %v, %v; want %v", got, err, p)
			}
		}
		setErr <- nil
	}()
	if err := <-setErr; err != nil {
		skipIfUnavailable(t, err)
		t.Fatal(err)
	}
}

func TestSetIOPriorityAllThreads(t *testing.T) {
	p := disk.IOPriority{Class: disk.IOClassBestEffort, Level: 4} // the default level at nice 0
	if err := disk.SetIOPriority(p); err != nil {
		skipIfUnavailable(t, err)
		t.Fatal(err)
	}
	defer disk.SetIOPriority(disk.IOPriority{})
	// Whatever thread this goroutine lands on carries the priority.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if got, err := disk.ThreadIOPriority(); err != nil || got != p {
		t.Errorf("ThreadIOPriority() = %v, %v; want %v", got, err, p)
	}
}
