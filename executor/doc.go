// Package executor runs dag graphs: each node starts once its dependencies
// have finished, within the concurrency limit of its class, with per-node
// timeouts, retries with exponential backoff and jitter, a failure policy, a
// Gate that pauses the run while a resource is over its limit, and events
// (including streamed node output) for observers.
//
// # Model
//
// An Executor holds options and two run-time knobs, Limits and
// InterNodeDelay, which SetLimits and SetInterNodeDelay change for the runs
// in progress (the adaptive executor turns them under pressure). Run and
// RunWith execute one graph over one dag.State and return a *Result with the
// status, attempts, start and end time and error of every node. One Executor
// may run many graphs concurrently.
//
// Scheduling: every node has a class (dag.Node.Class): CPU for work that
// computes on this device, IO for work that waits on something else (an LLM
// or HTTP call). Each class has its own limit (Limits), derived from the host
// unless set: max(2, cores − 2) CPU nodes and cores × 64 IO nodes (clamped
// to half the open-files limit) at once, so a Raspberry Pi 4 runs 2 CPU
// nodes and up to 256 LLM calls together. Among the ready nodes whose class
// has a free slot, the highest priority starts first, then graph order; a
// full class never holds back the other. Node functions run on worker
// goroutines owned by the run; a worker that finishes a node records it and
// runs the next ready node itself, so a run needs about as many goroutines
// as nodes in flight and no hand-off per node. The goroutine that called
// Run coordinates what needs waiting: retry and timeout timers, the gate,
// cancellation, and event delivery. Observers are called from that goroutine,
// in order, never while the executor holds a lock. When that goroutine has
// nothing to wait for (a context that cannot be cancelled, no gate,
// checkpoint store or observer, and one node in flight with no timeout, so
// nothing could ever have to abandon it), it runs the node itself: a node
// must not assume which goroutine it runs on.
//
// Conditional edges: a branch node (dag.Node.Branch) calls Choose from
// its Run to name the dependents that run once it succeeds. A node runs
// when its dependencies have finished and at least one incoming edge was
// taken (its dependency ran and, if a branch, chose it); otherwise it is
// skipped with ErrNotChosen, and so are its dependents unless another
// dependency of theirs ran. Result.Choices reports the choices, and the
// checkpoint store records it with the branch's completion: a resume
// follows the recorded choice and does not run the branch again.
//
// Human input: a node that needs an answer returns Interrupt(ctx,
// question). It becomes Waiting (not failed, not retried); its descendants
// are skipped for now; every other node goes on, those in flight and those
// that do not depend on it, so that the run has done all it can before it
// waits. The run then ends: RunWith returns the *InterruptError
// (ErrInterrupted), and the checkpoint store records the run as "waiting"
// with the question and the node (RunRecord.Questions, and
// Result.Questions). The process may
// exit. Resuming the run with RunOptions.Answers runs the waiting node
// again; it reads its answer with InputFrom. Answers are recorded with the
// run, so a crash after a resume that gave them does not lose them.
//
// Time: a node's timeout (Node.Timeout, else Options.NodeTimeout) is a
// context deadline for one attempt. A node that returns after its deadline is
// TimedOut; one that ignores its context is given AbandonAfter more, then
// reported TimedOut and abandoned: its goroutine is left running (counted in
// Result.Abandoned) and the run goes on. Backoff delays, timeouts and the
// inter-node delay use the time package, so tests drive them with
// testing/synctest. The times a run reports (Result, events) are its start
// plus the monotonic time elapsed since: one clock read per node, and a
// step of the system clock during a run does not show in them.
//
// Failure: under FailFast (the default) the first failure of a non-optional
// node cancels the nodes in flight, with the failure as the context's cause,
// and skips the rest; under Continue only its descendants are skipped. A
// panic in a node becomes a *PanicError carrying the value and stack; it is
// never retried. Other user code the executor calls is protected the same
// way: a panic in a Gate's Wait, a Checker's Check or a DurableState's
// Checkpoint becomes a *PanicError that stops the run and is its error. Errors wrapped with dag.Permanent are never retried either.
// When the caller's context ends, nothing more starts, running nodes are
// cancelled, and Run returns an error wrapping context.Cause.
//
// The Gate: before each node starts the run consults Options.Gate. While it
// is closed no new node starts; nodes in flight continue. Each pause is a
// Paused event (with the reason, when the gate implements Checker) and a
// Resumed event with its duration. The guards of packages throttle, thermal
// and disk implement Gate and Checker.
//
// Streaming: a running node sends partial output (LLM tokens, progress)
// with Emit; observers receive each Chunk as a NodeOutput event, after the
// node's NodeStarted and before its final event, in the order of the Emit
// calls. Emit queues the chunk under the run's lock and wakes the
// coordinator; it never waits for observers. When more than a few dozen
// chunks of one node wait for a slow observer, consecutive chunks of the same
// kind are coalesced (their Text concatenated) instead of queued one by one:
// nothing is dropped, and the queue holds one event per change of kind.
// Chunks are not checkpointed.
//
// Durable runs: with Options.Checkpoints (a CheckpointStore, a bbolt file),
// every node that succeeds is recorded, with the State keys it changed,
// before its dependents start. Running the same graph with the same
// RunOptions.ID resumes an unfinished run: completed nodes are skipped and
// their State restored. With RunOptions.Resume the ID must name a run in the
// store (else ErrRunNotFound) instead of starting a new one. Each node runs at least once; NodeInfo's
// IdempotencyKey, stable across attempts and resumes, lets node code make
// side effects exactly-once. A CommitPolicy groups completions into fewer
// fsync'd commits (SD-card wear) without letting a dependent start early. A
// changed graph is refused with a *GraphChangedError that lists the
// differences. A run's inputs (RunOptions.Inputs: the question, a
// fingerprint of the corpus, every knob that changes results) are part of
// the run: recorded when it starts (RunRecord.Inputs, from
// CheckpointStore.Run), compared at resume, and a resume with different
// inputs, or none, is refused with an *InputsChangedError naming each
// change (RunOptions.IgnoreInputs accepts them, on the caller's word); a damaged file with ErrCheckpointCorrupt; a file another
// process holds with ErrCheckpointLocked. With a State that
// keeps its values durably itself (DurableState: a paging.Pager in durable
// mode), the store records only the completions, after checkpointing the
// State. Finished runs are garbage-collected by age and count.
//
// Tracing: Options.Tracer wraps each run's context and each node attempt's
// (TraceRun, TraceNode) and is told how each ended, so that spans (the otel
// module) or timings enclose what nodes do with their contexts. Unset, it
// costs one nil check per attempt.
//
// Memory: the per-node state of a run (slots, in-degrees, ready queues,
// timers, event queues) is pooled by the Executor and reset, and what
// depends only on the graph (priorities, classes, roots) is computed once
// while the same pooled state runs the same graph again, so re-running a
// built graph allocates a fixed number of objects whatever its size, plus
// the Result (RunOptions.Reuse recycles one) and 16 bytes per node for the
// node contexts, which are never reused: a goroutine a node left behind
// keeps a context that stays its own run's, ended. A run with an abandoned
// node does not return its state to the pool. The run's own context (the
// caller's, cancellable by the run) is made when a node first looks at
// its context: a run of nodes that never do skips it.
//
// Goroutines: no goroutine started by a run outlives it, except abandoned
// node goroutines. With checkpoints, a committer goroutine per run makes
// completions durable; it too ends before Run returns.
//
// # Caveats
//
// An abandoned node keeps running and may still write to the State; it is
// never retried, to avoid two copies running at once. Checkpointing a
// memory State copies every changed value into the checkpoint file (and
// transiently into RAM); use a durable pager for large States. Observers must be
// quick: they run on the coordinator, which also fires timers. A Gate that
// does not implement Checker is waited on inline by the coordinator, which
// then serialises node starts, and holds back the delivery of events and
// chunks while it waits; implement Checker for a cheap fast path. Streamed
// output is kept in memory until delivered: a stuck observer makes the
// queue grow by the Text emitted (coalescing bounds the number of events,
// not the bytes). Emit from a goroutine that outlives its node's attempt
// returns false and the chunk is dropped. A waiting run is removed by the
// checkpoint store's garbage collection like any other once it has not been
// updated for CheckpointOptions.MaxAge (7 days by default): raise it if
// answers may take longer. InputFrom gives a node the latest answer only: a
// node that asks several questions in turn sees one answer at a time.
// Inputs are compared exactly, as strings: the caller decides what goes in
// them (a fingerprint of the corpus's content, not its path) and must keep
// computing them the same way across versions. A Result given in
// RunOptions.Reuse is overwritten: keep no pointer into it. A Tracer's
// end function for an abandoned attempt runs only if its goroutine returns.
package executor
