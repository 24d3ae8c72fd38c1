package paging_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/paging"
)

// The crash test re-executes the test binary as a writer process (the
// helper, selected by these environment variables in TestMain) and kills
// it with SIGKILL at random points.
const (
	crashEnvDir  = "PAGING_CRASH_HELPER_DIR"
	crashEnvMode = "PAGING_CRASH_HELPER_MODE"
	crashEnvBase = "PAGING_CRASH_HELPER_ROUND"
	crashKeys    = 6
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashEnvDir); dir != "" {
		os.Exit(crashHelper(dir))
	}
	goleak.VerifyTestMain(m)
}

// crashOptions: 4 KiB pages and a 256 KiB budget, so that the helper pages
// constantly and some values are larger than the budget.
func crashOptions(dir string, mode paging.Mode) paging.Options {
	return paging.Options{MemoryLimitMB: 256.0 / 1024, PageSizeMB: 4.0 / 1024, StoragePath: dir, Mode: mode}
}

// crashValue is value number round of key k: a 16-byte header (k, round,
// size, CRC-32 of the rest) and pseudo-random text. Its size is at least 16.
func crashValue(k, round, size int) []byte {
	v := make([]byte, 16, size)
	v = append(v, corpus(uint64(k)<<32|uint64(round), size-16)...)
	binary.BigEndian.PutUint32(v[0:], uint32(k))
	binary.BigEndian.PutUint32(v[4:], uint32(round))
	binary.BigEndian.PutUint32(v[8:], uint32(size))
	binary.BigEndian.PutUint32(v[12:], crc32.ChecksumIEEE(v[16:]))
	return v
}

// checkCrashValue verifies v is an intact crashValue of key k and returns
// its round.
func checkCrashValue(k int, v []byte) (int, error) {
	if len(v) < 16 {
		return 0, fmt.Errorf("%d bytes", len(v))
	}
	gotK, round, size := int(binary.BigEndian.Uint32(v)), int(binary.BigEndian.Uint32(v[4:])), int(binary.BigEndian.Uint32(v[8:]))
	if gotK != k || size != len(v) || crc32.ChecksumIEEE(v[16:]) != binary.BigEndian.Uint32(v[12:]) {
		return 0, fmt.Errorf("header k=%d size=%d for key %d of %d bytes, or bad checksum", gotK, size, k, len(v))
	}
	if !bytes.Equal(v, crashValue(k, round, size)) {
		return 0, errors.New("content differs")
	}
	return round, nil
}

var crashSizes = []int{16, 200, 3 << 10, 20 << 10, 300 << 10}

// crashHelper writes rounds of values until it is killed: every round
// rewrites keys 0..crashKeys-1, puts or deletes some extra keys, streams a
// value with a ValueWriter now and then, and checkpoints (every round in
// durable mode), printing "ckpt <round>" once Checkpoint has returned.
func crashHelper(dir string) int {
	mode := paging.ModeCache
	if os.Getenv(crashEnvMode) == paging.ModeDurable.String() {
		mode = paging.ModeDurable
	}
	base, _ := strconv.Atoi(os.Getenv(crashEnvBase))
	p, err := paging.Wrap(nil, crashOptions(dir, mode))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper: Wrap:", err)
		return 3
	}
	fmt.Println("ready")
	r := rand.New(rand.NewPCG(uint64(base), 7))
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "helper: %s: %v\n", what, err)
		return 4
	}
	for round := base; ; round++ {
		for k := range crashKeys {
			if err := p.Put(crashName(k), crashValue(k, round, crashSizes[r.IntN(len(crashSizes))])); err != nil {
				return fail("Put", err)
			}
			fmt.Println("op")
		}
		for range 2 {
			k := crashKeys + r.IntN(10)
			if r.IntN(3) == 0 {
				err = p.Delete(crashName(k))
			} else {
				err = p.Put(crashName(k), crashValue(k, round, crashSizes[r.IntN(len(crashSizes))]))
			}
			if err != nil {
				return fail("extra", err)
			}
			fmt.Println("op")
		}
		if round%4 == 0 {
			k := crashKeys + 10
			w, err := p.Create(crashName(k))
			if err != nil {
				return fail("Create", err)
			}
			w.Write(crashValue(k, round, 400<<10))
			if err := w.Close(); err != nil {
				return fail("ValueWriter", err)
			}
			fmt.Println("op")
		}
		if mode == paging.ModeDurable || round%3 == 0 {
			if err := p.Checkpoint(); err != nil {
				return fail("Checkpoint", err)
			}
			fmt.Printf("ckpt %d\n", round)
		}
	}
}

