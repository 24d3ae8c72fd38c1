package main

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cemaf-go/cemaf/internal/boundedread"
	"github.com/cemaf-go/cemaf/limit"
)

//go:embed corpus/*.md
var builtinCorpus embed.FS

// maxDocBytes is the largest document the loader reads; a larger file is
// skipped, without being read, with a note in the report.
const maxDocBytes = 64 << 20

// corpus is the documents of a run: a directory the user names, or the
// corpus built into the binary. The directory is a place the user
// controls: it may hold FIFOs, devices, sockets, symlinks to any of them,
// huge or sparse files, binary files with a text name. Every document is
// opened through openDoc, which never blocks, and read within its bound.
type corpus struct {
	Label string // how messages name it: the absolute directory, or "built-in corpus"
	Dir   string // the absolute directory; "" for the built-in corpus
	fsys  fs.FS  // os.DirFS(Dir), or the built-in corpus
}

const builtinLabel = "built-in corpus"

// textExtensions are the names of the files the loader takes as documents.
const textExtensions = ".md, .markdown, .txt, .text, .rst"

// openCorpus resolves --docs: a directory of text and markdown files, or
// "" for the built-in corpus. It walks the directory until it finds one
// candidate document, or ctx ends.
func openCorpus(ctx context.Context, dir string) (corpus, error) {
	if dir == "" {
		sub, err := fs.Sub(builtinCorpus, "corpus")
		return corpus{Label: builtinLabel, fsys: sub}, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return corpus{}, err
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return corpus{}, fmt.Errorf("--docs %s: no such directory", dir)
	case err != nil:
		return corpus{}, fmt.Errorf("--docs %s: %w", dir, err)
	case !fi.IsDir():
		return corpus{}, fmt.Errorf("--docs %s: not a directory", dir)
	}
	c := corpus{Label: abs, Dir: abs, fsys: os.DirFS(abs)}
	found := false
	err = c.walk(ctx, func(string) error {
		found = true
		return fs.SkipAll
	}, func(string, string) {})
	switch {
	case ctx.Err() != nil:
		return corpus{}, ctx.Err()
	case err != nil:
		return corpus{}, fmt.Errorf("--docs %s: %w", dir, err)
	case !found:
		return corpus{}, fmt.Errorf("--docs %s holds no text or markdown files (%s)", dir, textExtensions)
	}
	return c, nil
}

// walk calls fn with the name (a slash-separated path relative to the
// corpus) of every candidate document, in lexical order: the files with a
// text extension, outside hidden files and directories. Symlinks to
// directories are not followed; symlinks to files are candidates like
// files (openDoc judges their target). A directory that cannot be listed
// is reported to skip and walked past. fn may return fs.SkipAll.
func (c corpus) walk(ctx context.Context, fn func(name string) error, skip func(name, reason string)) error {
	return fs.WalkDir(c.fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if err != nil {
			if p == "." {
				return err
			}
			skip(p, skipReason(c, p, err))
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if p != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !isTextName(d.Name()) {
			return nil
		}
		return fn(p)
	})
}

func isTextName(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".md", ".markdown", ".txt", ".text", ".rst":
		return true
	}
	return false
}

// openDoc opens the document name for reading and returns its size: the
// one place documents are opened. Opening never blocks (O_NONBLOCK), and
// the type is taken from the opened descriptor, so a symlink is judged by
// its target: FIFOs, devices, sockets and directories are refused with a
// *boundedread.NotRegularError, and a file over max bytes with a
// *limit.Error of kind file_size, before a byte is read. The caller bounds
// its reads by max too (the file may grow) and closes the file.
func (c corpus) openDoc(name string, max int64) (io.ReadCloser, int64, error) {
	var f fs.File
	var err error
	if c.Dir == "" {
		f, err = c.fsys.Open(name)
	} else {
		f, err = boundedread.Open(filepath.Join(c.Dir, filepath.FromSlash(name)))
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if fi.Size() > max {
		f.Close()
		return nil, 0, &limit.Error{Kind: limit.FileSize, Subject: name, Current: float64(fi.Size()), Limit: float64(max), Unit: "bytes"}
	}
	return f, fi.Size(), nil
}

// skipReason words why the document name was not used, for the report.
func skipReason(c corpus, name string, err error) string {
	var nr *boundedread.NotRegularError
	var le *limit.Error
	switch {
	case errors.As(err, &nr):
		return boundedread.DescribeMode(nr.Mode) + ", not a regular file"
	case errors.Is(err, syscall.ENXIO) && c.Dir != "":
		// Opening a socket fails with ENXIO.
		if fi, serr := os.Stat(filepath.Join(c.Dir, filepath.FromSlash(name))); serr == nil && !fi.Mode().IsRegular() {
			return boundedread.DescribeMode(fi.Mode()) + ", not a regular file"
		}
	case errors.As(err, &le) && le.Kind == limit.FileSize:
		return fmt.Sprintf("%s, over the %s limit of a document", mib(int64(le.Current)), mib(int64(le.Limit)))
	case errors.Is(err, syscall.ELOOP):
		return "a symlink loop"
	case errors.Is(err, fs.ErrNotExist):
		if c.Dir != "" {
			if fi, lerr := os.Lstat(filepath.Join(c.Dir, filepath.FromSlash(name))); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
				return "a broken symlink"
			}
		}
		return "removed while the corpus was loaded"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	return err.Error()
}
