package main

import (
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

// maxRunQuestionBytes bounds --question: a question, not a document (it is
// recorded with the run's inputs).
const maxRunQuestionBytes = 16 << 10

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
	ifChanged  string
	// withInteractive
	stream  bool
	clarify bool
	input   string
	nats    natsFlags
}

func newRunFlags(stderr io.Writer) *runFlags {
	f := &runFlags{cmdFlags: newCmdFlags("run", "Answer a question over a corpus (the default command): the built-in corpus, or --docs DIR.\n"+
		"Progress goes to stderr, the answer to stdout; the report and checkpoints stay in the storage directory.", stderr)}
	f.withResource()
	f.withLog()
	f.withJSON()
	f.withAgent(&f.agentFlags)
	f.ss.stringVar(&f.question, "question", "", defaultQuestion, fmt.Sprintf("a question that is not empty, at most %d bytes", maxRunQuestionBytes),
		func(q string) error {
			switch {
			case strings.TrimSpace(q) == "":
				return errors.New("empty")
			case len(q) > maxRunQuestionBytes:
				return fmt.Errorf("%d bytes long", len(q))
			}
			return nil
		}, "the `question` to answer")
	f.fs.StringVar(&f.resume, "resume", "", "resume the unfinished run `ID` (see pi-agent runs)")
	f.fs.BoolVar(&f.ephemeral, "ephemeral", false, "keep nothing: storage in a temporary directory removed at exit")
	f.withLLMRetries(&f.llmTries, &f.llmBackoff)
	f.ss.stringVar(&f.ifChanged, "if-changed", "", "refuse", "refuse or new-run", func(v string) error {
		if v != "refuse" && v != "new-run" {
			return errors.New("unknown choice")
		}
		return nil
	}, "what --resume does when the run's inputs changed since it started (the question, the content of the corpus, "+
		"--shards, --top-k, --chunk-size, the LLM endpoint or model): refuse, naming each change, or start a new run over them (the `choice`: refuse or new-run)")
	f.ss.durationVar(&f.timeout, "timeout", "", 0, 0, 7*24*time.Hour, "timeout of the whole run as a `duration`, 0 for none")
	f.withInteractive()
	f.withNATS(&f.nats, "run the index shards and the answer on the fleet's workers (pi-agent worker)")
	return f
}

