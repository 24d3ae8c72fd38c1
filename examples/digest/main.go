// Command digest is a six-node agent on the resource-aware runtime: two files
// read, summarized at once by an LLM (tokens streamed to stdout), merged, a
// tool call if they speak of heat, the digest written atomically. A hot device
// gets the smaller model. With examples/llm-standin listening on :8081:
//
//	go run ./examples/digest -out digest.md a.txt b.txt
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/factories"
	"github.com/cemaf-go/cemaf/llm"
	"github.com/cemaf-go/cemaf/throttle"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Environ(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "digest:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args, environ []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("digest", flag.ContinueOnError)
	url := fl.String("llm", "http://127.0.0.1:8081", "OpenAI-compatible server `URL`")
	out := fl.String("out", "digest.md", "digest `file`")
	if err := fl.Parse(args); err != nil || fl.NArg() != 2 {
		return errors.Join(err, errors.New("usage: digest [-llm URL] [-out file] file-a file-b"))
	}
	cfg, _, err := factories.Load(factories.LoadOptions{Environ: environ}) // CEMAF_RESOURCE_*
	if err != nil {
		return err
	}
	rt, err := factories.NewRuntime(cfg, factories.RuntimeOptions{Guard: factories.GuardOptions{HelperEndpoints: []string{*url}}})
	if err != nil {
		return err
	}
	defer rt.Close()
	c, err1 := rt.NewLLMClient(*url, llm.Options{ // the device mode picks each call's profile
		Profile:  llm.Profile{Model: "qwen2.5:3b", MaxTokens: 512, MaxConcurrent: 2},
		Profiles: map[string]llm.Profile{"high_temp": {Model: "qwen2.5:0.5b", MaxTokens: 128, MaxConcurrent: 1}},
	})
	status, err2 := llm.NewTool("device_status", "The board's temperature in °C and the agent's mode.",
		func(context.Context, struct{}) (map[string]any, error) {
			t, ok := rt.Guard.Monitor.Snapshot().Sample.Value(throttle.SignalTemperatureC)
			return map[string]any{"mode": rt.Mode(), "temperature_c": t, "known": ok}, nil
		})
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	defer c.CloseIdleConnections()
	ask := func(key, out, system string, tools ...llm.Tool) dag.Func { // the model's streamed answer about key
		return func(ctx context.Context, s dag.State) error {
			text, err := s.Get(key)
			if err != nil {
				return err
			}
			req := llm.Request{Messages: []llm.Message{llm.System(system), llm.User(string(text))},
				OnToken: func(t llm.Token) { executor.Emit(ctx, executor.Chunk{Kind: executor.ChunkToken, Text: t.Text}) }}
			res, err := c.RunTools(ctx, req, tools, llm.LoopOptions{MaxIterations: 4})
			rt.ObserveLLM(res.Records...)
			if err != nil {
				return err
			}
			return s.Put(out, []byte(res.Answer))
		}
	}
	read := func(ctx context.Context, s dag.State) error { // regular files of at most 1 MiB
		for i, name := range fl.Args() {
			if fi, err := os.Stat(name); err != nil || !fi.Mode().IsRegular() || fi.Size() > 1<<20 {
				return dag.Permanent(errors.Join(err, fmt.Errorf("%s: want a regular file of at most 1 MiB", name)))
			}
			b, err := os.ReadFile(name)
			if err = errors.Join(err, s.Put(fmt.Sprint("doc/", i), b)); err != nil {
				return err
			}
		}
		return nil
	}
	merge := func(ctx context.Context, s dag.State) error { // a device check if the documents speak of heat
		var digest strings.Builder
		next := "write"
		for i, name := range fl.Args() {
			sum, err1 := s.Get(fmt.Sprint("summary/", i))
			doc, err2 := s.Get(fmt.Sprint("doc/", i))
			if err := errors.Join(err1, err2); err != nil {
				return err
			}
			fmt.Fprintf(&digest, "## %s\n\n%s\n\n", name, sum)
			if d := strings.ToLower(string(doc)); strings.Contains(d, "temperature") || strings.Contains(d, "thermal") {
				next = "check-device"
			}
		}
		if err := executor.Choose(ctx, next); err != nil {
			return err
		}
		return s.Put("digest", []byte(digest.String()))
	}
	write := func(ctx context.Context, s dag.State) error {
		digest, err := s.Get("digest")
		if err != nil {
			return err
		}
		if dev, err := s.Get("device"); err == nil { // check-device ran
			digest = fmt.Appendf(digest, "## device\n\n%s\n", dev)
		}
		return rt.Disk.WriteFile(ctx, *out, digest, 0o644) // atomic, paced by DISK_MAX_WRITE_MBPS
	}
	g, err := dag.New(
		dag.Node{ID: "read", Run: read},
		dag.Node{ID: "summarize-0", DependsOn: []string{"read"}, Class: dag.IO, Run: ask("doc/0", "summary/0", "Summarize in three sentences.")},
		dag.Node{ID: "summarize-1", DependsOn: []string{"read"}, Class: dag.IO, Run: ask("doc/1", "summary/1", "Summarize in three sentences.")},
		dag.Node{ID: "merge", DependsOn: []string{"summarize-0", "summarize-1"}, Branch: true, Run: merge},
		dag.Node{ID: "check-device", DependsOn: []string{"merge"}, Class: dag.IO, Retry: &dag.RetryPolicy{MaxAttempts: 3},
			Run: ask("digest", "device", "Say how the device is doing now: call device_status.", status)},
		dag.Node{ID: "write", DependsOn: []string{"merge", "check-device"}, Class: dag.IO, Run: write},
	)
	if err != nil {
		return err
	}
	last := ""
	show := executor.ObserverFunc(func(ev executor.Event) { // tokens as they arrive, a line per node
		if ev.Kind == executor.NodeOutput && ev.Chunk.Kind == executor.ChunkToken {
			if ev.Node != last {
				fmt.Fprintf(stdout, "\n[%s] ", ev.Node)
				last = ev.Node
			}
			io.WriteString(stdout, ev.Chunk.Text)
		}
	})
	res, err := rt.Executor.RunWith(ctx, g, rt.State(), executor.RunOptions{Observers: []executor.Observer{show}})
	fmt.Fprintln(stdout)
	for _, n := range res.Nodes {
		fmt.Fprintf(stdout, "%-12s %-9s attempts=%d %s\n", n.ID, n.Status, n.Attempts, strings.Join(res.Choices[n.ID], ","))
	}
	return err
}
