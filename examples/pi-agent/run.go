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
	"strings"
	"time"

	"github.com/cemaf-go/cemaf/adaptive"
	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/factories"
	"github.com/cemaf-go/cemaf/internal/boundedread"
	"github.com/cemaf-go/cemaf/paging"
)

const defaultQuestion = "What does cemaf do when the device runs hot or short of memory?"

// runFlags are the flags of the run command.
type runFlags struct {
	*cmdFlags
	agentFlags
	question   string
	resume     string
	ephemeral  bool
	llmTries   int
	llmBackoff time.Duration
	timeout    time.Duration
}

func newRunFlags(stderr io.Writer) *runFlags {
	f := &runFlags{cmdFlags: newCmdFlags("run", "Answer a question over a corpus (the default command): the built-in corpus, or --docs DIR.\n"+
		"Progress goes to stderr, the answer to stdout; the report and checkpoints stay in the storage directory.", stderr)}
	f.withResource()
	f.withLog()
	f.withJSON()
	f.withAgent(&f.agentFlags)
	f.ss.stringVar(&f.question, "question", "", defaultQuestion, "a question that is not empty",
		func(q string) error {
			if strings.TrimSpace(q) == "" {
				return errors.New("empty")
			}
			return nil
		}, "the `question` to answer")
	f.fs.StringVar(&f.resume, "resume", "", "resume the unfinished run `ID` (see pi-agent runs)")
	f.fs.BoolVar(&f.ephemeral, "ephemeral", false, "keep nothing: storage in a temporary directory removed at exit")
	f.ss.intVar(&f.llmTries, "llm-attempts", "", 3, 1, 20, "`n` LLM call attempts before giving up")
	f.ss.durationVar(&f.llmBackoff, "llm-backoff", "", 500*time.Millisecond, 0, time.Minute, "`delay` before the second LLM attempt, doubling after")
	f.ss.durationVar(&f.timeout, "timeout", "", 0, 0, 7*24*time.Hour, "timeout of the whole run as a `duration`, 0 for none")
	return f
}

// runSummary is the result of a run, printed as JSON with --json.
type runSummary struct {
	RunID        string                `json:"run_id"`
	Resumed      bool                  `json:"resumed,omitempty"`
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
	CorpusReport *corpusReport         `json:"corpus_report,omitempty"`
}

