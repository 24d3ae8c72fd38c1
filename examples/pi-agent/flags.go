package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cemaf-go/cemaf/factories"
)

// cmdFlags are the flags of one command. Each command registers only the
// groups it uses, so that a flag it does not support is refused ("graph
// --json" is an error, not ignored).
type cmdFlags struct {
	name    string
	summary string
	fs      *flag.FlagSet
	ss      settings

	// The resource group (withResource, withStorage).
	configFile string
	storage    string
	// withLog and withJSON.
	logLevel string
	jsonOut  bool
}

func newCmdFlags(name, summary string, stderr io.Writer) *cmdFlags {
	f := &cmdFlags{name: name, summary: summary, fs: flag.NewFlagSet("pi-agent "+name, flag.ContinueOnError)}
	f.ss.fs = f.fs
	f.fs.SetOutput(stderr)
	f.fs.Usage = f.usage
	return f
}

// usage prints the command's synopsis and flags on the FlagSet's output.
func (f *cmdFlags) usage() {
	w := f.fs.Output()
	fmt.Fprintf(w, "Usage: pi-agent %s [flags]\n\n%s\n\nFlags:\n", f.name, f.summary)
	f.fs.PrintDefaults()
}

// configFlags maps the flags that set a CEMAF_RESOURCE_* variable to it:
// they are the strongest layer of the configuration.
var configFlags = map[string]string{
	"cpu-parallel":     "CPU_PARALLEL",
	"io-parallel":      "IO_PARALLEL",
	"memory-limit-mb":  "PAGER_MEMORY_LIMIT_MB",
	"memory-threshold": "MEMORY_THRESHOLD",
	"swap-threshold":   "SWAP_THRESHOLD",
}

// withStorage registers --config and --storage.
func (f *cmdFlags) withStorage() {
	f.fs.StringVar(&f.configFile, "config", "", "config `file` of CEMAF_RESOURCE_* settings (KEY=VALUE lines)")
	f.fs.StringVar(&f.storage, "storage", "", "`dir`ectory for pages, checkpoints and reports (default: CEMAF_RESOURCE_PAGER_STORAGE_PATH, else the user cache dir)")
}

// withResource registers --config, --storage and the flags that set
// CEMAF_RESOURCE_* variables. Their values are checked by factories.Load,
// which reports every bad one.
func (f *cmdFlags) withResource() {
	f.withStorage()
	f.fs.String("cpu-parallel", "", "most CPU-bound `nodes` running at once (default: max(2, CPUs − 2); CEMAF_RESOURCE_CPU_PARALLEL)")
	f.fs.String("io-parallel", "", "most I/O-bound `nodes` (LLM calls) running at once (default: CPUs × 64; CEMAF_RESOURCE_IO_PARALLEL)")
	f.fs.String("memory-threshold", "", "memory use in `%` above which work pauses (and serve answers 503) (CEMAF_RESOURCE_MEMORY_THRESHOLD)")
	f.fs.String("swap-threshold", "", "swap use in `%` above which work pauses (and serve answers 503) (CEMAF_RESOURCE_SWAP_THRESHOLD)")
	f.fs.String("memory-limit-mb", "", "RAM budget of the context pager in `MB` (CEMAF_RESOURCE_PAGER_MEMORY_LIMIT_MB)")
}

// withLog registers --log-level.
func (f *cmdFlags) withLog() {
	f.fs.StringVar(&f.logLevel, "log-level", "warn", "log `level`: debug, info, warn or error")
}

// withJSON registers --json.
func (f *cmdFlags) withJSON() {
	f.fs.BoolVar(&f.jsonOut, "json", false, "print JSON on stdout")
}

// agentFlags are the knobs of the question-answering graph that run and
// serve share, with the same names, help and types.
type agentFlags struct {
	docs       string
	shards     int
	topK       int
	chunkSize  int
	llmTimeout time.Duration
}

// Ranges of the agent's knobs.
const (
	maxShards    = 64
	maxTopK      = 50
	minChunkSize = 200
	maxChunkSize = 1 << 20
)

func (f *cmdFlags) withAgent(a *agentFlags) {
	f.fs.StringVar(&a.docs, "docs", "", "`dir`ectory of text and markdown files (default: the built-in corpus)")
	f.withShards(&a.shards)
	f.ss.intVar(&a.topK, "top-k", "", 4, 1, maxTopK, "`n` passages to retrieve")
	f.ss.intVar(&a.chunkSize, "chunk-size", "", 900, minChunkSize, maxChunkSize, "chunk size in `bytes`")
	f.withLLMTimeout(&a.llmTimeout)
}

