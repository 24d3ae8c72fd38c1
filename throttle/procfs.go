package throttle

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// The parsers in this file read the text formats of procfs and cgroupfs
// from byte slices. They never panic on malformed input (they are fuzzed)
// and return an error naming what was malformed.

var errMalformed = errors.New("malformed")

// cpuTimes is the aggregate line of /proc/stat, in USER_HZ ticks.
type cpuTimes struct {
	total uint64 // every state except guest time (already in user)
	idle  uint64 // idle + iowait
}

// parseProcStat reads the aggregate "cpu" line, which is the first line of
// /proc/stat: "cpu  user nice system idle iowait irq softirq steal guest
// guest_nice". Kernels before 2.6.11 lack the later columns; at least
// user, nice, system and idle must be present.
func parseProcStat(b []byte) (cpuTimes, error) {
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := fieldIter{b: line}
	if name := f.next(); string(name) != "cpu" {
		return cpuTimes{}, fmt.Errorf("stat: first line is not the aggregate cpu line: %w", errMalformed)
	}
	var v [8]uint64
	n := 0
	for n < len(v) {
		tok := f.next()
		if tok == nil {
			break
		}
		x, ok := parseUint(tok)
		if !ok {
			return cpuTimes{}, fmt.Errorf("stat: cpu column %d %q: %w", n+1, tok, errMalformed)
		}
		v[n] = x
		n++
	}
	if n < 4 {
		return cpuTimes{}, fmt.Errorf("stat: cpu line has %d columns, need at least 4: %w", n, errMalformed)
	}
	var t cpuTimes
	for _, x := range v[:n] {
		t.total = addSat(t.total, x)
	}
	t.idle = addSat(v[3], v[4])
	if t.idle > t.total {
		t.idle = t.total
	}
	return t, nil
}

// parseSelfStat returns utime + stime, in USER_HZ ticks, from the content of
// /proc/<pid>/stat. The command name (field 2) is in parentheses and may
// itself contain spaces and parentheses, so fields are counted from the last
// ')'.
func parseSelfStat(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("self/stat: no ')' after the command name: %w", errMalformed)
	}
	f := fieldIter{b: b[i+1:]}
	// After ')': state(3) ppid(4) ... utime(14) stime(15).
	var utime, stime uint64
	for n := 3; n <= 15; n++ {
		tok := f.next()
		if tok == nil {
			return 0, fmt.Errorf("self/stat: %d fields, need 15: %w", n-1, errMalformed)
		}
		if n < 14 {
			continue
		}
		x, ok := parseUint(tok)
		if !ok {
			return 0, fmt.Errorf("self/stat: field %d %q: %w", n, tok, errMalformed)
		}
		if n == 14 {
			utime = x
		} else {
			stime = x
		}
	}
	return addSat(utime, stime), nil
}

// parseStatm returns the resident and shared page counts (fields 2 and 3)
// of /proc/<pid>/statm.
func parseStatm(b []byte) (resident, shared uint64, err error) {
	f := fieldIter{b: b}
	var v [3]uint64
	for i := range v {
		tok := f.next()
		x, ok := parseUint(tok)
		if tok == nil || !ok {
			return 0, 0, fmt.Errorf("statm: field %d %q: %w", i+1, tok, errMalformed)
		}
		v[i] = x
	}
	shared = min(v[2], v[1])
	return v[1], shared, nil
}

// memInfo holds the /proc/meminfo fields the sampler uses, in bytes.
type memInfo struct {
	total, free, available, buffers, cached int64
	swapTotal, swapFree                     int64
	hasTotal, hasAvailable, hasSwap         bool
}

// parseMeminfo reads "Key:   value kB" lines. MemTotal is required.
// MemAvailable (Linux 3.14+) is estimated from MemFree + Buffers + Cached when
// absent.
func parseMeminfo(b []byte) (memInfo, error) {
	var m memInfo
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		key, rest, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		var dst *int64
		switch string(key) {
		case "MemTotal":
			dst, m.hasTotal = &m.total, true
		case "MemFree":
			dst = &m.free
		case "MemAvailable":
			dst, m.hasAvailable = &m.available, true
		case "Buffers":
			dst = &m.buffers
		case "Cached":
			dst = &m.cached
		case "SwapTotal":
			dst, m.hasSwap = &m.swapTotal, true
		case "SwapFree":
			dst = &m.swapFree
		default:
			continue
		}
		f := fieldIter{b: rest}
		num := f.next()
		x, ok := parseUint(num)
		if !ok {
			return memInfo{}, fmt.Errorf("meminfo: %s: value %q: %w", key, num, errMalformed)
		}
		mult := uint64(1)
		if unit := f.next(); unit != nil {
			if string(unit) != "kB" {
				return memInfo{}, fmt.Errorf("meminfo: %s: unit %q: %w", key, unit, errMalformed)
			}
			mult = 1024
		}
		*dst = toInt64(mulSat(x, mult))
	}
	if !m.hasTotal {
		return memInfo{}, fmt.Errorf("meminfo: no MemTotal: %w", errMalformed)
	}
	if !m.hasAvailable {
		est := addSat(addSat(uint64(m.free), uint64(m.buffers)), uint64(m.cached))
		m.available = min(m.total, toInt64(est))
	}
	m.available = min(m.available, m.total)
	m.swapFree = min(m.swapFree, m.swapTotal)
	return m, nil
}