// runSummary is the result of a run, printed as JSON with --json.
type runSummary struct {
	RunID        string                `json:"run_id"`
	Resumed      bool                  `json:"resumed,omitempty"`
	NewRunOf     string                `json:"new_run_of,omitempty"` // --if-changed=new-run: the run whose inputs changed
	Inputs       map[string]string     `json:"inputs"`
	Question     string                `json:"question"`
	Answer       *answer               `json:"answer,omitempty"`
	AnswerError  string                `json:"answer_error,omitempty"`
	Waiting      []executor.Question   `json:"waiting,omitempty"` // the questions of the nodes waiting for input
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
	if err := f.checkInteractive(); err != nil {
		return err
	}
	models, err := llmEnv(env)
	if err != nil {
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
	in, given := f.givenInputs(env, maxDocBytes, models)
	r := &runner{f: f, env: env, cfg: cfg, storage: storage, logger: logger, level: level, stdout: stdout, stderr: stderr, runID: f.resume}
	if r.runID == "" {
		r.runID = executor.NewRunID(time.Now())
	} else if strings.ContainsAny(r.runID, `/\`) || r.runID == "." || r.runID == ".." || strings.TrimSpace(r.runID) != r.runID {
		return usageError{fmt.Sprintf("--resume %q: not a run ID (pi-agent runs lists them)", r.runID)}
	} else {
		rec, err := findRun(storage, r.runID)
		if err != nil {
			return err
		}
		r.resume, r.recorded, r.completed, r.recInputs = true, rec.Inputs != nil, rec.Completed, rec.Inputs
		if r.answers, err = f.resumeAnswers(rec, storage); err != nil {
			return err
		}
		in = in.withRecorded(rec.Inputs, given)
	}
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	if r.docs, err = corpusOf(ctx, in); err != nil {
		return err
	}
	// The corpus is identified by its content, read once up front: a
	// resume over changed files is refused, naming them.
	if r.digest, err = r.docs.digest(ctx, in.MaxDocBytes); err != nil {
		return err
	}
	in.Corpus = r.digest.Sum
	r.in = in
	err = r.execute(ctx)
	var ice *executor.InputsChangedError
	if !errors.As(err, &ice) {
		return err
	}
	if f.ifChanged != "new-run" {
		return inputsChanged(ice, r.wasFiles, r.digest, storage)
	}
	old := r.runID
	r.runID, r.resume, r.recorded, r.completed, r.newRunOf = executor.NewRunID(time.Now()), false, false, 0, old
	fmt.Fprintf(stderr, "pi-agent run: the inputs of run %s changed since it started (%s); starting run %s over the new ones (run %s stays resumable)\n",
		old, changeNames(ice), r.runID, old)
	return r.execute(ctx)
}

// changeNames lists the names of the changed inputs.
func changeNames(ice *executor.InputsChangedError) string {
	names := make([]string, len(ice.Changed))
	for i, c := range ice.Changed {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

// runner runs one run, a new one or a resumed one.
type runner struct {
	f       *runFlags
	env     []string
	cfg     factories.ResourceConfig
	storage storageDir
	logger  *slog.Logger
	level   *slog.LevelVar
	stdout  io.Writer
	stderr  io.Writer

	runID     string
	resume    bool
	recorded  bool // the run to resume recorded its inputs (older ones did not)
	recInputs map[string]string
	completed int // nodes the run to resume had finished
	newRunOf  string
	in        runInputs
	docs      corpus
	digest    corpusDigest
	wasFiles  []fileDigest      // the corpus files the resumed run recorded
	answers   map[string]string // --input for the nodes the resumed run waits on
}

// execute runs the graph. A resume refused because its inputs changed
// returns the *executor.InputsChangedError before printing anything.
func (r *runner) execute(ctx context.Context) error {
	f, storage, in, logger := r.f, r.storage, r.in, r.logger
	progress := newProgress(r.stderr, f.jsonOut)
	// The progress lines say what the executor's log would at the default
	// level; its log joins them when asked for (--log-level info, debug).
	observers := []executor.Observer{progress}
	if r.level.Level() < slog.LevelWarn {
		observers = append(observers, executor.NewLogObserver(logger))
	}
	tokens := &tokenPrinter{w: r.stdout, question: in.Question}
	if len(r.answers) > 0 {
		tokens.question = strings.TrimSpace(f.input) // the words the answer is for
	}
	if f.stream {
		// First, so that the answer's line ends before the progress line
		// that reports the node.
		observers = append([]executor.Observer{tokens}, observers...)
	}
	gopts := r.guardOptions()
	coord, leave, err := r.joinFleet(ctx, &gopts, progress)
	if err != nil {
		return err
	}
	defer leave()
	rt, err := newRunRuntime(r.cfg, storage, r.runID, r.resume, factories.RuntimeOptions{
		Guard:    gopts,
		Executor: executor.Options{Observers: observers},
		LogLevel: r.level,
		Logger:   logger,
	}, r.stderr)
	if err != nil {
		return err
	}
	defer rt.Close()
	rt.Executor.OnModeChange(progress.modeChange)
	if r.resume {
		progress.resumed(r.completed)
		r.wasFiles = recordedFiles(rt.State())
	} else if err := dag.PutJSON(rt.State(), keyCorpusFiles, r.digest.Files); err != nil {
		return err
	}
	ans, closeLLM, err := r.newAnswerer(rt)
	if err != nil {
		return err
	}
	defer closeLLM() // its keep-alive connections
	reportPath := ""
	spec := agentSpec{
		Question: in.Question, Corpus: r.docs, Shards: in.Shards, ChunkSize: in.ChunkSize, TopK: in.TopK, Answerer: ans,
		MaxDocBytes: in.MaxDocBytes, Clarify: in.Clarify,
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
	if err == nil && coord != nil {
		g, err = remoteGraph(g, coord, f.remoteAnswerTimeout())
	}
	if err != nil {
		return err
	}
	progress.setTotal(g.Len())
	ro := executor.RunOptions{ID: r.runID, Resume: r.resume, Answers: r.answers}
	if !r.resume || r.recorded {
		// A run recorded before inputs were resumes without them.
		ro.Inputs = in.record()
	}
	if r.resume && r.recorded {
		if ch := changedInputs(r.recInputs, ro.Inputs); len(ch) > 0 {
			return &executor.InputsChangedError{RunID: r.runID, Changed: ch}
		}
	}

	// The device may already be under pressure: the first sample was taken
	// while the runtime was built.
	if st := rt.Executor.Status(); st.Mode != adaptive.Normal {
		progress.modeChange(adaptive.ModeChange{Time: st.Since, From: adaptive.Normal, To: st.Mode,
			Active: st.Active, Reason: st.Reason(), Settings: st.Settings})
	}
	start := time.Now()
	res, runErr := rt.Executor.RunWith(ctx, g, rt.State(), ro)
	if errors.Is(runErr, executor.ErrInputsChanged) {
		return runErr
	}
	sum := runSummary{RunID: r.runID, Resumed: r.resume, NewRunOf: r.newRunOf, Question: in.Question, Corpus: r.docs.Label,
		Inputs: in.record(), DurationMS: time.Since(start).Milliseconds(),
		ModeChanges: rt.Executor.History(), FinalMode: rt.Executor.CurrentMode(), Pager: rt.Pager.Stats(), PeakRSSBytes: peakRSS(r.cfg.ProcfsRoot)}
	if res != nil {
		sum.Nodes, sum.Pauses, sum.PausedMS = res.Nodes, res.Pauses, res.Paused.Milliseconds()
		if nr, ok := res.Node("answer"); ok && (nr.Status == executor.Failed || nr.Status == executor.TimedOut) && nr.Err != nil {
			// Not a run stopped while it answered: that says so itself.
			sum.AnswerError = nr.Err.Error()
			r.answerFailed(context.WithoutCancel(ctx), spec, rt.State(), sum.AnswerError)
		}
		sum.Waiting = res.Questions
	}
	if rv, err := dag.GetJSON[retrieval](rt.State(), keyRetrieval); err == nil {
		sum.Question = rv.Question // the words a resume's --input gave
	}
	if cr, err := readCorpusReport(rt.State(), r.docs.Label, in.Shards); err == nil {
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
	if coord != nil && runErr == nil {
		// Over, and never resumed: the fleet's copies of its results and
		// large values would otherwise stay on the hub until ResultTTL.
		// After the summary took the run's duration, which this is not.
		forgetFleetRun(ctx, coord, r.runID, logger)
	}
	runs, runsErr := rt.Checkpoints.Runs()
	if err := rt.Close(); err != nil {
		logger.Warn("closing the runtime", "error", err)
	}
	if !f.ephemeral && runsErr == nil {
		pruneStorage(storage.Path, runs, logger)
	}

	if f.jsonOut {
		if err := writeJSON(r.stdout, sum); err != nil {
			return err
		}
	} else {
		if tokens.streamed() {
			printStreamedAnswer(r.stdout, sum)
		} else {
			printAnswer(r.stdout, sum)
		}
		progress.summary(sum)
	}
	return r.runEnd(runErr, sum)
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
	} else if len(s.Waiting) > 0 {
		fmt.Fprintf(w, "(no answer yet: the run waits for input)\n")
	} else {
		fmt.Fprintf(w, "(no answer)\n")
	}
	if s.ReportPath != "" {
		fmt.Fprintf(w, "\nreport: %s\n", s.ReportPath)
	}
}

// peakRSS reads the process's peak resident set (VmHWM) from procfs.
func peakRSS(procfs string) int64 { return processPeakRSS(procfs, "self") }

// processPeakRSS is the peak resident set (VmHWM) of the process pid ("self"
// for this one) in bytes, 0 when procfs does not say.
func processPeakRSS(procfs, pid string) int64 {
	raw, err := boundedread.ReadFile(filepath.Join(procfs, pid, "status"), 64<<10)
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
