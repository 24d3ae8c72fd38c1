package throttle_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cemaf-go/cemaf/throttle"
)

// counterSource returns samples whose CPUPercent counts the calls.
func counterSource() *scriptedSource {
	src := &scriptedSource{}
	src.fn = func(now time.Time) (*throttle.Sample, error) {
		return sampleAt(now, float64(src.calls.Load()), 10), nil
	}
	return src
}

func newMonitor(t *testing.T, src throttle.SampleSource, opts throttle.MonitorOptions) *throttle.Monitor {
	t.Helper()
	m, err := throttle.NewMonitor(src, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMonitorLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := counterSource()
		m := newMonitor(t, src, throttle.MonitorOptions{CheckInterval: 5 * time.Second})
		if snap := m.Snapshot(); snap.Sample != nil || snap.Seq != 0 {
			t.Fatalf("snapshot before Start = %+v", snap)
		}
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		snap := m.Snapshot()
		if snap.Sample == nil || snap.Seq != 1 || snap.Sample.CPUPercent != 1 || snap.Age != 0 {
			t.Fatalf("after Start: %+v, want the first sample synchronously", snap)
		}
		if err := m.Start(); err == nil {
			t.Error("second Start succeeded")
		}
		time.Sleep(7 * time.Second)
		snap = m.Snapshot()
		if snap.Seq != 2 || snap.Age != 2*time.Second {
			t.Errorf("after 7s: seq %d age %v, want 2 and 2s", snap.Seq, snap.Age)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Errorf("second Close = %v", err)
		}
		calls := src.calls.Load()
		time.Sleep(time.Minute)
		if src.calls.Load() != calls {
			t.Error("sampling continued after Close")
		}
		if m.Snapshot().Seq != 2 {
			t.Error("Snapshot lost after Close")
		}
		if err := m.Start(); !errors.Is(err, throttle.ErrClosed) {
			t.Errorf("Start after Close = %v, want ErrClosed", err)
		}
	})
}

func TestMonitorStartFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fail atomic.Bool
		fail.Store(true)
		src := &scriptedSource{fn: func(now time.Time) (*throttle.Sample, error) {
			if fail.Load() {
				return nil, errors.New("no procfs")
			}
			return sampleAt(now, 1, 1), nil
		}}
		m := newMonitor(t, src, throttle.MonitorOptions{})
		if err := m.Start(); err == nil || !strings.Contains(err.Error(), "no procfs") {
			t.Fatalf("Start = %v, want the source's error", err)
		}
		fail.Store(false)
		if err := m.Start(); err != nil {
			t.Fatalf("Start after the source recovered = %v", err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("panicking source", func(t *testing.T) {
		m := newMonitor(t, &scriptedSource{fn: func(time.Time) (*throttle.Sample, error) { panic("boom") }}, throttle.MonitorOptions{})
		var pe *throttle.PanicError
		if err := m.Start(); !errors.As(err, &pe) {
			t.Errorf("Start = %v, want *PanicError", err)
		}
	})
	t.Run("nil sample", func(t *testing.T) {
		m := newMonitor(t, &scriptedSource{fn: func(time.Time) (*throttle.Sample, error) { return nil, nil }}, throttle.MonitorOptions{})
		if err := m.Start(); err == nil {
			t.Error("Start accepted a nil sample")
		}
	})
}

// TestMonitorSamplingErrorsKeepLastSample checks that a failing sample is
// not published: the previous one stays and ages.
func TestMonitorSamplingErrorsKeepLastSample(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fail atomic.Bool
		src := &scriptedSource{fn: func(now time.Time) (*throttle.Sample, error) {
			if fail.Load() {
				return nil, errors.New("read error")
			}
			return sampleAt(now, 5, 5), nil
		}}
		m := newMonitor(t, src, throttle.MonitorOptions{CheckInterval: time.Second})
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		fail.Store(true)
		time.Sleep(3500 * time.Millisecond)
		if snap := m.Snapshot(); snap.Seq != 1 || snap.Age != 3500*time.Millisecond {
			t.Errorf("seq %d age %v, want the first sample, 3.5s old", snap.Seq, snap.Age)
		}
	})
}

func TestMonitorNextBroadcast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMonitor(t, counterSource(), throttle.MonitorOptions{CheckInterval: time.Second})
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		const waiters = 5
		var woken atomic.Int32
		var wg sync.WaitGroup
		for range waiters {
			next := m.Next()
			wg.Go(func() {
				<-next
				if m.Snapshot().Seq >= 2 {
					woken.Add(1)
				}
			})
		}
		synctest.Wait()
		if woken.Load() != 0 {
			t.Fatal("waiters woke before the next sample")
		}
		time.Sleep(time.Second)
		wg.Wait()
		if woken.Load() != waiters {
			t.Errorf("%d of %d waiters saw the new sample", woken.Load(), waiters)
		}
	})
}

