package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/factories"
)

// What pi-agent run adds to a run for the LLM, streaming and human input:
// the answerer, the printer of streamed tokens, the answers a resume gives
// to waiting nodes, and the wording of a run that ends waiting.

// exitWaiting is the exit code of a run that ended waiting for input.
const exitWaiting = 3

// maxRunInputBytes bounds --input, as the executor bounds an answer.
const maxRunInputBytes = executor.MaxInputBytes

// withInteractive registers --stream, --clarify and --input.
func (f *runFlags) withInteractive() {
	f.fs.BoolVar(&f.stream, "stream", false, "print the answer's tokens on stdout as they arrive, then the report (not with --json)")
	f.fs.BoolVar(&f.clarify, "clarify", false, "when no passage matches the question, stop and ask for other words (the run waits for input; "+
		"answer with --resume ID --input TEXT) instead of answering that nothing matches")
	f.fs.StringVar(&f.input, "input", "", "with --resume, the `text` that answers the question a waiting run asked (see pi-agent runs)")
}

// checkInteractive refuses the combinations that cannot work.
func (f *runFlags) checkInteractive() error {
	switch {
	case f.clarify && f.ephemeral:
		return usageError{"--clarify and --ephemeral exclude each other (a run that waits for input must be kept to be answered)"}
	case f.stream && f.jsonOut:
		return usageError{"--stream and --json exclude each other (the tokens would break the JSON on stdout)"}
	case f.given("input") && f.resume == "":
		return usageError{"--input answers a waiting run: give it with --resume ID (pi-agent runs lists the waiting runs)"}
	case f.given("input") && strings.TrimSpace(f.input) == "":
		return usageError{"--input is empty: give the text that answers the run's question"}
	case len(f.input) > maxRunInputBytes:
		return usageError{fmt.Sprintf("--input is %d bytes long: at most %d", len(f.input), maxRunInputBytes)}
	}
	return nil
}

// waitingError is a run that ended waiting for input: it says what was
// asked and the command that answers.
type waitingError struct {
	runID     string
	questions []executor.Question
	storage   storageDir
}

func (e *waitingError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "run %s is waiting for input", e.runID)
	for _, q := range e.questions {
		fmt.Fprintf(&b, "\n  %s asks: %s", q.Node, q.Text)
	}
	fmt.Fprintf(&b, "\nanswer with: %s", inputCommand(e.runID, e.storage))
	return b.String()
}

func (e *waitingError) Is(target error) bool { return target == executor.ErrInterrupted }

// inputCommand is the command that answers the waiting run runID.
func inputCommand(runID string, storage storageDir) string {
	return resumeCommand(runID, storage) + " --input 'TEXT'"
}

// resumeAnswers maps --input to the nodes the recorded run waits on. A
// waiting run needs --input; a run that waits for nothing refuses it.
func (f *runFlags) resumeAnswers(rec executor.RunRecord, storage storageDir) (map[string]string, error) {
	waiting := isWaiting(rec)
	switch {
	case waiting && !f.given("input"):
		return nil, &waitingError{runID: rec.ID, questions: rec.Questions, storage: storage}
	case !waiting && f.given("input"):
		return nil, usageError{fmt.Sprintf("--input: run %s is not waiting for input (it is %s); resume it without --input", rec.ID, rec.Status)}
	case !waiting:
		return nil, nil
	}
	answers := map[string]string{}
	for _, q := range rec.Questions {
		answers[q.Node] = strings.TrimSpace(f.input)
	}
	return answers, nil
}

// newAnswerer returns the run's answerer: extractive without an LLM
// endpoint, else the runtime's LLM client with the mode profiles. The
// returned func closes the client's connections.
func (r *runner) newAnswerer(rt *factories.Runtime) (answerer, func(), error) {
	in := r.in
	if in.LLMURL == "" {
		return extractive{}, func() {}, nil
	}
	ps, err := llmProfiles(r.env, in.LLMModel, in.LLMModels)
	if err != nil {
		return nil, nil, err
	}
	c, err := rt.NewLLMClient(in.LLMURL, llmAnswerOptions(ps, getenv(r.env, "CEMAF_LLM_API_KEY"), r.f.llmTries, r.f.llmBackoff))
	if err != nil {
		return nil, nil, fmt.Errorf("the LLM endpoint (CEMAF_LLM_URL, CEMAF_LLM_MODEL…): %w", err)
	}
	return llmAnswerer{client: c, timeout: r.f.llmTimeout, stream: r.f.stream, observe: rt.ObserveLLM}, c.CloseIdleConnections, nil
}

