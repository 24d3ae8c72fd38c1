package disk_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cemaf-go/cemaf/disk"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "state.json")
	th, err := disk.NewThrottler(disk.Options{WriteMBps: 500})
	if err != nil {
		t.Fatal(err)
	}
	for i, content := range []string{"first", "second, longer content"} {
		perm := []os.FileMode{0o600, 0o640}[i]
		if err := th.WriteFile(context.Background(), name, []byte(content), perm); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil || string(got) != content {
			t.Fatalf("content = %q, %v; want %q", got, err, content)
		}
		fi, err := os.Stat(name)
		if err != nil || fi.Mode().Perm() != perm {
			t.Errorf("mode = %v, want %v", fi.Mode().Perm(), perm)
		}
	}
	assertOnlyFile(t, dir, "state.json")
}

func TestWriteAtomicKeepsOldContentOnFailure(t *testing.T) {
	boom := errors.New("encoder failed")
	tests := []struct {
		name string
		fn   func(w io.Writer) error
		ctx  func() context.Context
		want func(err error) bool
	}{
		{
			name: "callback error",
			fn: func(w io.Writer) error {
				if _, err := io.WriteString(w, "partial"); err != nil {
					return err
				}
				return boom
			},
			want: func(err error) bool { return errors.Is(err, boom) },
		},
		{
			name: "callback panic",
			fn: func(w io.Writer) error {
				_, _ = io.WriteString(w, "partial")
				panic("nil map")
			},
			want: func(err error) bool { return err != nil && strings.Contains(err.Error(), "panicked: nil map") },
		},
		{
			name: "context cancelled",
			fn: func(w io.Writer) error {
				_, err := w.Write(make([]byte, 1<<20))
				return err
			},
			ctx: func() context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			},
			want: func(err error) bool { return errors.Is(err, context.Canceled) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			name := filepath.Join(dir, "checkpoint")
			if err := os.WriteFile(name, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			th, err := disk.NewThrottler(disk.Options{WriteMBps: 1, Burst: 64 << 10})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if tt.ctx != nil {
				ctx = tt.ctx()
			}
			err = th.WriteAtomic(ctx, name, 0o644, tt.fn)
			if !tt.want(err) {
				t.Fatalf("WriteAtomic = %v", err)
			}
			if !strings.HasPrefix(err.Error(), "disk: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if got, _ := os.ReadFile(name); string(got) != "old" {
				t.Errorf("content = %q, want the old content", got)
			}
			assertOnlyFile(t, dir, "checkpoint")
		})
	}
}

func TestWriteFileMissingDirectory(t *testing.T) {
	th, _ := disk.NewThrottler(disk.Options{})
	name := filepath.Join(t.TempDir(), "no", "such", "file")
	err := th.WriteFile(context.Background(), name, []byte("x"), 0o644)
	if err == nil || !strings.Contains(err.Error(), name) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("WriteFile into a missing directory = %v", err)
	}
}

// WriteFile is throttled like any write (real files, virtual time).
func TestWriteFileIsThrottled(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		th, err := disk.NewThrottler(disk.Options{WriteMBps: 2, Burst: 64 << 10})
		if err != nil {
			t.Fatal(err)
		}
		data := bytes.Repeat([]byte("x"), 4*disk.BytesPerMB)
		start := time.Now()
		if err := th.WriteFile(context.Background(), filepath.Join(dir, "big"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		// 4 MB at 2 MB/s, less the initial 64 KiB bucket.
		if elapsed := time.Since(start); elapsed < 1960*time.Millisecond || elapsed > 2*time.Second {
			t.Errorf("4 MB at 2 MB/s took %v, want about 2s", elapsed)
		}
		// A deadline too close fails before anything is written.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := th.WriteFile(ctx, filepath.Join(dir, "late"), data, 0o644); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("WriteFile with a 1 s deadline = %v", err)
		}
	})
	assertOnlyFile(t, dir, "big")
}

func assertOnlyFile(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != name {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q, want only %q (temporary file left behind?)", names, name)
	}
}
