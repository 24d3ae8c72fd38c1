package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// interruptedRun starts a run over docs with an LLM that never answers, and
// interrupts it while the LLM is called: the run is unfinished with 8 of 10
// nodes done. It returns the run ID and the address the LLM was at.
func interruptedRun(t *testing.T, storage, docs string, args ...string) (id, llmAddr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		cancel()
		<-r.Context().Done()
	}))
	defer hang.Close()
	var out, errb strings.Builder
	code := cli(ctx, append([]string{"run", "--storage", storage, "--docs", docs, "--json"}, args...), []string{"CEMAF_LLM_URL=" + hang.URL, "CEMAF_LLM_MODEL=tiny"}, &out, &errb)
	require.Equal(t, exitError, code, errb.String())
	var s runSummary
	require.NoError(t, json.Unmarshal([]byte(out.String()), &s))
	return s.RunID, strings.TrimPrefix(hang.URL, "http://")
}

func writeDocs(t *testing.T, dir string, docs map[string]string) {
	t.Helper()
	for name, text := range docs {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600))
	}
}

// A resume that changes any recorded input is refused, naming it; the run
// stays resumable, and resumes with the recorded inputs when the command
// line leaves them out.
func TestResumeChecksEveryInput(t *testing.T) {
	storage, docs := t.TempDir(), t.TempDir()
	writeDocs(t, docs, map[string]string{
		"valve.md": "The irrigation valve opens at dawn for exactly twelve minutes.",
		"pump.md":  "The pump runs at noon when the tank is full.",
	})
	id, addr := interruptedRun(t, storage, docs, "--question", "When does the valve open?", "--shards", "3")
	llmURL := "http://" + addr
	env := []string{"CEMAF_LLM_URL=" + llmURL, "CEMAF_LLM_MODEL=tiny"}
	other := t.TempDir()
	writeDocs(t, other, map[string]string{"other.md": "Something else entirely."})

	refused := func(t *testing.T, env []string, want string, args ...string) {
		t.Helper()
		code, _, errOut := runCLI(t, env, append([]string{"run", "--storage", storage, "--resume", id}, args...)...)
		require.Equal(t, exitError, code, errOut)
		assert.Contains(t, errOut, "the run's inputs changed since it started: ")
		assert.Contains(t, errOut, want)
		assert.Contains(t, errOut, "--if-changed=new-run")
	}
	t.Run("question", func(t *testing.T) {
		refused(t, env, `question "When does the valve open?" -> "When does the pump run?"`, "--question", "When does the pump run?")
	})
	t.Run("docs", func(t *testing.T) {
		refused(t, env, `docs "`+docs+`" -> "`+other+`"`, "--docs", other)
	})
	t.Run("shards", func(t *testing.T) { refused(t, env, `shards "3" -> "4"`, "--shards", "4") })
	t.Run("top-k", func(t *testing.T) { refused(t, env, `top_k "4" -> "2"`, "--top-k", "2") })
	t.Run("chunk-size", func(t *testing.T) { refused(t, env, `chunk_size "900" -> "500"`, "--chunk-size", "500") })
	t.Run("llm url", func(t *testing.T) {
		refused(t, []string{"CEMAF_LLM_URL=http://127.0.0.1:1", "CEMAF_LLM_MODEL=tiny"}, `llm_url "`+llmURL+`/v1/chat/completions" -> "http://127.0.0.1:1/v1/chat/completions"`)
	})
	t.Run("llm model", func(t *testing.T) {
		refused(t, []string{"CEMAF_LLM_URL=" + llmURL, "CEMAF_LLM_MODEL=big"}, `llm_model "tiny" -> "big"`)
	})
	t.Run("no llm", func(t *testing.T) {
		refused(t, []string{"CEMAF_LLM_URL="}, `llm_url "`+llmURL+`/v1/chat/completions" -> ""`)
	})
	t.Run("a file's content", func(t *testing.T) {
		p := filepath.Join(docs, "pump.md")
		old, _ := os.ReadFile(p)
		require.NoError(t, os.WriteFile(p, []byte("The pump runs at midnight."), 0o600))
		defer os.WriteFile(p, old, 0o600)
		refused(t, env, "the corpus: 1 file changed (pump.md)")
	})
	t.Run("a file of the same size", func(t *testing.T) {
		p := filepath.Join(docs, "pump.md")
		old, _ := os.ReadFile(p)
		require.NoError(t, os.WriteFile(p, []byte(strings.Replace(string(old), "noon", "nine", 1)), 0o600))
		defer os.WriteFile(p, old, 0o600)
		refused(t, env, "the corpus: 1 file changed (pump.md)")
	})
	t.Run("a file added and one removed", func(t *testing.T) {
		p := filepath.Join(docs, "valve.md")
		old, _ := os.ReadFile(p)
		require.NoError(t, os.Remove(p))
		defer os.WriteFile(p, old, 0o600)
		writeDocs(t, docs, map[string]string{"fan.md": "The fan spins."})
		defer os.Remove(filepath.Join(docs, "fan.md"))
		refused(t, env, "the corpus: 1 file added (fan.md), 1 file removed (valve.md)")
	})
	t.Run("several at once", func(t *testing.T) {
		refused(t, env, `question "When does the valve open?" -> "x"; shards "3" -> "5"`, "--question", "x", "--shards", "5")
	})

	// Touching a file changes nothing.
	now := filepath.Join(docs, "pump.md")
	require.NoError(t, os.Chtimes(now, time.Now().Add(3600e9), time.Now().Add(3600e9)))
	code, listing, _ := runCLI(t, nil, "runs", "--storage", storage)
	require.Equal(t, exitOK, code)
	assert.Contains(t, listing, id, "still resumable")

	// No flags: the recorded inputs, the LLM endpoint included.
	llm := newFakeLLMAt(t, addr)
	code, out, errOut := runCLI(t, nil, "run", "--storage", storage, "--resume", id, "--json")
	require.Equal(t, exitOK, code, errOut)
	var s runSummary
	require.NoError(t, json.Unmarshal([]byte(out), &s))
	assert.Equal(t, "When does the valve open?", s.Inputs["question"])
	assert.Equal(t, docs, s.Inputs["docs"])
	assert.Equal(t, "3", s.Inputs["shards"])
	require.NotNil(t, s.Answer)
	assert.Contains(t, s.Answer.By, " at "+llmURL)
	llm.mu.Lock()
	require.Len(t, llm.requests, 1)
	assert.Equal(t, "tiny", llm.requests[0].Model, "the recorded model")
	assert.Contains(t, llm.requests[0].Messages[1].Content, "Question: When does the valve open?")
	llm.mu.Unlock()
}

