//go:build !linux

package disk

import (
	"errors"
	"fmt"
)

// SetIOPriority is a Linux feature; elsewhere it validates p and does
// nothing (the hint is best effort everywhere).
func SetIOPriority(p IOPriority) error { return p.validate() }

// SetThreadIOPriority is a Linux feature; elsewhere it validates p and does
// nothing.
func SetThreadIOPriority(p IOPriority) error { return p.validate() }

// ThreadIOPriority is a Linux feature; elsewhere it returns an error
// wrapping errors.ErrUnsupported.
func ThreadIOPriority() (IOPriority, error) {
	return IOPriority{}, fmt.Errorf("disk: ThreadIOPriority: %w", errors.ErrUnsupported)
}
