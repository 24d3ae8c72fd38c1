package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cemaf-go/cemaf/factories"
	"github.com/cemaf-go/cemaf/paging"
	"github.com/cemaf-go/cemaf/remote"
)

// workerFlags are the flags of the worker command.
type workerFlags struct {
	*cmdFlags
	nats       natsFlags
	caps       []string
	id         string
	slots      int
	drain      time.Duration
	llmTimeout time.Duration
	llmTries   int
	llmBackoff time.Duration
}

func newWorkerFlags(stderr io.Writer) *workerFlags {
	f := &workerFlags{cmdFlags: newCmdFlags("worker", "Run the index shards and answers of other devices' runs (pi-agent run --nats), "+
		"pulling work only while this device has free slots and is not paused by heat, memory or disk.\n"+
		"The answer uses the LLM of CEMAF_LLM_URL (CEMAF_LLM_MODEL, CEMAF_LLM_API_KEY) if set, else the extractive one. "+
		"SIGINT or SIGTERM stops pulling, lets the tasks in progress finish within --drain-timeout and hands the others back.", stderr)}
	f.withResource()
	f.withLog()
	f.withNATS(&f.nats, "required")
	f.caps = []string{capIndex, capLLM}
	f.ss.stringVar(new(string), "capabilities", "", capIndex+","+capLLM, "a comma-separated list among index and llm", func(v string) error {
		caps, err := parseCapabilities(v, capIndex, capLLM)
		f.caps = caps
		return err
	}, "what this worker serves: `list` of index (index shards), llm (answers)")
	f.fs.StringVar(&f.id, "id", "", "worker `name` in the fleet (default: host-pid-random)")
	f.ss.intVar(&f.slots, "slots", "", 0, 0, 1024, "`n` tasks at once (0: CPUs × 2 in [8, 64])")
	f.ss.durationVar(&f.drain, "drain-timeout", "", remote.DefaultDrainTimeout, time.Millisecond, time.Hour,
		"on SIGINT or SIGTERM, how long (a `duration`) the tasks in progress may finish before they go back to the queue")
	f.withLLMTimeout(&f.llmTimeout)
	f.withLLMRetries(&f.llmTries, &f.llmBackoff)
	return f
}

func workerCmd(ctx context.Context, args []string, env []string, _, stderr io.Writer) error {
	f := newWorkerFlags(stderr)
	if err := f.parse(args, env, stderr); err != nil {
		return err
	}
	if !f.nats.enabled() {
		return usageError{"--nats URL is required: the NATS server of the fleet"}
	}
	logger, level, err := f.logger(stderr)
	if err != nil {
		return err
	}
	cfg, storage, err := f.loadStorage(env, stderr)
	if err != nil {
		return err
	}
	rt, err := factories.NewRuntime(cfg, factories.RuntimeOptions{
		Guard:    guardOptions(env, storage.Path, logger),
		Pager:    paging.Options{StoragePath: filepath.Join(storage.Path, "worker")},
		LogLevel: level,
		Logger:   logger,
	})
	if err != nil {
		return err
	}
	defer rt.Close()
	nc, err := f.nats.connect(ctx, "pi-agent worker", logger)
	if err != nil {
		return err
	}
	defer nc.Close()

	var ans answerer = extractive{}
	if u := getenv(env, "CEMAF_LLM_URL"); u != "" {
		ps, err := serveLLMProfiles(env, getenv(env, envLLMModel))
		if err != nil {
			return err
		}
		c, err := rt.NewLLMClient(endpointURL(u), llmAnswerOptions(ps, getenv(env, "CEMAF_LLM_API_KEY"), f.llmTries, f.llmBackoff))
		if err != nil {
			return fmt.Errorf("the LLM endpoint (CEMAF_LLM_URL, CEMAF_LLM_MODEL…): %w", err)
		}
		defer c.CloseIdleConnections()
		ans = llmAnswerer{client: c, timeout: f.llmTimeout, observe: rt.ObserveLLM}
	}
	w, err := newFleetWorker(nc, rt, ans, f.caps, remote.WorkerOptions{Layout: f.nats.layout, ID: f.id, Slots: f.slots, DrainTimeout: f.drain, Logger: logger,
		SpoolDir: filepath.Join(storage.Path, "worker")})
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-w.Ready():
		fmt.Fprintf(stderr, "pi-agent worker: %s serves %s on %s\n", w.ID(), strings.Join(f.caps, ", "), f.nats.url)
	case err := <-done:
		return fmt.Errorf("--nats %s: %w", f.nats.url, err)
	}
	select {
	case <-ctx.Done():
		fmt.Fprintf(stderr, "pi-agent worker: %s draining: taking no more tasks; those in progress have %v to finish\n", w.ID(), formatDuration(f.drain))
		err = <-done
	case err = <-done:
	}
	if err != nil {
		return err
	}
	st := w.Stats()
	fmt.Fprintf(stderr, "pi-agent worker: %s stopped: %d tasks done, %d failed, %d handed back\n", w.ID(), st.Done, st.Failed, st.Returned)
	return nil
}

// newFleetWorker is a remote.Worker serving caps with the agent's node
// functions, paused by rt's resource guard, reporting rt's mode and the
// board's temperature in its heartbeats.
func newFleetWorker(nc *nats.Conn, rt *factories.Runtime, ans answerer, caps []string, opts remote.WorkerOptions) (*remote.Worker, error) {
	reg := remote.NewRegistry()
	if err := reg.Register(capIndex, "index", indexTask(rt.Pager)); err != nil {
		return nil, err
	}
	if err := reg.Register(capLLM, "answer", answerTask(ans)); err != nil {
		return nil, err
	}
	opts.Capabilities = caps
	opts.MaxValueBytes = fleetMaxValueBytes
	opts.Guard = rt.Guard
	opts.Status = runtimeStatus(rt)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return remote.NewWorker(nc, reg, opts)
}

// runtimeStatus reports rt's mode and the board's temperature.
func runtimeStatus(rt *factories.Runtime) func() remote.Status {
	return func() remote.Status {
		st := remote.Status{Mode: string(rt.Executor.CurrentMode())}
		if tm := rt.Guard.Thermal; tm != nil {
			st.TemperatureC = tm.Status().TempC
		}
		return st
	}
}
