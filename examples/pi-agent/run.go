package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cemaf-go/cemaf/adaptive"
	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/factories"
	"github.com/cemaf-go/cemaf/paging"
)

const defaultQuestion = "What does cemaf do when the device runs hot or short of memory?"

// runFlags are the flags of the run command.
type runFlags struct {
	*common
	docs       string
	question   string
	resume     string
	ephemeral  bool
	shards     int
	topK       int
	chunkSize  int
	llmTimeout time.Duration
	llmTries   int
	llmBackoff time.Duration
	timeout    time.Duration
}

func newRunFlags(stderr io.Writer) *runFlags {
	f := &runFlags{common: newCommon("run", stderr)}
	f.fs.StringVar(&f.docs, "docs", "", "`dir`ectory of text and markdown files (default: the built-in corpus)")
	f.fs.StringVar(&f.question, "question", defaultQuestion, "the `question` to answer")
	f.fs.StringVar(&f.resume, "resume", "", "resume the unfinished run `ID` (see pi-agent runs)")
	f.fs.BoolVar(&f.ephemeral, "ephemeral", false, "keep nothing: storage in a temporary directory removed at exit")
	f.fs.IntVar(&f.shards, "shards", 4, "parallel index `nodes`")
	f.fs.IntVar(&f.topK, "top-k", 4, "passages to retrieve")
	f.fs.IntVar(&f.chunkSize, "chunk-size", 900, "chunk size in `bytes`")
	f.fs.DurationVar(&f.llmTimeout, "llm-timeout", 2*time.Minute, "timeout of one LLM call")
	f.fs.IntVar(&f.llmTries, "llm-attempts", 3, "LLM call attempts before giving up")
	f.fs.DurationVar(&f.llmBackoff, "llm-backoff", 500*time.Millisecond, "delay before the second LLM attempt (doubles after)")
	f.fs.DurationVar(&f.timeout, "timeout", 0, "timeout of the whole run (0: none)")
	return f
}

func (f *runFlags) validate() error {
	switch {
	case f.shards < 1 || f.shards > 64:
		return usageError{fmt.Sprintf("--shards %d: want 1 to 64", f.shards)}
	case f.topK < 1 || f.topK > 50:
		return usageError{fmt.Sprintf("--top-k %d: want 1 to 50", f.topK)}
	case f.chunkSize < 200 || f.chunkSize > 1<<20:
		return usageError{fmt.Sprintf("--chunk-size %d: want 200 to 1048576 bytes", f.chunkSize)}
	case strings.TrimSpace(f.question) == "":
		return usageError{"--question is empty"}
	case f.llmTimeout <= 0:
		return usageError{fmt.Sprintf("--llm-timeout %v: must be positive", f.llmTimeout)}
	case f.llmTries < 1 || f.llmTries > 20:
		return usageError{fmt.Sprintf("--llm-attempts %d: want 1 to 20", f.llmTries)}
	case f.llmBackoff < 0:
		return usageError{fmt.Sprintf("--llm-backoff %v: must be ≥ 0", f.llmBackoff)}
	case f.timeout < 0:
		return usageError{fmt.Sprintf("--timeout %v: must be ≥ 0", f.timeout)}
	}
	return nil
}

// runSummary is the result of a run, printed as JSON with --json.
type runSummary struct {
	RunID        string                `json:"run_id"`
	Question     string                `json:"question"`
	Answer       *answer               `json:"answer,omitempty"`
	AnswerError  string                `json:"answer_error,omitempty"`
	Error        string                `json:"error,omitempty"`
	ReportPath   string                `json:"report_path,omitempty"`
	Storage      string                `json:"storage,omitempty"`
	DurationMS   int64                 `json:"duration_ms"`
	Nodes        []executor.NodeResult `json:"nodes"`
	Pauses       int                   `json:"pauses"`
	PausedMS     int64                 `json:"paused_ms"`
	ModeChanges  []adaptive.ModeChange `json:"mode_changes"`
	FinalMode    adaptive.Mode         `json:"final_mode"`
	Pager        paging.Stats          `json:"pager"`
	PeakRSSBytes int64                 `json:"peak_rss_bytes"`
	Corpus       string                `json:"corpus"`
}

