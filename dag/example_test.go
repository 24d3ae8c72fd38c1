package dag_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cemaf-go/cemaf/dag"
)

func Example() {
	step := func(context.Context, dag.State) error { return nil }
	g, err := dag.New(
		dag.Node{ID: "load", Run: step},
		dag.Node{ID: "chunk", Run: step, DependsOn: []string{"load"}},
		dag.Node{ID: "index", Run: step, DependsOn: []string{"chunk"}},
		dag.Node{ID: "summarise", Run: step, DependsOn: []string{"chunk"}, Optional: true},
		dag.Node{ID: "report", Run: step, DependsOn: []string{"index", "summarise"}},
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(g.TopologicalOrder())
	fmt.Println(g.Levels())
	// Output:
	// [load chunk index summarise report]
	// [[load] [chunk] [index summarise] [report]]
}

func ExampleNew_cycle() {
	step := func(context.Context, dag.State) error { return nil }
	_, err := dag.New(
		dag.Node{ID: "plan", Run: step, DependsOn: []string{"review"}},
		dag.Node{ID: "act", Run: step, DependsOn: []string{"plan"}},
		dag.Node{ID: "review", Run: step, DependsOn: []string{"act"}},
	)
	fmt.Println(errors.Is(err, dag.ErrCycle))
	fmt.Println(err)
	// Output:
	// true
	// dag: cycle: plan -> act -> review -> plan
}

func ExampleGraph_WriteDOT() {
	step := func(context.Context, dag.State) error { return nil }
	g, _ := dag.New(
		dag.Node{ID: "fetch", Run: step},
		dag.Node{ID: "answer", Run: step, DependsOn: []string{"fetch"}},
	)
	g.WriteDOT(os.Stdout)
	// Output:
	// digraph cemaf {
	// 	rankdir=LR;
	// 	node [shape=box, style=rounded];
	// 	"fetch";
	// 	"answer";
	// 	"fetch" -> "answer";
	// }
}

func ExampleGetJSON() {
	type chunk struct {
		Source string `json:"source"`
		Text   string `json:"text"`
	}
	s := dag.NewMemoryState()
	_ = dag.PutJSON(s, "chunk/0", chunk{Source: "faq.md", Text: "Pis throttle at 80 °C."})
	c, err := dag.GetJSON[chunk](s, "chunk/0")
	fmt.Println(c.Source, err, s.Size())
	// Output:
	// faq.md <nil> 52
}

func ExampleNewValueWriter() {
	s := dag.NewMemoryState()
	_ = s.Put("report", []byte("draft"))
	w, _ := dag.NewValueWriter(s, "report")
	for _, line := range []string{"cpu 71 °C\n", "disk 12 % free\n"} {
		_, _ = io.WriteString(w, line)
	}
	old, _ := s.Get("report") // unchanged until Commit
	fmt.Printf("%q\n", old)
	fmt.Println(w.Commit())
	v, _ := s.Get("report")
	fmt.Printf("%q\n", v)
	// Output:
	// "draft"
	// <nil>
	// "cpu 71 °C\ndisk 12 % free\n"
}