// withLLMTimeout registers --llm-timeout: the bound of an answer's LLM call.
func (f *cmdFlags) withLLMTimeout(p *time.Duration) {
	f.ss.durationVar(p, "llm-timeout", "", 2*time.Minute, time.Millisecond, 24*time.Hour, "timeout of the answer's LLM call, its retries and the waits between them included, as a `duration` (30s, 2m, or seconds)")
}

// withLLMRetries registers --llm-attempts and --llm-backoff: the LLM
// client's retries.
func (f *cmdFlags) withLLMRetries(tries *int, backoff *time.Duration) {
	f.ss.intVar(tries, "llm-attempts", "", 3, 1, 20, "`n` LLM call attempts before giving up")
	f.ss.durationVar(backoff, "llm-backoff", "", 500*time.Millisecond, 0, time.Minute, "`delay` before the second LLM attempt, doubling after")
}

func (f *cmdFlags) withShards(p *int) {
	f.ss.intVar(p, "shards", "", 4, 1, maxShards, "parallel index `nodes`")
}

var errFlagParse = errors.New("bad flags")

// parse parses args, then every typed setting (reporting all bad values at
// once). Warnings go to stderr.
func (f *cmdFlags) parse(args, env []string, stderr io.Writer) error {
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errFlagParse
	}
	if f.fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", f.fs.Arg(0))}
	}
	warnings, errs := f.ss.resolve(env)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "pi-agent %s: warning: %s\n", f.name, w)
	}
	if len(errs) > 0 {
		return &invalidSettings{errs: errs}
	}
	return nil
}

// given says whether the flag name was set on the command line.
func (f *cmdFlags) given(name string) bool {
	found := false
	f.fs.Visit(func(fl *flag.Flag) { found = found || fl.Name == name })
	return found
}

// load reads the configuration: explicitly set flags over the config file
// over the environment over host-derived defaults.
func (f *cmdFlags) load(env []string, stderr io.Writer) (factories.ResourceConfig, error) {
	flags := map[string]string{}
	f.fs.Visit(func(fl *flag.Flag) {
		if v, ok := configFlags[fl.Name]; ok {
			flags[v] = fl.Value.String()
		}
	})
	cfg, warnings, err := factories.Load(factories.LoadOptions{Environ: env, File: f.configFile, Flags: flags})
	for _, w := range warnings {
		fmt.Fprintln(stderr, "pi-agent: warning:", w)
	}
	return cfg, err
}

func (f *cmdFlags) logger(stderr io.Writer) (*slog.Logger, *slog.LevelVar, error) {
	lv := new(slog.LevelVar)
	if err := lv.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, nil, usageError{fmt.Sprintf("--log-level %q: want debug, info, warn or error", f.logLevel)}
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv})), lv, nil
}

// loadStorage loads the configuration and resolves the storage directory.
func (f *cmdFlags) loadStorage(env []string, stderr io.Writer) (factories.ResourceConfig, storageDir, error) {
	cfg, err := f.load(env, stderr)
	if err != nil {
		return cfg, storageDir{}, err
	}
	sd, err := f.storageDir(cfg)
	return cfg, sd, err
}

// storageDir is where pages, checkpoints and reports live, and where that
// choice came from.
type storageDir struct {
	Path   string `json:"path"`
	Source string `json:"source"` // "flag", "CEMAF_RESOURCE_PAGER_STORAGE_PATH" or "default"
}

// isDefault says whether the directory is the one pi-agent picks with no
// --storage flag and no CEMAF_RESOURCE_PAGER_STORAGE_PATH: hints then need
// no --storage.
func (d storageDir) isDefault() bool { return d.Source == "default" }

func (f *cmdFlags) storageDir(cfg factories.ResourceConfig) (storageDir, error) {
	if f.storage != "" {
		p, err := filepath.Abs(f.storage)
		return storageDir{Path: p, Source: "flag"}, err
	}
	if cfg.PagerStoragePath != "" {
		return storageDir{Path: cfg.PagerStoragePath, Source: factories.EnvPrefix + "PAGER_STORAGE_PATH"}, nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return storageDir{Path: filepath.Join(dir, "cemaf", "pi-agent"), Source: "default"}, nil
}

func getenv(env []string, key string) string {
	v, _ := lookupEnv(env, key)
	return v
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
