package throttle

import "github.com/cemaf-go/cemaf/internal/panicerr"

// PanicError is returned in place of a panic raised by user code that a
// function of this package ran (the fn of Do or Protected, a SampleSource).
// No panic escapes the package. Op names what panicked (for example
// "Breaker.Do"), Value is the value passed to panic and Stack where it was
// raised; Unwrap returns Value when it is an error. It is the module's one
// panic error type: executor.PanicError is the same type.
type PanicError = panicerr.Error

// callProtected runs fn, turning a panic into a *PanicError.
func callProtected(op string, fn func() error) error { return panicerr.Call(op, fn) }