func crashName(k int) string { return fmt.Sprintf("crash/%02d", k) }

// TestCrashRecovery kills a writer process with SIGKILL at random points,
// 100 times per mode (in two parallel lanes of 50 per mode, each on its own
// directory). Every reopen must work; in cache mode every value that
// survives must be intact, in durable mode every key must hold its value of
// the last checkpoint the writer reported, or a later one. Every other kill
// the next writer itself recovers the file (and may be killed while doing
// so). Under qemu (CEMAF_TEST_UNDER_QEMU=1), where a kill takes about
// 0.4 s (0.13 s natively), each lane kills 20 writers: the 200 kills run
// on the host, natively and with the race detector.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 200 processes")
	}
	kills := 50
	if os.Getenv("CEMAF_TEST_UNDER_QEMU") == "1" {
		kills = 20
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []paging.Mode{paging.ModeCache, paging.ModeDurable} {
		for lane := range 2 {
			t.Run(fmt.Sprintf("%s/%d", mode, lane), func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				r := rand.New(rand.NewPCG(uint64(mode), uint64(lane)))
				lastCkpt := -1
				for i := range kills {
					base := (i + 1) * 100000
					// Kill right away (during open and recovery) one time
					// in ten, otherwise after 1 to 30 operations.
					target := 1 + r.IntN(30)
					if i%10 == 3 {
						target = 0
					}
					ckpt, err := crashOnce(exe, dir, mode, base, target)
					if err != nil {
						t.Fatalf("kill %d: %v", i, err)
					}
					lastCkpt = max(lastCkpt, ckpt)
					if i%2 == 1 || i == kills-1 {
						if err := verifyCrashDir(dir, mode, lastCkpt); err != nil {
							t.Fatalf("after kill %d (last checkpoint %d): %v", i, lastCkpt, err)
						}
					}
				}
			})
		}
	}
}

// crashOnce runs one helper and kills it after target operations; it
// returns the last checkpoint the helper reported (-1 if none).
func crashOnce(exe, dir string, mode paging.Mode, base, target int) (int, error) {
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnvDir+"="+dir, crashEnvMode+"="+mode.String(), crashEnvBase+"="+strconv.Itoa(base))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return -1, err
	}
	if err := cmd.Start(); err != nil {
		return -1, err
	}
	ckpt, ops := -1, 0
	sc := bufio.NewScanner(out)
	killed := false
	if target == 0 {
		cmd.Process.Kill()
		killed = true
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "op":
			ops++
		case strings.HasPrefix(line, "ckpt "):
			if !killed {
				ckpt, _ = strconv.Atoi(strings.TrimPrefix(line, "ckpt "))
			}
		}
		if !killed && ops >= target {
			cmd.Process.Kill()
			killed = true
		}
	}
	err = cmd.Wait()
	if strings.Contains(stderr.String(), "panic") {
		return -1, fmt.Errorf("helper panicked: %s", stderr.String())
	}
	if !killed || err == nil || !strings.Contains(err.Error(), "killed") {
		return -1, fmt.Errorf("helper ended by itself (%v): %s", err, stderr.String())
	}
	return ckpt, nil
}

func verifyCrashDir(dir string, mode paging.Mode, lastCkpt int) error {
	p, err := paging.Wrap(nil, crashOptions(dir, mode))
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	defer p.Close()
	for k := range crashKeys + 11 {
		r, err := dag.NewValueReader(p, crashName(k))
		if errors.Is(err, dag.ErrNotFound) {
			if mode == paging.ModeDurable && k < crashKeys && lastCkpt >= 0 {
				return fmt.Errorf("checkpointed key %s missing", crashName(k))
			}
			continue
		}
		if err != nil {
			return err
		}
		var v bytes.Buffer
		if _, err := v.ReadFrom(r); err != nil {
			return fmt.Errorf("read %s: %w", crashName(k), err)
		}
		round, err := checkCrashValue(k, v.Bytes())
		if err != nil {
			return fmt.Errorf("key %s: %w", crashName(k), err)
		}
		if mode == paging.ModeDurable && k < crashKeys && round < lastCkpt {
			return fmt.Errorf("key %s holds round %d, older than checkpoint %d", crashName(k), round, lastCkpt)
		}
	}
	return p.CheckInvariants()
}