func TestMonitorSubscribe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMonitor(t, counterSource(), throttle.MonitorOptions{CheckInterval: time.Second})
		var got []float64
		var selfCancelled atomic.Int32
		var cancelSelf func()
		cancelSelf = m.Subscribe(func(s *throttle.Sample) {
			selfCancelled.Add(1)
			cancelSelf()
		})
		m.Subscribe(func(*throttle.Sample) { panic("subscriber bug") })
		cancel := m.Subscribe(func(s *throttle.Sample) { got = append(got, s.CPUPercent) })
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		cancel()
		cancel() // idempotent
		time.Sleep(3 * time.Second)
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if want := []float64{1, 2, 3}; !equalFloats(got, want) {
			t.Errorf("subscriber saw %v, want %v (then cancelled)", got, want)
		}
		if selfCancelled.Load() != 1 {
			t.Errorf("self-cancelling subscriber called %d times, want 1", selfCancelled.Load())
		}
	})
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMonitorHistory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMonitor(t, counterSource(), throttle.MonitorOptions{CheckInterval: time.Second, HistorySize: 10})
		start := time.Now()
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(24500 * time.Millisecond) // 25 samples in all
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		all := m.History(time.Time{})
		if len(all) != 10 {
			t.Fatalf("History holds %d points, want the 10 newest", len(all))
		}
		for i, p := range all {
			if want := float32(16 + i); p.CPUPercent != want {
				t.Errorf("point %d: cpu %v, want %v", i, p.CPUPercent, want)
			}
			if want := start.Add(time.Duration(15+i) * time.Second); !p.Time().Equal(want) {
				t.Errorf("point %d at %v, want %v", i, p.Time(), want)
			}
		}
		recent := m.History(start.Add(22 * time.Second))
		if len(recent) != 3 || recent[0].CPUPercent != 23 {
			t.Errorf("History(since +22s) = %v, want the last 3 points", recent)
		}
	})
}

// TestMonitorHistoryDefaultSize runs a day and a bit of virtual time at the
// default interval and checks the ring holds exactly 24 hours.
func TestMonitorHistoryDefaultSize(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates 17k samples")
	}
	synctest.Test(t, func(t *testing.T) {
		m := newMonitor(t, counterSource(), throttle.MonitorOptions{})
		start := time.Now()
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(25*time.Hour + time.Second)
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		h := m.History(time.Time{})
		if want := int(24 * time.Hour / (5 * time.Second)); len(h) != want {
			t.Errorf("History holds %d points, want %d", len(h), want)
		}
		if oldest := h[0].Time().Sub(start); oldest != time.Hour+5*time.Second {
			t.Errorf("oldest point at +%v, want +1h5s", oldest)
		}
	})
}

func TestMonitorExportJSONLines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "metrics.jsonl")
		src := &scriptedSource{}
		src.fn = func(now time.Time) (*throttle.Sample, error) {
			s := sampleAt(now, float64(src.calls.Load()), 50)
			s.Signals = []throttle.SignalValue{{Name: throttle.SignalTemperatureC, Unit: "°C", Value: 61.5}}
			return s, nil
		}
		m := newMonitor(t, src, throttle.MonitorOptions{CheckInterval: 5 * time.Second, MetricsPath: path, ExportInterval: time.Minute})
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Second) // two exports, then one more on Close
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		lines := readLines(t, path)
		if want := int(src.calls.Load()); len(lines) != want {
			t.Fatalf("%d lines exported, want one per sample (%d)", len(lines), want)
		}
		for i, line := range lines {
			var rec struct {
				Time        time.Time `json:"time"`
				CPU         float64   `json:"cpu_percent"`
				Temperature *float64  `json:"temperature_c"`
				Disk        *float64  `json:"disk_percent"`
			}
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("line %d %q: %v", i, line, err)
			}
			if rec.CPU != float64(i+1) || rec.Temperature == nil || *rec.Temperature != 61.5 || rec.Disk != nil {
				t.Errorf("line %d = %s", i, line)
			}
		}
		if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".metrics.jsonl.tmp*")); len(leftovers) != 0 {
			t.Errorf("temporary files left: %v", leftovers)
		}
	})
}

func TestMonitorExportBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "metrics.jsonl")
		const maxBytes = 4096
		src := counterSource()
		m := newMonitor(t, src, throttle.MonitorOptions{
			CheckInterval: time.Second, MetricsPath: path, ExportInterval: 10 * time.Second, MaxExportBytes: maxBytes,
		})
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Minute)
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		var total int64
		var lines []string
		for _, p := range []string{path + ".1", path} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() > maxBytes/2 {
				t.Errorf("%s is %d bytes, over MaxExportBytes/2", p, fi.Size())
			}
			total += fi.Size()
			lines = append(lines, readLines(t, p)...)
		}
		// The files hold the most recent samples, in order, without gaps.
		last := int(src.calls.Load())
		for i, line := range lines {
			want := `"cpu_percent":` + itoa(last-len(lines)+1+i) + `,`
			if !strings.Contains(line, want) {
				t.Fatalf("line %d = %s, want it to contain %s", i, line, want)
			}
		}
		if total < maxBytes/4 {
			t.Errorf("only %d bytes kept of %d allowed", total, maxBytes)
		}
	})
}

