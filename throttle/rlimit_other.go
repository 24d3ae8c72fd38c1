//go:build !linux

package throttle

// platformRlimits is a no-op where process rlimits are not supported by
// this package: every request reports ErrUnsupported.
type platformRlimits struct{}

func (platformRlimits) get(rlimitResource) (soft, hard uint64, err error) {
	return 0, 0, ErrUnsupported
}

func (platformRlimits) set(rlimitResource, uint64, uint64) error { return ErrUnsupported }
