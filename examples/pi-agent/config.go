package main

import (
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"

	"github.com/cemaf-go/cemaf/factories"
	"github.com/cemaf-go/cemaf/paging"
)

// configFlags are the flags of the config command: the resource flags and
// serve's CEMAF_SERVE_* settings, whose effective values it prints.
type configCmdFlags struct {
	*cmdFlags
	o serveOptions
}

func newConfigFlags(stderr io.Writer) *configCmdFlags {
	f := &configCmdFlags{cmdFlags: newCmdFlags("config", "Print the effective configuration and where each value came from: a flag, the --config file,\n"+
		"the environment, the host, the board or a default. The CEMAF_RESOURCE_* ladders and variables come first, then\n"+
		"the values pi-agent derives from them (storage directory, cgroup root, page size) and serve's settings.", stderr)}
	f.withResource()
	f.withJSON()
	addServeSettings(&f.ss, &f.o)
	return f
}

// effectiveValue is one derived or pi-agent setting as config prints it.
type effectiveValue struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Source string `json:"source"`
}

// configReport is config --json.
type configReport struct {
	Variables map[string]factories.EffectiveValue `json:"variables"`
	Effective []effectiveValue                    `json:"effective"`
}

func configCmd(args []string, env []string, stdout, stderr io.Writer) error {
	f := newConfigFlags(stderr)
	if err := f.parse(args, env, stderr); err != nil {
		return err
	}
	cfg, storage, err := f.loadStorage(env, stderr)
	if err != nil {
		return err
	}
	eff := effectiveValues(cfg, storage, env, &f.ss)
	if f.jsonOut {
		return writeJSON(stdout, configReport{Variables: cfg.Effective(), Effective: eff})
	}
	if _, err := cfg.WriteTo(stdout); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "EFFECTIVE\tVALUE\tSOURCE")
	for _, v := range eff {
		val := v.Value
		if val == "" {
			val = `""`
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Name, val, v.Source)
	}
	return tw.Flush()
}

// effectiveValues are the values pi-agent uses that the variables leave
// open or derive: where storage is, which cgroup root and page size are
// used, the LLM endpoint, and serve's settings.
func effectiveValues(cfg factories.ResourceConfig, storage storageDir, env []string, ss *settings) []effectiveValue {
	var out []effectiveValue
	add := func(name, value, source string) { out = append(out, effectiveValue{name, value, source}) }
	src := storage.Source
	if src == "default" {
		src = "default: the user cache directory"
	}
	add("storage directory", storage.Path, src)
	add("checkpoint file", filepath.Join(storage.Path, "runs.db"), "storage directory")
	add("run pages", filepath.Join(storage.Path, "pages", "<run ID>"), "storage directory (durable pager, one per run)")
	if cfg.CgroupRoot != "" {
		add("cgroup root", cfg.CgroupRoot, "CEMAF_RESOURCE_CGROUP_ROOT")
	} else {
		add("cgroup root", filepath.Join(cfg.SysfsRoot, "fs", "cgroup"), "default: CEMAF_RESOURCE_SYSFS_ROOT/fs/cgroup")
	}
	if cfg.PagerPageSizeMB > 0 {
		add("page size", mib(int64(cfg.PagerPageSizeMB*(1<<20))), "CEMAF_RESOURCE_PAGER_PAGE_SIZE_MB")
	} else {
		add("page size", mib(int64(paging.DefaultPageSizeMB*(1<<20))), "default: the pager's")
	}
	add("largest document", mib(maxDocBytes), "default: documents stream through the pager, whatever its budget")
	if u := getenv(env, "CEMAF_LLM_URL"); u != "" {
		add("LLM endpoint", endpointURL(u), "CEMAF_LLM_URL")
		model, ok := lookupEnv(env, "CEMAF_LLM_MODEL")
		if !ok || model == "" {
			model = "local"
		}
		add("LLM model", model, "CEMAF_LLM_MODEL")
		addLLMProfiles(env, add)
	} else {
		add("LLM endpoint", "", "none: extractive answers (set CEMAF_LLM_URL)")
	}
	for _, s := range ss.list {
		if s.env == "" {
			continue
		}
		v, src := s.show(), s.origin
		if src == "env" {
			src = "env: " + s.env
		}
		if s.name == "max-conns" && v == "0" {
			n, _ := connLimitFor(0, noFileSoft())
			v, src = fmt.Sprint(n), fmt.Sprintf("host: half the open-files limit (%d), at most 4096", noFileSoft())
		}
		add("serve --"+s.name, v, src)
	}
	return out
}
