package throttle

import (
	"errors"
	"strings"
	"testing"
)

// fakeRlimits is an rlimitSys over a map.
type fakeRlimits struct {
	soft, hard map[rlimitResource]uint64
	refuse     map[rlimitResource]error
	sets       int
}

func (f *fakeRlimits) get(r rlimitResource) (uint64, uint64, error) {
	return f.soft[r], f.hard[r], nil
}

func (f *fakeRlimits) set(r rlimitResource, soft, hard uint64) error {
	if err := f.refuse[r]; err != nil {
		return err
	}
	if soft > hard || hard > f.hard[r] {
		return errors.New("EINVAL/EPERM")
	}
	f.sets++
	f.soft[r], f.hard[r] = soft, hard
	return nil
}

func TestApplyRlimitsLogic(t *testing.T) {
	inf := uint64(RlimitInfinity)
	f := &fakeRlimits{
		soft:   map[rlimitResource]uint64{rlimitAS: inf, rlimitCPU: inf, rlimitFSIZE: inf, rlimitNOFILE: 1 << 20},
		hard:   map[rlimitResource]uint64{rlimitAS: inf, rlimitCPU: inf, rlimitFSIZE: 1 << 30, rlimitNOFILE: 1 << 20},
		refuse: map[rlimitResource]error{rlimitCPU: errors.New("operation not permitted")},
	}
	rep := applyRlimits(f, Rlimits{
		AddressSpaceSoft: 500 << 20, AddressSpaceHard: 1 << 30,
		CPUSeconds:    300,
		FileSizeBytes: 4 << 30, // over the 1 GiB hard limit: clamped
		OpenFiles:     1024,
	}, loggerOrDiscard(nil))
	if len(rep.Results) != 4 {
		t.Fatalf("results %+v", rep.Results)
	}
	as, cpu, fsize, nofile := rep.Results[0], rep.Results[1], rep.Results[2], rep.Results[3]
	if as.Err != nil || as.SoftAfter != 500<<20 || as.HardAfter != 1<<30 || as.Clamped {
		t.Errorf("RLIMIT_AS %+v", as)
	}
	if cpu.Err == nil || cpu.SoftAfter != inf {
		t.Errorf("RLIMIT_CPU %+v, want the refusal reported and nothing changed", cpu)
	}
	if fsize.Err != nil || fsize.SoftAfter != 1<<30 || !fsize.Clamped {
		t.Errorf("RLIMIT_FSIZE %+v, want clamped to the hard limit", fsize)
	}
	if nofile.Err != nil || nofile.SoftAfter != 1024 || nofile.HardAfter != 1<<20 {
		t.Errorf("RLIMIT_NOFILE %+v, want soft 1024, hard unchanged", nofile)
	}
	w := strings.Join(rep.Warnings(), "\n")
	if !strings.Contains(w, "RLIMIT_CPU: not set: operation not permitted") || !strings.Contains(w, "RLIMIT_FSIZE: 4294967296 requested, clamped to the hard limit 1073741824") {
		t.Errorf("warnings:\n%s", w)
	}
	if err := rep.Err(); err == nil || !strings.Contains(err.Error(), "RLIMIT_CPU") {
		t.Errorf("Err = %v", err)
	}

	// Already at the requested values: nothing is set again.
	sets := f.sets
	rep = applyRlimits(f, Rlimits{OpenFiles: 1024}, loggerOrDiscard(nil))
	if f.sets != sets || rep.Err() != nil {
		t.Errorf("no-op request made %d calls, err %v", f.sets-sets, rep.Err())
	}
	// Soft over hard is refused without a system call.
	rep = applyRlimits(f, Rlimits{AddressSpaceSoft: 2 << 30, AddressSpaceHard: 1 << 30}, loggerOrDiscard(nil))
	if err := rep.Err(); err == nil || !strings.Contains(err.Error(), "AddressSpaceSoft = 2147483648 > AddressSpaceHard = 1073741824") {
		t.Errorf("soft > hard: %v", err)
	}
	// Only a hard address-space limit: the soft one follows it down.
	rep = applyRlimits(f, Rlimits{AddressSpaceHard: 256 << 20}, loggerOrDiscard(nil))
	if r := rep.Results[0]; r.Err != nil || r.SoftAfter != 256<<20 || r.HardAfter != 256<<20 {
		t.Errorf("hard only: %+v", r)
	}
	if rep := applyRlimits(f, Rlimits{}, loggerOrDiscard(nil)); len(rep.Results) != 0 {
		t.Errorf("empty request: %+v", rep)
	}
}
