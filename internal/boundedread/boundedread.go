// Package boundedread reads files that a user or the system controls
// (documents, sysfs and procfs attributes, cgroup files, configuration
// files) without letting them take the process down: every read has a
// bound, and files that are not regular files (FIFOs, character and block
// devices, sockets, directories) are refused before a byte is read, so that
// a FIFO cannot block the caller and /dev/zero cannot fill its memory.
//
// Files are opened with O_NONBLOCK, so opening a FIFO never waits for a
// writer, and the type is taken from fstat on the opened descriptor, so a
// symlink is judged by what it points to at the moment it is read (a link
// to /dev/zero is refused, a link to a regular file is read within the
// bound). sysfs and procfs attributes are regular files and pass.
//
// # Caveats
//
//   - A read of a regular file can still block inside a kernel driver (a
//     hung I²C sensor behind a sysfs attribute, a dead network file system);
//     such a read cannot be interrupted from Go without leaving a thread
//     behind, and is not given a deadline here.
//   - The size bound is checked while reading, not from the size fstat
//     reports: procfs and sysfs files report 0 or 4096 whatever they hold.
package boundedread

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/cemaf-go/cemaf/limit"
)

// ErrNotRegular is matched by the error of a read refused because the file
// is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// NotRegularError names the file that was refused and what it is.
type NotRegularError struct {
	Path string      // the path as given
	Mode fs.FileMode // the type of the file it resolved to
}

// Error says what the file is: "/sys/.../temp is a named pipe (FIFO), not a
// regular file".
func (e *NotRegularError) Error() string {
	return fmt.Sprintf("%s is %s, not a regular file", e.Path, DescribeMode(e.Mode))
}

// Is matches ErrNotRegular.
func (e *NotRegularError) Is(target error) bool { return target == ErrNotRegular }

// DescribeMode names the type of a file that is not regular, for messages:
// "a named pipe (FIFO)", "a character device", "a socket"…
func DescribeMode(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeIrregular != 0:
		return "an irregular file"
	}
	return "a " + m.Type().String() + " file"
}

// Open opens the regular file at path for reading, following symlinks, and
// refuses (with a *NotRegularError) anything else, without blocking on a
// FIFO. The caller reads and closes the file, and bounds what it reads.
func Open(path string) (*os.File, error) {
	f, err := openNonblock(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &NotRegularError{Path: path, Mode: fi.Mode()}
	}
	return f, nil
}

// ReadFile returns the content of the regular file at path. A file larger
// than max bytes is not returned: the error is a *limit.Error of kind
// limit.FileSize naming the path (its Current is the size fstat reports, or
// max+1 when the file grows while read or reports no size).
func ReadFile(path string, max int64) ([]byte, error) {
	return AppendFile(nil, path, max)
}

// AppendFile is ReadFile appending to dst, so that a caller can reuse one
// buffer for many small reads. On error it returns dst unchanged.
func AppendFile(dst []byte, path string, max int64) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return dst, err
	}
	defer f.Close()
	b, n, err := appendUpTo(dst, f, max+1)
	if err != nil {
		return dst, fmt.Errorf("read %s: %w", path, err)
	}
	if n > max {
		size := n
		if fi, err := f.Stat(); err == nil && fi.Size() > size {
			size = fi.Size()
		}
		return dst, &limit.Error{Kind: limit.FileSize, Subject: path, Current: float64(size), Limit: float64(max), Unit: "bytes"}
	}
	return b, nil
}

// AppendPrefix appends at most n bytes from the start of the regular file at
// path to dst. A longer file is not an error: the rest is not read. This is
// for files whose useful part is at the start (the first line of
// /proc/stat). On error it returns dst unchanged.
func AppendPrefix(dst []byte, path string, n int64) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return dst, err
	}
	defer f.Close()
	b, _, err := appendUpTo(dst, f, n)
	if err != nil {
		return dst, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

// appendUpTo reads r to EOF or until n bytes were read, appending to dst,
// and returns how many bytes it read.
func appendUpTo(dst []byte, r io.Reader, n int64) ([]byte, int64, error) {
	start := len(dst)
	for int64(len(dst)-start) < n {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		want := min(int64(cap(dst)-len(dst)), n-int64(len(dst)-start))
		m, err := r.Read(dst[len(dst) : len(dst)+int(want)])
		dst = dst[:len(dst)+m]
		if err == io.EOF {
			break
		}
		if err != nil {
			return dst[:start], 0, err
		}
	}
	return dst, int64(len(dst) - start), nil
}