func runCmd(ctx context.Context, args []string, env []string, stdout, stderr io.Writer) error {
	f := newRunFlags(stderr)
	if err := f.parse(args); err != nil {
		return err
	}
	if err := f.validate(); err != nil {
		return err
	}
	logger, level, err := f.logger(stderr)
	if err != nil {
		return err
	}
	cfg, storage, err := f.loadStorage(env, stderr)
	if err != nil {
		return err
	}
	docs, label, err := corpus(f.docs)
	if err != nil {
		return err
	}
	if f.ephemeral {
		if f.resume != "" {
			return usageError{"--resume and --ephemeral exclude each other"}
		}
		if storage, err = os.MkdirTemp("", "pi-agent-"); err != nil {
			return err
		}
		defer os.RemoveAll(storage)
	}
	if err := os.MkdirAll(storage, 0o700); err != nil {
		return fmt.Errorf("storage %s: %w", storage, err)
	}
	runID := f.resume
	if runID == "" {
		runID = executor.NewRunID(time.Now())
	} else if strings.ContainsAny(runID, `/\`) || runID == "." || runID == ".." {
		return usageError{fmt.Sprintf("--resume %q: not a run ID", runID)}
	}
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}

	progress := newProgress(stderr, f.jsonOut)
	rt, err := factories.NewRuntime(cfg, factories.RuntimeOptions{
		// A durable pager keeps the run's values itself: checkpoints record
		// only which nodes finished, and a resumed run reopens the pages.
		Pager:          paging.Options{StoragePath: filepath.Join(storage, "pages", runID), Mode: paging.ModeDurable},
		CheckpointPath: filepath.Join(storage, "runs.db"),
		Guard:          guardOptions(env, storage, logger),
		Executor:       executor.Options{Observers: []executor.Observer{progress, executor.NewLogObserver(logger)}},
		LogLevel:       level,
		Logger:         logger,
	})
	if err != nil {
		return err
	}
	defer rt.Close()
	rt.Executor.OnModeChange(progress.modeChange)
	// The device may already be under pressure: the first sample was taken
	// while the runtime was built.
	if st := rt.Executor.Status(); st.Mode != adaptive.Normal {
		progress.modeChange(adaptive.ModeChange{Time: st.Since, From: adaptive.Normal, To: st.Mode,
			Active: st.Active, Reason: st.Reason(), Settings: st.Settings})
	}
	if f.resume != "" {
		done, err := rt.Checkpoints.CompletedNodes(runID)
		if err != nil {
			return fmt.Errorf("--resume %s: %w", runID, err)
		}
		progress.printf("resuming run %s: %d nodes already done\n", runID, len(done))
	}

	var ans answerer = extractive{}
	if url := getenv(env, "CEMAF_LLM_URL"); url != "" {
		llm := &llmClient{url: endpointURL(url), model: cmp.Or(getenv(env, "CEMAF_LLM_MODEL"), "local"),
			apiKey: getenv(env, "CEMAF_LLM_API_KEY"), timeout: f.llmTimeout, retry: llmRetry(f.llmTries, f.llmBackoff), cpu: rt.CPU}
		defer llm.Unload() // close its keep-alive connections
		ans = llm
	}
	reportPath := ""
	spec := agentSpec{
		Question: f.question, Docs: docs, DocsLabel: label, Shards: f.shards, ChunkSize: f.chunkSize, TopK: f.topK, Answerer: ans,
		Report: func(ctx context.Context, id string, report []byte) (string, error) {
			dir := filepath.Join(storage, "reports")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return "", err
			}
			p := filepath.Join(dir, id+".md")
			if err := rt.Disk.WriteFile(ctx, p, report, 0o600); err != nil {
				return "", err
			}
			reportPath = p
			return p, nil
		},
	}
	g, err := buildGraph(spec)
	if err != nil {
		return err
	}
	progress.total = g.Len()

	start := time.Now()
	res, runErr := rt.Executor.RunWith(ctx, g, rt.State(), executor.RunOptions{ID: runID})
	sum := runSummary{RunID: runID, Question: f.question, Corpus: label, DurationMS: time.Since(start).Milliseconds(),
		ModeChanges: rt.Executor.History(), FinalMode: rt.Executor.CurrentMode(), Pager: rt.Pager.Stats(), PeakRSSBytes: peakRSS(cfg.ProcfsRoot)}
	if res != nil {
		sum.Nodes, sum.Pauses, sum.PausedMS = res.Nodes, res.Pauses, res.Paused.Milliseconds()
		if nr, ok := res.Node("answer"); ok && nr.Status != executor.Succeeded && nr.Err != nil {
			sum.AnswerError = nr.Err.Error()
		}
		if q, err := dag.GetJSON[string](rt.State(), keyQuestion); err == nil {
			sum.Question = q // a resumed run keeps its own question
		}
	}
	if a, err := dag.GetJSON[answer](rt.State(), keyAnswer); err == nil {
		sum.Answer = &a
	}
	if runErr != nil {
		sum.Error = runErr.Error()
	}
	if !f.ephemeral {
		sum.Storage, sum.ReportPath = storage, reportPath
	}
	if !f.ephemeral {
		prunePages(storage, rt.Checkpoints, logger)
	}
	if err := rt.Close(); err != nil {
		logger.Warn("closing the runtime", "error", err)
	}

	if f.jsonOut {
		if err := writeJSON(stdout, sum); err != nil {
			return err
		}
	} else {
		printAnswer(stdout, sum)
		progress.summary(sum)
	}
	switch {
	case runErr != nil:
		return fmt.Errorf("run %s: %w (resume with: pi-agent run --resume %s)", runID, runErr, runID)
	case sum.AnswerError != "":
		return fmt.Errorf("run %s: no answer: %s; the report keeps the retrieved passages", runID, sum.AnswerError)
	}
	return nil
}

func printAnswer(w io.Writer, s runSummary) {
	fmt.Fprintf(w, "Q: %s\n\n", s.Question)
	if s.Answer != nil {
		fmt.Fprintf(w, "%s\n", s.Answer.Text)
		for _, src := range s.Answer.Sources {
			fmt.Fprintf(w, "  %s\n", src)
		}
		fmt.Fprintf(w, "(%s)\n", s.Answer.By)
	} else {
		fmt.Fprintf(w, "(no answer)\n")
	}
	if s.ReportPath != "" {
		fmt.Fprintf(w, "\nreport: %s\n", s.ReportPath)
	}
}

// prunePages removes the page directories of runs the checkpoint store no
// longer knows (its GC keeps the recent and unfinished ones).
func prunePages(storage string, cs *executor.CheckpointStore, logger *slog.Logger) {
	runs, err := cs.Runs()
	if err != nil {
		return
	}
	keep := map[string]bool{}
	for _, r := range runs {
		keep[r.ID] = true
	}
	entries, _ := os.ReadDir(filepath.Join(storage, "pages"))
	for _, e := range entries {
		if e.IsDir() && !keep[e.Name()] {
			if err := os.RemoveAll(filepath.Join(storage, "pages", e.Name())); err != nil {
				logger.Warn("pruning old pages", "dir", e.Name(), "error", err)
			}
		}
	}
}

// peakRSS reads the process's peak resident set (VmHWM) from procfs.
func peakRSS(procfs string) int64 {
	raw, err := os.ReadFile(filepath.Join(procfs, "self", "status"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// progress prints a run's progress on stderr: nodes done out of the total,
// the current mode, pauses and why, mode changes.
type progress struct {
	w     io.Writer
	quiet bool // --json: only errors

	// mu guards the fields below: events come from the run's coordinator,
	// mode changes from the monitor.
	mu    sync.Mutex
	total int
	done  int
	mode  adaptive.Mode
}

func newProgress(w io.Writer, quiet bool) *progress {
	return &progress{w: w, quiet: quiet, mode: adaptive.Normal}
}

func (p *progress) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

func (p *progress) OnEvent(ev executor.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.quiet && ev.Kind != executor.NodeFailed {
		return
	}
	switch ev.Kind {
	case executor.RunStarted:
		fmt.Fprintf(p.w, "pi-agent: run %s: %d nodes, mode %s\n", ev.RunID, p.total, p.mode)
	case executor.NodeSucceeded:
		p.done++
		fmt.Fprintf(p.w, "[%d/%d] %-10s done in %v (mode %s)\n", p.done, p.total, ev.Node, roundDur(ev.Duration), p.mode)
	case executor.NodeFailed:
		p.done++
		fmt.Fprintf(p.w, "[%d/%d] %-10s %s after %d attempt(s): %v\n", p.done, p.total, ev.Node, strings.ToUpper(ev.Status.String()), ev.Attempt, errors.Unwrap(ev.Err))
	case executor.NodeSkipped, executor.NodeCancelled:
		p.done++
		fmt.Fprintf(p.w, "[%d/%d] %-10s %s\n", p.done, p.total, ev.Node, ev.Status)
	case executor.NodeRetrying:
		fmt.Fprintf(p.w, "        %-10s attempt %d failed (%v); retrying in %v\n", ev.Node, ev.Attempt, ev.Err, ev.Duration.Round(time.Millisecond))
	case executor.Paused:
		why := "resource guard closed"
		if ev.Err != nil {
			why = ev.Err.Error()
		}
		fmt.Fprintf(p.w, "        paused: %s\n", why)
	case executor.Resumed:
		fmt.Fprintf(p.w, "        resumed after %v\n", ev.Duration.Round(time.Millisecond))
	}
}

func (p *progress) modeChange(c adaptive.ModeChange) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = c.To
	if !p.quiet {
		fmt.Fprintf(p.w, "        mode %s -> %s (%s; %d CPU nodes, %d I/O nodes, delay %v)\n", c.From, c.To, c.Reason,
			c.Settings.CPUParallel, c.Settings.IOParallel, c.Settings.InterNodeDelay)
	}
}

// summary prints per-node times and attempts, mode changes, pager stats
// and peak memory.
func (p *progress) summary(s runSummary) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.w
	fmt.Fprintf(w, "\nrun %s finished in %v", s.RunID, time.Duration(s.DurationMS)*time.Millisecond)
	if s.Pauses > 0 {
		fmt.Fprintf(w, " (paused %s, %v)", plural(s.Pauses, "time"), time.Duration(s.PausedMS)*time.Millisecond)
	}
	fmt.Fprintf(w, "\n%-12s %-10s %8s %10s\n", "node", "status", "attempts", "time")
	for _, n := range s.Nodes {
		t := roundDur(n.Duration()).String()
		if n.Restored {
			t = "restored"
		}
		fmt.Fprintf(w, "%-12s %-10s %8d %10s\n", n.ID, n.Status, n.Attempts, t)
	}
	if len(s.ModeChanges) == 0 {
		fmt.Fprintf(w, "mode: %s throughout\n", s.FinalMode)
	}
	for _, c := range s.ModeChanges {
		fmt.Fprintf(w, "mode %s -> %s at %s: %s\n", c.From, c.To, c.Time.Format(time.TimeOnly), c.Reason)
	}
	ps := s.Pager
	fmt.Fprintf(w, "pager: %d keys, %s of values; %s resident of %s budget; %d pages on disk (%s, ratio %.2f); hit rate %.1f%%; %d page-outs, %d page-ins\n",
		ps.Keys, mib(ps.ValueBytes), mib(ps.BytesInMemory), mib(ps.MemoryLimitBytes), ps.PagesOnDisk, mib(ps.StoredBytesOnDisk),
		ps.CompressionRatio, 100*ps.HitRate, ps.PageOuts, ps.PageIns)
	fmt.Fprintf(w, "peak memory (RSS): %s\n", mib(s.PeakRSSBytes))
	if s.Storage != "" {
		fmt.Fprintf(w, "storage: %s\n", s.Storage)
	}
}

// roundDur keeps three significant digits or so: 12ms, 1.53s, 412µs.
func roundDur(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

func mib(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

// plural says "1 time", "2 times".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