// answerFailed writes the report of a run whose answer node failed: the
// passages and why there is no answer, with the command that resumes it.
// The report node overwrites it when the resumed run answers.
func (r *runner) answerFailed(ctx context.Context, spec agentSpec, s dag.State, why string) {
	note := "No answer yet: the answer step failed: " + why + "."
	if !r.f.ephemeral {
		note += " Resume the run with: " + resumeCommand(r.runID, r.storage) + "."
	}
	report, err := spec.render(r.runID, s, note)
	if err == nil && spec.Report != nil {
		_, err = spec.Report(ctx, r.runID, report)
	}
	if err != nil {
		r.logger.Warn("writing the report of the failed answer", "run", r.runID, "error", err)
	}
}

// runEnd is the error pi-agent run ends with, from the run's error and
// summary: waiting for input, a failed answer, another failure, or nil.
func (r *runner) runEnd(runErr error, sum runSummary) error {
	switch {
	case errors.Is(runErr, executor.ErrInterrupted) && len(sum.Waiting) > 0:
		return &waitingError{runID: r.runID, questions: sum.Waiting, storage: r.storage}
	case runErr != nil && sum.AnswerError != "" && r.f.ephemeral:
		return fmt.Errorf("run %s: no answer: %s", r.runID, sum.AnswerError)
	case runErr != nil && sum.AnswerError != "":
		return fmt.Errorf("run %s: no answer: %s; the report keeps the retrieved passages (resume with: %s)", r.runID, sum.AnswerError, resumeCommand(r.runID, r.storage))
	case runErr != nil && r.f.ephemeral:
		return fmt.Errorf("run %s: %w", r.runID, runErr)
	case runErr != nil:
		return fmt.Errorf("run %s: %w (resume with: %s)", r.runID, runErr, resumeCommand(r.runID, r.storage))
	}
	return nil
}

// tokenPrinter prints the answer's tokens on w as the executor's observers
// receive them (run --stream), after the question.
type tokenPrinter struct {
	w        io.Writer
	question string

	// mu guards the fields below: events come from the run's coordinator.
	mu      sync.Mutex
	printed bool // the question and some text were printed
	atEOL   bool
}

// OnEvent prints the answer node's token chunks; a restart (a cut stream
// retried) says so before the new attempt's text.
func (p *tokenPrinter) OnEvent(ev executor.Event) {
	if ev.Node != "answer" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if ev.Kind != executor.NodeOutput {
		// The attempt ended (or the node waits): end the text's line so
		// that the progress line on stderr starts a line of its own.
		if ev.Kind != executor.NodeStarted && p.printed && !p.atEOL {
			fmt.Fprintln(p.w)
			p.atEOL = true
		}
		return
	}
	switch ev.Chunk.Kind {
	case executor.ChunkToken:
		if !p.printed {
			fmt.Fprintf(p.w, "Q: %s\n\n", p.question)
			p.printed = true
		}
		io.WriteString(p.w, ev.Chunk.Text)
		p.atEOL = strings.HasSuffix(ev.Chunk.Text, "\n")
	case chunkRestart:
		if p.printed {
			fmt.Fprintf(p.w, "\n[the answer was cut off; starting over: %s]\n", ev.Chunk.Text)
			p.atEOL = true
		}
	}
}

// streamed says whether the answer's text was printed, ending its line.
func (p *tokenPrinter) streamed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.printed && !p.atEOL {
		fmt.Fprintln(p.w)
		p.atEOL = true
	}
	return p.printed
}

// printStreamedAnswer prints what printAnswer does but the text, which was
// streamed.
func printStreamedAnswer(w io.Writer, s runSummary) {
	if s.Answer != nil {
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

// isWaiting says whether a recorded run waits for input.
func isWaiting(r executor.RunRecord) bool { return r.Status == "waiting" && len(r.Questions) > 0 }

// printQuestions prints, under the runs command's table, what each waiting
// run asks.
func printQuestions(w io.Writer, runs []executor.RunRecord) error {
	for _, r := range runs {
		if !isWaiting(r) {
			continue
		}
		for _, q := range r.Questions {
			if _, err := fmt.Fprintf(w, "%s waits for input (node %s): %s\n", r.ID, q.Node, q.Text); err != nil {
				return err
			}
		}
	}
	return nil
}

// guardOptions are the resource guard's options of the run: those of
// every command, and the run's LLM endpoint as a helper when the resume
// took it from the record rather than from CEMAF_LLM_URL.
func (r *runner) guardOptions() factories.GuardOptions {
	o := guardOptions(r.env, r.storage.Path, r.logger)
	if r.in.LLMURL != "" && len(o.HelperEndpoints) == 0 {
		o.HelperEndpoints = []string{r.in.LLMURL}
	}
	return o
}
