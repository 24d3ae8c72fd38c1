package throttle

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cemaf-go/cemaf/internal/boundedread"
)

// userHZ is the unit of the tick counters of /proc/stat and /proc/<pid>/stat
// (sysconf(_SC_CLK_TCK)), 100 on every architecture Linux builds for here.
const userHZ = 100

// DefaultHelperRescan is how often the helper processes are looked for
// again (new processes, a restarted server, new children).
const DefaultHelperRescan = 30 * time.Second

// helperTracker finds the helper processes and keeps a monotonic count of
// the CPU ticks they used since they were found. It is safe for concurrent
// use: the Sampler and a CPUThrottler both read it.
//
// Cost: a sample reads one /proc/<pid>/stat per helper process and one
// cpu.stat per helper cgroup. A rescan, every DefaultHelperRescan or when a
// helper process is gone, reads /proc/<pid>/stat of every process; finding
// an endpoint's listener also reads /proc/net/tcp{,6} and, until found, the
// fd links of every process readable by this user.
type helperTracker struct {
	procRoot   string
	cgroupRoot string
	spec       Helpers
	rescan     time.Duration

	// mu guards the fields below.
	mu       sync.Mutex
	self     int
	procs    []trackedProc
	cgroups  []trackedCgroup
	scanned  time.Time
	needScan bool
	cum      uint64 // ticks used by helpers since they were found
	buf      []byte
	lastErr  string
}

type trackedProc struct {
	pid   int
	start uint64
	name  string
	via   string
	last  uint64 // ticks at the last read
	mark  uint64 // ticks at the last processes() call
	pct   float64
}

type trackedCgroup struct {
	path string
	last uint64 // usec
	seen bool
}

func newHelperTracker(procRoot, cgroupRoot string, spec Helpers, rescan time.Duration) *helperTracker {
	if rescan <= 0 {
		rescan = DefaultHelperRescan
	}
	t := &helperTracker{procRoot: procRoot, cgroupRoot: cgroupRoot, spec: spec, rescan: rescan, needScan: true}
	for _, c := range spec.Cgroups {
		t.cgroups = append(t.cgroups, trackedCgroup{path: filepath.Join(cgroupRoot, filepath.Clean(c))})
	}
	return t
}

// ticks advances the count with the CPU used by every helper since the last
// call and returns it. now decides when to rescan.
func (t *helperTracker) ticks(now time.Time) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.needScan || now.Sub(t.scanned) >= t.rescan || now.Before(t.scanned) {
		t.scan(now)
	}
	for i := range t.procs {
		p := &t.procs[i]
		st, err := t.readStat(p.pid)
		if err != nil || st.start != p.start {
			p.pid = 0 // gone (or the PID was reused): drop at the next scan
			t.needScan = true
			continue
		}
		if st.ticks > p.last {
			t.cum += st.ticks - p.last
		}
		p.last = max(p.last, st.ticks)
	}
	t.procs = slices.DeleteFunc(t.procs, func(p trackedProc) bool { return p.pid == 0 })
	if t.needScan {
		// A helper is gone or restarted: look for its successor now, so
		// that its CPU counts from this sample on.
		t.scan(now)
	}
	for i := range t.cgroups {
		c := &t.cgroups[i]
		usec, err := t.readCgroupUsec(c.path)
		if err != nil {
			c.seen = false
			continue
		}
		if c.seen && usec > c.last {
			t.cum += (usec - c.last) * userHZ / 1_000_000
		}
		c.last, c.seen = usec, true
	}
	return t.cum
}

// processes returns the helper processes with their share of all CPUs since
// the previous call; totalTicks is the machine's ticks over that interval.
func (t *helperTracker) processes(totalTicks float64) []HelperProcess {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]HelperProcess, 0, len(t.procs))
	for i := range t.procs {
		p := &t.procs[i]
		if totalTicks > 0 && p.last >= p.mark {
			p.pct = clampPercent(float64(p.last-p.mark) / totalTicks * 100)
		}
		p.mark = p.last
		out = append(out, HelperProcess{PID: p.pid, Name: p.name, Via: p.via, CPUPercent: p.pct})
	}
	return out
}

