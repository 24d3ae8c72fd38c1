// Command pi-agent is the example agent of cemaf: questions answered over a
// document corpus by a DAG that pauses, slows down and pages its context when
// the device runs hot, short of memory or short of disk.
//
// Usage:
//
//	pi-agent [run] [flags]   answer a question over a corpus (the default)
//	pi-agent status [flags]  report the device's resources, ladders and mode
//	pi-agent graph [flags]   print the agent's DAG (dot or mermaid)
//	pi-agent runs [flags]    list unfinished and recent runs
//	pi-agent serve [flags]   serve runs over HTTP
//	pi-agent config [flags]  print the effective configuration
//	pi-agent help [command]  print the flags of every command (or of one)
//
// The first SIGINT or SIGTERM stops the command: a run stops before its
// next node and can be resumed, serve drains. A second one ends the process
// at once.
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
