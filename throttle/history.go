package throttle

import (
	"math"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Point is the compact form of a Sample kept in a Monitor's history: 40
// bytes, so that 24 hours at a 5 s interval take about 690 KB. Values are
// float32 (about 7 significant digits); a value that was absent from the
// sample (no disk configured, no PSI, no temperature signal) is NaN.
type Point struct {
	// UnixMilli is the sample time in milliseconds since the Unix epoch.
	UnixMilli int64
	// CPUPercent, ProcessCPUPercent, MemoryPercent, SwapPercent and Load1
	// are the Sample fields of the same meaning.
	CPUPercent        float32
	ProcessCPUPercent float32
	MemoryPercent     float32 // Sample.MemoryUsedPercent
	SwapPercent       float32 // Sample.SwapUsedPercent
	Load1             float32
	// DiskPercent is the highest usage over the configured paths.
	DiskPercent float32
	// PSIMemorySomeAvg10 is Sample.PSI.MemorySomeAvg10.
	PSIMemorySomeAvg10 float32
	// TemperatureC is the "temperature_c" extra signal.
	TemperatureC float32
}

// Time returns the sample time.
func (p Point) Time() time.Time { return time.UnixMilli(p.UnixMilli) }

func pointOf(s *Sample) Point {
	p := Point{
		UnixMilli:         s.Time.UnixMilli(),
		CPUPercent:        float32(s.CPUPercent),
		ProcessCPUPercent: float32(s.ProcessCPUPercent),
		MemoryPercent:     float32(s.MemoryUsedPercent),
		SwapPercent:       float32(s.SwapUsedPercent),
		Load1:             float32(s.Load1),
	}
	opt := func(name string) float32 {
		if v, ok := s.Value(name); ok {
			return float32(v)
		}
		return float32(math.NaN())
	}
	p.DiskPercent = opt(SignalDiskPercent)
	p.PSIMemorySomeAvg10 = opt(SignalPSIMemorySome)
	p.TemperatureC = opt(SignalTemperatureC)
	return p
}

// MarshalJSON encodes p as one JSON object with an RFC 3339 "time" and the
// values under the same names as the Sample fields; NaN values are left
// out.
func (p Point) MarshalJSON() ([]byte, error) {
	return p.appendJSON(make([]byte, 0, 256)), nil
}

func (p Point) appendJSON(b []byte) []byte {
	b = append(b, `{"time":"`...)
	b = p.Time().UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, '"')
	field := func(name string, v float32) {
		if v != v || math.IsInf(float64(v), 0) {
			return
		}
		b = append(b, `,"`...)
		b = append(b, name...)
		b = append(b, `":`...)
		b = strconv.AppendFloat(b, float64(v), 'f', -1, 32)
	}
	field("cpu_percent", p.CPUPercent)
	field("process_cpu_percent", p.ProcessCPUPercent)
	field("memory_used_percent", p.MemoryPercent)
	field("swap_used_percent", p.SwapPercent)
	field("disk_percent", p.DiskPercent)
	field("load1", p.Load1)
	field("psi_memory_some_avg10", p.PSIMemorySomeAvg10)
	field("temperature_c", p.TemperatureC)
	return append(b, '}')
}

// history is a ring of at most size Points in time order. Its buffer grows
// as points arrive, so memory follows what it holds, not its capacity.
type history struct {
	size int // capacity
	// mu guards buf, start and n.
	mu    sync.Mutex
	buf   []Point
	start int // index of the oldest point
	n     int // number of points held
}

func newHistory(size int) *history { return &history{size: size} }

func (h *history) add(p Point) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.buf) < h.size {
		h.buf = append(h.buf, p) // not yet full: start is 0
		h.n++
		return
	}
	h.buf[h.start] = p
	h.start = (h.start + 1) % len(h.buf)
}

// since returns the points with UnixMilli >= ms, oldest first.
func (h *history) since(ms int64) []Point {
	h.mu.Lock()
	defer h.mu.Unlock()
	at := func(i int) *Point { return &h.buf[(h.start+i)%len(h.buf)] }
	first := sort.Search(h.n, func(i int) bool { return at(i).UnixMilli >= ms })
	out := make([]Point, 0, h.n-first)
	for i := first; i < h.n; i++ {
		out = append(out, *at(i))
	}
	return out
}