// list returns the helper processes with the shares of the last
// processes call, without starting a new interval.
func (t *helperTracker) list() []HelperProcess {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]HelperProcess, 0, len(t.procs))
	for _, p := range t.procs {
		out = append(out, HelperProcess{PID: p.pid, Name: p.name, Via: p.via, CPUPercent: p.pct})
	}
	return out
}

func (t *helperTracker) readStat(pid int) (pidStat, error) {
	b, err := boundedread.AppendPrefix(t.buf[:0], filepath.Join(t.procRoot, strconv.Itoa(pid), "stat"), 4096)
	if err != nil {
		return pidStat{}, err
	}
	t.buf = b[:0]
	return parsePidStat(b)
}

func (t *helperTracker) readCgroupUsec(dir string) (uint64, error) {
	b, err := boundedread.AppendPrefix(t.buf[:0], filepath.Join(dir, "cpu.stat"), maxFileBytes)
	if err == nil {
		t.buf = b[:0]
		if u, ok := parseCgroupCPUUsec(b); ok {
			return u, nil
		}
		return 0, fmt.Errorf("%s: no usage_usec: %w", filepath.Join(dir, "cpu.stat"), errMalformed)
	}
	// cgroup v1: cpuacct.usage in nanoseconds.
	b, err1 := boundedread.AppendPrefix(t.buf[:0], filepath.Join(dir, "cpuacct.usage"), 256)
	if err1 != nil {
		return 0, err
	}
	t.buf = b[:0]
	ns, err := parseCgroupValue(b)
	return ns / 1000, err
}

// scan looks for the helper processes again. mu must be held.
func (t *helperTracker) scan(now time.Time) {
	t.scanned, t.needScan = now, false
	if t.self == 0 {
		if st, err := t.readSelf(); err == nil {
			t.self = st.pid
		}
	}
	all, err := t.listProcs()
	if err != nil {
		t.note(err)
		return
	}
	byPID := make(map[int]pidStat, len(all))
	children := make(map[int][]int)
	for _, st := range all {
		byPID[st.pid] = st
		children[st.ppid] = append(children[st.ppid], st.pid)
	}
	found := map[int]string{}
	var order []int
	add := func(pid int, via string) {
		if _, dup := found[pid]; dup || pid == t.self {
			return
		}
		if _, ok := byPID[pid]; !ok {
			return
		}
		found[pid] = via
		order = append(order, pid)
	}
	for _, pid := range t.spec.PIDs {
		add(pid, "pid")
	}
	for _, name := range t.spec.Names {
		for _, st := range all {
			if t.nameMatches(st, name) {
				add(st.pid, "name "+name)
			}
		}
	}
	for _, e := range t.spec.Endpoints {
		host, port, err := endpointHostPort(e)
		if err != nil || !IsLocalHost(host) {
			continue
		}
		via := "endpoint " + strconv.Itoa(port)
		// The server found last time, if it still runs, is still the one:
		// reading the socket tables again is not needed.
		if i := slices.IndexFunc(t.procs, func(p trackedProc) bool { return p.via == via }); i >= 0 {
			if st, ok := byPID[t.procs[i].pid]; ok && st.start == t.procs[i].start {
				add(st.pid, via)
				continue
			}
		}
		if pid := t.listener(port, all); pid != 0 {
			add(pid, via)
		}
	}
	// Descendants of the helpers and of this process.
	roots := slices.Clone(order)
	if t.self != 0 {
		roots = append(roots, t.self)
	}
	for len(roots) > 0 {
		parent := roots[0]
		roots = roots[1:]
		via := "child of " + strconv.Itoa(parent)
		if parent == t.self {
			via = "child of this process"
		}
		for _, c := range children[parent] {
			if _, dup := found[c]; !dup && c != t.self {
				add(c, via)
				roots = append(roots, c)
			}
		}
	}
	if len(t.cgroups) > 0 {
		// Processes in a helper cgroup are counted by the cgroup.
		order = slices.DeleteFunc(order, func(pid int) bool { return t.inHelperCgroup(pid) })
	}
	old := t.procs
	t.procs = make([]trackedProc, 0, len(order))
	for _, pid := range order {
		st := byPID[pid]
		p := trackedProc{pid: pid, start: st.start, name: st.comm, via: found[pid], last: st.ticks, mark: st.ticks}
		if i := slices.IndexFunc(old, func(o trackedProc) bool { return o.pid == pid && o.start == st.start }); i >= 0 {
			p.last, p.mark, p.pct = old[i].last, old[i].mark, old[i].pct
		}
		t.procs = append(t.procs, p)
	}
}

