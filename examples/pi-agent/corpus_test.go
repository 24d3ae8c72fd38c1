package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hostileCorpus writes a corpus directory holding one good document and
// every kind of file a user's directory may hold that must not take the
// run down. It returns the directory, the names that must be skipped (with
// a word of the reason), and cleanup work.
func hostileCorpus(t *testing.T) (dir string, skipped map[string]string) {
	t.Helper()
	dir = t.TempDir()
	outside := t.TempDir()
	write := func(name string, data []byte) {
		t.Helper()
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
		require.NoError(t, os.WriteFile(p, data, 0o600))
	}
	write("good.md", []byte("# Greenhouse\n\nThe irrigation valve opens at dawn for exactly twelve minutes.\n"))
	skipped = map[string]string{}

	// A symlink to /dev/zero, to /dev/null, a FIFO, a FIFO with a writer
	// attached (a blocking open would succeed and the read wait forever).
	require.NoError(t, os.Symlink("/dev/zero", filepath.Join(dir, "zero.md")))
	skipped["zero.md"] = "character device"
	require.NoError(t, os.Symlink("/dev/null", filepath.Join(dir, "null.txt")))
	skipped["null.txt"] = "character device"
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "pipe.md"), 0o600))
	skipped["pipe.md"] = "named pipe (FIFO)"
	fifo := filepath.Join(dir, "held-pipe.txt")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { w.Close() })
	skipped["held-pipe.txt"] = "named pipe (FIFO)"

	// A socket.
	ln, err := net.Listen("unix", filepath.Join(dir, "sock.md"))
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	skipped["sock.md"] = "socket"

	// A 2 GB sparse file, directly and through a symlink: the link's size
	// is not what is read.
	big := filepath.Join(outside, "big.md")
	f, err := os.Create(big)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(2<<30))
	require.NoError(t, f.Close())
	require.NoError(t, os.Symlink(big, filepath.Join(dir, "big-link.md")))
	skipped["big-link.md"] = "2.0 GiB, over the"
	require.NoError(t, os.Link(big, filepath.Join(dir, "big.txt")))
	skipped["big.txt"] = "2.0 GiB, over the"

	// Broken symlinks, loops, a directory with a text name.
	require.NoError(t, os.Symlink(filepath.Join(outside, "gone.md"), filepath.Join(dir, "dangling.md")))
	skipped["dangling.md"] = "broken symlink"
	require.NoError(t, os.Symlink("loop.md", filepath.Join(dir, "loop.md")))
	skipped["loop.md"] = "symlink loop"
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "dir-link.md")))
	skipped["dir-link.md"] = "directory"

	// Binary files with a text name: a PNG, random bytes without NULs.
	write("image.md", append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), bytes.Repeat([]byte{0, 1, 2, 250}, 2000)...))
	skipped["image.md"] = "NUL bytes"
	noise := make([]byte, 9000)
	for i := range noise {
		noise[i] = byte(0x80 + i*7%0x7f) // never valid UTF-8 on its own
	}
	write("noise.txt", noise)
	skipped["noise.txt"] = "not UTF-8"
	return dir, skipped
}

