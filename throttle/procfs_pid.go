package throttle

import (
	"bytes"
	"fmt"
)

// pidStat is what the helper tracker reads from /proc/<pid>/stat.
type pidStat struct {
	pid   int
	comm  string
	ppid  int
	ticks uint64 // utime + stime, USER_HZ ticks
	start uint64 // starttime, ticks after boot: tells a reused PID apart
}

// parsePidStat reads /proc/<pid>/stat: "pid (comm) state ppid ... utime(14)
// stime(15) ... starttime(22)". The command name may hold spaces and
// parentheses, so fields are counted from the last ')'.
func parsePidStat(b []byte) (pidStat, error) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 1 || end < open {
		return pidStat{}, fmt.Errorf("pid stat: no \"(comm)\": %w", errMalformed)
	}
	pid, ok := parseUint(bytes.TrimSpace(b[:open]))
	if !ok || pid == 0 || pid > 1<<31 {
		return pidStat{}, fmt.Errorf("pid stat: pid %q: %w", bytes.TrimSpace(b[:open]), errMalformed)
	}
	st := pidStat{pid: int(pid), comm: string(b[open+1 : end])}
	f := fieldIter{b: b[end+1:]}
	var utime, stime uint64
	for n := 3; n <= 22; n++ {
		tok := f.next()
		if tok == nil {
			return pidStat{}, fmt.Errorf("pid stat: %d fields, need 22: %w", n-1, errMalformed)
		}
		if n != 4 && n != 14 && n != 15 && n != 22 {
			continue
		}
		x, ok := parseUint(tok)
		if !ok {
			return pidStat{}, fmt.Errorf("pid stat: field %d %q: %w", n, tok, errMalformed)
		}
		switch n {
		case 4:
			if x > 1<<31 {
				return pidStat{}, fmt.Errorf("pid stat: ppid %d: %w", x, errMalformed)
			}
			st.ppid = int(x)
		case 14:
			utime = x
		case 15:
			stime = x
		case 22:
			st.start = x
		}
	}
	st.ticks = addSat(utime, stime)
	return st, nil
}

// tcpListenState is the st column of a listening socket in /proc/net/tcp.
const tcpListenState = "0A"

// appendListenInodes appends to dst the socket inodes of the lines of a
// /proc/net/tcp or tcp6 table that listen on port.
//
//	sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
//	0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 1000 0 123456 ...
func appendListenInodes(dst []uint64, b []byte, port int) []uint64 {
	first := true
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if first { // the header
			first = false
			continue
		}
		f := fieldIter{b: line}
		var cols [10][]byte
		n := 0
		for n < len(cols) {
			tok := f.next()
			if tok == nil {
				break
			}
			cols[n] = tok
			n++
		}
		if n < len(cols) || string(cols[3]) != tcpListenState {
			continue
		}
		_, hexPort, ok := bytes.Cut(cols[1], []byte{':'})
		if !ok {
			continue
		}
		p, ok := parseHex(hexPort)
		if !ok || p != uint64(port) {
			continue
		}
		if ino, ok := parseUint(cols[9]); ok && ino != 0 {
			dst = append(dst, ino)
		}
	}
	return dst
}

func parseHex(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var x uint64
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		x = x<<4 | uint64(d)
	}
	return x, true
}

// parseSocketLink returns the inode of an fd link target "socket:[123]".
func parseSocketLink(s string) (uint64, bool) {
	const pre = "socket:["
	if len(s) < len(pre)+2 || s[:len(pre)] != pre || s[len(s)-1] != ']' {
		return 0, false
	}
	return parseUint([]byte(s[len(pre) : len(s)-1]))
}

// parseCgroupCPUUsec returns the cumulative CPU time, in microseconds, of a
// cgroup v2 cpu.stat ("usage_usec N" line).
func parseCgroupCPUUsec(b []byte) (uint64, bool) { return parseKeyed(b, "usage_usec") }
