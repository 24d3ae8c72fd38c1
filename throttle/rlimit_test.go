//go:build linux

package throttle_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cemaf-go/cemaf/throttle"
)

// TestApplyRlimitsProcess applies real limits in a child process (the test
// binary re-run) so that the test process keeps its own.
func TestApplyRlimitsProcess(t *testing.T) {
	if os.Getenv("THROTTLE_RLIMIT_CHILD") == "1" {
		rep := throttle.ApplyRlimits(throttle.Rlimits{OpenFiles: 512, FileSizeBytes: 1 << 30, CPUSeconds: 3600}, nil)
		out := map[string][2]uint64{}
		for name, res := range map[string]int{"nofile": unix.RLIMIT_NOFILE, "fsize": unix.RLIMIT_FSIZE, "cpu": unix.RLIMIT_CPU} {
			var rl unix.Rlimit
			if err := unix.Getrlimit(res, &rl); err != nil {
				t.Fatal(err)
			}
			out[name] = [2]uint64{rl.Cur, rl.Max}
		}
		if err := rep.Err(); err != nil {
			t.Fatal(err)
		}
		_ = json.NewEncoder(os.Stdout).Encode(out)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestApplyRlimitsProcess$")
	cmd.Env = append(os.Environ(), "THROTTLE_RLIMIT_CHILD=1")
	b, err := cmd.Output()
	if errors.Is(err, syscall.ENOEXEC) {
		// Under user-mode emulation without binfmt_misc the test binary
		// cannot re-run itself.
		t.Skipf("cannot re-run the test binary: %v", err)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("child failed: %v\n%s\n%s", err, b, ee.Stderr)
	}
	if err != nil {
		t.Fatal(err)
	}
	var got map[string][2]uint64
	// The child prints its JSON before the test framework's "PASS".
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&got); err != nil {
		t.Fatalf("child output %q: %v", b, err)
	}
	if got["nofile"][0] != 512 || got["fsize"][0] != 1<<30 || got["cpu"][0] != 3600 {
		t.Errorf("child limits %v, want nofile 512, fsize 1 GiB, cpu 3600 s", got)
	}
}
