package throttle

import "golang.org/x/sys/unix"

// platformRlimits uses getrlimit/setrlimit.
type platformRlimits struct{}

func (platformRlimits) resource(r rlimitResource) int {
	switch r {
	case rlimitAS:
		return unix.RLIMIT_AS
	case rlimitCPU:
		return unix.RLIMIT_CPU
	case rlimitFSIZE:
		return unix.RLIMIT_FSIZE
	}
	return unix.RLIMIT_NOFILE
}

func (p platformRlimits) get(r rlimitResource) (soft, hard uint64, err error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(p.resource(r), &rl); err != nil {
		return 0, 0, err
	}
	return rl.Cur, rl.Max, nil
}

func (p platformRlimits) set(r rlimitResource, soft, hard uint64) error {
	return unix.Setrlimit(p.resource(r), &unix.Rlimit{Cur: soft, Max: hard})
}