func TestResumeOverChangedInputsStartsANewRun(t *testing.T) {
	storage, docs := t.TempDir(), t.TempDir()
	writeDocs(t, docs, map[string]string{"valve.md": "The irrigation valve opens at dawn for exactly twelve minutes."})
	id, _ := interruptedRun(t, storage, docs)
	code, out, errOut := runCLI(t, nil, "run", "--storage", storage, "--resume", id, "--question", "When does the valve open?",
		"--if-changed=new-run", "--json", "--docs", docs)
	require.Equal(t, exitError, code, "the recorded LLM endpoint is gone: %s", errOut)
	assert.Contains(t, errOut, "pi-agent run: the inputs of run "+id+" changed since it started (question); starting run ")
	var s runSummary
	require.NoError(t, json.Unmarshal([]byte(out), &s))
	assert.Equal(t, id, s.NewRunOf)
	assert.NotEqual(t, id, s.RunID)
	assert.False(t, s.Resumed)

	code, out, _ = runCLI(t, nil, "runs", "--storage", storage, "--json")
	require.Equal(t, exitOK, code)
	var runs []struct{ ID, Status string }
	require.NoError(t, json.Unmarshal([]byte(out), &runs))
	ids := map[string]string{}
	for _, r := range runs {
		ids[r.ID] = r.Status
	}
	assert.Equal(t, "cancelled", ids[id], "the old run stays resumable")
	assert.Contains(t, ids, s.RunID)
}