// parseLoadavg reads the three averages at the start of /proc/loadavg:
// "0.18 0.21 0.09 1/84 6117".
func parseLoadavg(b []byte) (l1, l5, l15 float64, err error) {
	f := fieldIter{b: b}
	var v [3]float64
	for i := range v {
		tok := f.next()
		x, ok := parseFloat(tok)
		if !ok || x < 0 {
			return 0, 0, 0, fmt.Errorf("loadavg: field %d %q: %w", i+1, tok, errMalformed)
		}
		v[i] = x
	}
	return v[0], v[1], v[2], nil
}

// psiLine is the avg10 of the "some" and "full" lines of a pressure file.
type psiLine struct {
	some, full       float64
	hasSome, hasFull bool
}

// parsePSI reads a /proc/pressure/{cpu,memory,io} file:
//
//	some avg10=0.00 avg60=0.00 avg300=0.00 total=0
//	full avg10=0.00 avg60=0.00 avg300=0.00 total=0
//
// The "full" line is absent for cpu before Linux 5.13.
func parsePSI(b []byte) (psiLine, error) {
	var p psiLine
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		f := fieldIter{b: line}
		kind := f.next()
		if kind == nil {
			continue
		}
		var dst *float64
		switch string(kind) {
		case "some":
			dst, p.hasSome = &p.some, true
		case "full":
			dst, p.hasFull = &p.full, true
		default:
			return psiLine{}, fmt.Errorf("pressure: line kind %q: %w", kind, errMalformed)
		}
		found := false
		for tok := f.next(); tok != nil; tok = f.next() {
			k, v, ok := bytes.Cut(tok, []byte{'='})
			if !ok || string(k) != "avg10" {
				continue
			}
			x, ok := parseFloat(v)
			if !ok || x < 0 || x > 100 {
				return psiLine{}, fmt.Errorf("pressure: %s avg10 %q: %w", kind, v, errMalformed)
			}
			*dst, found = x, true
			break
		}
		if !found {
			return psiLine{}, fmt.Errorf("pressure: %s line without avg10: %w", kind, errMalformed)
		}
	}
	if !p.hasSome {
		return psiLine{}, fmt.Errorf("pressure: no \"some\" line: %w", errMalformed)
	}
	return p, nil
}

// selfCgroup is what /proc/self/cgroup says about the memory controller.
type selfCgroup struct {
	v1Memory string // path in the v1 memory hierarchy
	hasV1    bool
	v2       string // path in the unified hierarchy
	hasV2    bool
}

// parseSelfCgroup reads "hierarchy-ID:controller-list:cgroup-path" lines.
// A v1 memory line lists "memory" among its controllers; the unified (v2)
// line is "0::/path".
func parseSelfCgroup(b []byte) (selfCgroup, error) {
	var c selfCgroup
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		id, rest, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			return selfCgroup{}, fmt.Errorf("self/cgroup: line %q: %w", line, errMalformed)
		}
		ctrls, path, ok := bytes.Cut(rest, []byte{':'})
		if !ok || len(path) == 0 || path[0] != '/' {
			return selfCgroup{}, fmt.Errorf("self/cgroup: line %q: %w", line, errMalformed)
		}
		if string(id) == "0" && len(ctrls) == 0 {
			c.v2, c.hasV2 = string(path), true
			continue
		}
		for ctrl := range bytes.SplitSeq(ctrls, []byte{','}) {
			if string(ctrl) == "memory" {
				c.v1Memory, c.hasV1 = string(path), true
			}
		}
	}
	return c, nil
}

// parseCgroupValue reads a single-value cgroup file such as memory.max,
// memory.current or memory.limit_in_bytes. "max" (v2) means no limit and is
// returned as math.MaxUint64.
func parseCgroupValue(b []byte) (uint64, error) {
	b = bytes.TrimSpace(b)
	if string(b) == "max" {
		return math.MaxUint64, nil
	}
	x, ok := parseUint(b)
	if !ok {
		// v1 reports "-1" for an unlimited value in some files.
		if string(b) == "-1" {
			return math.MaxUint64, nil
		}
		return 0, fmt.Errorf("cgroup value %q: %w", b, errMalformed)
	}
	return x, nil
}

// parseKeyed returns the value of key in a flat-keyed cgroup file such as
// memory.stat ("key value" lines).
func parseKeyed(b []byte, key string) (uint64, bool) {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		k, v, ok := bytes.Cut(line, []byte{' '})
		if !ok || string(k) != key {
			continue
		}
		return parseUint(bytes.TrimSpace(v))
	}
	return 0, false
}

// fieldIter yields the space- or tab-separated fields of b without
// allocating.
type fieldIter struct{ b []byte }

// next returns the next field, or nil when there is none.
func (f *fieldIter) next() []byte {
	i := 0
	for i < len(f.b) && isSpace(f.b[i]) {
		i++
	}
	if i == len(f.b) {
		f.b = nil
		return nil
	}
	j := i
	for j < len(f.b) && !isSpace(f.b[j]) {
		j++
	}
	tok := f.b[i:j]
	f.b = f.b[j:]
	return tok
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// parseUint parses a non-empty run of decimal digits that fits in uint64.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var x uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if x > (math.MaxUint64-d)/10 {
			return 0, false
		}
		x = x*10 + d
	}
	return x, true
}

// parseFloat parses a finite decimal number.
func parseFloat(b []byte) (float64, bool) {
	if len(b) == 0 || len(b) > 64 {
		return 0, false
	}
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E') {
			return 0, false
		}
	}
	x, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
		return 0, false
	}
	return x, true
}

func addSat(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

func mulSat(a, b uint64) uint64 {
	if b != 0 && a > math.MaxUint64/b {
		return math.MaxUint64
	}
	return a * b
}

// toInt64 converts a byte count, saturating at math.MaxInt64.
func toInt64(x uint64) int64 {
	if x > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(x)
}
