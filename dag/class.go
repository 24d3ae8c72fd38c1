package dag

import (
	"fmt"
	"strings"
)

// Class says what a node's work holds while it runs, which decides which of
// the executor's concurrency limits bounds it. The zero value is CPU.
type Class uint8

const (
	// CPU work computes on this device: parsing, chunking, embedding with
	// a local model. It holds a core while it runs. The default.
	CPU Class = iota
	// IO work waits on something else: an LLM or HTTP call, a remote node,
	// disk. It holds a connection or a file, rarely a core, so many more
	// may run at once.
	IO
)

// String returns "cpu" or "io".
func (c Class) String() string {
	switch c {
	case CPU:
		return "cpu"
	case IO:
		return "io"
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// ParseClass parses "cpu" or "io" (any case, surrounding space ignored). The
// error names the value and wraps ErrInvalidSetting.
func ParseClass(s string) (Class, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "cpu":
		return CPU, nil
	case "io":
		return IO, nil
	}
	return 0, fmt.Errorf("dag: class %q: %w: want \"cpu\" or \"io\"", s, ErrInvalidSetting)
}

// MarshalText encodes the class as its name; it fails for an unknown class.
func (c Class) MarshalText() ([]byte, error) {
	if c > IO {
		return nil, fmt.Errorf("dag: %v: %w: want dag.CPU or dag.IO", c, ErrInvalidSetting)
	}
	return []byte(c.String()), nil
}

// UnmarshalText decodes a class name (see ParseClass).
func (c *Class) UnmarshalText(b []byte) error {
	v, err := ParseClass(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}
