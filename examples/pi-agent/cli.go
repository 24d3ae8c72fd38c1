package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/cemaf-go/cemaf/factories"
)

//go:embed corpus/*.md
var builtinCorpus embed.FS

// exit codes
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError is an error in the command line: usage is printed, exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

const usageText = `pi-agent: answer questions over a document corpus on a Raspberry Pi or Jetson,
pausing, slowing down or paging when the device runs hot or short of memory.

Usage:
  pi-agent [run] [flags]    answer a question over a corpus (default: the built-in one)
  pi-agent status [flags]   report CPU, memory, swap, PSI, thermal zones, disk, breaker, mode
  pi-agent graph [flags]    print the agent's DAG (--format dot|mermaid)
  pi-agent runs [flags]     list unfinished and recent runs (resume with run --resume ID)
  pi-agent serve [flags]    serve runs over HTTP (POST /v1/runs)
  pi-agent config [flags]   print the effective configuration and where each value came from

Run "pi-agent <command> -h" for the flags of a command. Settings fall back to
CEMAF_RESOURCE_* environment variables (see the README); the LLM endpoint is
CEMAF_LLM_URL, with CEMAF_LLM_MODEL and CEMAF_LLM_API_KEY.
`

// cli runs the command line args with the environment env and returns the
// exit code. It is main without the process: tests call it directly.
func cli(ctx context.Context, args []string, env []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "run":
		err = runCmd(ctx, args, env, stdout, stderr)
	case "status":
		err = statusCmd(ctx, args, env, stdout, stderr)
	case "graph":
		err = graphCmd(args, env, stdout, stderr)
	case "runs":
		err = runsCmd(args, env, stdout, stderr)
	case "serve":
		err = serveCmd(ctx, args, env, stdout, stderr)
	case "config":
		err = configCmd(args, env, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	default:
		fmt.Fprintf(stderr, "pi-agent: unknown command %q\n\n%s", cmd, usageText)
		return exitUsage
	}
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "pi-agent %s: %s\n\n%s", cmd, ue.msg, usageText)
		return exitUsage
	case errors.Is(err, errFlagParse):
		return exitUsage // the FlagSet printed the error and the usage
	default:
		fmt.Fprintf(stderr, "pi-agent %s: %v\n", cmd, err)
		return exitError
	}
}

var errFlagParse = errors.New("bad flags")

// configFlags maps the flags that set a CEMAF_RESOURCE_* variable to it:
// they are the strongest layer of the configuration.
var configFlags = map[string]string{
	"cpu-parallel":     "CPU_PARALLEL",
	"io-parallel":      "IO_PARALLEL",
	"memory-limit-mb":  "PAGER_MEMORY_LIMIT_MB",
	"memory-threshold": "MEMORY_THRESHOLD",
	"swap-threshold":   "SWAP_THRESHOLD",
}

// guardOptions are the resource guard's options of every command: the disk
// ladder watches the file system of the storage directory, and the server
// of the LLM endpoint, when it runs on this host, is a helper whose CPU is
// the agent's own.
func guardOptions(env []string, storage string, logger *slog.Logger) factories.GuardOptions {
	o := factories.GuardOptions{StorageDirs: []string{storage}, Logger: logger}
	if u := getenv(env, "CEMAF_LLM_URL"); u != "" {
		o.HelperEndpoints = []string{endpointURL(u)}
	}
	return o
}

// common are the flags every command shares.
type common struct {
	fs          *flag.FlagSet
	configFile  string
	storage     string
	logLevel    string
	jsonOut     bool
	cpuParallel int
	ioParallel  int
	memLimitMB  float64
}