func (t *helperTracker) note(err error) {
	t.lastErr = err.Error()
}

func (t *helperTracker) readSelf() (pidStat, error) {
	b, err := boundedread.AppendPrefix(t.buf[:0], filepath.Join(t.procRoot, "self", "stat"), 4096)
	if err != nil {
		return pidStat{}, err
	}
	t.buf = b[:0]
	return parsePidStat(b)
}

// listProcs reads the stat of every process under procRoot.
func (t *helperTracker) listProcs() ([]pidStat, error) {
	ents, err := os.ReadDir(t.procRoot)
	if err != nil {
		return nil, fmt.Errorf("helpers: list processes: %w", err)
	}
	out := make([]pidStat, 0, len(ents))
	for _, e := range ents {
		if !isDigits(e.Name()) {
			continue
		}
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := t.readStat(pid); err == nil {
			out = append(out, st)
		}
	}
	return out, nil
}

// nameMatches compares name with the process's comm, which the kernel cuts
// at 15 bytes; longer names are compared with the base name of argv[0].
func (t *helperTracker) nameMatches(st pidStat, name string) bool {
	const commLen = 15
	if len(name) <= commLen {
		return st.comm == name
	}
	if st.comm != name[:commLen] {
		return false
	}
	b, err := boundedread.AppendPrefix(nil, filepath.Join(t.procRoot, strconv.Itoa(st.pid), "cmdline"), 4096)
	if err != nil {
		return false
	}
	argv0, _, _ := strings.Cut(string(b), "\x00")
	return filepath.Base(argv0) == name
}

// listener returns the PID of a process listening on TCP port, 0 if none is
// found (or none this user may inspect).
func (t *helperTracker) listener(port int, all []pidStat) int {
	var inodes []uint64
	for _, table := range []string{"tcp", "tcp6"} {
		b, err := boundedread.ReadFile(filepath.Join(t.procRoot, "net", table), 16<<20)
		if err == nil {
			inodes = appendListenInodes(inodes, b, port)
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	for _, st := range all {
		if st.pid != t.self && t.hasSocket(st.pid, inodes) {
			return st.pid
		}
	}
	return 0
}

// hasSocket reports whether one of pid's file descriptors is a socket with
// one of the inodes.
func (t *helperTracker) hasSocket(pid int, inodes []uint64) bool {
	dir := filepath.Join(t.procRoot, strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false // another user's process, or gone
	}
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if ino, ok := parseSocketLink(link); ok && slices.Contains(inodes, ino) {
			return true
		}
	}
	return false
}

// inHelperCgroup reports whether pid is in one of the helper cgroups (v2).
func (t *helperTracker) inHelperCgroup(pid int) bool {
	b, err := boundedread.AppendPrefix(nil, filepath.Join(t.procRoot, strconv.Itoa(pid), "cgroup"), 4096)
	if err != nil {
		return false
	}
	sc, err := parseSelfCgroup(b)
	if err != nil || !sc.hasV2 {
		return false
	}
	for _, c := range t.spec.Cgroups {
		c = filepath.Clean(c)
		if sc.v2 == c || strings.HasPrefix(sc.v2, c+"/") {
			return true
		}
	}
	return false
}
