//go:build !linux

package disk

import (
	"errors"
	"fmt"
)

// Stat is implemented on Linux only; elsewhere it returns an error wrapping
// errors.ErrUnsupported.
func Stat(path string) (Usage, error) {
	return Usage{}, fmt.Errorf("disk: statfs %s: %w", path, errors.ErrUnsupported)
}