func newCommon(name string, stderr io.Writer) *common {
	c := &common{fs: flag.NewFlagSet("pi-agent "+name, flag.ContinueOnError)}
	c.fs.SetOutput(stderr)
	c.fs.StringVar(&c.configFile, "config", "", "config `file` of CEMAF_RESOURCE_* settings (KEY=VALUE lines)")
	c.fs.StringVar(&c.storage, "storage", "", "`dir`ectory for pages, checkpoints and reports (default: CEMAF_RESOURCE_PAGER_STORAGE_PATH, else the user cache dir)")
	c.fs.StringVar(&c.logLevel, "log-level", "warn", "log `level`: debug, info, warn or error")
	c.fs.BoolVar(&c.jsonOut, "json", false, "print JSON on stdout")
	c.fs.IntVar(&c.cpuParallel, "cpu-parallel", 0, "most CPU-bound `nodes` running at once (default: max(2, CPUs − 2); CEMAF_RESOURCE_CPU_PARALLEL)")
	c.fs.IntVar(&c.ioParallel, "io-parallel", 0, "most I/O-bound `nodes` (LLM calls) running at once (default: CPUs × 64; CEMAF_RESOURCE_IO_PARALLEL)")
	c.fs.Float64("memory-threshold", 0, "memory use in `%` above which work pauses (and serve answers 503) (CEMAF_RESOURCE_MEMORY_THRESHOLD)")
	c.fs.Float64("swap-threshold", 0, "swap use in `%` above which work pauses (and serve answers 503) (CEMAF_RESOURCE_SWAP_THRESHOLD)")
	c.fs.Float64Var(&c.memLimitMB, "memory-limit-mb", 0, "RAM budget of the context pager in MB (CEMAF_RESOURCE_PAGER_MEMORY_LIMIT_MB)")
	return c
}

func (c *common) parse(args []string) error {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errFlagParse
	}
	if c.fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", c.fs.Arg(0))}
	}
	return nil
}

// load reads the configuration: explicitly set flags over the config file
// over the environment over host-derived defaults.
func (c *common) load(env []string, stderr io.Writer) (factories.ResourceConfig, error) {
	flags := map[string]string{}
	c.fs.Visit(func(f *flag.Flag) {
		if v, ok := configFlags[f.Name]; ok {
			flags[v] = f.Value.String()
		}
	})
	cfg, warnings, err := factories.Load(factories.LoadOptions{Environ: env, File: c.configFile, Flags: flags})
	for _, w := range warnings {
		fmt.Fprintln(stderr, "pi-agent: warning:", w)
	}
	return cfg, err
}

func (c *common) logger(stderr io.Writer) (*slog.Logger, *slog.LevelVar, error) {
	lv := new(slog.LevelVar)
	if err := lv.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, nil, usageError{fmt.Sprintf("--log-level %q: want debug, info, warn or error", c.logLevel)}
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv})), lv, nil
}

// loadStorage loads the configuration and resolves the storage directory.
func (c *common) loadStorage(env []string, stderr io.Writer) (factories.ResourceConfig, string, error) {
	cfg, err := c.load(env, stderr)
	if err != nil {
		return cfg, "", err
	}
	storage, err := c.storageDir(cfg)
	return cfg, storage, err
}

// storageDir is where pages, checkpoints and reports live.
func (c *common) storageDir(cfg factories.ResourceConfig) (string, error) {
	if c.storage != "" {
		return filepath.Abs(c.storage)
	}
	if cfg.PagerStoragePath != "" {
		return cfg.PagerStoragePath, nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "cemaf", "pi-agent"), nil
}

func getenv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// corpus resolves --docs: a directory of text and markdown files, or the
// built-in corpus.
func corpus(dir string) (fs.FS, string, error) {
	if dir == "" {
		sub, err := fs.Sub(builtinCorpus, "corpus")
		return sub, "built-in corpus", err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", err
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, "", fmt.Errorf("--docs %s: no such directory", dir)
	case err != nil:
		return nil, "", fmt.Errorf("--docs %s: %w", dir, err)
	case !fi.IsDir():
		return nil, "", fmt.Errorf("--docs %s: not a directory", dir)
	}
	fsys := os.DirFS(abs)
	found := false
	_ = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && isTextName(d.Name()) {
			found = true
			return fs.SkipAll
		}
		return nil
	})
	if !found {
		return nil, "", fmt.Errorf("--docs %s holds no text or markdown files (.md, .markdown, .txt, .text, .rst)", dir)
	}
	return fsys, abs, nil
}

func configCmd(args []string, env []string, stdout, stderr io.Writer) error {
	c := newCommon("config", stderr)
	if err := c.parse(args); err != nil {
		return err
	}
	cfg, err := c.load(env, stderr)
	if err != nil {
		return err
	}
	if c.jsonOut {
		return writeJSON(stdout, cfg.Effective())
	}
	_, err = cfg.WriteTo(stdout)
	return err
}