func TestHostileCorpusIsSkippedNotFatal(t *testing.T) {
	dir, skipped := hostileCorpus(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := goCLI(ctx, nil, "run", "--ephemeral", "--json", "--docs", dir, "--question", "When does the irrigation valve open?")
	var res cliResult
	select {
	case res = <-done:
	case <-time.After(2 * time.Minute):
		// A liveness bound, not a timing: a FIFO or /dev/zero read whole
		// never returns.
		t.Fatal("the run hung on the corpus")
	}
	require.Equal(t, exitOK, res.code, res.errOut)
	var s runSummary
	require.NoError(t, json.Unmarshal([]byte(res.out), &s))
	require.NotNil(t, s.Answer)
	assert.Contains(t, s.Answer.Text, "opens at dawn for exactly twelve minutes")
	require.NotNil(t, s.CorpusReport)
	assert.Equal(t, 1, s.CorpusReport.Documents)
	got := map[string]string{}
	for _, d := range s.CorpusReport.Skipped {
		got[d.Name] = d.Reason
	}
	for name, why := range skipped {
		assert.Contains(t, got[name], why, "%s must be skipped with a reason", name)
	}
	assert.Len(t, got, len(skipped), "only the hostile files are skipped: %v", got)
	assert.Less(t, s.PeakRSSBytes, int64(1<<30), "nothing was read whole")
}

func TestSkippedFilesAreInTheReport(t *testing.T) {
	dir, skipped := hostileCorpus(t)
	storage := t.TempDir()
	code, _, errOut := runCLI(t, nil, "run", "--storage", storage, "--docs", dir, "--question", "irrigation valve")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, errOut, "corpus: "+dir+": 1 document, 1 chunk, "+plural(len(skipped), "file")+" skipped.")
	assert.Contains(t, errOut, "skipped null.txt: a character device, not a regular file")
	reports, _ := filepath.Glob(filepath.Join(storage, "reports", "*.md"))
	require.Len(t, reports, 1)
	report, err := os.ReadFile(reports[0])
	require.NoError(t, err)
	assert.Contains(t, string(report), "Skipped:\n\n")
	for name := range skipped {
		assert.Contains(t, string(report), "- "+name+": ")
	}
	assert.Contains(t, string(report), "- pipe.md: a named pipe (FIFO), not a regular file")
	assert.Contains(t, string(report), "- big.txt: 2.0 GiB, over the 64.0 MiB limit of a document")
}

func TestUnreadableDirectoryIsSkipped(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every directory")
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "good.md"), []byte("The valve opens at dawn."), 0o600))
	locked := filepath.Join(dir, "locked")
	require.NoError(t, os.Mkdir(locked, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(locked, "secret.md"), []byte("hidden"), 0o600))
	require.NoError(t, os.Chmod(locked, 0))
	t.Cleanup(func() { os.Chmod(locked, 0o700) })
	code, out, errOut := runCLI(t, nil, "run", "--ephemeral", "--json", "--docs", dir, "--question", "valve")
	require.Equal(t, exitOK, code, errOut)
	var s runSummary
	require.NoError(t, json.Unmarshal([]byte(out), &s))
	require.Len(t, s.CorpusReport.Skipped, 1)
	assert.Equal(t, skippedDoc{Name: "locked", Reason: "permission denied"}, s.CorpusReport.Skipped[0])
}

// Odd encodings, long tokens and long lines are repaired, counted, and
// never fail the run: the 40 KB hex string that once made an index node
// fail on the pager's 32 KiB key limit is cut to a term, and still found.
func TestOddTextIsRepaired(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o600))
	}
	hex := strings.Repeat("0123456789abcdef", 40<<10/16)
	write("hex.md", []byte("# Build\n\nThe firmware digest is "+hex+" and nothing else.\n"))
	write("crlf.txt", []byte("Line one about the pump.\r\nLine two about the pump.\r\n\r\nThe pump runs at noon.\r\n"))
	write("bom.md", append(append([]byte{}, bomUTF8...), "The fan spins when the board is warm."...))
	units := utf16.Encode([]rune("The heater warms the greenhouse at night."))
	u16 := []byte{0xff, 0xfe}
	for _, u := range units {
		u16 = binary.LittleEndian.AppendUint16(u16, u)
	}
	write("utf16.txt", u16)
	write("latin1.txt", []byte("The caf\xe9 sensor reads the humidity."))
	write("nul.md", append([]byte(strings.Repeat("The lamp switches on at dusk. ", 400)), "\x00\x00 The lamp has a timer."...))
	long := strings.Repeat("x", 200<<10) // one 200 KB line without a space
	write("minified.txt", []byte("The gauge reads the tank level. "+long))

	code, out, errOut := runCLI(t, nil, "run", "--ephemeral", "--json", "--docs", dir, "--question", "What is the firmware digest "+hex[:100]+"?")
	require.Equal(t, exitOK, code, errOut)
	var s runSummary
	require.NoError(t, json.Unmarshal([]byte(out), &s))
	cr := s.CorpusReport
	require.NotNil(t, cr)
	assert.Empty(t, cr.Skipped)
	assert.Equal(t, 7, cr.Documents)
	assert.Equal(t, 1, cr.UTF16)
	assert.Equal(t, 1, cr.BOMs)
	assert.Equal(t, 1, cr.InvalidUTF8)
	assert.Equal(t, 1, cr.NULs)
	assert.Equal(t, 1, cr.CR)
	assert.Positive(t, cr.LinesCut, "the hex string and the long line are cut into chunks")
	assert.Positive(t, cr.TermsCut, "the hex string is cut to a term")
	for _, n := range s.Nodes {
		assert.Equal(t, "succeeded", n.Status.String(), n.ID)
	}
	require.NotEmpty(t, s.Answer.Sources)
	assert.Contains(t, s.Answer.Sources[0], "hex.md", "the long term still matches the question's")

	// The repaired text is searchable.
	for q, want := range map[string]string{"When does the heater warm the greenhouse?": "utf16.txt", "When does the pump run?": "crlf.txt",
		"When does the fan spin?": "bom.md", "What does the cafe sensor read?": "latin1.txt", "Has the lamp a timer?": "nul.md"} {
		code, out, errOut := runCLI(t, nil, "run", "--ephemeral", "--json", "--docs", dir, "--question", q)
		require.Equal(t, exitOK, code, errOut)
		var s runSummary
		require.NoError(t, json.Unmarshal([]byte(out), &s))
		require.NotNil(t, s.Answer)
		assert.Contains(t, strings.Join(s.Answer.Sources, " "), want, q)
	}
}

