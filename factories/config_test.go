package factories_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/factories"
)

var pi4 = &factories.Host{Cores: 4, MemoryTotalBytes: 4 << 30}

func TestDefaultsFromHost(t *testing.T) {
	c, warnings, err := factories.Load(factories.LoadOptions{Environ: []string{}, Host: pi4})
	require.NoError(t, err)
	assert.Empty(t, warnings)
	assert.Equal(t, 90.0, c.CPUThreshold)
	assert.Equal(t, 30*time.Second, c.Cooldown)
	assert.EqualValues(t, 3072, c.MemorySoftLimitMB, "75 % of 4 GiB, as the blueprint's Pi example")
	assert.EqualValues(t, 3584, c.MemoryHardLimitMB)
	assert.Equal(t, 256.0, c.PagerMemoryLimitMB)
	assert.Equal(t, 4, c.MaxParallel)
	assert.Equal(t, factories.SourceHost, c.Source("MAX_PARALLEL"))
	assert.Equal(t, factories.SourceDefault, c.Source("CEMAF_RESOURCE_CPU_THRESHOLD"))

	small, _, err := factories.Load(factories.LoadOptions{Environ: []string{}, Host: &factories.Host{Cores: 1, MemoryTotalBytes: 512 << 20}})
	require.NoError(t, err)
	assert.Equal(t, 64.0, small.PagerMemoryLimitMB, "1/8 of 512 MB")
}

func TestPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cemaf.env")
	require.NoError(t, os.WriteFile(file, []byte(`# operator overrides
export CEMAF_RESOURCE_MEMORY_THRESHOLD=70
COOLDOWN_SECONDS="45"
CEMAF_RESOURCE_MAX_PARALLEL = 3
`), 0o600))
	c, warnings, err := factories.Load(factories.LoadOptions{
		Environ: []string{"CEMAF_RESOURCE_CPU_THRESHOLD=75", "CEMAF_RESOURCE_MEMORY_THRESHOLD=80", "CEMAF_RESOURCE_MAX_PARALLEL=8", "PATH=/usr/bin"},
		File:    file,
		Flags:   map[string]string{"MAX_PARALLEL": "2"},
		Host:    pi4,
	})
	require.NoError(t, err)
	assert.Empty(t, warnings)
	assert.Equal(t, 75.0, c.CPUThreshold)
	assert.Equal(t, factories.SourceEnv, c.Source("CPU_THRESHOLD"))
	assert.Equal(t, 70.0, c.MemoryThreshold, "file beats env")
	assert.Equal(t, factories.SourceFile, c.Source("MEMORY_THRESHOLD"))
	assert.Equal(t, 45*time.Second, c.Cooldown)
	assert.Equal(t, 2, c.MaxParallel, "flag beats file and env")
	assert.Equal(t, factories.SourceFlag, c.Source("MAX_PARALLEL"))

	var b strings.Builder
	_, err = c.WriteTo(&b)
	require.NoError(t, err)
	out := b.String()
	assert.Regexp(t, `CEMAF_RESOURCE_MAX_PARALLEL\s+2\s+flag`, out)
	assert.Regexp(t, `CEMAF_RESOURCE_MEMORY_THRESHOLD\s+70\s+file`, out)
	assert.Regexp(t, `CEMAF_RESOURCE_CPU_THRESHOLD\s+75\s+env`, out)
	assert.Regexp(t, `CEMAF_RESOURCE_MEMORY_SOFT_LIMIT_MB\s+3072\s+host`, out)
	eff := c.Effective()
	assert.Equal(t, factories.EffectiveValue{Value: "2", Source: factories.SourceFlag}, eff["CEMAF_RESOURCE_MAX_PARALLEL"])
	assert.Len(t, eff, len(factories.Variables()))
}

func TestBadValuesAllReported(t *testing.T) {
	_, _, err := factories.Load(factories.LoadOptions{
		Environ: []string{
			"CEMAF_RESOURCE_CPU_THRESHOLD=ninety",
			"CEMAF_RESOURCE_MEMORY_THRESHOLD=120",
			"CEMAF_RESOURCE_COOLDOWN_SECONDS=-5",
			"CEMAF_RESOURCE_MEMORY_SOFT_LIMIT_MB=4000",
			"CEMAF_RESOURCE_MEMORY_HARD_LIMIT_MB=3000",
			"CEMAF_RESOURCE_SYSFS_ROOT=relative/sys",
			"CEMAF_RESOURCE_MAX_PARALLEL=-3",
		},
		Host: pi4,
	})
	require.Error(t, err)
	require.ErrorIs(t, err, factories.ErrInvalidConfig)
	msg := err.Error()
	for _, want := range []string{
		`CEMAF_RESOURCE_CPU_THRESHOLD = "ninety" from environment: not a number; accepted: (0, 100] (%)`,
		`CEMAF_RESOURCE_MEMORY_THRESHOLD = "120" from environment: out of range; accepted: (0, 100] (%)`,
		`CEMAF_RESOURCE_COOLDOWN_SECONDS = "-5" from environment: out of range; accepted: (0, 86400] (s)`,
		`CEMAF_RESOURCE_SYSFS_ROOT = "relative/sys" from environment: not an absolute path`,
		`CEMAF_RESOURCE_MAX_PARALLEL = "-3" from environment: out of range; accepted: integer in [0, 4096]`,
		`CEMAF_RESOURCE_MEMORY_SOFT_LIMIT_MB = 4000 (env) is above CEMAF_RESOURCE_MEMORY_HARD_LIMIT_MB = 3000 (env)`,
	} {
		assert.Contains(t, msg, want)
	}
	var ve *factories.VarError
	require.ErrorAs(t, err, &ve)
	assert.NotEmpty(t, ve.Accepted)
}

