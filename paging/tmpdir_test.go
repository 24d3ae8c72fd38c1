package paging_test

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/internal/memfs"
	"github.com/cemaf-go/cemaf/paging"
)

// A pager without a StoragePath whose temporary directory is in RAM says
// so when it opens, and still removes its directory at Close; one given a
// StoragePath says nothing of it.
func TestWrapWarnsOfPagesInRAM(t *testing.T) {
	shm := "/dev/shm"
	if inRAM, err := memfs.InRAM(shm); err != nil || !inRAM {
		t.Skip("no tmpfs at /dev/shm")
	}
	given := t.TempDir()
	t.Setenv("TMPDIR", shm)
	before := pageDirs(t, shm)
	for _, dir := range []string{"", given} {
		var logs bytes.Buffer
		p, err := paging.Wrap(nil, paging.Options{MemoryLimitMB: 1, StoragePath: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil)), LeaveGoMemoryLimit: true})
		require.NoError(t, err)
		require.NoError(t, p.Put("k", []byte("v")))
		require.NoError(t, p.Close())
		if dir == "" {
			assert.Contains(t, logs.String(), "the temporary directory is in RAM")
		} else {
			assert.NotContains(t, logs.String(), "in RAM", "StoragePath %s was given", dir)
		}
	}
	assert.Equal(t, before, pageDirs(t, shm), "Close removes the temporary directory")
}

// pageDirs lists the pagers' temporary directories in dir.
func pageDirs(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "cemaf-pages-") {
			out = append(out, e.Name())
		}
	}
	return out
}
