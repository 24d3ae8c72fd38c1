package throttle

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// export appends the history Points not yet exported to the metrics file.
// On failure the Points stay pending (as long as the history holds them) and
// the next export retries. It runs on the monitor goroutine only.
func (m *Monitor) export() error {
	pts := m.hist.since(m.lastExport + 1)
	if len(pts) == 0 {
		return nil
	}
	var buf bytes.Buffer
	for _, p := range pts {
		buf.Write(p.appendJSON(buf.AvailableBuffer()))
		buf.WriteByte('\n')
	}
	if err := appendJSONL(m.metricsPath, buf.Bytes(), m.maxExport); err != nil {
		m.exp.errors.Add(1)
		m.log.Warn("throttle: monitor: metrics export failed", "path", m.metricsPath, "error", err)
		return err
	}
	m.lastExport = pts[len(pts)-1].UnixMilli
	return nil
}

// appendJSONL appends lines (complete, newline-terminated JSON Lines) to
// path so that a reader, or a power cut, never sees a partial file: the new
// content is written to a temporary file in the same directory, synced and
// renamed over path. path is kept under maxBytes/2: when the append would
// exceed that, path is first renamed to path+".1" (replacing the previous
// one, the oldest data) and the new lines start a fresh file. Lines that do
// not fit in maxBytes/2 on their own are dropped oldest first.
//
// Every export rewrites path, so the write volume per export is bounded by
// maxBytes/2: keep it modest on SD cards.
func appendJSONL(path string, lines []byte, maxBytes int64) error {
	half := maxBytes / 2
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("throttle: metrics export: %w", err)
	}
	if int64(len(old)+len(lines)) > half {
		if len(old) > 0 {
			if err := os.Rename(path, path+".1"); err != nil {
				return fmt.Errorf("throttle: metrics export: rotate: %w", err)
			}
		}
		old = nil
		for int64(len(lines)) > half {
			i := bytes.IndexByte(lines, '\n')
			if i < 0 {
				lines = nil
				break
			}
			lines = lines[i+1:]
		}
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("throttle: metrics export: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(old)
	if werr == nil {
		_, werr = f.Write(lines)
	}
	if werr == nil {
		werr = f.Chmod(0o644)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("throttle: metrics export: %w", werr)
	}
	syncDir(dir)
	return nil
}

// syncDir makes a rename in dir durable where the platform allows it.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
