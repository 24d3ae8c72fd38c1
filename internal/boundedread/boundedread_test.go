package boundedread_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/cemaf-go/cemaf/internal/boundedread"
	"github.com/cemaf-go/cemaf/limit"
	"github.com/stretchr/testify/require"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	require.NoError(t, os.WriteFile(small, []byte("48750\n"), 0o644))
	sparse := filepath.Join(dir, "sparse")
	f, err := os.Create(sparse)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(2<<30)) // 2 GiB, no blocks
	require.NoError(t, f.Close())
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	toZero := filepath.Join(dir, "zero")
	require.NoError(t, os.Symlink("/dev/zero", toZero))
	toSmall := filepath.Join(dir, "link")
	require.NoError(t, os.Symlink(small, toSmall))

	t.Run("regular", func(t *testing.T) {
		b, err := boundedread.ReadFile(small, 64)
		require.NoError(t, err)
		require.Equal(t, "48750\n", string(b))
	})
	t.Run("exactly the bound", func(t *testing.T) {
		b, err := boundedread.ReadFile(small, 6)
		require.NoError(t, err)
		require.Len(t, b, 6)
	})
	t.Run("symlink to a regular file", func(t *testing.T) {
		b, err := boundedread.ReadFile(toSmall, 64)
		require.NoError(t, err)
		require.Equal(t, "48750\n", string(b))
	})
	t.Run("over the bound", func(t *testing.T) {
		_, err := boundedread.ReadFile(small, 5)
		var le *limit.Error
		require.ErrorAs(t, err, &le)
		require.Equal(t, limit.FileSize, le.Kind)
		require.Equal(t, small, le.Subject)
		require.EqualValues(t, 5, le.Limit)
		require.EqualValues(t, 6, le.Current)
	})
	t.Run("2 GiB sparse file", func(t *testing.T) {
		_, err := boundedread.ReadFile(sparse, 1<<20)
		var le *limit.Error
		require.ErrorAs(t, err, &le)
		require.EqualValues(t, int64(2)<<30, le.Current)
		require.ErrorIs(t, err, limit.ErrExceeded)
	})
	for name, p := range map[string]string{"fifo": fifo, "symlink to /dev/zero": toZero, "directory": dir, "device": "/dev/null"} {
		t.Run(name, func(t *testing.T) {
			_, err := boundedread.ReadFile(p, 1<<20)
			require.ErrorIs(t, err, boundedread.ErrNotRegular)
			var nr *boundedread.NotRegularError
			require.True(t, errors.As(err, &nr))
			require.Equal(t, p, nr.Path)
			require.Contains(t, err.Error(), p)
		})
	}
	t.Run("missing", func(t *testing.T) {
		_, err := boundedread.ReadFile(filepath.Join(dir, "nope"), 10)
		require.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("prefix", func(t *testing.T) {
		b, err := boundedread.AppendPrefix([]byte("x"), small, 3)
		require.NoError(t, err)
		require.Equal(t, "x487", string(b))
		b, err = boundedread.AppendPrefix(nil, sparse, 4)
		require.NoError(t, err)
		require.Equal(t, []byte{0, 0, 0, 0}, b)
		_, err = boundedread.AppendPrefix(nil, fifo, 4)
		require.ErrorIs(t, err, boundedread.ErrNotRegular)
	})
	t.Run("append keeps dst on error", func(t *testing.T) {
		dst := []byte("keep")
		got, err := boundedread.AppendFile(dst, small, 2)
		require.Error(t, err)
		require.Equal(t, "keep", string(got))
	})
}

func TestFIFOWithWriterIsStillRefused(t *testing.T) {
	// Even with a writer attached (where a blocking open would succeed and
	// the read would wait for data forever) the FIFO is refused at once.
	fifo := filepath.Join(t.TempDir(), "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	require.NoError(t, err)
	defer r.Close()
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer w.Close()
	_, err = boundedread.ReadFile(fifo, 10)
	require.ErrorIs(t, err, boundedread.ErrNotRegular)
}
