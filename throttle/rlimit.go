package throttle

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
)

// ErrUnsupported is returned (wrapped) by operations this platform does not
// support, such as process rlimits outside Linux.
var ErrUnsupported = errors.New("throttle: not supported on this platform")

// Rlimits are process resource limits. A zero field leaves that
// limit unchanged. Each limit is set to the smaller of the value asked for
// and the current hard limit (which an unprivileged process cannot raise);
// only the address space has a hard value of its own, because lowering a
// hard limit cannot be undone.
type Rlimits struct {
	// AddressSpaceSoft and AddressSpaceHard bound the virtual address
	// space (RLIMIT_AS), in bytes. Go reserves address space well beyond
	// what it uses, and the race detector needs terabytes: set these
	// generously (several times the expected RSS) or not at all.
	AddressSpaceSoft uint64
	AddressSpaceHard uint64
	// CPUSeconds is the CPU time soft limit (RLIMIT_CPU), in seconds.
	// The kernel sends SIGXCPU when it is reached (see NotifyCPULimit)
	// and SIGKILL at the hard limit.
	CPUSeconds uint64
	// FileSizeBytes bounds the size of files the process writes
	// (RLIMIT_FSIZE). Go ignores the SIGXFSZ this raises, so a write
	// beyond it fails with EFBIG instead of killing the process.
	FileSizeBytes uint64
	// OpenFiles bounds the number of open file descriptors
	// (RLIMIT_NOFILE).
	OpenFiles uint64
}

// RlimitInfinity is the value reported for an unlimited rlimit.
const RlimitInfinity = math.MaxUint64

// RlimitResult reports what ApplyRlimits did with one limit.
type RlimitResult struct {
	// Resource is the limit's name, for example "RLIMIT_NOFILE".
	Resource string
	// Requested is the soft value asked for; RequestedHard the hard value
	// (RLIMIT_AS only; 0 when not asked for).
	Requested, RequestedHard uint64
	// Before and After are the soft and hard values around the change
	// (RlimitInfinity when unlimited); After equals Before on failure.
	SoftBefore, HardBefore uint64
	SoftAfter, HardAfter   uint64
	// Clamped reports that the request exceeded the hard limit and was
	// lowered to it.
	Clamped bool
	// Err is why the limit could not be set; nil on success.
	Err error
}

// RlimitReport is the outcome of ApplyRlimits: one result per requested
// limit. Failures are warnings, never fatal.
type RlimitReport struct {
	// Results has one entry per non-zero field of the request.
	Results []RlimitResult
}

// Warnings returns one message per limit that could not be set, or was
// clamped to the hard limit.
func (r RlimitReport) Warnings() []string {
	var w []string
	for _, res := range r.Results {
		switch {
		case res.Err != nil:
			w = append(w, fmt.Sprintf("%s: not set: %v", res.Resource, res.Err))
		case res.Clamped:
			w = append(w, fmt.Sprintf("%s: %s requested, clamped to the hard limit %s",
				res.Resource, formatRlimit(res.Requested), formatRlimit(res.HardBefore)))
		}
	}
	return w
}

// Err joins the failures, nil when every requested limit was set.
func (r RlimitReport) Err() error {
	var errs []error
	for _, res := range r.Results {
		if res.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", res.Resource, res.Err))
		}
	}
	return errors.Join(errs...)
}

// ApplyRlimits sets the non-zero limits of r on this process and reports
// what it did; each outcome is logged (nil logger: discarded). Failures are
// in the report and never stop the other limits. Where rlimits are not
// supported it changes nothing, logs that, and reports ErrUnsupported for
// each requested limit.
//
// Rlimits are process-wide: call it once, early, from main.
func ApplyRlimits(r Rlimits, logger *slog.Logger) RlimitReport {
	return applyRlimits(platformRlimits{}, r, loggerOrDiscard(logger))
}

// rlimitResource identifies a limit independently of the platform.
type rlimitResource int

const (
	rlimitAS rlimitResource = iota
	rlimitCPU
	rlimitFSIZE
	rlimitNOFILE
)

func (r rlimitResource) String() string {
	return [...]string{"RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NOFILE"}[r]
}

// rlimitSys gets and sets limits; platformRlimits is the real one and tests
// use a fake.
type rlimitSys interface {
	get(res rlimitResource) (soft, hard uint64, err error)
	set(res rlimitResource, soft, hard uint64) error
}

func applyRlimits(sys rlimitSys, r Rlimits, log *slog.Logger) RlimitReport {
	var rep RlimitReport
	type req struct {
		res        rlimitResource
		soft, hard uint64
	}
	var reqs []req
	if r.AddressSpaceSoft != 0 || r.AddressSpaceHard != 0 {
		reqs = append(reqs, req{rlimitAS, r.AddressSpaceSoft, r.AddressSpaceHard})
	}
	if r.CPUSeconds != 0 {
		reqs = append(reqs, req{rlimitCPU, r.CPUSeconds, 0})
	}
	if r.FileSizeBytes != 0 {
		reqs = append(reqs, req{rlimitFSIZE, r.FileSizeBytes, 0})
	}
	if r.OpenFiles != 0 {
		reqs = append(reqs, req{rlimitNOFILE, r.OpenFiles, 0})
	}
	for _, q := range reqs {
		res := RlimitResult{Resource: q.res.String(), Requested: q.soft, RequestedHard: q.hard}
		res.Err = func() error {
			if q.soft != 0 && q.hard != 0 && q.soft > q.hard {
				return fmt.Errorf("throttle: Rlimits.AddressSpaceSoft = %d > AddressSpaceHard = %d: the soft limit must not exceed the hard limit", q.soft, q.hard)
			}
			soft, hard, err := sys.get(q.res)
			if err != nil {
				return err
			}
			res.SoftBefore, res.HardBefore = soft, hard
			res.SoftAfter, res.HardAfter = soft, hard
			newHard := hard
			if q.hard != 0 {
				newHard = min(q.hard, hard)
				res.Clamped = q.hard > hard
			}
			newSoft := min(soft, newHard)
			if q.soft != 0 {
				newSoft = min(q.soft, newHard)
				res.Clamped = res.Clamped || q.soft > newHard
			}
			if newSoft == soft && newHard == hard {
				return nil
			}
			if err := sys.set(q.res, newSoft, newHard); err != nil {
				return err
			}
			res.SoftAfter, res.HardAfter = newSoft, newHard
			return nil
		}()
		if res.Err != nil {
			log.Warn("throttle: rlimit not set", "resource", res.Resource, "requested", formatRlimit(q.soft), "error", res.Err)
		} else {
			log.Info("throttle: rlimit set", "resource", res.Resource,
				"soft", formatRlimit(res.SoftAfter), "hard", formatRlimit(res.HardAfter), "clamped", res.Clamped)
		}
		rep.Results = append(rep.Results, res)
	}
	return rep
}

func formatRlimit(v uint64) string {
	if v == RlimitInfinity {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}
