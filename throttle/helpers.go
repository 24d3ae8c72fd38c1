package throttle

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Helpers names the processes that do this agent's work elsewhere: a local
// LLM server (llama.cpp's llama-server, Ollama, vLLM), a tool daemon. Their
// CPU use is the agent's own work: it counts towards the CPU the throttler
// paces, never towards the CPU contention that slows or pauses the agent.
//
// The processes are found by PID, by process name (the kernel's comm, or the
// base name of argv[0] for names longer than 15 bytes), by cgroup (every
// process in it, v2 cpu.stat or v1 cpuacct.usage), and by endpoint: the
// process listening on the TCP port of a URL whose host is this machine
// (found from /proc/net/tcp and the sockets in /proc/<pid>/fd, which needs
// the same user or root). Descendants of a helper process count with it.
// The children of this process always count as its own work.
type Helpers struct {
	PIDs      []int    `json:"pids,omitempty"`
	Names     []string `json:"names,omitempty"`
	Cgroups   []string `json:"cgroups,omitempty"`   // paths below the cgroup root, such as /system.slice/ollama.service
	Endpoints []string `json:"endpoints,omitempty"` // URLs or host:port, such as http://127.0.0.1:8080/v1
}

// ParseHelpers parses a comma-separated list of helpers, as in
// CEMAF_RESOURCE_CPU_HELPERS: "pid:1234", "name:llama-server",
// "cgroup:/system.slice/ollama.service", "endpoint:http://127.0.0.1:11434";
// without a prefix, a number is a PID, a string starting with "/" a cgroup,
// one with "://" an endpoint, anything else a process name. Empty items
// are ignored. The error names the item at fault.
func ParseHelpers(s string) (Helpers, error) {
	var h Helpers
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		kind, val, ok := strings.Cut(item, ":")
		if !ok || strings.HasPrefix(val, "//") {
			kind, val = "", item
		}
		val = strings.TrimSpace(val)
		if kind == "" {
			switch {
			case isDigits(val):
				kind = "pid"
			case strings.HasPrefix(val, "/"):
				kind = "cgroup"
			case strings.Contains(val, "://"):
				kind = "endpoint"
			default:
				kind = "name"
			}
		}
		switch kind {
		case "pid":
			pid, err := strconv.Atoi(val)
			if err != nil || pid < 1 {
				return Helpers{}, fmt.Errorf("throttle: helper %q: a PID must be a positive integer", item)
			}
			h.PIDs = append(h.PIDs, pid)
		case "name":
			if val == "" || strings.ContainsAny(val, "/\x00") {
				return Helpers{}, fmt.Errorf("throttle: helper %q: a process name must be non-empty, without '/'", item)
			}
			h.Names = append(h.Names, val)
		case "cgroup":
			if !strings.HasPrefix(val, "/") || strings.Contains(val, "..") {
				return Helpers{}, fmt.Errorf("throttle: helper %q: a cgroup must be an absolute path below the cgroup root, without '..'", item)
			}
			h.Cgroups = append(h.Cgroups, val)
		case "endpoint":
			if _, _, err := endpointHostPort(val); err != nil {
				return Helpers{}, fmt.Errorf("throttle: helper %q: %w", item, err)
			}
			h.Endpoints = append(h.Endpoints, val)
		default:
			return Helpers{}, fmt.Errorf("throttle: helper %q: unknown kind %q: want pid, name, cgroup or endpoint", item, kind)
		}
	}
	return h, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// String formats h in the syntax ParseHelpers reads.
func (h Helpers) String() string {
	var parts []string
	for _, p := range h.PIDs {
		parts = append(parts, "pid:"+strconv.Itoa(p))
	}
	for _, n := range h.Names {
		parts = append(parts, "name:"+n)
	}
	for _, c := range h.Cgroups {
		parts = append(parts, "cgroup:"+c)
	}
	for _, e := range h.Endpoints {
		parts = append(parts, "endpoint:"+e)
	}
	return strings.Join(parts, ",")
}

// IsZero reports whether h names no helper.
func (h Helpers) IsZero() bool {
	return len(h.PIDs) == 0 && len(h.Names) == 0 && len(h.Cgroups) == 0 && len(h.Endpoints) == 0
}

// Declared reports whether h names a helper that can be on this machine: a
// PID, a name, a cgroup, or an endpoint whose host is this machine. A
// CPUThrottler paces the agent's CPU (this process and these helpers) when
// it is true, and the whole board's when it is false.
func (h Helpers) Declared() bool {
	if len(h.PIDs) > 0 || len(h.Names) > 0 || len(h.Cgroups) > 0 {
		return true
	}
	return slices.ContainsFunc(h.Endpoints, func(e string) bool {
		host, _, err := endpointHostPort(e)
		return err == nil && IsLocalHost(host)
	})
}

// endpointHostPort returns the host and TCP port of a URL or host:port,
// with the scheme's default port when the URL has none.
func endpointHostPort(e string) (string, int, error) {
	hostport := e
	if strings.Contains(e, "://") {
		u, err := url.Parse(e)
		if err != nil {
			return "", 0, fmt.Errorf("endpoint %q: %w", e, err)
		}
		hostport = u.Host
		if u.Port() == "" {
			switch u.Scheme {
			case "http":
				hostport = net.JoinHostPort(u.Hostname(), "80")
			case "https":
				hostport = net.JoinHostPort(u.Hostname(), "443")
			default:
				return "", 0, fmt.Errorf("endpoint %q: no port, and no default port for scheme %q", e, u.Scheme)
			}
		}
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, fmt.Errorf("endpoint %q: want a URL or host:port: %w", e, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "", 0, fmt.Errorf("endpoint %q: port %q: must be in [1, 65535]", e, port)
	}
	return host, p, nil
}

// IsLocalHost reports whether host names this machine without a DNS
// lookup: "localhost", a loopback or unspecified address, this machine's
// host name, or an address of one of its interfaces.
func IsLocalHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if hn, err := os.Hostname(); err == nil && strings.EqualFold(hn, host) {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	if ip == nil {
		return false
	}
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// HelperProcess is a process found as a helper.
type HelperProcess struct {
	PID  int    `json:"pid"`
	Name string `json:"name"` // the kernel's comm
	// Via says how it was found: "pid", "name", "endpoint <host:port>",
	// "child of <pid>", "child of this process".
	Via string `json:"via"`
	// CPUPercent is its share of all CPUs over the last sample interval.
	CPUPercent float64 `json:"cpu_percent"`
}
