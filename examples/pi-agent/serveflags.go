package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"time"

	"github.com/cemaf-go/cemaf/internal/hostlimits"
)

// serveOptions are the settings of pi-agent serve, each a flag and (but for
// the agent's knobs and the rlimits) a CEMAF_SERVE_* variable.
type serveOptions struct {
	addr         string
	slots        int           // runs at once
	queue        int           // runs waiting for a slot (0: answer 429 at once)
	maxBody      int           // bytes
	runTimeout   time.Duration // per run
	idleTimeout  time.Duration // unload heavy resources after this much idleness
	drainTimeout time.Duration // SIGTERM: how long in-flight runs may finish

	// Connections: how long a client may take to send its headers and its
	// body, how long writing a response may take, how long an idle
	// keep-alive connection stays open, and how many may be open at once
	// (0: derived from the open-files limit).
	readHeaderTimeout time.Duration
	readBodyTimeout   time.Duration
	writeTimeout      time.Duration
	connIdleTimeout   time.Duration
	maxConns          int

	agentFlags
	corpus   corpus
	llmURL   string
	llmModel string
	llmKey   string
	// llmProfiles are the LLM's mode profiles (serveLLMProfiles); a zero
	// value takes llmModel in every mode.
	llmProfiles llmSettings
	storage     string
	// nats, if set, joins the fleet of services sharing one queue of
	// runs (fleetserve.go); workerID names this one in it.
	nats     natsFlags
	workerID string
}

// Bounds of serve's settings.
const (
	maxSlots     = 1024
	maxQueue     = 100000
	minBodyBytes = 64
	maxBodyBytes = 64 << 20
	// connReserve is how many descriptors the connection limit leaves to
	// the rest of the process (the page files, the LLM client's
	// connections, the sampler's reads, stdio) at least.
	connReserve = 64
)

// serveFlags are the flags of the serve command.
type serveFlags struct {
	*cmdFlags
	o       serveOptions
	rlimits bool
	nofile  int
	fsizeMB int
	asMB    int
}

func newServeFlags(stderr io.Writer) *serveFlags {
	f := &serveFlags{cmdFlags: newCmdFlags("serve", "Serve runs over HTTP: POST /v1/runs {\"question\": \"...\"} (\"stream\": true for server-sent events, \"clarify\": true to ask for other words\n"+
		"when nothing matches), POST /v1/runs/{id}/input {\"input\": \"...\"}, GET /healthz, GET /health/detailed, GET /metrics.\n"+
		"Bad values of the flags and of the CEMAF_SERVE_* variables are reported together.", stderr)}
	f.withResource()
	f.withLog()
	f.withAgent(&f.o.agentFlags)
	addServeSettings(&f.cmdFlags.ss, &f.o)
	f.fs.BoolVar(&f.rlimits, "rlimits", false, "apply process limits at start: open files, file size, address space")
	f.ss.intVar(&f.nofile, "rlimit-nofile", "", 1024, 64, 1<<20, "open files limit (`n`) with --rlimits")
	f.ss.intVar(&f.fsizeMB, "rlimit-fsize-mb", "", 1024, 1, 1<<30, "largest file with --rlimits, in `MB`")
	f.ss.intVar(&f.asMB, "rlimit-as-mb", "", 0, 0, 1<<30, "address space limit with --rlimits in `MB` (0: none; Go reserves address space freely)")
	f.withNATS(&f.o.nats, "share one queue of runs with the fleet's other services; --slots and --queue then count over the fleet")
	f.fs.StringVar(&f.o.workerID, "fleet-id", "", "this service's `name` in the fleet with --nats (default: host-pid-random)")
	return f
}

