package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/factories"
)

// exit codes
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError is an error in the command line: usage is printed, exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// command is one subcommand: its summary and how to build its flags (for
// help) .
type command struct {
	name    string
	summary string
	flags   func(stderr io.Writer) *cmdFlags
}

// commands lists the subcommands in the order help prints them. Read-only.
var commands = []command{
	{"run", "Answer a question over a corpus (the default command): the built-in corpus, or --docs DIR.",
		func(w io.Writer) *cmdFlags { return newRunFlags(w).cmdFlags }},
	{"status", "Report CPU, memory, swap, PSI, thermal zones, disk, every ladder and the mode.",
		func(w io.Writer) *cmdFlags { return newStatusFlags(w).cmdFlags }},
	{"graph", "Print the agent's DAG (--format dot|mermaid).",
		func(w io.Writer) *cmdFlags { return newGraphFlags(w).cmdFlags }},
	{"runs", "List unfinished and recent runs (resume one with pi-agent run --resume ID).",
		func(w io.Writer) *cmdFlags { return newRunsFlags(w).cmdFlags }},
	{"serve", "Serve runs over HTTP: POST /v1/runs, GET /healthz, /health/detailed, /metrics.",
		func(w io.Writer) *cmdFlags { return newServeFlags(w).cmdFlags }},
	{"config", "Print the effective configuration and where each value came from.",
		func(w io.Writer) *cmdFlags { return newConfigFlags(w).cmdFlags }},
	{"worker", "Run index shards and answers for the fleet's runs (--nats URL).",
		func(w io.Writer) *cmdFlags { return newWorkerFlags(w).cmdFlags }},
	{"hub", "Run the fleet's NATS server in this process (a pi-agent built with -tags hub).",
		func(w io.Writer) *cmdFlags { return newHubFlags(w).cmdFlags }},
}

const usageText = `pi-agent: answer questions over a document corpus on a Raspberry Pi or Jetson,
pausing, slowing down or paging when the device runs hot or short of memory.

Usage:
  pi-agent [run] [flags]    answer a question over a corpus (default: the built-in one)
  pi-agent status [flags]   report CPU, memory, swap, PSI, thermal zones, disk, ladders, mode
  pi-agent graph [flags]    print the agent's DAG (--format dot|mermaid)
  pi-agent runs [flags]     list unfinished and recent runs (resume with run --resume ID)
  pi-agent serve [flags]    serve runs over HTTP (POST /v1/runs)
  pi-agent config [flags]   print the effective configuration and where each value came from
  pi-agent worker [flags]   run index shards and answers for the fleet's runs (--nats URL)
  pi-agent hub [flags]      run the fleet's NATS server (a pi-agent built with -tags hub)
  pi-agent help [command]   print this, and the flags of every command (or of one)

Settings fall back to CEMAF_RESOURCE_* environment variables (see the README)
and, for serve, CEMAF_SERVE_*; the LLM endpoint is CEMAF_LLM_URL, with
CEMAF_LLM_MODEL and CEMAF_LLM_API_KEY, and per device mode
CEMAF_LLM_MODEL_<MODE>, CEMAF_LLM_MAX_TOKENS[_<MODE>] and
CEMAF_LLM_MAX_CONCURRENT[_<MODE>] (MODE: NORMAL, LOW_MEMORY, HIGH_TEMP,
LOW_DISK).
`

// cli runs the command line args with the environment env and returns the
// exit code. It is main without the process: tests call it directly.
func cli(ctx context.Context, args []string, env []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	} else if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		cmd, args = "help", nil
	}
	var err error
	switch cmd {
	case "run":
		err = runCmd(ctx, args, env, stdout, stderr)
	case "status":
		err = statusCmd(ctx, args, env, stdout, stderr)
	case "graph":
		err = graphCmd(args, env, stdout, stderr)
	case "runs":
		err = runsCmd(args, env, stdout, stderr)
	case "serve":
		err = serveCmd(ctx, args, env, stdout, stderr)
	case "config":
		err = configCmd(args, env, stdout, stderr)
	case "worker":
		err = workerCmd(ctx, args, env, stdout, stderr)
	case "hub":
		err = hubCmd(ctx, args, env, stdout, stderr)
	case "help":
		return helpCmd(args, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "pi-agent: unknown command %q\n\n%s", cmd, usageText)
		return exitUsage
	}
	var ue usageError
	var is *invalidSettings
	var we *waitingError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &we):
		printErrors(stderr, cmd, err)
		return exitWaiting
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "pi-agent %s: %s\n(pi-agent help %s lists its flags)\n", cmd, ue.msg, cmd)
		return exitUsage
	case errors.Is(err, errFlagParse):
		return exitUsage // the FlagSet printed the error and the usage
	case errors.As(err, &is):
		// Every bad value, with the configuration's own, one per line.
		printErrors(stderr, cmd, err)
		if is.fromFlags() {
			return exitUsage
		}
		return exitError
	case errors.Is(err, factories.ErrInvalidConfig):
		printErrors(stderr, cmd, err)
		return exitError
	default:
		fmt.Fprintf(stderr, "pi-agent %s: %v\n", cmd, err)
		return exitError
	}
}

// printErrors prints a joined error one line each.
func printErrors(w io.Writer, cmd string, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(w, "pi-agent %s: %s\n", cmd, line)
	}
}

// helpCmd prints the overview and the flags of every command, or the usage
// of the commands named.
func helpCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usageText)
	}
	for _, c := range commands {
		if len(args) > 0 && !slices.Contains(args, c.name) {
			continue
		}
		f := c.flags(stdout)
		fmt.Fprintln(stdout)
		f.usage()
	}
	for _, a := range args {
		if !commandExists(a) {
			fmt.Fprintf(stderr, "pi-agent help: unknown command %q\n", a)
			return exitUsage
		}
	}
	return exitOK
}

func commandExists(name string) bool {
	for _, c := range commands {
		if c.name == name {
			return true
		}
	}
	return false
}

// checkpointHint adds what to do to the checkpoint store's errors.
func checkpointHint(err error, storage storageDir) error {
	switch {
	case errors.Is(err, executor.ErrCheckpointLocked):
		return fmt.Errorf("%w\n(another pi-agent uses the storage directory %s: wait for it to finish, or give this one --storage DIR)", err, storage.Path)
	case errors.Is(err, executor.ErrCheckpointCorrupt):
		return fmt.Errorf("%w\n(the runs recorded in it cannot be resumed; a new run, pi-agent run, moves the damaged file aside and starts a fresh one)", err)
	}
	return err
}
