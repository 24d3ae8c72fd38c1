package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/goleak"
)

// childEnv makes the test binary run pi-agent's main with the arguments it
// was given, instead of the tests: process-level tests (signals, rlimits)
// re-execute the test binary this way.
const childEnv = "PI_AGENT_TEST_MAIN"

// execEnv names a program that runs the test binary's children, as go test
// -exec runs the test binary itself: CEMAF_TEST_EXEC=qemu-aarch64-static
// lets the process-level tests run under user-mode emulation without
// binfmt_misc.
const execEnv = "CEMAF_TEST_EXEC"

// TestMain runs pi-agent when asked to (see childEnv), else the tests, and
// fails them if any leaves a goroutine behind.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		main()
		return
	}
	goleak.VerifyTestMain(m)
}

// piAgent returns a command that runs pi-agent's main in a child process
// (the test binary re-executed).
func piAgent(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	if runner := strings.Fields(os.Getenv(execEnv)); len(runner) > 0 {
		cmd = exec.Command(runner[0], append(append(runner[1:], exe), args...)...)
	} else {
		cmd = exec.Command(exe, args...)
	}
	cmd.Env = append(os.Environ(), childEnv+"=1")
	return cmd
}

// startChild starts cmd, skipping the test when the platform cannot run
// the test binary again (user-mode emulation without binfmt_misc and
// without CEMAF_TEST_EXEC).
func startChild(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.ENOEXEC) {
			t.Skipf("cannot run the test binary again (set %s to the emulator): %v", execEnv, err)
		}
		t.Fatal(err)
	}
}
