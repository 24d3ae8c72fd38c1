// Package remote runs nodes of a dag graph on other devices, through NATS
// JetStream: a node marked with a capability ("llm", "index") is published
// to a work-queue stream, a worker that serves the capability runs the same
// dag.Func on a State holding the node's inputs, and the outputs come back
// into the coordinator's State. A single-device program needs none of it:
// the core packages do not import NATS.
//
// # Model
//
// A Coordinator (NewCoordinator) is the side that owns the graph and the
// State. Coordinator.Node turns a dag.Node and a Spec (capability, function
// name, the State keys it reads and writes) into a node whose Run publishes
// a task and waits for its result; everything else of the node is kept, so
// the executor applies its timeout, retry policy, priority and events as for
// a local node. The Coordinator is also the executor's Gate: while the NATS
// connection is down Check reports ErrDisconnected and Wait blocks, so the
// run pauses and goes on after the reconnection.
//
// A Worker (NewWorker, then Run; Ready tells when it serves) is the side
// that runs functions, looked up in a Registry by capability and name;
// RegisterNode registers the very function a node would run locally. On the
// worker a function's context carries a TaskInfo (TaskInfoFrom) instead of
// the executor's NodeInfo, with the same IdempotencyKey. A worker pulls only as many tasks as it
// has free Slots, and none while its Guard blocks (a hot board, short
// memory): the work goes to the other workers, or waits. It sends in-progress
// acknowledgements every AckWait/3 while a task runs, and a heartbeat
// (capabilities, mode, temperature, free slots, why it is paused) to the
// fleet bucket every StaleAfter/4. A Fleet (WatchFleet, or Coordinator.Fleet)
// is the live view of the workers; Capacity summarises it per capability for
// admission decisions.
//
// Whole runs can be shared too: a RunQueue (OpenRunQueue) is a work queue
// of run requests that several services use, so that a request accepted by
// one device is run by another with capacity (Submit, Take, Done, Result);
// a full queue refuses with a *limit.Error of Kind limit.Queue.
//
// Package hub embeds a NATS server with JetStream (for tests, for a device
// that is the hub of the others, or a leaf of one); any nats-server 2.9 or
// later works as well.
//
// # Subjects, streams and consumers
//
// With the default Layout prefix "cemaf":
//
//	stream CEMAF_TASKS         work queue, file storage, subjects cemaf.task.>
//	  cemaf.task.<cap>.high    Node.Priority > 0
//	  cemaf.task.<cap>.normal  Node.Priority == 0
//	  cemaf.task.<cap>.low     Node.Priority < 0
//	consumer <cap>_<band>      durable pull consumer per capability and band,
//	                           shared by all workers of the capability: explicit
//	                           acks, AckWait, MaxDeliver, MaxAckPending
//	KV CEMAF_RESULTS           ok.<run>.<node>            the node's success, first write wins
//	                           fail.<run>.<node>.<attempt> an attempt's failure
//	                           last.<run>.<node>.<attempt> why a delivery ended unanswered
//	                           bad.<stream seq>            a rejected (malformed) task
//	KV CEMAF_FLEET             w.<worker>                  heartbeats (memory storage, TTL 2×StaleAfter)
//	object store CEMAF_BLOBS   in/<task>/<key>, out/<task>/<worker>/<delivery>/<key>;
//	                           part/<i>/<name> for part i ≥ 1 of a value over 16 MiB
//	cemaf.bell.<cap>           core doorbell rung after each publish (wakes idle workers)
//	cemaf.cancel.<cap>         core: a coordinator withdrew a task (timeout, cancellation)
//	cemaf.reply.<coordinator>  core: a worker's result, also kept in CEMAF_RESULTS
//	stream CEMAF_RUNS          work queue of whole runs, cemaf.run.<kind>, consumer runs_<kind>;
//	                           outcomes in CEMAF_RESULTS under run.<id> / runfail.<id>
//
// Run and node IDs are base64url-encoded in keys. A task's message ID (for
// JetStream's de-duplication within Layout.Duplicates) is
// "<run>/<node>/<attempt>". Tasks and results use a small binary encoding
// (raw value bytes, no base64); values that would make a message larger than
// the server's max payload go through the object store, largest first
// (InlineOnly makes that a *limit.Error of Kind limit.MessageSize naming the
// key instead). Such values are streamed, never held whole in memory by
// this package: the coordinator reads them from its State in parts
// (dag.NewValueReader) and writes a result's back in parts when its State
// takes values so (dag.ValueCreator); a worker keeps them, and the values
// its function writes with dag.NewValueWriter, in unlinked files in
// WorkerOptions.SpoolDir while the task runs. MaxValueBytes bounds each one.
// A value over 16 MiB is stored as objects of 16 MiB, each written before
// the next is read: the object store sends an object's chunks without
// waiting for the server, and a server refuses a stream's messages ("too
// many requests") once it holds 128 MiB of them it has not yet written.
//
// Priority is honest but coarse: JetStream has no priority queue, so each
// band has its own subject and consumer, and a worker with free slots pulls
// the high band first, then normal, then low. Within a band tasks are FIFO.
// A low task already running is not pre-empted, a sustained high-band load
// starves the low band, and the order between different workers' pulls is not
// coordinated.
//
// # Nothing lost, nothing twice
//
// A delivery is acknowledged only after its result is recorded, and the
// worker replies once the server confirmed the acknowledgement. A worker
// killed mid-task stops sending in-progress acknowledgements; after AckWait
// JetStream delivers the task again, to any worker. A node's success is
// recorded with a KV create (first write wins) under its idempotency key
// (run and node): a redelivered task that already finished is answered with
// the recorded result, and a late duplicate's result is dropped, so the
// coordinator applies one result per node. A task whose deliveries all go
// unanswered stops after MaxDeliver: the server's advisory makes the
// coordinator record a *DeliveryError naming the node and the last failure
// (Coordinator.Failures lists them). A function's error is not redelivered:
// it is the attempt's error, retried by the executor's policy like a local
// node's (panics, dag.Permanent errors and unknown functions are permanent).
// Malformed task messages are terminated and recorded (Coordinator.Rejected).
//
// A durable run (executor.Options.Checkpoints) whose coordinator dies and is
// resumed with the same run ID finds in the results bucket the nodes that
// workers finished meanwhile, and does not run them again: a remote node
// first reads its recorded result, and a re-published task with the same
// message ID is stored once.
//
// # Goroutines and lifetimes
//
// A Coordinator owns one goroutine (replies, max-delivery advisories,
// connection changes) and its Fleet's watcher; Close stops them. A Worker's
// Run owns its pull loop, one goroutine per running task and a keeper
// (heartbeats, in-progress acknowledgements, withdrawals), and returns after
// stopping them: on ctx's end it stops pulling, gives running tasks
// DrainTimeout, hands the rest back to the queue and removes its heartbeat.
// The NATS connection belongs to the caller (Connect makes one: loopback by
// default, credentials, NKeys or TLS as nats.go offers them), who closes it
// last. Time is the wall clock; the fleet's staleness takes an injected Now.
//
// # Caveats
//
// Execution is at least once: a function may run twice for one node (a
// worker killed after running it, a task redelivered while still running);
// only its result is recorded once. Side effects outside the State should use
// TaskInfo.IdempotencyKey. The worker's deadline is the attempt's remaining
// timeout measured from when the worker receives it, not an absolute time
// (devices' clocks differ). Replies are plain NATS messages: one lost in a
// reconnection is made up by reading the results bucket every PollInterval.
// Results, failure records and large values expire after ResultTTL, unless
// Coordinator.Forget deletes those of a run that is over first; tasks older
// than ResultTTL are dropped from the queue. The max-deliveries advisory is
// a plain message: a task that reaches MaxDeliver while no coordinator is
// connected stays in the queue until ResultTTL. The first heartbeats loaded
// at start are judged fresh, so a peer killed just before can linger up to
// twice StaleAfter. Every coordinator and worker of a fleet must use the same
// Layout. The streams have one replica unless Layout.Replicas says more and
// the server is a cluster.
//
// Why a node waits (no live worker serves its capability, every worker is
// paused, the task cannot be published) reaches the run's observers as
// "waiting" chunks of the node's output (executor.Emit), unless
// CoordinatorOptions.OnWaiting says otherwise.
package remote
