// Command pi-agent is the example agent of cemaf: questions answered over a
// document corpus by a DAG that pauses, slows down and pages its context when
// the device runs hot, short of memory or short of disk.
//
// Usage:
//
//	pi-agent [run] [flags]   answer a question over a corpus (the default)
//	pi-agent status [flags]  report the device's resources, breaker and mode
//	pi-agent graph [flags]   print the agent's DAG (dot or mermaid)
//	pi-agent runs [flags]    list unfinished and recent runs
//	pi-agent serve [flags]   serve runs over HTTP
//	pi-agent config [flags]  print the effective configuration
//
// Run "pi-agent help" or "pi-agent <command> -h" for the flags.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
