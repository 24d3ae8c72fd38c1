package panicerr_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/internal/panicerr"
)

func TestCall(t *testing.T) {
	assert.NoError(t, panicerr.Call("ok", func() error { return nil }))
	assert.Equal(t, io.EOF, panicerr.Call("plain", func() error { return io.EOF }), "an error passes through unwrapped")

	err := panicerr.Call("Gate.Wait", func() error { panic("kaboom") })
	var pe *panicerr.Error
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "Gate.Wait", pe.Op)
	assert.Equal(t, "kaboom", pe.Value)
	assert.Equal(t, "Gate.Wait: panic: kaboom", err.Error())
	assert.Contains(t, string(pe.Stack), "panicerr_test.go", "the stack points at the panic")
	assert.Nil(t, pe.Unwrap(), "a non-error value unwraps to nil")

	err = panicerr.Call("Node.Run", func() error { panic(io.ErrUnexpectedEOF) })
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF, "an error value is unwrapped")

	var nilMap map[string]int
	err = panicerr.Call("", func() error { nilMap["x"] = 1; return nil })
	require.ErrorAs(t, err, &pe)
	assert.True(t, strings.HasPrefix(err.Error(), "panic: assignment to entry in nil map"), err.Error())
	var re interface{ RuntimeError() }
	assert.True(t, errors.As(err, &re), "a runtime error is unwrapped")
}
