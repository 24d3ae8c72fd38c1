package throttle_test

import (
	"runtime"
	"testing"

	"github.com/cemaf-go/cemaf/throttle"
)

func TestHostLimits(t *testing.T) {
	n := func(v int) *int { return &v }
	tests := []struct {
		name string
		host throttle.HostInfo
		o    throttle.HostLimitOverrides
		want throttle.HostLimits
	}{
		{"Pi 4: 4 cores, 1024 files", throttle.HostInfo{Cores: 4, NoFileSoft: 1024}, throttle.HostLimitOverrides{},
			throttle.HostLimits{Cores: 4, Blocking: 2, IO: 256, Pool: 8}},
		{"1 core: floors", throttle.HostInfo{Cores: 1}, throttle.HostLimitOverrides{},
			throttle.HostLimits{Cores: 1, Blocking: 2, IO: 64, Pool: 8}},
		{"12 cores, many files", throttle.HostInfo{Cores: 12, NoFileSoft: 1 << 20}, throttle.HostLimitOverrides{},
			throttle.HostLimits{Cores: 12, Blocking: 10, IO: 768, Pool: 24}},
		{"64 cores: pool capped", throttle.HostInfo{Cores: 64}, throttle.HostLimitOverrides{},
			throttle.HostLimits{Cores: 64, Blocking: 62, IO: 4096, Pool: 64}},
		{"few files: the fd clamp goes below the I/O floor", throttle.HostInfo{Cores: 4, NoFileSoft: 50}, throttle.HostLimitOverrides{},
			throttle.HostLimits{Cores: 4, Blocking: 2, IO: 25, Pool: 8}},
		{"one file: at least 1", throttle.HostInfo{Cores: 4, NoFileSoft: 1}, throttle.HostLimitOverrides{},
			throttle.HostLimits{Cores: 4, Blocking: 2, IO: 1, Pool: 8}},
		{"unknown cores count as 2", throttle.HostInfo{Cores: 0}, throttle.HostLimitOverrides{},
			throttle.HostLimits{Cores: 2, Blocking: 2, IO: 128, Pool: 8}},
		{"explicit values win", throttle.HostInfo{Cores: 4, NoFileSoft: 1024}, throttle.HostLimitOverrides{Blocking: n(7), IO: n(900), Pool: n(40)},
			throttle.HostLimits{Cores: 4, Blocking: 7, IO: 900, Pool: 40}},
		{"explicit zero and negative are clamped to 1", throttle.HostInfo{Cores: 4}, throttle.HostLimitOverrides{Blocking: n(0), IO: n(-3), Pool: n(0)},
			throttle.HostLimits{Cores: 4, Blocking: 1, IO: 1, Pool: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.host.Resolve(tt.o); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestResolveHostLimitsUsesGOMAXPROCS(t *testing.T) {
	info := throttle.DetectHostInfo()
	if info.Cores != runtime.GOMAXPROCS(0) {
		t.Errorf("Cores = %d, want GOMAXPROCS %d", info.Cores, runtime.GOMAXPROCS(0))
	}
	if got, want := throttle.ResolveHostLimits(throttle.HostLimitOverrides{}), info.Resolve(throttle.HostLimitOverrides{}); got != want {
		t.Errorf("ResolveHostLimits = %+v, want %+v", got, want)
	}
}
