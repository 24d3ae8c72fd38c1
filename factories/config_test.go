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
	"github.com/cemaf-go/cemaf/throttle"
)

var pi4 = &factories.Host{Cores: 4, MemoryTotalBytes: 4 << 30}

func TestDefaultsFromHost(t *testing.T) {
	c, warnings, err := factories.Load(factories.LoadOptions{Environ: []string{}, Host: pi4})
	require.NoError(t, err)
	assert.Empty(t, warnings)
	assert.Equal(t, 95.0, c.CPUThreshold)
	assert.Equal(t, 70.0, c.CPUAdapt)
	assert.Equal(t, 30*time.Second, c.Cooldown)
	assert.EqualValues(t, 3072, c.MemorySoftLimitMB, "75 % of 4 GiB")
	assert.EqualValues(t, 3584, c.MemoryHardLimitMB)
	assert.Equal(t, 256.0, c.PagerMemoryLimitMB)
	assert.Equal(t, 2, c.CPUParallel, "max(2, 4 − 2)")
	assert.Equal(t, 256, c.IOParallel, "4 × 64")
	assert.Equal(t, factories.SourceHost, c.Source("CPU_PARALLEL"))
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
CEMAF_RESOURCE_CPU_PARALLEL = 3
`), 0o600))
	c, warnings, err := factories.Load(factories.LoadOptions{
		Environ: []string{"CEMAF_RESOURCE_CPU_THRESHOLD=75", "CEMAF_RESOURCE_MEMORY_THRESHOLD=80", "CEMAF_RESOURCE_CPU_PARALLEL=8", "PATH=/usr/bin"},
		File:    file,
		Flags:   map[string]string{"CPU_PARALLEL": "5"},
		Host:    pi4,
	})
	require.NoError(t, err)
	assert.Empty(t, warnings)
	assert.Equal(t, 75.0, c.CPUThreshold)
	assert.Equal(t, factories.SourceEnv, c.Source("CPU_THRESHOLD"))
	assert.Equal(t, 70.0, c.MemoryThreshold, "file beats env")
	assert.Equal(t, factories.SourceFile, c.Source("MEMORY_THRESHOLD"))
	assert.Equal(t, 45*time.Second, c.Cooldown)
	assert.Equal(t, 5, c.CPUParallel, "flag beats file and env")
	assert.Equal(t, factories.SourceFlag, c.Source("CPU_PARALLEL"))

	var b strings.Builder
	_, err = c.WriteTo(&b)
	require.NoError(t, err)
	out := b.String()
	assert.Regexp(t, `CEMAF_RESOURCE_CPU_PARALLEL\s+5\s+flag`, out)
	assert.Regexp(t, `cpu_others_percent\s+70 %\s+default\s+75 %\s+env`, out)
	assert.Regexp(t, `memory_percent\s+65 %\s+default: lowered below CEMAF_RESOURCE_MEMORY_THRESHOLD\s+70 %\s+file`, out, "a default adapt level follows a lower pause level")
	assert.Regexp(t, `CEMAF_RESOURCE_MEMORY_THRESHOLD\s+70\s+file`, out)
	assert.Regexp(t, `CEMAF_RESOURCE_CPU_THRESHOLD\s+75\s+env`, out)
	assert.Regexp(t, `CEMAF_RESOURCE_MEMORY_SOFT_LIMIT_MB\s+3072\s+host`, out)
	eff := c.Effective()
	assert.Equal(t, factories.EffectiveValue{Value: "5", Source: factories.SourceFlag}, eff["CEMAF_RESOURCE_CPU_PARALLEL"])
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
			"CEMAF_RESOURCE_CPU_PARALLEL=-3",
			"CEMAF_RESOURCE_CPU_HELPERS=pid:0",
			"CEMAF_RESOURCE_HOLD_SECONDS=1e-320",
		},
		Host: pi4,
	})
	require.Error(t, err)
	require.ErrorIs(t, err, factories.ErrInvalidConfig)
	msg := err.Error()
	for _, want := range []string{
		`CEMAF_RESOURCE_CPU_THRESHOLD = "ninety" from environment: not a number; accepted: [0, 100] (% of all CPUs)`,
		`CEMAF_RESOURCE_MEMORY_THRESHOLD = "120" from environment: out of range; accepted: [0, 100] (%)`,
		`CEMAF_RESOURCE_COOLDOWN_SECONDS = "-5" from environment: out of range; accepted: (0, 86400] (s)`,
		`CEMAF_RESOURCE_SYSFS_ROOT = "relative/sys" from environment: not an absolute path`,
		`CEMAF_RESOURCE_CPU_PARALLEL = "-3" from environment: out of range; accepted: integer in [0, 4096]`,
		`CEMAF_RESOURCE_CPU_HELPERS = "pid:0" from environment: helper "pid:0": a PID must be a positive integer`,
		`CEMAF_RESOURCE_HOLD_SECONDS = "1e-320" from environment: below the nanosecond the clock counts in`,
	} {
		assert.Contains(t, msg, want)
	}
	var ve *factories.VarError
	require.ErrorAs(t, err, &ve)
	assert.NotEmpty(t, ve.Accepted)

	// Relations are checked once every value parses.
	_, _, err = factories.Load(factories.LoadOptions{Environ: []string{
		"CEMAF_RESOURCE_MEMORY_SOFT_LIMIT_MB=4000", "CEMAF_RESOURCE_MEMORY_HARD_LIMIT_MB=3000",
		"CEMAF_RESOURCE_CPU_ADAPT=99", "CEMAF_RESOURCE_CPU_THRESHOLD=90",
	}, Host: pi4})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "CEMAF_RESOURCE_MEMORY_SOFT_LIMIT_MB = 4000 (env) must be < CEMAF_RESOURCE_MEMORY_HARD_LIMIT_MB = 3000 (env)")
	assert.Contains(t, err.Error(), "CEMAF_RESOURCE_CPU_ADAPT = 99 (env) must be < CEMAF_RESOURCE_CPU_THRESHOLD = 90 (env)")

	// A tiny soft limit is a valid configuration, not an error at start.
	c, _, err := factories.Load(factories.LoadOptions{Environ: []string{"CEMAF_RESOURCE_MEMORY_SOFT_LIMIT_MB=1"}, Host: pi4})
	require.NoError(t, err)
	_, err = throttle.NewReclaimer(throttle.ReclaimerOptions{SoftLimitMB: c.MemorySoftLimitMB})
	require.NoError(t, err)
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
		"CEMAF_RESOURCE_TEMP_ADAPT_C=85", "CEMAF_RESOURCE_TEMP_THRESHOLD=80",
		"CEMAF_RESOURCE_PAGER_MEMORY_LIMIT_MB=16", "CEMAF_RESOURCE_PAGER_PAGE_SIZE_MB=8",
		"CEMAF_RESOURCE_SYSFS_ROOT=/nonexistent",
	}, Host: pi4})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "TEMP_ADAPT_C = 85 (env) must be < CEMAF_RESOURCE_TEMP_THRESHOLD = 80 (env)")
	assert.Contains(t, err.Error(), "PAGER_PAGE_SIZE_MB = 8 is too large for CEMAF_RESOURCE_PAGER_MEMORY_LIMIT_MB = 16")
}

// The temperature ladder comes from the board's trip points when the board
// has them, and the configuration says so.
func TestTemperatureLevelsFromTheBoard(t *testing.T) {
	for _, tt := range []struct {
		fixture      string
		adapt, pause float64
		pauseFrom    string
	}{
		{"pi4", 70, 80, "raspberry-pi board table"},
		{"jetson-orin", 90, 94, "hot trip point of cpu-thermal (99 °C) − 5"},
		{"jetson-nano", 83.5, 93.5, "hot trip point of CPU-therm (98.5 °C) − 5"},
	} {
		t.Run(tt.fixture, func(t *testing.T) {
			root, err := filepath.Abs(filepath.Join("..", "thermal", "testdata", tt.fixture))
			require.NoError(t, err)
			c, _, err := factories.Load(factories.LoadOptions{Environ: []string{"CEMAF_RESOURCE_SYSFS_ROOT=" + root}, Host: pi4})
			require.NoError(t, err)
			assert.Equal(t, tt.adapt, c.TempAdaptC)
			assert.Equal(t, tt.pause, c.TempThreshold)
			assert.Equal(t, factories.SourceBoard, c.Source("TEMP_THRESHOLD"))
			assert.Equal(t, tt.pauseFrom, c.Note("TEMP_THRESHOLD"))
			var b strings.Builder
			_, err = c.WriteTo(&b)
			require.NoError(t, err)
			assert.Contains(t, b.String(), "board: "+tt.pauseFrom)
		})
	}
	// A level the user gives wins; the other is still derived.
	root, _ := filepath.Abs("../thermal/testdata/jetson-orin")
	c, _, err := factories.Load(factories.LoadOptions{Environ: []string{"CEMAF_RESOURCE_SYSFS_ROOT=" + root, "CEMAF_RESOURCE_TEMP_THRESHOLD=85"}, Host: pi4})
	require.NoError(t, err)
	assert.Equal(t, 85.0, c.TempThreshold)
	assert.Equal(t, factories.SourceEnv, c.Source("TEMP_THRESHOLD"))
	assert.Equal(t, 75.0, c.TempAdaptC, "the passive trip (90) is not below 85: 10 below the pause level")
	// No thermal zones: the fixed defaults.
	c, _, err = factories.Load(factories.LoadOptions{Environ: []string{"CEMAF_RESOURCE_SYSFS_ROOT=" + t.TempDir()}, Host: pi4})
	require.NoError(t, err)
	assert.Equal(t, 80.0, c.TempThreshold)
	assert.Equal(t, factories.SourceDefault, c.Source("TEMP_THRESHOLD"))
}

func TestParallelZeroMeansHost(t *testing.T) {
	c, _, err := factories.Load(factories.LoadOptions{Environ: []string{"CEMAF_RESOURCE_CPU_PARALLEL=0", "CEMAF_RESOURCE_IO_PARALLEL=0"}, Host: &factories.Host{Cores: 8, MemoryTotalBytes: 8 << 30, NoFileSoft: 1024}})
	require.NoError(t, err)
	assert.Equal(t, 6, c.CPUParallel)
	assert.Equal(t, 512, c.IOParallel, "8 × 64 = 512, half of 1024 open files")
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
		if cfg.CPUThreshold < 0 || cfg.CPUThreshold > 100 || cfg.Cooldown <= 0 || cfg.CheckInterval <= 0 ||
			cfg.CPUParallel < 1 || cfg.IOParallel < 1 || cfg.MemorySoftLimitMB >= cfg.MemoryHardLimitMB || !filepath.IsAbs(cfg.SysfsRoot) {
			t.Fatalf("invalid config accepted: %+v", cfg)
		}
	})
}
