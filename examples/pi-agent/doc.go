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
//	pi-agent worker [flags]  run index shards and answers for the fleet (--nats)
//	pi-agent hub [flags]     run the fleet's NATS server (built with -tags hub)
//	pi-agent help [command]  print the flags of every command (or of one)
//
// # Model
//
// run builds one factories.Runtime per run: a durable pager of its own under
// the storage directory (pages/<run ID>), the checkpoint file runs.db, the
// resource guard and the adaptive executor. The graph is load → chunk →
// index-0 … index-N → retrieve (after question) → answer → report. The
// answer node is extractive, or calls the LLM of CEMAF_LLM_URL with the llm
// package through the runtime (answer.go, llmenv.go: the mode profiles);
// it streams its text to the executor's observers (--stream, serve's
// server-sent events), and with --clarify asks for other words when no
// passage matches (clarify.go: executor.Interrupt; the run waits for
// input and --resume ID --input TEXT answers it). The
// corpus is read through one bounded, non-blocking open (corpus.go): files
// that are not regular, too large or binary are skipped and reported, text
// is decoded and repaired (textdecode.go). Every step streams through the
// paged State: a document from its file through the decoder into the
// State, and back through the chunker; chunks are stored in blocks
// (chunkstore.go); an index node spills its postings in sorted runs past a
// bound and merges them (index.go); retrieval reads the postings of the
// question's terms only, in chunk order, keeping the best K (retrieve.go). After the run, the pages of
// finished runs and the reports of runs the checkpoint store forgot are
// removed (prune.go).
//
// serve builds one Runtime for the life of the service and runs every
// request on it: the corpus index is built once into a pager of its own,
// shared read-only, and each request's run writes to a namespace of the
// runtime's pager over it (overlay.go). The HTTP server, its connection
// limit (connlimit.go) and the idle janitor belong to server.serve, which
// returns after they stopped. Runs waiting for input are kept, without
// resources, for POST /v1/runs/{id}/input (servellm.go); a streamed answer's
// events are written by a goroutine of the request's own (sseWriter).
//
// With --nats, run, serve and status join a fleet over NATS JetStream
// (package remote): run's index shards and answer become remote nodes
// (fleetnodes.go) that pi-agent worker processes run (worker.go); serve's
// requests become tasks that every service of the fleet may take
// (fleetserve.go); status lists the fleet's heartbeats (fleetstatus.go).
// The hub command (hub_on.go) embeds the NATS server only in a binary built
// with -tags hub.
//
// Settings are typed flags, some backed by CEMAF_SERVE_* variables
// (settings.go): every bad value is reported at once, with the accepted
// range. CEMAF_RESOURCE_* settings go through factories.Load.
//
// The first SIGINT or SIGTERM cancels the command's context: a run stops
// before its next node (or as its node returns) and can be resumed, serve
// drains. A second one ends the process at once (exit 128 + signal).
//
// # Caveats
//
//   - A read of a regular file on a hung network file system blocks in the
//     kernel; no deadline reaches it.
//   - Memory does not grow with the corpus, except by what the pager keeps
//     per key (about 250 bytes): a key per document, per block of chunks
//     and per term of each shard. A corpus with a vocabulary of millions
//     of distinct terms grows the key index accordingly.
//   - A paragraph over 1 MiB is chunked line by line as it streams, with
//     its white space trimmed at its ends only; a line over 1 MiB is cut at
//     a space first.
//   - When every open connection is busy sending a request, serve refuses new
//     ones (503) until a read timeout frees one: /healthz is then refused too.
//   - serve keeps its runs waiting for input in the storage directory
//     (serve/waiting, a small JSON file each): a restart answers them, for
//     what is left of their --idle-timeout. A run asked again is run from
//     its question with the answer, not resumed from a checkpoint.
//   - --stream prints what the model sends as it comes: a stream cut and
//     retried is printed again after a note, not taken back.
//   - With --nats, an answer is made by a worker's answerer (its own
//     CEMAF_LLM_URL, or the extractive one); run's --llm-timeout,
//     --llm-attempts and --llm-backoff only bound how long the run waits
//     for it. An index shard travels to its worker as one value (its
//     chunks there, its postings back), streamed in parts on both sides
//     through the object store: a worker's disk, not its RAM, grows with
//     the shard. The postings a worker sends back may only be its shard's
//     keys; a pack with any other key fails the node.
//   - serve --nats: every service builds its own index of its own --docs,
//     so the services of a fleet should serve the same corpus. A service
//     under pressure still accepts requests for the others; one stopping
//     while the NATS server is away waits up to the fleet's AckWait to
//     remove its heartbeat. It answers in one JSON reply: requests with
//     "stream" or "clarify" are refused (400).
package main
