package factories_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/factories"
)

func ExampleLoad() {
	cfg, warnings, err := factories.Load(factories.LoadOptions{
		Environ: []string{
			"CEMAF_RESOURCE_CPU_THRESHOLD=80",
			"CEMAF_RESOURCE_TEMP_TRESHOLD=70", // misspelt
		},
		Flags: map[string]string{"CPU_PARALLEL": "2"},
		Host:  &factories.Host{Cores: 4, MemoryTotalBytes: 4 << 30},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(warnings[0])
	fmt.Println(cfg.CPUThreshold, cfg.Source("CPU_THRESHOLD"))
	fmt.Println(cfg.CPUParallel, cfg.Source("CPU_PARALLEL"))
	fmt.Println(cfg.MemorySoftLimitMB, cfg.Source("MEMORY_SOFT_LIMIT_MB"))
	// Output:
	// unknown variable CEMAF_RESOURCE_TEMP_TRESHOLD (from environment); did you mean CEMAF_RESOURCE_TEMP_THRESHOLD?
	// 80 env
	// 2 flag
	// 3072 host
}

func ExampleLoad_errors() {
	_, _, err := factories.Load(factories.LoadOptions{
		Environ: []string{"CEMAF_RESOURCE_DISK_THRESHOLD=150", "CEMAF_RESOURCE_COOLDOWN_SECONDS=soon"},
		Host:    &factories.Host{Cores: 4, MemoryTotalBytes: 4 << 30},
	})
	fmt.Println(err)
	// Output:
	// factories: CEMAF_RESOURCE_COOLDOWN_SECONDS = "soon" from environment: not a number of seconds; accepted: (0, 86400] (s)
	// factories: CEMAF_RESOURCE_DISK_THRESHOLD = "150" from environment: out of range; accepted: [0, 100] (%)
}

// Ladders are the adapt and pause levels of every signal, from one
// configuration.
func ExampleResourceConfig_Ladders() {
	cfg := factories.DefaultConfig(factories.Host{Cores: 4, MemoryTotalBytes: 4 << 30})
	for _, l := range cfg.Ladders() {
		fmt.Printf("%-19s adapt %6g  pause %6g\n", l.Signal, l.Adapt, l.Pause)
	}
	// Output:
	// temperature_c       adapt     70  pause     80
	// memory_percent      adapt     80  pause     85
	// process_memory_mb   adapt   3072  pause   3584
	// swap_percent        adapt     50  pause     80
	// disk_percent        adapt     90  pause     95
	// cpu_others_percent  adapt     70  pause     95
}

func ExampleResourceConfig_WriteTo() {
	cfg := factories.DefaultConfig(factories.Host{Cores: 4, MemoryTotalBytes: 4 << 30})
	cfg.WriteTo(os.Stdout)
}

// piConfig is the configuration of a 4 GB Raspberry Pi 4 whose sysfs and
// procfs are fixture trees, so that the examples print the same on every
// machine; on a device, Load reads the real ones (leave the roots unset).
// Pages go to dir.
func piConfig(dir string) factories.ResourceConfig {
	root, err := filepath.Abs("..")
	if err != nil {
		panic(err)
	}
	cfg, _, err := factories.Load(factories.LoadOptions{
		Environ: []string{
			"CEMAF_RESOURCE_SYSFS_ROOT=" + filepath.Join(root, "thermal/testdata/pi4"),
			"CEMAF_RESOURCE_PROCFS_ROOT=" + filepath.Join(root, "throttle/testdata/cgroupv2/proc"),
			"CEMAF_RESOURCE_CGROUP_ROOT=" + filepath.Join(root, "throttle/testdata/cgroupv2/sys/fs/cgroup"),
			"CEMAF_RESOURCE_PAGER_STORAGE_PATH=" + filepath.Join(dir, "pages"),
		},
		Host: &factories.Host{Cores: 4, MemoryTotalBytes: 4 << 30},
	})
	if err != nil {
		panic(err)
	}
	return cfg
}

// NewRuntime builds the whole resource-aware stack from one configuration;
// graphs run on its adaptive executor over its paged State.
func ExampleNewRuntime() {
	dir, err := os.MkdirTemp("", "cemaf-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	rt, err := factories.NewRuntime(piConfig(dir), factories.RuntimeOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rt.Close()
	temp, _ := rt.Guard.Thermal.ReadTemperatureC()
	l := rt.Base.Limits()
	fmt.Printf("mode %s at %.1f °C; %d CPU-bound and %d I/O-bound nodes at once\n", rt.Mode(), temp, l.CPU, l.IO)

	g, err := dag.New(
		dag.Node{ID: "fetch", Class: dag.IO, Run: func(_ context.Context, s dag.State) error {
			return s.Put("doc", []byte("the board throttles at eighty degrees"))
		}},
		dag.Node{ID: "count", DependsOn: []string{"fetch"}, Run: func(_ context.Context, s dag.State) error {
			doc, err := s.Get("doc")
			if err != nil {
				return err
			}
			return dag.PutJSON(s, "words", len(strings.Fields(string(doc))))
		}},
	)
	if err != nil {
		panic(err)
	}
	res, err := rt.Executor.Run(context.Background(), g, rt.State())
	if err != nil {
		fmt.Println(err)
		return
	}
	words, _ := dag.GetJSON[int](rt.State(), "words")
	fmt.Printf("%d nodes succeeded; %d words\n", res.Count(executor.Succeeded), words)
	// Output:
	// mode normal at 48.7 °C; 2 CPU-bound and 256 I/O-bound nodes at once
	// 2 nodes succeeded; 6 words
}

// A durable run records every completed node in the checkpoint file. When
// a node fails (or the process dies, or the power goes), running the same
// graph with the same run ID later resumes it: the completed nodes are not
// run again, their State is restored, and the run's inputs must be the same.
func ExampleRuntime_resume() {
	dir, err := os.MkdirTemp("", "cemaf-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	checkpoints := filepath.Join(dir, "runs.db")

	downloads := 0
	serverUp := false
	g, err := dag.New(
		dag.Node{ID: "download", Class: dag.IO, Run: func(_ context.Context, s dag.State) error {
			downloads++
			return s.Put("doc", []byte("a long report"))
		}},
		dag.Node{ID: "summarize", Class: dag.IO, DependsOn: []string{"download"}, Run: func(_ context.Context, s dag.State) error {
			if !serverUp {
				return errors.New("LLM server unreachable")
			}
			doc, err := s.Get("doc")
			if err != nil {
				return err
			}
			return s.Put("summary", append([]byte("summary of "), doc...))
		}},
	)
	if err != nil {
		panic(err)
	}
	ro := executor.RunOptions{ID: "report-42", Inputs: map[string]string{"source": "https://example.com/report"}}

	// Each process builds its runtime on the same checkpoint file.
	attempt := func() {
		rt, err := factories.NewRuntime(piConfig(dir), factories.RuntimeOptions{CheckpointPath: checkpoints})
		if err != nil {
			panic(err)
		}
		defer rt.Close()
		res, err := rt.Executor.RunWith(context.Background(), g, rt.State(), ro)
		if err != nil {
			rec, _ := rt.Checkpoints.Run(ro.ID)
			fmt.Printf("run %s %s after %d of %d nodes: %v\n", rec.ID, rec.Status, rec.Completed, rec.Nodes, err)
			return
		}
		summary, _ := rt.State().Get("summary")
		for _, n := range res.Nodes {
			fmt.Printf("%s: %s, restored %t\n", n.ID, n.Status, n.Restored)
		}
		fmt.Printf("%q; downloaded %d time(s)\n", summary, downloads)
	}
	attempt()
	serverUp = true
	ro.Resume = true // the ID must name a run in the file
	attempt()
	// Output:
	// run report-42 failed after 1 of 2 nodes: executor: node "summarize" failed after 1 attempt: LLM server unreachable
	// download: succeeded, restored true
	// summarize: succeeded, restored false
	// "summary of a long report"; downloaded 1 time(s)
}

// A node that needs a person's answer interrupts the run: the run ends
// "waiting", recorded in the checkpoint file with the question, and the
// process may exit. Resuming it with the answer runs that node again, which
// reads the answer with executor.InputFrom.
func ExampleRuntime_interrupt() {
	dir, err := os.MkdirTemp("", "cemaf-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	checkpoints := filepath.Join(dir, "runs.db")

	g, err := dag.New(
		dag.Node{ID: "draft", Run: func(_ context.Context, s dag.State) error {
			return s.Put("draft", []byte("Fan on above 70 °C."))
		}},
		dag.Node{ID: "approve", DependsOn: []string{"draft"}, Run: func(ctx context.Context, s dag.State) error {
			answer, ok := executor.InputFrom(ctx)
			if !ok {
				return executor.Interrupt(ctx, "Publish the draft? (yes/no)")
			}
			return s.Put("approved", []byte(answer))
		}},
		dag.Node{ID: "publish", DependsOn: []string{"approve"}, Run: func(_ context.Context, s dag.State) error {
			a, err := s.Get("approved")
			if err != nil || string(a) != "yes" {
				return dag.Permanent(errors.New("not approved"))
			}
			return nil
		}},
	)
	if err != nil {
		panic(err)
	}

	run := func(ro executor.RunOptions) {
		rt, err := factories.NewRuntime(piConfig(dir), factories.RuntimeOptions{CheckpointPath: checkpoints})
		if err != nil {
			panic(err)
		}
		defer rt.Close()
		res, err := rt.Executor.RunWith(context.Background(), g, rt.State(), ro)
		if errors.Is(err, executor.ErrInterrupted) {
			rec, _ := rt.Checkpoints.Run(ro.ID)
			fmt.Printf("run %s is %s: %s asks %q\n", rec.ID, rec.Status, rec.Questions[0].Node, rec.Questions[0].Text)
			return
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		approve, _ := res.Node("approve")
		fmt.Println("published; approve ran", approve.Attempts, "time(s) in this process")
	}
	run(executor.RunOptions{ID: "doc-7"})
	// ... later, in another process, with the operator's answer:
	run(executor.RunOptions{ID: "doc-7", Resume: true, Answers: map[string]string{"approve": "yes"}})
	// Output:
	// run doc-7 is waiting: approve asks "Publish the draft? (yes/no)"
	// published; approve ran 1 time(s) in this process
}