func TestUnknownVariableSuggestsNearest(t *testing.T) {
	_, warnings, err := factories.Load(factories.LoadOptions{
		Environ: []string{"CEMAF_RESOURCE_CPU_TRESHOLD=80", "CEMAF_RESOURCE_PAGER_MEMORY_MB=64", "CEMAF_RESOURCE_XYZZY=1"},
		Host:    pi4,
	})
	require.NoError(t, err)
	require.Len(t, warnings, 3)
	assert.Contains(t, warnings[0], "unknown variable CEMAF_RESOURCE_CPU_TRESHOLD (from environment); did you mean CEMAF_RESOURCE_CPU_THRESHOLD?")
	assert.Contains(t, warnings[1], "did you mean CEMAF_RESOURCE_PAGER_MEMORY_LIMIT_MB?")
	assert.NotContains(t, warnings[2], "did you mean", "no suggestion for a name nothing resembles")
}

func TestConfigFileErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.env")
	require.NoError(t, os.WriteFile(file, []byte("CPU_THRESHOLD=50\nthis line is wrong\nTEMP_THRESHOLD=900\n"), 0o600))
	_, _, err := factories.Load(factories.LoadOptions{Environ: []string{}, File: file, Host: pi4})
	require.Error(t, err)
	assert.Contains(t, err.Error(), file+`:2: "this line is wrong" is not KEY=VALUE`)

	_, _, err = factories.Load(factories.LoadOptions{Environ: []string{}, File: filepath.Join(t.TempDir(), "missing.env"), Host: pi4})
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestThermalAndPagerRelations(t *testing.T) {
	_, _, err := factories.Load(factories.LoadOptions{Environ: []string{
		"CEMAF_RESOURCE_THERMAL_WARNING_C=85", "CEMAF_RESOURCE_THERMAL_CRITICAL_C=80",
		"CEMAF_RESOURCE_PAGER_MEMORY_LIMIT_MB=16", "CEMAF_RESOURCE_PAGER_PAGE_SIZE_MB=8",
	}, Host: pi4})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "THERMAL_WARNING_C = 85 must be below CEMAF_RESOURCE_THERMAL_CRITICAL_C = 80")
	assert.Contains(t, err.Error(), "PAGER_PAGE_SIZE_MB = 8 is too large for CEMAF_RESOURCE_PAGER_MEMORY_LIMIT_MB = 16")
}

func TestMaxParallelZeroMeansHost(t *testing.T) {
	c, _, err := factories.Load(factories.LoadOptions{Environ: []string{"CEMAF_RESOURCE_MAX_PARALLEL=0"}, Host: pi4})
	require.NoError(t, err)
	assert.Equal(t, 4, c.MaxParallel)
}

func TestDetectHost(t *testing.T) {
	if _, err := os.Stat("/proc/meminfo"); err != nil {
		t.Skip("no procfs")
	}
	h, err := factories.DetectHost("/proc", "/sys", "")
	require.NoError(t, err)
	assert.Positive(t, h.MemoryTotalBytes)
	assert.Positive(t, h.Cores)
}

// FuzzLoadEnv feeds arbitrary values to every variable: Load never panics,
// and returns either a config whose values are all in range or an error that
// names a CEMAF_RESOURCE_ variable.
func FuzzLoadEnv(f *testing.F) {
	f.Add("90", "85", "30", "/sys", "2")
	f.Add("-1", "NaN", "1e309", "rel", "0x10")
	f.Add("", " 50 ", "0.0001", "/", "4096")
	f.Add("100.0000001", "+Inf", "86400", "/a\x00b", "-0")
	f.Fuzz(func(t *testing.T, a, b, c, d, e string) {
		vals := []string{a, b, c, d, e}
		var env []string
		for i, v := range factories.Variables() {
			env = append(env, v.Env()+"="+vals[i%len(vals)])
		}
		cfg, _, err := factories.Load(factories.LoadOptions{Environ: env, Host: pi4})
		if err != nil {
			if !strings.Contains(err.Error(), "CEMAF_RESOURCE_") {
				t.Fatalf("error names no variable: %v", err)
			}
			if !errors.Is(err, factories.ErrInvalidConfig) && !strings.Contains(err.Error(), "must be") {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if cfg.CPUThreshold <= 0 || cfg.CPUThreshold > 100 || cfg.Cooldown <= 0 || cfg.CheckInterval <= 0 ||
			cfg.MaxParallel < 1 || cfg.MemorySoftLimitMB > cfg.MemoryHardLimitMB || !filepath.IsAbs(cfg.SysfsRoot) {
			t.Fatalf("invalid config accepted: %+v", cfg)
		}
	})
}
