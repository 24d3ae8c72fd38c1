package memfs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cemaf-go/cemaf/internal/memfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInRAM(t *testing.T) {
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Skip("no procfs: not Linux")
	}
	inRAM, err := memfs.InRAM("/proc")
	require.NoError(t, err)
	assert.False(t, inRAM, "procfs keeps no files in RAM")

	// Every tmpfs mount point of this machine (/dev/shm, often /tmp and
	// /run) is in RAM.
	n := 0
	for line := range strings.Lines(string(mounts)) {
		if f := strings.Fields(line); len(f) > 2 && f[2] == "tmpfs" && !strings.Contains(f[1], `\`) {
			inRAM, err := memfs.InRAM(f[1])
			if err == nil { // a mount this process may not stat
				assert.True(t, inRAM, f[1])
				n++
			}
		}
	}
	t.Logf("%d tmpfs mounts checked", n)

	missing := filepath.Join(t.TempDir(), "missing")
	_, err = memfs.InRAM(missing)
	assert.ErrorContains(t, err, missing)
}

func ExampleInRAM() {
	fmt.Println(memfs.InRAM("/proc"))
	// Output: false <nil>
}
