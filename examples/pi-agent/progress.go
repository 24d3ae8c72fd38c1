package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/cemaf-go/cemaf/adaptive"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/paging"
)

// progress prints a run's progress on stderr: nodes done out of the total,
// the current mode, pauses and why, mode changes. A resumed run continues
// the numbering after the nodes already done.
type progress struct {
	w     io.Writer
	quiet bool // --json: only errors

	// mu guards the fields below: events come from the run's coordinator,
	// mode changes from the monitor.
	mu       sync.Mutex
	total    int
	done     int
	restored int // nodes done before a resume
	mode     adaptive.Mode
}

func newProgress(w io.Writer, quiet bool) *progress {
	return &progress{w: w, quiet: quiet, mode: adaptive.Normal}
}

func (p *progress) setTotal(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total = n
}

// resumed says that n nodes finished before this process resumed the run.
func (p *progress) resumed(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done, p.restored = n, n
}

func (p *progress) OnEvent(ev executor.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.quiet && ev.Kind != executor.NodeFailed {
		return
	}
	switch ev.Kind {
	case executor.RunStarted:
		if p.restored > 0 {
			fmt.Fprintf(p.w, "pi-agent: resuming run %s: %d of %s already done, mode %s\n", ev.RunID, p.restored, plural(p.total, "node"), p.mode)
		} else {
			fmt.Fprintf(p.w, "pi-agent: run %s: %s, mode %s\n", ev.RunID, plural(p.total, "node"), p.mode)
		}
	case executor.NodeSucceeded:
		p.done++
		fmt.Fprintf(p.w, "[%d/%d] %-10s done in %v (mode %s)\n", p.done, p.total, ev.Node, roundDur(ev.Duration), p.mode)
	case executor.NodeFailed:
		p.done++
		err := ev.Err
		if u := errors.Unwrap(err); u != nil {
			err = u
		}
		fmt.Fprintf(p.w, "[%d/%d] %-10s %s after %s: %v\n", p.done, p.total, ev.Node, strings.ToUpper(ev.Status.String()), plural(ev.Attempt, "attempt"), err)
	case executor.NodeWaiting:
		p.done++
		var ie *executor.InterruptError
		if errors.As(ev.Err, &ie) {
			fmt.Fprintf(p.w, "[%d/%d] %-10s waiting for input: %s\n", p.done, p.total, ev.Node, ie.Question)
		}
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
		d := ev.Duration.Round(time.Millisecond)
		switch {
		case ev.Err == nil:
			fmt.Fprintf(p.w, "        resumed after %v\n", d)
		case errors.Is(ev.Err, context.Canceled) || errors.Is(ev.Err, context.DeadlineExceeded):
			fmt.Fprintf(p.w, "        stopped while paused, after %v: %v\n", d, ev.Err)
		default:
			fmt.Fprintf(p.w, "        pause ended after %v: %v\n", d, ev.Err)
		}
	}
}

func (p *progress) modeChange(c adaptive.ModeChange) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = c.To
	if !p.quiet {
		fmt.Fprintf(p.w, "        mode %s -> %s (%s; %s, %s, delay %v)\n", c.From, c.To, c.Reason,
			plural(c.Settings.CPUParallel, "CPU node"), plural(c.Settings.IOParallel, "I/O node"), c.Settings.InterNodeDelay)
	}
}

// summary prints per-node times and attempts, mode changes, the corpus,
// pager stats and peak memory.
func (p *progress) summary(s runSummary) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.w
	if len(s.Waiting) > 0 {
		fmt.Fprintf(w, "\nrun %s stopped to wait for input after %v", s.RunID, time.Duration(s.DurationMS)*time.Millisecond)
	} else {
		fmt.Fprintf(w, "\nrun %s finished in %v", s.RunID, time.Duration(s.DurationMS)*time.Millisecond)
	}
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
	if cr := s.CorpusReport; cr != nil {
		fmt.Fprintf(w, "corpus: %s\n", cr.summary())
		const show = 10
		for i, d := range cr.Skipped {
			if i == show {
				fmt.Fprintf(w, "  ... and %d more (see the report)\n", len(cr.Skipped)-show)
				break
			}
			fmt.Fprintf(w, "  skipped %s: %s\n", d.Name, d.Reason)
		}
		if rep := cr.repairs(); rep != "" {
			fmt.Fprintf(w, "  repaired: %s\n", rep)
		}
	}
	fmt.Fprintf(w, "pager: %s\n", pagerLine(s.Pager))
	fmt.Fprintf(w, "peak memory (RSS): %s\n", mib(s.PeakRSSBytes))
	if s.Storage != "" {
		fmt.Fprintf(w, "storage: %s\n", s.Storage)
	}
}

// pagerLine describes the pager's work, telling apart the pages written for
// durability (a durable pager writes every value at each checkpoint) from
// the pages evicted to keep within the budget.
func pagerLine(ps paging.Stats) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s, %s of values; %s resident of %s budget; %s on disk (%s, ratio %.2f); hit rate %.1f%%; ",
		plural(int(ps.Keys), "key"), mib(ps.ValueBytes), mib(ps.BytesInMemory), mib(ps.MemoryLimitBytes),
		plural(int(ps.PagesOnDisk), "page"), mib(ps.StoredBytesOnDisk), ps.CompressionRatio, 100*ps.HitRate)
	if ps.Mode == "durable" {
		fmt.Fprintf(&b, "%s written for durability at %s, ", plural(int(ps.PageOuts), "page"), plural(int(ps.Checkpoints), "checkpoint"))
	} else {
		fmt.Fprintf(&b, "%s written out, ", plural(int(ps.PageOuts), "page"))
	}
	fmt.Fprintf(&b, "%s evicted from RAM, %s read back", plural(int(ps.Evictions), "page"), plural(int(ps.PageIns), "page"))
	return b.String()
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

// plural says "1 time", "2 times", "0 times".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
