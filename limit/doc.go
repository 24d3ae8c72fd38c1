// Package limit defines the one error the whole module returns when a
// resource limit is hit: memory, CPU, temperature, disk, connections, message
// size, queue length and the others listed as Kind constants.
//
// # Model
//
// An *Error carries the Kind of resource, the Subject it applies to (a
// signal name, a path, a State key, a client address), the Current value, the
// Limit and their Unit ("%", "MB", "bytes", "°C", ...). Every *Error matches
// ErrExceeded with errors.Is, and errors.As extracts it through any wrapping,
// including errors.Join and the composite errors of packages throttle and
// executor:
//
//	var le *limit.Error
//	if errors.As(err, &le) && le.Kind == limit.Temperature {
//		// back off until the board cools down
//	}
//
// The package imports nothing of the module, so that every package, from
// paging at the bottom of the dependency order to the pi-agent at the top,
// can return the same type.
//
// # Units
//
// Current and Limit are float64 in Unit; MB is 2^20 bytes wherever the module
// uses it. An Error is a plain value: it owns no resource and is safe to copy
// and to share between goroutines once built.
package limit
