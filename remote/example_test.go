package remote_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/remote"
	"github.com/cemaf-go/cemaf/remote/hub"
)

// A node of a graph runs on a worker that serves the "llm" capability; the
// two sides would normally be two devices.
func Example() {
	dir, _ := os.MkdirTemp("", "hub")
	defer os.RemoveAll(dir)
	h, err := hub.Start(hub.Options{StoreDir: dir, Port: hub.RandomPort})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()

	summarise := dag.Node{ID: "summarise", DependsOn: []string{"load"}, Run: func(_ context.Context, s dag.State) error {
		v, err := s.Get("text")
		if err != nil {
			return err
		}
		return s.Put("summary", []byte(strings.ToUpper(string(v[:5]))))
	}}
	spec := remote.Spec{Capability: "llm", Reads: []string{"text"}, Writes: []string{"summary"}}

	// The worker's device.
	wconn, _ := remote.Connect(ctx, h.ClientURL(), remote.ConnectOptions{})
	defer wconn.Close()
	reg := remote.NewRegistry()
	_ = reg.RegisterNode(summarise, spec)
	w, _ := remote.NewWorker(wconn, reg, remote.WorkerOptions{Slots: 2})
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	// The coordinator's device.
	cconn, _ := remote.Connect(ctx, h.ClientURL(), remote.ConnectOptions{})
	defer cconn.Close()
	c, err := remote.NewCoordinator(ctx, cconn, remote.CoordinatorOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	remoteSummarise, _ := c.Node(summarise, spec)
	g, _ := dag.New(
		dag.Node{ID: "load", Run: func(_ context.Context, s dag.State) error { return s.Put("text", []byte("hello, fleet")) }},
		remoteSummarise,
	)
	e, _ := executor.New(executor.Options{Gate: c})
	s := dag.NewMemoryState()
	res, err := e.Run(ctx, g, s)
	if err != nil {
		fmt.Println(err)
		return
	}
	v, _ := s.Get("summary")
	fmt.Println(string(v))
	// The run is over and will not be resumed: the hub need not keep
	// its result until ResultTTL.
	st, err := c.Forget(ctx, res.RunID)
	fmt.Println("forgot", st.Records, "result", err)
	stop()
	<-done
	// Output:
	// HELLO
	// forgot 1 result <nil>
}
