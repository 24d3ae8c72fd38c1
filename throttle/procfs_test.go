package throttle

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// Parser tests live in package throttle: the parsers return unexported
// types. Everything else is tested black-box in package throttle_test.

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		wantTotal uint64
		wantIdle  uint64
		wantErr   bool
	}{
		{"modern kernel, ten columns", "cpu  100 1 50 800 20 3 4 5 0 0\ncpu0 1 2 3 4\n", 100 + 1 + 50 + 800 + 20 + 3 + 4 + 5, 820, false},
		{"guest columns are not added twice", "cpu  100 0 0 900 0 0 0 0 70 7\n", 100 + 900, 900, false},
		{"old kernel, four columns", "cpu 10 20 30 40\n", 100, 40, false},
		{"tabs and no newline", "cpu\t1\t2\t3\t4\t5", 15, 9, false},
		{"per-cpu line first", "cpu0 1 2 3 4\n", 0, 0, true},
		{"too few columns", "cpu  1 2 3\n", 0, 0, true},
		{"not a number", "cpu  1 2 x 4\n", 0, 0, true},
		{"negative", "cpu  1 2 -3 4\n", 0, 0, true},
		{"empty", "", 0, 0, true},
		{"overflowing column", "cpu  99999999999999999999 1 1 1\n", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, errMalformed) {
					t.Errorf("err = %v, want errMalformed", err)
				}
				return
			}
			if got.total != tt.wantTotal || got.idle != tt.wantIdle {
				t.Errorf("got total %d idle %d, want %d %d", got.total, got.idle, tt.wantTotal, tt.wantIdle)
			}
		})
	}
}

func TestParseSelfStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    uint64
		wantErr bool
	}{
		{"plain", "1 (go) S 0 1 1 0 -1 4194560 1 0 0 0 70 30 0 0 20 0 1 0 5\n", 100, false},
		{"name with spaces and parentheses", "7 (a) b (c)) R 0 1 1 0 -1 0 0 0 0 0 5 6 0 0\n", 11, false},
		{"truncated", "7 (a) R 0 1 1 0 -1 0 0 0 0 0 5\n", 0, true},
		{"no parenthesis", "7 a R 0 1 1 0 -1 0 0 0 0 0 5 6\n", 0, true},
		{"bad utime", "7 (a) R 0 1 1 0 -1 0 0 0 0 0 x 6\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSelfStat([]byte(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseSelfStat = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseStatm(t *testing.T) {
	r, s, err := parseStatm([]byte("290315 24567 6123 1834 0 201331 0\n"))
	if err != nil || r != 24567 || s != 6123 {
		t.Errorf("parseStatm = %d, %d, %v; want 24567, 6123, nil", r, s, err)
	}
	// shared larger than resident (never in practice) is clamped.
	r, s, err = parseStatm([]byte("10 5 9\n"))
	if err != nil || r != 5 || s != 5 {
		t.Errorf("parseStatm clamps shared: %d, %d, %v", r, s, err)
	}
	if _, _, err := parseStatm([]byte("10 5")); err == nil {
		t.Error("parseStatm accepted two fields")
	}
}

func TestParseMeminfo(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    memInfo
		wantErr bool
	}{
		{
			name: "modern",
			in:   "MemTotal:  1000 kB\nMemFree:  100 kB\nMemAvailable:  600 kB\nBuffers: 10 kB\nCached: 20 kB\nSwapTotal: 50 kB\nSwapFree: 40 kB\nHugePages_Total: 0\n",
			want: memInfo{total: 1000 << 10, free: 100 << 10, available: 600 << 10, buffers: 10 << 10, cached: 20 << 10,
				swapTotal: 50 << 10, swapFree: 40 << 10, hasTotal: true, hasAvailable: true, hasSwap: true},
		},
		{
			name: "no MemAvailable: estimated from free, buffers and cache",
			in:   "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 20 kB\n",
			want: memInfo{total: 1000 << 10, free: 100 << 10, available: 130 << 10, buffers: 10 << 10, cached: 20 << 10, hasTotal: true},
		},
		{
			name: "available above total is clamped",
			in:   "MemTotal: 10 kB\nMemAvailable: 20 kB\nSwapTotal: 1 kB\nSwapFree: 2 kB\n",
			want: memInfo{total: 10 << 10, available: 10 << 10, swapTotal: 1 << 10, swapFree: 1 << 10, hasTotal: true, hasAvailable: true, hasSwap: true},
		},
		{name: "no MemTotal", in: "MemFree: 1 kB\n", wantErr: true},
		{name: "bad number", in: "MemTotal: x kB\n", wantErr: true},
		{name: "bad unit", in: "MemTotal: 1 MB\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMeminfo([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseLoadavg(t *testing.T) {
	l1, l5, l15, err := parseLoadavg([]byte("0.52 0.58 0.59 2/312 4242\n"))
	if err != nil || l1 != 0.52 || l5 != 0.58 || l15 != 0.59 {
		t.Errorf("parseLoadavg = %v %v %v %v", l1, l5, l15, err)
	}
	for _, in := range []string{"", "1 2", "1 x 3", "1 2 -3", "NaN 1 1", "Inf 1 1"} {
		if _, _, _, err := parseLoadavg([]byte(in)); err == nil {
			t.Errorf("parseLoadavg(%q) accepted", in)
		}
	}
}

func TestParsePSI(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    psiLine
		wantErr bool
	}{
		{"some and full", "some avg10=1.50 avg60=1.20 avg300=0.75 total=123\nfull avg10=0.75 avg60=0.60 avg300=0.38 total=45\n",
			psiLine{some: 1.5, full: 0.75, hasSome: true, hasFull: true}, false},
		{"cpu before 5.13: no full line", "some avg10=3.25 avg60=2.60 avg300=1.62 total=9\n",
			psiLine{some: 3.25, hasSome: true}, false},
		{"no some line", "full avg10=1.00 avg60=0 avg300=0 total=0\n", psiLine{}, true},
		{"unknown kind", "most avg10=1.00\n", psiLine{}, true},
		{"no avg10", "some avg60=1.00 total=0\n", psiLine{}, true},
		{"over 100", "some avg10=100.01 avg60=0 avg300=0 total=0\n", psiLine{}, true},
		{"empty", "", psiLine{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePSI([]byte(tt.in))
			if (err != nil) != tt.wantErr || (err == nil && got != tt.want) {
				t.Errorf("parsePSI = %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseSelfCgroup(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    selfCgroup
		wantErr bool
	}{
		{"v2 only", "0::/user.slice/session-2.scope\n", selfCgroup{v2: "/user.slice/session-2.scope", hasV2: true}, false},
		{"v1 with combined controllers", "4:memory,hugetlb:/docker/ab\n3:cpu,cpuacct:/docker/ab\n",
			selfCgroup{v1Memory: "/docker/ab", hasV1: true}, false},
		{"hybrid", "10:memory:/a\n0::/b\n", selfCgroup{v1Memory: "/a", hasV1: true, v2: "/b", hasV2: true}, false},
		{"named hierarchy is not memory", "1:name=systemd:/x\n", selfCgroup{}, false},
		{"no path", "0::\n", selfCgroup{}, true},
		{"one field", "garbage\n", selfCgroup{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSelfCgroup([]byte(tt.in))
			if (err != nil) != tt.wantErr || (err == nil && got != tt.want) {
				t.Errorf("parseSelfCgroup = %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseCgroupValue(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{"max\n", math.MaxUint64, false},
		{"-1\n", math.MaxUint64, false},
		{"536870912\n", 536870912, false},
		{"9223372036854771712\n", 9223372036854771712, false},
		{"12k\n", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := parseCgroupValue([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseCgroupValue(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	stat := []byte("anon 5\ninactive_file 7\ntotal_inactive_file 9\n")
	if v, ok := parseKeyed(stat, "inactive_file"); !ok || v != 7 {
		t.Errorf("parseKeyed(inactive_file) = %d, %v", v, ok)
	}
	if v, ok := parseKeyed(stat, "total_inactive_file"); !ok || v != 9 {
		t.Errorf("parseKeyed(total_inactive_file) = %d, %v", v, ok)
	}
	if _, ok := parseKeyed(stat, "file"); ok {
		t.Error("parseKeyed matched a key by suffix")
	}
}

// TestFixturesParse checks that every fixture file parses, so that the
// fixtures stay in the formats the parsers expect.
func TestFixturesParse(t *testing.T) {
	files, err := filepath.Glob("testdata/*/proc")
	if err != nil || len(files) < 4 {
		t.Fatalf("fixture trees: %v, %v", files, err)
	}
	for _, proc := range files {
		read := func(name string) []byte {
			t.Helper()
			b, err := os.ReadFile(filepath.Join(proc, name))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		if _, err := parseProcStat(read("stat")); err != nil {
			t.Errorf("%s: %v", proc, err)
		}
		if _, err := parseSelfStat(read("self/stat")); err != nil {
			t.Errorf("%s: %v", proc, err)
		}
		if _, err := parseMeminfo(read("meminfo")); err != nil {
			t.Errorf("%s: %v", proc, err)
		}
		if _, _, _, err := parseLoadavg(read("loadavg")); err != nil {
			t.Errorf("%s: %v", proc, err)
		}
		if _, err := parseSelfCgroup(read("self/cgroup")); err != nil {
			t.Errorf("%s: %v", proc, err)
		}
	}
}

// The fuzzers check that no input makes a parser panic and that accepted
// values respect the invariants the sampler relies on.

func FuzzParseProcStat(f *testing.F) {
	f.Add([]byte("cpu  104523 1210 40311 1702345 5123 0 1288 0 0 0\ncpu0 1 2 3 4\nintr 1 2 3\n"))
	f.Add([]byte("cpu 1 2 3 4"))
	f.Add([]byte("cpu  18446744073709551615 18446744073709551615 1 1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseProcStat(b)
		if err == nil && c.idle > c.total {
			t.Errorf("idle %d > total %d", c.idle, c.total)
		}
	})
}

func FuzzParseSelfStat(f *testing.F) {
	f.Add([]byte("4242 (pi agent (worker)) S 1 4242 4242 0 -1 4194560 8123 0 12 0 3120 845 0 0 20 0 9 0\n"))
	f.Add([]byte(")"))
	f.Add([]byte("1 ()) 2 3 4 5 6 7 8 9 10 11 12 13 14 15"))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = parseSelfStat(b) })
}

func FuzzParseMeminfo(f *testing.F) {
	b, _ := os.ReadFile("testdata/cgroupv1/proc/meminfo")
	f.Add(b)
	f.Add([]byte("MemTotal: 18446744073709551615 kB\nMemFree: 18446744073709551615 kB\nBuffers: 18446744073709551615 kB\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMeminfo(b)
		if err != nil {
			return
		}
		if m.available < 0 || m.available > m.total || m.swapFree > m.swapTotal || m.total < 0 {
			t.Errorf("invariant broken: %+v", m)
		}
	})
}

func FuzzParsePSI(f *testing.F) {
	f.Add([]byte("some avg10=1.50 avg60=1.20 avg300=0.75 total=123\nfull avg10=0.75 avg60=0.60 avg300=0.38 total=45\n"))
	f.Add([]byte("some avg10=1e2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePSI(b)
		if err == nil && (p.some < 0 || p.some > 100 || p.full < 0 || p.full > 100) {
			t.Errorf("out of range: %+v", p)
		}
	})
}

func FuzzParseLoadavg(f *testing.F) {
	f.Add([]byte("0.52 0.58 0.59 2/312 4242\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l1, l5, l15, err := parseLoadavg(b)
		if err == nil && (l1 < 0 || l5 < 0 || l15 < 0 || math.IsInf(l1, 0) || l1 != l1) {
			t.Errorf("bad load %v %v %v", l1, l5, l15)
		}
	})
}

func FuzzParseCgroup(f *testing.F) {
	f.Add([]byte("12:memory:/docker/0123abcd\n0::/docker/0123abcd\n"), []byte("max\n"), []byte("inactive_file 5\n"))
	f.Add([]byte("0::/../../etc\n"), []byte("-1"), []byte("total_inactive_file 18446744073709551615"))
	f.Fuzz(func(t *testing.T, self, value, stat []byte) {
		_, _ = parseSelfCgroup(self)
		_, _ = parseCgroupValue(value)
		_, _ = parseKeyed(stat, "inactive_file")
		_, _, _ = parseStatm(value)
	})
}

// FuzzCgroupPathStaysUnderRoot resolves fuzzed /proc/self/cgroup content
// against a real tree and checks the resolved directories stay under the
// cgroup root.
func FuzzCgroupPathStaysUnderRoot(f *testing.F) {
	f.Add("0::/a/b\n")
	f.Add("0::/../../../etc\n")
	f.Add("5:memory:/../..\n")
	f.Fuzz(func(t *testing.T, content string) {
		dir := t.TempDir()
		proc := filepath.Join(dir, "proc")
		root := filepath.Join(dir, "cg")
		if err := os.MkdirAll(filepath.Join(proc, "self"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(root, "memory"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "cgroup.controllers"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, "self", "cgroup"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		r := newProcfsReader(SamplerOptions{ProcRoot: proc, CgroupRoot: root})
		loc, err := r.resolveCgroup()
		if err != nil || loc == nil {
			return
		}
		for _, d := range append([]string{loc.dir}, loc.up...) {
			rel, err := filepath.Rel(root, d)
			if err != nil || rel == ".." || len(rel) > 2 && rel[:3] == "../" {
				t.Errorf("resolved %q outside root %q", d, root)
			}
		}
	})
}

// The page cache a cgroup can drop: both file lists, less what is mapped,
// dirty or under writeback; never more than the lists hold.
func TestReclaimableCache(t *testing.T) {
	for _, tt := range []struct {
		stat string
		keys cacheKeys
		want uint64
	}{
		// A corpus read twice sits on the active list: still cache.
		{"inactive_file 100\nactive_file 400\nfile_mapped 0\n", cacheKeysV2, 500},
		{"inactive_file 100\nactive_file 400\nfile_mapped 50\nfile_dirty 20\nfile_writeback 10\n", cacheKeysV2, 420},
		// tmpfs (shmem) is not on the file lists: nothing to drop.
		{"shmem 300\ninactive_file 0\nactive_file 0\n", cacheKeysV2, 0},
		{"inactive_file 10\nactive_file 10\nfile_mapped 15\nfile_dirty 15\n", cacheKeysV2, 0},
		{"total_inactive_file 30\ntotal_active_file 70\ntotal_mapped_file 5\ntotal_dirty 5\ntotal_writeback 0\ninactive_file 1\n", cacheKeysV1, 90},
		{"", cacheKeysV2, 0},
	} {
		if got := reclaimableCache([]byte(tt.stat), tt.keys); got != tt.want {
			t.Errorf("reclaimableCache(%q) = %d, want %d", tt.stat, got, tt.want)
		}
	}
}