func runCmd(ctx context.Context, args []string, env []string, stdout, stderr io.Writer) error {
	f := newRunFlags(stderr)
	if err := f.parse(args, env, stderr); err != nil {
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
	docs, err := openCorpus(f.docs)
	if err != nil {
		return err
	}
	if f.ephemeral {
		if f.resume != "" {
			return usageError{"--resume and --ephemeral exclude each other"}
		}
		dir, err := os.MkdirTemp("", "pi-agent-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		storage = storageDir{Path: dir, Source: "flag"}
	}
	if err := os.MkdirAll(storage.Path, 0o700); err != nil {
		return fmt.Errorf("storage %s: %w", storage.Path, err)
	}
	runID := f.resume
	if runID == "" {
		runID = executor.NewRunID(time.Now())
	} else if strings.ContainsAny(runID, `/\`) || runID == "." || runID == ".." || strings.TrimSpace(runID) != runID || runID == "" {
		return usageError{fmt.Sprintf("--resume %q: not a run ID (pi-agent runs lists them)", runID)}
	}
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}

	progress := newProgress(stderr, f.jsonOut)
	// The progress lines say what the executor's log would at the default
	// level; its log joins them when asked for (--log-level info, debug).
	observers := []executor.Observer{progress}
	if level.Level() < slog.LevelWarn {
		observers = append(observers, executor.NewLogObserver(logger))
	}
	rt, err := newRunRuntime(cfg, storage, runID, f.resume != "", factories.RuntimeOptions{
		Guard:    guardOptions(env, storage.Path, logger),
		Executor: executor.Options{Observers: observers},
		LogLevel: level,
		Logger:   logger,
	}, stderr)
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
		rec, err := rt.Checkpoints.Run(runID)
		if errors.Is(err, executor.ErrRunNotFound) || err == nil && rec.Finished() {
			// Opening the runtime made a page directory for a run that
			// cannot resume.
			rt.Close()
			os.RemoveAll(filepath.Join(storage.Path, "pages", runID))
		}
		switch {
		case errors.Is(err, executor.ErrRunNotFound):
			return fmt.Errorf("--resume %s: no run with this ID in %s (pi-agent runs%s lists the runs)", runID, storage.Path, storageFlag(storage))
		case err != nil:
			return fmt.Errorf("--resume %s: %w", runID, checkpointHint(err, storage))
		case rec.Finished():
			return fmt.Errorf("--resume %s: the run already finished; its report is %s", runID, filepath.Join(storage.Path, "reports", runID+".md"))
		}
		progress.resumed(rec.Completed)
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
		Question: f.question, Corpus: docs, Shards: f.shards, ChunkSize: f.chunkSize, TopK: f.topK, Answerer: ans,
		MaxDocBytes: maxDocFor(cfg),
		Report: func(ctx context.Context, id string, report []byte) (string, error) {
			dir := filepath.Join(storage.Path, "reports")
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
	progress.setTotal(g.Len())

	start := time.Now()
	res, runErr := rt.Executor.RunWith(ctx, g, rt.State(), executor.RunOptions{ID: runID, Resume: f.resume != ""})
	sum := runSummary{RunID: runID, Resumed: f.resume != "", Question: f.question, Corpus: docs.Label, DurationMS: time.Since(start).Milliseconds(),
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
	if cr, err := readCorpusReport(rt.State(), docs.Label, f.shards); err == nil {
		sum.CorpusReport = &cr
	}
	if a, err := dag.GetJSON[answer](rt.State(), keyAnswer); err == nil {
		sum.Answer = &a
	}
	if runErr != nil {
		sum.Error = runErr.Error()
	}
	if !f.ephemeral {
		sum.Storage, sum.ReportPath = storage.Path, reportPath
	}
	runs, runsErr := rt.Checkpoints.Runs()
	if err := rt.Close(); err != nil {
		logger.Warn("closing the runtime", "error", err)
	}
	if !f.ephemeral && runsErr == nil {
		pruneStorage(storage.Path, runs, logger)
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
	case errors.Is(runErr, executor.ErrRunNotFound):
		return fmt.Errorf("--resume %s: no run with this ID in %s", runID, storage.Path)
	case runErr != nil && f.ephemeral:
		return fmt.Errorf("run %s: %w", runID, runErr)
	case runErr != nil:
		return fmt.Errorf("run %s: %w (resume with: %s)", runID, runErr, resumeCommand(runID, storage))
	case sum.AnswerError != "":
		return fmt.Errorf("run %s: no answer: %s; the report keeps the retrieved passages", runID, sum.AnswerError)
	}
	return nil
}

// newRunRuntime builds the runtime of one run: a durable pager of its own
// (checkpoints then record only which nodes finished, and a resumed run
// reopens the pages) and the checkpoint file. A damaged checkpoint file
// never blocks a fresh run: it is moved aside, with a warning, and a new one
// started; a resume needs the file, and its error says what to do.
func newRunRuntime(cfg factories.ResourceConfig, storage storageDir, runID string, resume bool, opts factories.RuntimeOptions, stderr io.Writer) (*factories.Runtime, error) {
	opts.Pager = paging.Options{StoragePath: filepath.Join(storage.Path, "pages", runID), Mode: paging.ModeDurable}
	opts.CheckpointPath = filepath.Join(storage.Path, "runs.db")
	rt, err := factories.NewRuntime(cfg, opts)
	if errors.Is(err, executor.ErrCheckpointCorrupt) && !resume {
		fmt.Fprintf(stderr, "pi-agent run: warning: %v\npi-agent run: warning: moving the damaged checkpoint file aside and starting a new one; the runs recorded in it cannot be resumed\n", err)
		opts.Checkpoints.StartFresh = true
		rt, err = factories.NewRuntime(cfg, opts)
	}
	if err != nil {
		return nil, checkpointHint(err, storage)
	}
	return rt, nil
}

// maxDocFor bounds a document by the pager's budget too: a document is
// stored whole, and chunking reads it back whole.
func maxDocFor(cfg factories.ResourceConfig) int64 {
	return min(maxDocBytes, max(int64(cfg.PagerMemoryLimitMB*(1<<20))/4, 1<<20))
}

// resumeCommand is the command that resumes runID, with --storage when the
// storage directory is not the default one.
func resumeCommand(runID string, storage storageDir) string {
	return "pi-agent run --resume " + runID + storageFlag(storage)
}

// storageFlag is " --storage DIR", or "" for the default directory.
func storageFlag(storage storageDir) string {
	if storage.isDefault() {
		return ""
	}
	return " --storage " + shellQuote(storage.Path)
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:,=@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
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

// peakRSS reads the process's peak resident set (VmHWM) from procfs.
func peakRSS(procfs string) int64 {
	raw, err := boundedread.ReadFile(filepath.Join(procfs, "self", "status"), 64<<10)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), "kB"), &kb)
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
