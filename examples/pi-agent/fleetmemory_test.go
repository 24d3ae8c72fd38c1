package main

import (
	"encoding/json"
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// On a fleet, neither the device that runs the agent nor a worker holds an
// index shard whole: the device streams each shard's chunks from its pager
// into the object store and the postings back into its pager; the worker
// spools the shard to a file, indexes it in its own pager and streams the
// postings out. Both stay within the memory bound of a local run
// (memoryBound) whatever the size of the shards. CEMAF_TEST_FLEET_CORPUS_MB
// changes the corpus (100 MB of 10^6 bytes by default, in 2 shards).
func TestFleetPeakRSSDoesNotGrowWithTheShard(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's shadow memory is in every resident set: run without -race")
	}
	if testing.Short() || underQEMU() {
		t.Skip("a large corpus: not with -short or under emulation")
	}
	mb := 100
	if v := os.Getenv("CEMAF_TEST_FLEET_CORPUS_MB"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "CEMAF_TEST_FLEET_CORPUS_MB")
		mb = n
	}
	const budgetMB = 32
	docs := t.TempDir()
	writeCorpus(t, docs, mb*1e6)
	h := startHub(t)
	w := startPiAgent(t, nil, "worker", "--nats", h.ClientURL(), "--id", "w-mem", "--capabilities", "index,llm",
		"--storage", t.TempDir(), "--slots", "2", "--memory-limit-mb", strconv.Itoa(budgetMB))
	w.waitFor("w-mem serves")

	r := runChild(t, nil, nil, "run", "--ephemeral", "--json", "--docs", docs, "--memory-limit-mb", strconv.Itoa(budgetMB),
		"--shards", "2", "--nats", h.ClientURL(), "--question", valveQuestion)
	require.True(t, r.state.Success(), "pi-agent: %s\n%s", r.state, r.stderr)
	require.NotNil(t, r.summary.Answer)
	assert.Contains(t, r.summary.Answer.Text, "opens at dawn for exactly twelve minutes")
	// The worker's own VmHWM, read while it still runs: its rusage would
	// carry the resident set of this process, which the hub has grown.
	workerPeak := processPeakRSS("/proc", strconv.Itoa(w.cmd.Process.Pid))
	require.NotZero(t, workerPeak, "no VmHWM for the worker")
	assert.Equal(t, 3, stopWorker(t, w), "two shards and the answer, on the worker")

	bound := memoryBound(budgetMB << 20)
	out, _ := json.Marshal(r.summary.CorpusReport)
	t.Logf("corpus %d MB in 2 shards, budget %d MiB: run peak RSS %d MiB, worker peak RSS %d MiB, bound %d MiB (%s)",
		mb, budgetMB, r.peak()>>20, workerPeak>>20, bound>>20, out)
	assert.LessOrEqual(t, r.peak(), bound, "run --nats: peak RSS %d MiB over 2 × %d MiB + 64 MiB", r.peak()>>20, budgetMB)
	assert.LessOrEqual(t, workerPeak, bound, "worker: peak RSS %d MiB over 2 × %d MiB + 64 MiB", workerPeak>>20, budgetMB)
}
