package otel_test

import (
	"context"
	"strconv"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	cemafotel "github.com/cemaf-go/cemaf/otel"
)

// BenchmarkTracer runs a 1,000-node chain of no-op nodes without a
// Tracer (the baseline), with the adapter over OpenTelemetry's no-op
// provider, and over the SDK sampling every span (no exporter).
func BenchmarkTracer(b *testing.B) {
	nodes := make([]dag.Node, 1000)
	for i := range nodes {
		nodes[i] = dag.Node{ID: strconv.Itoa(i), Run: func(context.Context, dag.State) error { return nil }}
		if i > 0 {
			nodes[i].DependsOn = []string{strconv.Itoa(i - 1)}
		}
	}
	g, err := dag.New(nodes...)
	if err != nil {
		b.Fatal(err)
	}
	sdk := sdktrace.NewTracerProvider()
	defer sdk.Shutdown(context.Background())
	for _, tc := range []struct {
		name string
		tr   executor.Tracer
	}{
		{"baseline-no-tracer", nil},
		{"otel-noop-provider", cemafotel.New(cemafotel.Options{TracerProvider: noop.NewTracerProvider()})},
		{"otel-sdk", cemafotel.New(cemafotel.Options{TracerProvider: sdk})},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			e, err := executor.New(executor.Options{Tracer: tc.tr})
			if err != nil {
				b.Fatal(err)
			}
			s := dag.NewMemoryState()
			var res *executor.Result
			for b.Loop() {
				if res, err = e.RunWith(context.Background(), g, s, executor.RunOptions{Reuse: res}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*g.Len()), "ns/node")
		})
	}
}
