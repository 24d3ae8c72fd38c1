package disk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cemaf-go/cemaf/disk"
	"github.com/cemaf-go/cemaf/limit"
)

// A Throttler caps the write rate of everything it wraps; here an
// in-memory buffer stands in for an SD card.
func ExampleThrottler_Writer() {
	th, err := disk.NewThrottler(disk.Options{WriteMBps: 10})
	if err != nil {
		fmt.Println(err)
		return
	}
	var card bytes.Buffer
	w := th.Writer(context.Background(), &card)
	if _, err := io.Copy(w, strings.NewReader("sensor log line\n")); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(card.String())
	fmt.Println("limit:", th.WriteMBps(), "MB/s")
	// Output:
	// sensor log line
	// limit: 10 MB/s
}

// WriteAtomic writes a checkpoint so that a power cut leaves either the old
// file or the whole new one; a failing encoder leaves the old file alone.
func ExampleThrottler_WriteAtomic() {
	dir, err := os.MkdirTemp("", "checkpoint")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	name := filepath.Join(dir, "run.json")

	th, _ := disk.NewThrottler(disk.Options{WriteMBps: 5})
	err = th.WriteAtomic(context.Background(), name, 0o600, func(w io.Writer) error {
		return json.NewEncoder(w).Encode(map[string]int{"done": 3})
	})
	fmt.Println("first write:", err)
	err = th.WriteAtomic(context.Background(), name, 0o600, func(w io.Writer) error {
		return errors.New("encoder failed")
	})
	fmt.Println("second write:", strings.ReplaceAll(err.Error(), dir, "DIR"))
	b, _ := os.ReadFile(name)
	fmt.Print("file: ", string(b))
	// Output:
	// first write: <nil>
	// second write: disk: writing DIR/run.json: encoder failed
	// file: {"done":3}
}

// A write that cannot finish before the deadline at the configured rate
// fails at once with a typed limit error, writing nothing.
func ExampleThrottler_WaitWrite() {
	th, _ := disk.NewThrottler(disk.Options{WriteMBps: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := th.WaitWrite(ctx, 50*disk.BytesPerMB)
	var le *limit.Error
	fmt.Println(errors.Is(err, context.DeadlineExceeded), errors.As(err, &le) && le.Kind == limit.DiskIO)
	// Output: true true
}

// SetIOPriority lowers the process's I/O class, early in main, so that
// interactive services keep the SD card; it is a best-effort hint. (Not run
// as a test: it would change the test process's priority.)
func ExampleSetIOPriority() {
	p := disk.IOPriority{Class: disk.IOClassBestEffort, Level: 7}
	if err := disk.SetIOPriority(p); err != nil {
		fmt.Println("I/O priority hint not applied:", err)
	}
}
