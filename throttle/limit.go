package throttle

import "github.com/cemaf-go/cemaf/limit"

// LimitError is the one typed error the module returns when a resource limit
// is hit: the kind of resource, what it applies to, the current value, the
// limit and their unit. Every package of the module (paging, thermal, disk,
// the pi-agent's admission control) returns this same type, so one
// errors.As(err, &le) with le *throttle.LimitError works everywhere, and
// errors.Is(err, throttle.ErrLimitExceeded) matches any of them.
type LimitError = limit.Error

// LimitKind names the resource a LimitError is about.
type LimitKind = limit.Kind

// ErrLimitExceeded is matched by every *LimitError.
var ErrLimitExceeded = limit.ErrExceeded

// The kinds of limit reported in LimitError.Kind.
const (
	KindMemory      = limit.Memory
	KindCPU         = limit.CPU
	KindTemperature = limit.Temperature
	KindDisk        = limit.Disk
	KindDiskIO      = limit.DiskIO
	KindSwap        = limit.Swap
	KindConnections = limit.Connections
	KindMessageSize = limit.MessageSize
	KindQueue       = limit.Queue
	KindFileSize    = limit.FileSize
	KindPressure    = limit.Pressure
)
