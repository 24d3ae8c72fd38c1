//go:build !unix

package boundedread

import (
	"io/fs"
	"os"
)

// openNonblock refuses non-regular files by their type before opening
// them: without O_NONBLOCK that is the best this platform allows.
func openNonblock(path string) (*os.File, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &NotRegularError{Path: path, Mode: fi.Mode() & fs.ModeType}
	}
	return os.Open(path)
}
