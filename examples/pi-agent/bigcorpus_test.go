package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeCorpus writes files of generated prose, about total bytes in all,
// with one file holding a fact the question asks about: log-007.txt, or
// the last file of a corpus of fewer files.
func writeCorpus(t *testing.T, dir string, total int) {
	t.Helper()
	r := rand.New(rand.NewPCG(3, 4))
	words := strings.Fields(`sensor board cable supply voltage fan heatsink kernel module driver packet socket
		buffer cache queue thread process memory storage network camera motor robot battery charger
		firmware update schedule retry timeout backoff latency throughput logger metric alert`)
	for f := 0; total > 0; f++ {
		var b strings.Builder
		for b.Len() < 512<<10 {
			for s := 0; s < 6; s++ {
				n := 8 + r.IntN(12)
				for i := range n {
					w := words[r.IntN(len(words))]
					if i == 0 {
						w = strings.ToUpper(w[:1]) + w[1:]
					}
					b.WriteString(w)
					b.WriteByte(' ')
				}
				b.WriteString("is noted. ")
			}
			b.WriteString("\n\n")
		}
		if f == 7 || f < 7 && total <= b.Len() { // file 7, or the last one of a small corpus
			b.WriteString("The greenhouse irrigation valve opens at dawn for exactly twelve minutes.\n\n")
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("log-%03d.txt", f)), []byte(b.String()), 0o600))
		total -= b.Len()
	}
}

// A corpus several times larger than the pager's RAM budget is indexed and
// searched: chunks and postings are paged out to disk and back.
func TestCorpusLargerThanPagerBudget(t *testing.T) {
	size := 24 << 20
	if testing.Short() || os.Getenv("CEMAF_TEST_UNDER_QEMU") == "1" {
		size = 8 << 20 // still twice the budget, several blocks of postings per shard
	}
	docs := t.TempDir()
	writeCorpus(t, docs, size)
	code, out, errOut := runCLI(t, nil, "run", "--ephemeral", "--json", "--docs", docs, "--memory-limit-mb", "4",
		"--question", "When does the greenhouse irrigation valve open?")
	require.Equal(t, exitOK, code, errOut)
	var s runSummary
	require.NoError(t, json.Unmarshal([]byte(out), &s))
	require.NotNil(t, s.Answer)
	assert.Contains(t, s.Answer.Text, "opens at dawn for exactly twelve minutes")
	assert.Contains(t, strings.Join(s.Answer.Sources, " "), "log-007.txt")
	assert.Greater(t, s.Pager.ValueBytes, int64(size), "chunks and postings are in the State")
	assert.LessOrEqual(t, s.Pager.BytesInMemory, int64(4<<20), "resident values stay within the budget")
	assert.Positive(t, s.Pager.PageOuts, "values were paged out")
	assert.Positive(t, s.Pager.PageIns, "and paged back in")
	t.Logf("corpus %d MiB, state %d MiB, %d page-outs, %d page-ins, compression %.2f, peak RSS %d MiB",
		size>>20, s.Pager.ValueBytes>>20, s.Pager.PageOuts, s.Pager.PageIns, s.Pager.CompressionRatio, s.PeakRSSBytes>>20)
}
