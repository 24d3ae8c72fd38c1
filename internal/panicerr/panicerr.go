// Package panicerr is the module's one shape for a panic in user code
// turned into an error: the value passed to panic, the stack where it was
// raised, and the operation that panicked. Packages export it under their
// own name as a type alias (executor.PanicError, throttle.PanicError), so
// errors.As with either matches every such error of the module.
package panicerr

import (
	"fmt"
	"runtime/debug"
)

// Error is a recovered panic. The zero value is not useful; Call makes one.
type Error struct {
	// Op names what panicked, such as "Breaker.Do", "Gate.Wait" or
	// "Node.Run". Empty when unknown.
	Op string
	// Value is the value passed to panic.
	Value any
	// Stack is the stack of the panicking goroutine, as debug.Stack formats
	// it, taken where the panic was recovered. Nil when not captured.
	Stack []byte
}

// Error returns "<Op>: panic: <value>", or "panic: <value>" without Op.
func (e *Error) Error() string {
	if e.Op == "" {
		return fmt.Sprintf("panic: %v", e.Value)
	}
	return fmt.Sprintf("%s: panic: %v", e.Op, e.Value)
}

// Unwrap returns the panic value when it is an error, so that errors.Is and
// errors.As see through a panic(err).
func (e *Error) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Call runs fn and returns its error, or an *Error naming op when fn
// panics. A goroutine that exits with runtime.Goexit inside fn is not a
// panic: Call lets it exit. Cost: one deferred closure; the stack is read
// only on a panic.
func Call(op string, fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &Error{Op: op, Value: v, Stack: debug.Stack()}
		}
	}()
	return fn()
}
