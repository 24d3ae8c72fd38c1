package throttle

import "fmt"

// PanicError is returned in place of a panic raised by user code that a
// function of this package ran (the fn of Do or Protected, a SampleSource).
// No panic escapes the package.
type PanicError struct {
	// Op names what panicked, for example "Breaker.Do".
	Op string
	// Value is the value passed to panic.
	Value any
}

// Error returns "throttle: <Op>: panic: <value>".
func (e *PanicError) Error() string {
	return fmt.Sprintf("throttle: %s: panic: %v", e.Op, e.Value)
}

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// callProtected runs fn, turning a panic into a *PanicError.
func callProtected(op string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Op: op, Value: r}
		}
	}()
	return fn()
}
