package executor_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
)

func Example() {
	upper := func(ctx context.Context, s dag.State) error {
		in, err := s.Get("text")
		if err != nil {
			return err
		}
		return s.Put("upper", []byte(strings.ToUpper(string(in))))
	}
	count := func(ctx context.Context, s dag.State) error {
		in, err := s.Get("text")
		if err != nil {
			return err
		}
		return dag.PutJSON(s, "words", len(strings.Fields(string(in))))
	}
	report := func(ctx context.Context, s dag.State) error {
		u, _ := s.Get("upper")
		n, err := dag.GetJSON[int](s, "words")
		if err != nil {
			return err
		}
		return s.Put("report", fmt.Appendf(nil, "%s (%d words)", u, n))
	}
	g, err := dag.New(
		dag.Node{ID: "upper", Run: upper},
		dag.Node{ID: "count", Run: count},
		dag.Node{ID: "report", Run: report, DependsOn: []string{"upper", "count"}},
	)
	if err != nil {
		panic(err)
	}

	e, err := executor.New(executor.Options{Limits: executor.Limits{CPU: 2}})
	if err != nil {
		panic(err)
	}
	state := dag.NewMemoryState()
	_ = state.Put("text", []byte("pause not crash"))
	res, err := e.Run(context.Background(), g, state)
	if err != nil {
		panic(err)
	}
	out, _ := state.Get("report")
	fmt.Println(string(out))
	fmt.Println(res.Count(executor.Succeeded), "nodes succeeded")
	// Output:
	// PAUSE NOT CRASH (3 words)
	// 3 nodes succeeded
}

func ExampleExecutor_RunWith_continue() {
	broken := errors.New("tool unavailable")
	g, _ := dag.New(
		dag.Node{ID: "search", Run: func(context.Context, dag.State) error { return broken }},
		dag.Node{ID: "summarise", DependsOn: []string{"search"}, Run: func(context.Context, dag.State) error { return nil }},
		dag.Node{ID: "weather", Run: func(context.Context, dag.State) error { return nil }},
	)
	e, _ := executor.New(executor.Options{FailurePolicy: executor.Continue})
	res, err := e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "demo"})
	fmt.Println(errors.Is(err, broken))
	for _, n := range res.Nodes {
		fmt.Println(n.ID, n.Status)
	}
	// Output:
	// true
	// search failed
	// summarise skipped
	// weather succeeded
}

func ExampleEmit() {
	answer := func(ctx context.Context, s dag.State) error {
		for _, tok := range []string{"Pis ", "throttle ", "at 80 °C."} {
			executor.Emit(ctx, executor.Chunk{Kind: executor.ChunkToken, Text: tok})
		}
		return nil
	}
	g, _ := dag.New(dag.Node{ID: "answer", Run: answer})
	show := executor.ObserverFunc(func(ev executor.Event) {
		switch ev.Kind {
		case executor.NodeOutput:
			fmt.Printf("%s %s: %q\n", ev.Node, ev.Chunk.Kind, ev.Chunk.Text)
		case executor.NodeSucceeded:
			fmt.Println(ev.Node, "done")
		}
	})
	e, _ := executor.New(executor.Options{Observers: []executor.Observer{show}})
	_, _ = e.Run(context.Background(), g, dag.NewMemoryState())
	fmt.Println(executor.Emit(context.Background(), executor.Chunk{Text: "not in a node"}))
	// Output:
	// answer token: "Pis "
	// answer token: "throttle "
	// answer token: "at 80 °C."
	// answer done
	// false
}

func ExampleChoose() {
	step := func(context.Context, dag.State) error { return nil }
	g, _ := dag.New(
		// A branch node: its outcome chooses which dependents run.
		dag.Node{ID: "classify", Branch: true, Run: func(ctx context.Context, s dag.State) error {
			q, _ := s.Get("question")
			if len(q) < 20 {
				return executor.Choose(ctx, "quick-answer")
			}
			return executor.Choose(ctx, "retrieve")
		}},
		dag.Node{ID: "quick-answer", DependsOn: []string{"classify"}, Run: step},
		dag.Node{ID: "retrieve", DependsOn: []string{"classify"}, Run: step},
		dag.Node{ID: "rag-answer", DependsOn: []string{"retrieve"}, Run: step},
		// A join runs after whichever arm ran.
		dag.Node{ID: "report", DependsOn: []string{"quick-answer", "rag-answer"}, Run: step},
	)
	s := dag.NewMemoryState()
	_ = s.Put("question", []byte("Why 80 °C?"))
	e, _ := executor.New(executor.Options{})
	res, err := e.Run(context.Background(), g, s)
	fmt.Println("run error:", err, "choices:", res.Choices)
	for _, nr := range res.Nodes {
		fmt.Println(nr.ID, nr.Status, errors.Is(nr.Err, executor.ErrNotChosen))
	}
	// Output:
	// run error: <nil> choices: map[classify:[quick-answer]]
	// classify succeeded false
	// quick-answer succeeded false
	// retrieve skipped true
	// rag-answer skipped true
	// report succeeded false
}

func ExampleInterrupt() {
	dir, _ := os.MkdirTemp("", "cemaf-example")
	defer os.RemoveAll(dir)
	store, _ := executor.OpenCheckpoints(filepath.Join(dir, "runs.db"), executor.CheckpointOptions{})
	defer store.Close()
	e, _ := executor.New(executor.Options{Checkpoints: store})
	g, _ := dag.New(dag.Node{ID: "confirm", Run: func(ctx context.Context, s dag.State) error {
		answer, ok := executor.InputFrom(ctx)
		if !ok {
			return executor.Interrupt(ctx, "Delete 12 old reports?")
		}
		fmt.Println("answer:", answer)
		return nil
	}})

	// The run stops and waits; the process could exit here.
	_, err := e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "cleanup"})
	fmt.Println(errors.Is(err, executor.ErrInterrupted))
	rec, _ := store.Run("cleanup")
	fmt.Println(rec.Status, rec.Questions[0].Node, rec.Questions[0].Text)

	// Later: resume with the answer.
	_, err = e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{
		ID: "cleanup", Resume: true, Answers: map[string]string{"confirm": "yes"},
	})
	fmt.Println(err)
	// Output:
	// true
	// waiting confirm Delete 12 old reports?
	// answer: yes
	// <nil>
}

func ExampleInputsChangedError() {
	dir, _ := os.MkdirTemp("", "cemaf-example")
	defer os.RemoveAll(dir)
	store, _ := executor.OpenCheckpoints(filepath.Join(dir, "runs.db"), executor.CheckpointOptions{})
	defer store.Close()
	e, _ := executor.New(executor.Options{Checkpoints: store})
	fail := true
	g, _ := dag.New(dag.Node{ID: "index", Run: func(context.Context, dag.State) error {
		if fail {
			return errors.New("killed")
		}
		return nil
	}})
	inputs := map[string]string{"question": "Why 80 °C?", "corpus": "sha256:3f9a", "chunk_size": "900"}
	_, _ = e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r1", Inputs: inputs})

	// A resume with another corpus is refused, naming what changed.
	fail = false
	changed := map[string]string{"question": "Why 80 °C?", "corpus": "sha256:77aa", "chunk_size": "900"}
	_, err := e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r1", Resume: true, Inputs: changed})
	var ice *executor.InputsChangedError
	fmt.Println(errors.As(err, &ice), ice.Changed[0].Name)
	fmt.Println(err)
	// Output:
	// true corpus
	// executor: cannot resume run "r1": inputs changed since the run started: corpus "sha256:3f9a" -> "sha256:77aa"; resume with the recorded inputs, or start a new run
}
