package otel_test

import (
	"context"
	"fmt"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	cemafotel "github.com/cemaf-go/cemaf/otel"
)

func ExampleNew() {
	rec := tracetest.NewSpanRecorder() // a real program registers an exporter
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())

	e, _ := executor.New(executor.Options{Tracer: cemafotel.New(cemafotel.Options{TracerProvider: tp})})
	step := func(context.Context, dag.State) error { return nil }
	g, _ := dag.New(
		dag.Node{ID: "retrieve", Run: step},
		dag.Node{ID: "answer", DependsOn: []string{"retrieve"}, Run: step},
	)
	_, _ = e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r1"})
	for _, s := range rec.Ended() {
		fmt.Println(s.Name())
	}
	// Output:
	// cemaf.node retrieve
	// cemaf.node answer
	// cemaf.run
}
