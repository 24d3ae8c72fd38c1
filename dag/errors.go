package dag

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors for graph validation. New returns them wrapped in
// *ValidationError (several joined with errors.Join when the graph has more
// than one problem), so errors.Is matches each and errors.As extracts the
// first.
var (
	ErrEmptyID           = errors.New("empty node ID")
	ErrDuplicateID       = errors.New("duplicate node ID")
	ErrUnknownDependency = errors.New("unknown dependency")
	ErrSelfDependency    = errors.New("node depends on itself")
	ErrCycle             = errors.New("cycle")
	ErrNoRunFunc         = errors.New("node has no Run function")
	ErrInvalidSetting    = errors.New("invalid node setting")
	ErrUnknownNode       = errors.New("unknown node")
)

// ValidationError describes one problem found by New. Err is one of the
// sentinels above.
type ValidationError struct {
	Err error
	// Node is the ID of the offending node ("" for an empty ID).
	Node string
	// Index is the position of the offending node in the list given to New.
	Index int
	// Other is the second name involved: the unknown dependency, or for a
	// duplicate the index of the first node with that ID (as text).
	Other string
	// Cycle is the cycle path for ErrCycle, first node repeated at the end;
	// "a -> b" means b depends on a.
	Cycle []string
	// Detail explains ErrInvalidSetting.
	Detail string
}

// Error names the offending nodes and the problem.
func (e *ValidationError) Error() string {
	switch e.Err {
	case ErrEmptyID:
		return fmt.Sprintf("dag: node #%d: %v", e.Index, e.Err)
	case ErrDuplicateID:
		return fmt.Sprintf("dag: %v %q (nodes #%s and #%d)", e.Err, e.Node, e.Other, e.Index)
	case ErrUnknownDependency:
		return fmt.Sprintf("dag: node %q depends on unknown node %q", e.Node, e.Other)
	case ErrSelfDependency:
		return fmt.Sprintf("dag: node %q depends on itself", e.Node)
	case ErrCycle:
		return "dag: cycle: " + strings.Join(e.Cycle, " -> ")
	case ErrNoRunFunc:
		return fmt.Sprintf("dag: node %q has no Run function", e.Node)
	case ErrInvalidSetting:
		return fmt.Sprintf("dag: node %q: %s", e.Node, e.Detail)
	}
	return fmt.Sprintf("dag: node %q: %v", e.Node, e.Err)
}

// Unwrap returns the sentinel (ErrCycle, ErrDuplicateID, …).
func (e *ValidationError) Unwrap() error { return e.Err }

func fieldError(field string, value any, want string) error {
	return fmt.Errorf("%s = %v: %s", field, value, want)
}

func unknownNode(id string) error {
	return fmt.Errorf("dag: %w %q", ErrUnknownNode, id)
}
