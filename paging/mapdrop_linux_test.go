package paging_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/paging"
)

// rssFile is the process's resident file-backed memory (RssFile), bytes.
func rssFile(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Skip("no RssFile in /proc/self/status")
	return 0
}

// Reading back, and deleting, a page file many times the budget does not
// leave its mapped pages in the resident set: they are dropped after every
// eighth of the budget read, written or freed.
func TestMappedPagesDoNotGrowTheResidentSet(t *testing.T) {
	const budget = 8 << 20
	p, err := paging.Wrap(dag.NewMemoryState(), paging.Options{StoragePath: t.TempDir(), MemoryLimitMB: budget >> 20,
		Mode: paging.ModeDurable, LeaveGoMemoryLimit: true})
	require.NoError(t, err)
	defer p.Close()
	r := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("sensor board cable supply voltage fan heatsink kernel module driver packet socket")
	var sb strings.Builder
	for sb.Len() < 1<<20 {
		sb.WriteString(words[r.IntN(len(words))] + " ")
	}
	v := []byte(sb.String())
	const values = 96 // 96 MiB, 12 budgets
	for i := range values {
		require.NoError(t, p.Put(fmt.Sprint("v/", i), v))
	}
	require.NoError(t, p.Checkpoint())
	base := rssFile(t)
	buf := make([]byte, 0, len(v))
	peak := base
	for i := range values {
		buf, err = p.AppendValue(buf[:0], fmt.Sprint("v/", i))
		require.NoError(t, err)
		peak = max(peak, rssFile(t))
	}
	for i := range values {
		require.NoError(t, p.Delete(fmt.Sprint("v/", i)))
	}
	require.NoError(t, p.Checkpoint())
	peak = max(peak, rssFile(t))
	// Stored compressed, the file is about 40 MiB: all of it would be
	// mapped without the drops.
	require.Less(t, peak-base, int64(budget), "file pages mapped: %d MiB over %d MiB at the start", (peak-base)>>20, base>>20)
	t.Logf("file pages mapped: at most %d KiB over the start", (peak-base)>>10)
}

// TestDropIntervalFollowsTheBudget: the drops are paced by the budget in
// force, so a budget lowered by SetMemoryLimit (low_memory) drops sooner.
func TestDropIntervalFollowsTheBudget(t *testing.T) {
	p, err := paging.Wrap(dag.NewMemoryState(), paging.Options{StoragePath: t.TempDir(), MemoryLimitMB: 64, LeaveGoMemoryLimit: true})
	require.NoError(t, err)
	defer p.Close()
	require.Equal(t, int64(8<<20), p.DropEvery())
	require.NoError(t, p.SetMemoryLimit(16<<20))
	require.Equal(t, int64(2<<20), p.DropEvery())
	require.NoError(t, p.SetMemoryLimit(4<<20))
	require.Equal(t, int64(1<<20), p.DropEvery(), "at least 1 MiB")
}
