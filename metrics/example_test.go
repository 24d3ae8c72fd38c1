package metrics_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/metrics"
)

func Example() {
	m, _ := metrics.New(metrics.Options{})
	e, _ := executor.New(executor.Options{Observers: []executor.Observer{m}})
	g, _ := dag.New(
		dag.Node{ID: "load", Run: func(context.Context, dag.State) error { return nil }},
		dag.Node{ID: "answer", DependsOn: []string{"load"}, Run: func(context.Context, dag.State) error { return nil }},
	)
	_, _ = e.Run(context.Background(), g, dag.NewMemoryState())
	// The adaptive executor's OnModeChange and an LLM client feed the rest:
	//	ad.OnModeChange(func(c adaptive.ModeChange) { m.ModeChanged(string(c.From), string(c.To)) })
	m.ModeChanged("normal", "high_temp")

	var buf bytes.Buffer
	_ = m.WritePrometheus(&buf) // or serve m itself at /metrics
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.HasPrefix(line, "cemaf_runs_total") || strings.HasPrefix(line, "cemaf_nodes_total") || strings.HasPrefix(line, "cemaf_mode{") {
			fmt.Println(line)
		}
	}
	// Output:
	// cemaf_runs_total{status="succeeded"} 1
	// cemaf_nodes_total{status="succeeded"} 2
	// cemaf_mode{mode="high_temp"} 1
}
