package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "pi-agent: %v: stopping (again to quit at once)\n", sig)
		cancel(stopSignal{sig})
		sig = <-sigs
		fmt.Fprintf(os.Stderr, "pi-agent: %v again: quitting\n", sig)
		os.Exit(exitCodeOf(sig))
	}()
	code := cli(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	signal.Stop(sigs)
	cancel(nil)
	os.Exit(code)
}

// stopSignal is the cause of the context's end when a signal stopped the
// command. It matches context.Canceled.
type stopSignal struct{ sig os.Signal }

func (s stopSignal) Error() string { return "pi-agent: " + s.sig.String() }

// Is matches context.Canceled.
func (s stopSignal) Is(target error) bool { return target == context.Canceled }

// exitCodeOf is the shell's code for a process ended by sig: 128 + signal.
func exitCodeOf(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return exitError
}