// addServeSettings registers the settings that have a CEMAF_SERVE_*
// variable (config shows them too).
func addServeSettings(ss *settings, o *serveOptions) {
	ss.stringVar(&o.addr, "addr", serveEnvPrefix+"ADDR", "127.0.0.1:8080", "host:port (an empty host listens on every interface)", checkAddr,
		"listen `address`; loopback by default")
	ss.intVar(&o.slots, "slots", serveEnvPrefix+"SLOTS", max(1, runtime.GOMAXPROCS(0)/2), 1, maxSlots, "`n` runs at once")
	ss.intVar(&o.queue, "queue", serveEnvPrefix+"QUEUE", 0, 0, maxQueue, "`n` runs that may wait for a slot; 0 answers 429 at once")
	ss.intVar(&o.maxBody, "max-body-bytes", serveEnvPrefix+"MAX_BODY_BYTES", 64<<10, minBodyBytes, maxBodyBytes, "largest request body in `bytes`")
	ss.durationVar(&o.runTimeout, "run-timeout", serveEnvPrefix+"RUN_TIMEOUT", 2*time.Minute, time.Millisecond, 24*time.Hour, "timeout of one run, as a `duration`")
	ss.durationVar(&o.idleTimeout, "idle-timeout", serveEnvPrefix+"IDLE_TIMEOUT", 10*time.Minute, time.Millisecond, 7*24*time.Hour,
		"unload the index and LLM connections after this long (a `duration`) without a run")
	ss.durationVar(&o.drainTimeout, "drain-timeout", serveEnvPrefix+"DRAIN_TIMEOUT", 30*time.Second, time.Millisecond, time.Hour,
		"on SIGINT or SIGTERM, how long (a `duration`) in-flight runs may finish before they are answered 503")
	ss.durationVar(&o.readHeaderTimeout, "read-header-timeout", serveEnvPrefix+"READ_HEADER_TIMEOUT", 10*time.Second, time.Millisecond, 10*time.Minute,
		"how long (a `duration`) a client may take to send a request's headers")
	ss.durationVar(&o.readBodyTimeout, "read-body-timeout", serveEnvPrefix+"READ_BODY_TIMEOUT", 10*time.Second, time.Millisecond, time.Hour,
		"how long (a `duration`) a client may take to send a request's body, which is read before a run slot is taken")
	ss.durationVar(&o.writeTimeout, "write-timeout", serveEnvPrefix+"WRITE_TIMEOUT", 10*time.Second, time.Millisecond, time.Hour,
		"how long (a `duration`) writing a response may take")
	ss.durationVar(&o.connIdleTimeout, "conn-idle-timeout", serveEnvPrefix+"CONN_IDLE_TIMEOUT", 30*time.Second, time.Millisecond, 24*time.Hour,
		"how long (a `duration`) an idle keep-alive connection stays open")
	ss.intVar(&o.maxConns, "max-conns", serveEnvPrefix+"MAX_CONNS", 0, 0, 1<<20,
		"most connections open at once (`n`; 0: half the open-files limit, at most 4096); beyond, the oldest idle one is closed, else the new one is refused")
}

func checkAddr(v string) error {
	if _, port, err := net.SplitHostPort(v); err != nil {
		return errors.New("not host:port")
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return errors.New("the port is not a number in [0, 65535]")
	}
	return nil
}

// connLimitFor is the connection limit for the open-files soft limit
// nofile (0: unknown): the value given, or half the limit, at most 4096
// (1024 when the limit is unknown). A value given that leaves fewer than
// connReserve descriptors is refused.
func connLimitFor(given int, nofile uint64) (int, error) {
	if given == 0 {
		if nofile == 0 {
			return 1024, nil
		}
		return int(min(4096, max(8, nofile/2))), nil
	}
	if nofile > 0 && uint64(given) > nofile-min(nofile, connReserve) {
		return 0, &settingError{Name: "--max-conns", Value: strconv.Itoa(given), Origin: "the command line or environment",
			Problem:  fmt.Sprintf("leaves fewer than %d of the %d open files this process may have to the rest of it", connReserve, nofile),
			Accepted: fmt.Sprintf("an integer in [1, %d], or 0 for half the open-files limit", max(1, int(nofile)-connReserve))}
	}
	return given, nil
}

// noFileSoft is this process's open-files soft limit, 0 when unknown.
func noFileSoft() uint64 { return hostlimits.NoFileSoft() }
