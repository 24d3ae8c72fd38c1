package thermal_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// fixture copies testdata/<name> into a fresh temporary directory and
// returns the copy's root, so a test can change temperatures. For pi4 it also
// installs get_throttled at its real sysfs path.
func fixture(t testing.TB, name string) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(filepath.Join("testdata", name))); err != nil {
		t.Fatal(err)
	}
	if name == "pi4" {
		b, err := os.ReadFile(filepath.Join("testdata", name, "get_throttled"))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, throttledPath(dst), string(b))
	}
	return dst
}

func throttledPath(root string) string {
	return filepath.Join(root, "devices", "platform", "soc", "soc:firmware", "get_throttled")
}

// writeFile replaces path's content atomically (the Manager may be reading
// it concurrently), creating parent directories.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// setTemp writes a temperature in °C to a zone's temp file, in millidegrees.
func setTemp(t testing.TB, root, zone string, c float64) {
	t.Helper()
	writeFile(t, filepath.Join(root, "class", "thermal", zone, "temp"), strconv.Itoa(int(c*1000))+"\n")
}