func itoa(i int) string { return strconv.Itoa(i) }

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func TestMonitorExportFailureIsReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "missing-dir", "metrics.jsonl")
		m := newMonitor(t, counterSource(), throttle.MonitorOptions{MetricsPath: path})
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err == nil {
			t.Error("Close did not report the failed final export")
		}
	})
}

var promLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$`)

func TestMonitorPrometheus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &scriptedSource{fn: func(now time.Time) (*throttle.Sample, error) {
			s := sampleAt(now, 42.5, 61)
			s.Disks = []throttle.DiskUsage{{Path: `/mnt/"sd"`, UsedPercent: 77, FreeBytes: 1 << 30, TotalBytes: 8 << 30}}
			s.Signals = []throttle.SignalValue{{Name: "temperature_c", Unit: "°C", Value: 70.25}}
			s.PSI = throttle.PSI{Available: true, MemoryFullAvg10: 3.5}
			return s, nil
		}}
		m := newMonitor(t, src, throttle.MonitorOptions{})
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if strings.Contains(rec.Body.String(), "cemaf_cpu_percent") {
			t.Error("values served before the first sample")
		}
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		time.Sleep(1500 * time.Millisecond)
		rec = httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
			t.Errorf("Content-Type = %q", ct)
		}
		body := rec.Body.String()
		typed := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
			if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
				typed[strings.Fields(rest)[0]] = true
				continue
			}
			if strings.HasPrefix(line, "# HELP ") {
				continue
			}
			mm := promLine.FindStringSubmatch(line)
			if mm == nil {
				t.Errorf("malformed line %q", line)
				continue
			}
			if !strings.HasPrefix(mm[1], "cemaf_") || !typed[mm[1]] {
				t.Errorf("line %q: metric not prefixed cemaf_ or without a TYPE line", line)
			}
		}
		for _, want := range []string{
			"cemaf_cpu_percent 42.5\n",
			"cemaf_memory_used_percent 61\n",
			"cemaf_samples_total 1\n",
			"cemaf_sample_age_seconds 1.5\n",
			`cemaf_disk_used_percent{path="/mnt/\"sd\""} 77` + "\n",
			`cemaf_signal{name="temperature_c",unit="°C"} 70.25` + "\n",
			`cemaf_pressure_avg10_percent{resource="memory",kind="full"} 3.5` + "\n",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("exposition lacks %q:\n%s", want, body)
			}
		}
	})
}

func TestNewMonitorRejectsBadOptions(t *testing.T) {
	src := counterSource()
	tests := []struct {
		name string
		opts throttle.MonitorOptions
		want string
	}{
		{"negative interval", throttle.MonitorOptions{CheckInterval: -time.Second}, "CheckInterval = -1s: must be > 0"},
		{"negative export interval", throttle.MonitorOptions{ExportInterval: -1}, "ExportInterval = -1ns: must be > 0"},
		{"negative history", throttle.MonitorOptions{HistorySize: -1}, "HistorySize = -1"},
		{"tiny export bound", throttle.MonitorOptions{MaxExportBytes: 100}, "MaxExportBytes = 100: must be >= 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := throttle.NewMonitor(src, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := throttle.NewMonitor(nil, throttle.MonitorOptions{}); err == nil {
		t.Error("nil source accepted")
	}
}

func TestPointJSON(t *testing.T) {
	synctest.Test(t, testPointJSON)
}

func testPointJSON(t *testing.T) {
	s := &throttle.Sample{Time: time.Date(2025, 5, 1, 12, 0, 0, 250e6, time.UTC), CPUPercent: 12.5, MemoryUsedPercent: 40, MemoryTotalBytes: 1}
	b, err := json.Marshal(pointOfSample(t, s))
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"time":"2025-05-01T12:00:00.250Z","cpu_percent":12.5,"process_cpu_percent":0,"memory_used_percent":40,"swap_used_percent":0,"load1":0}`
	if string(b) != want {
		t.Errorf("Point JSON = %s\nwant          %s", b, want)
	}
}

// pointOfSample records s in a Monitor's history and returns its Point.
func pointOfSample(t *testing.T, s *throttle.Sample) throttle.Point {
	t.Helper()
	m := newMonitor(t, &scriptedSource{fn: func(time.Time) (*throttle.Sample, error) { return s, nil }}, throttle.MonitorOptions{})
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	h := m.History(time.Time{})
	if len(h) != 1 {
		t.Fatalf("history %v", h)
	}
	return h[0]
}

// A short check interval must not make the default history claim memory up
// front: the ring grows with the points it holds and is capped.
func TestHistoryMemoryFollowsContent(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m, err := throttle.NewMonitor(constSource{}, throttle.MonitorOptions{CheckInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("NewMonitor with a 1 ms interval allocated %d bytes up front", grew)
	}
	_ = m
}

type constSource struct{}

func (constSource) Sample(now time.Time) (*throttle.Sample, error) {
	return &throttle.Sample{Time: now}, nil
}