func TestDecodeText(t *testing.T) {
	tests := []struct {
		name  string
		in    []byte
		want  string
		notes textNotes
		skip  string
	}{
		{"plain", []byte("hello\nworld"), "hello\nworld", textNotes{}, ""},
		{"empty", nil, "", textNotes{}, ""},
		{"utf-8 bom", []byte("\xef\xbb\xbfhi"), "hi", textNotes{BOM: true}, ""},
		{"crlf", []byte("a\r\nb\rc"), "a\nb\nc", textNotes{CR: true}, ""},
		{"invalid utf-8", []byte("caf\xe9!"), "caf\uFFFD!", textNotes{InvalidUTF8: 1}, ""},
		{"utf-16be", []byte{0xfe, 0xff, 0, 'h', 0, 'i'}, "hi", textNotes{BOM: true, UTF16: true}, ""},
		{"utf-16 odd byte", []byte{0xff, 0xfe, 'h', 0, 'i'}, "h\uFFFD", textNotes{BOM: true, UTF16: true}, ""},
		{"nul at start", []byte("ab\x00cd"), "", textNotes{}, "NUL bytes"},
		{"nul past the start", append(bytes.Repeat([]byte("a"), sniffBytes), 0, 'b'), strings.Repeat("a", sniffBytes) + " b", textNotes{NULs: 1}, ""},
		{"control bytes", bytes.Repeat([]byte{1, 2, 3, 'a'}, 100), "", textNotes{}, "control bytes"},
		{"rune cut at the sniff boundary", append(bytes.Repeat([]byte("a"), sniffBytes-1), "é"...), strings.Repeat("a", sniffBytes-1) + "é", textNotes{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, notes, skip := decodeText(tt.in)
			if tt.skip != "" {
				assert.Contains(t, skip, tt.skip)
				assert.Nil(t, got)
				return
			}
			assert.Empty(t, skip)
			assert.Equal(t, tt.want, string(got))
			assert.Equal(t, tt.notes, notes)
		})
	}
}

func TestChunkTextBounds(t *testing.T) {
	text := "# Title\n\nShort paragraph.\n\n" + strings.Repeat("word ", 1000) + "\n\n" + strings.Repeat("z", 5000) + "\n" + strings.Repeat("line\n", 500)
	chunks, cut := chunkText(text, 300)
	assert.Equal(t, 2, cut, "the long run of words and the long token")
	for _, c := range chunks {
		assert.LessOrEqual(t, len(c), 600, "a chunk stays within twice the size (a heading keeps its paragraph)")
	}
	assert.Equal(t, strings.Count(text, "z"), strings.Count(strings.Join(chunks, ""), "z"), "nothing is lost")

	toks, n := appendTokens(nil, "a "+strings.Repeat("é", 100)+" ok")
	assert.Equal(t, 1, n)
	assert.Len(t, toks, 2)
	assert.LessOrEqual(t, len(toks[0]), maxTermBytes)
	assert.True(t, strings.HasPrefix(strings.Repeat("é", 100), toks[0]), "cut on a rune boundary")
}
