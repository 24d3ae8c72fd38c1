package limit

import (
	"errors"
	"strconv"
	"strings"
)

// Kind names the resource whose limit was hit.
type Kind string

// The kinds of limit the module reports.
const (
	Memory      Kind = "memory"
	CPU         Kind = "cpu"
	Temperature Kind = "temperature"
	Disk        Kind = "disk"
	DiskIO      Kind = "disk_io"
	Swap        Kind = "swap"
	Connections Kind = "connections"
	MessageSize Kind = "message_size"
	Queue       Kind = "queue"
	FileSize    Kind = "file_size"
	Pressure    Kind = "pressure"
)

// ErrExceeded is the sentinel every *Error matches with errors.Is.
var ErrExceeded = errors.New("limit exceeded")

// Error reports a resource limit that was exceeded. Current and Limit are in
// Unit (for example "%", "MB", "bytes", "°C"). Subject names what the limit
// applies to when there is more than one candidate: a path, a signal, a key.
//
// An *Error matches ErrExceeded with errors.Is and is extracted with errors.As.
type Error struct {
	Kind    Kind    `json:"kind"`
	Subject string  `json:"subject,omitempty"`
	Current float64 `json:"current"`
	Limit   float64 `json:"limit"`
	Unit    string  `json:"unit,omitempty"`
	// Detail is an optional human explanation appended to the message.
	Detail string `json:"detail,omitempty"`
}

// Error formats the limit as "memory limit exceeded: 3700 MB > 3584 MB".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Kind))
	if e.Subject != "" {
		b.WriteString(" (")
		b.WriteString(e.Subject)
		b.WriteString(")")
	}
	b.WriteString(" limit exceeded: ")
	b.WriteString(formatValue(e.Current, e.Unit))
	b.WriteString(" > ")
	b.WriteString(formatValue(e.Limit, e.Unit))
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// Is reports whether target is ErrExceeded.
func (e *Error) Is(target error) bool { return target == ErrExceeded }

func formatValue(v float64, unit string) string {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if v != float64(int64(v)) {
		s = strconv.FormatFloat(v, 'f', 1, 64)
	}
	switch unit {
	case "":
		return s
	case "%":
		return s + "%"
	default:
		return s + " " + unit
	}
}
