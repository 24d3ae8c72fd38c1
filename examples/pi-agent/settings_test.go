package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"30s", 30 * time.Second, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"30", 30 * time.Second, ""},
		{"0.5", 500 * time.Millisecond, ""},
		{"0", 0, ""},
		{"0s", 0, ""},
		{"1e-9", time.Nanosecond, ""},
		{"NaN", 0, "not a number (NaN)"},
		{"nan", 0, "not a number (NaN)"},
		{"Inf", 0, "not a finite number"},
		{"-Inf", 0, "not a finite number"},
		{"+infinity", 0, "not a finite number"},
		{"1e-320", 0, "below the nanosecond"},
		{"1e-400", 0, "below the nanosecond"},
		{"0x1p-2000", 0, "below the nanosecond"},
		{"0e5", 0, ""},
		{"0.1ns", 0, "below the nanosecond"},
		{"-5s", 0, "negative"},
		{"-1", 0, "negative"},
		{"1e300", 0, "too long"},
		{"3000000h", 0, "not a duration"},
		{"", 0, "empty"},
		{"ten", 0, "not a duration"},
		{"5 s", 0, "not a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			d, err := parseDuration(tt.in)
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, d)
		})
	}
}

// Every bad CEMAF_SERVE_* value and flag is reported at once, named, with
// the accepted range, like the CEMAF_RESOURCE_* ones (which are reported
// with them).
func TestServeSettingsAreReportedAllAtOnce(t *testing.T) {
	env := []string{
		"CEMAF_SERVE_SLOTS=lots",
		"CEMAF_SERVE_RUN_TIMEOUT=1e-320",
		"CEMAF_SERVE_DRAIN_TIMEOUT=NaN",
		"CEMAF_SERVE_IDLE_TIMEOUT=-1s",
		"CEMAF_SERVE_MAX_BODY_BYTES=10",
		"CEMAF_SERVE_READ_BODY_TIMEOUT=Inf",
		"CEMAF_SERVE_ADDR=nowhere",
		"CEMAF_SERVE_QUEUE=7",
		"CEMAF_SERVE_SLOT=2",
	}
	code, _, errOut := runCLI(t, env, "serve", "--write-timeout", "1e-320", "--top-k", "0", "--storage", t.TempDir())
	assert.Equal(t, exitUsage, code, "a flag is among the bad values")
	for _, want := range []string{
		`pi-agent serve: CEMAF_SERVE_SLOTS = "lots" from environment: not an integer; accepted: an integer in [1, 1024]`,
		`pi-agent serve: CEMAF_SERVE_RUN_TIMEOUT = "1e-320" from environment: below the nanosecond the clock counts in; accepted: a duration in [1ms, 24h]`,
		`pi-agent serve: CEMAF_SERVE_DRAIN_TIMEOUT = "NaN" from environment: not a number (NaN)`,
		`pi-agent serve: CEMAF_SERVE_IDLE_TIMEOUT = "-1s" from environment: negative`,
		`pi-agent serve: CEMAF_SERVE_MAX_BODY_BYTES = "10" from environment: out of range; accepted: an integer in [64, 67108864]`,
		`pi-agent serve: CEMAF_SERVE_READ_BODY_TIMEOUT = "Inf" from environment: not a finite number`,
		`pi-agent serve: CEMAF_SERVE_ADDR = "nowhere" from environment: not host:port`,
		`pi-agent serve: --write-timeout = "1e-320" from the command line: below the nanosecond`,
		`pi-agent serve: --top-k = "0" from the command line: out of range; accepted: an integer in [1, 50]`,
		`pi-agent serve: warning: unknown variable CEMAF_SERVE_SLOT (from environment); known: CEMAF_SERVE_ADDR, `,
	} {
		assert.Contains(t, errOut, want)
	}
	assert.NotContains(t, errOut, "CEMAF_SERVE_QUEUE = ", "a good value is not reported")

	// From the environment only: exit 1, like bad CEMAF_RESOURCE_* values,
	// which are reported with them.
	code, _, errOut = runCLI(t, []string{"CEMAF_SERVE_SLOTS=0"}, "serve", "--storage", t.TempDir())
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, `CEMAF_SERVE_SLOTS = "0" from environment: out of range`)

	// A flag wins over the variable: a bad variable under a good flag is
	// not used, so not an error.
	code, out, errOut := runCLI(t, []string{"CEMAF_SERVE_SLOTS=0"}, "config", "--slots", "3", "--storage", t.TempDir())
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `serve --slots\s+3\s+flag`, out)
}

func TestRunFlagsAreReportedAllAtOnce(t *testing.T) {
	code, _, errOut := runCLI(t, nil, "run", "--ephemeral", "--shards", "0", "--llm-timeout", "NaN", "--timeout", "-1s", "--question", " ", "--llm-attempts", "x")
	assert.Equal(t, exitUsage, code)
	assert.Equal(t, 5, strings.Count(errOut, "from the command line"), errOut)
	assert.Contains(t, errOut, `--question = " " from the command line: empty; accepted: a question that is not empty`)
	assert.Contains(t, errOut, `--llm-timeout = "NaN" from the command line: not a number (NaN); accepted: a duration in [1ms, 24h]`)
}
