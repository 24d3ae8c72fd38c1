package factories

import (
	"bytes"
	"fmt"
	"io"
	"net/http"

	"github.com/cemaf-go/cemaf/metrics"
)

// WritePrometheus writes, in the Prometheus text exposition format
// (version 0.0.4), everything the runtime measures: the device signals of
// the latest sample and the monitor's counters (Monitor.WritePrometheus),
// where every ladder stands (Breaker.WritePrometheus), and the run metrics
// (Metrics.WritePrometheus: runs, node durations, retries, pauses, skipped
// nodes, mode changes, and the LLM calls given to ObserveLLM). Family
// names do not repeat across the three parts, so the page is one valid
// exposition; a program appends its own families after it.
//
// It reads snapshots only: it never samples, and it does not block on runs
// in progress. The page is assembled in memory and then written to w in one
// call. It is safe for concurrent use and may be called after Close (the
// values stay as they were).
func (rt *Runtime) WritePrometheus(w io.Writer) error {
	var buf bytes.Buffer
	if err := rt.renderPrometheus(&buf); err != nil {
		return err
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("factories: writing metrics: %w", err)
	}
	return nil
}

// renderPrometheus assembles WritePrometheus' page in buf.
func (rt *Runtime) renderPrometheus(buf *bytes.Buffer) error {
	if g := rt.Guard; g != nil {
		if err := g.Monitor.WritePrometheus(buf); err != nil {
			return fmt.Errorf("factories: device signals: %w", err)
		}
		if err := g.Breaker.WritePrometheus(buf); err != nil {
			return fmt.Errorf("factories: ladders: %w", err)
		}
	}
	if rt.Metrics != nil {
		if err := rt.Metrics.WritePrometheus(buf); err != nil {
			return fmt.Errorf("factories: run metrics: %w", err)
		}
	}
	return nil
}

// MetricsHandler returns an http.Handler serving WritePrometheus' page, for
// a /metrics endpoint that Prometheus scrapes:
//
//	http.Handle("/metrics", rt.MetricsHandler())
//
// It answers every method and path it is given with the page (mount it
// where it belongs), and 500 if the page cannot be assembled.
func (rt *Runtime) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var buf bytes.Buffer
		if err := rt.renderPrometheus(&buf); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", metrics.ContentType)
		_, _ = w.Write(buf.Bytes())
	})
}
