package hostlimits_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/cemaf-go/cemaf/internal/hostlimits"
)

func TestDerive(t *testing.T) {
	tests := []struct {
		name   string
		cores  int
		nofile uint64
		want   hostlimits.Limits
	}{
		{"Pi 4: 4 cores, 1024 files", 4, 1024, hostlimits.Limits{CPU: 2, IO: 256, Pool: 8}},
		{"1 core: floors", 1, 0, hostlimits.Limits{CPU: 2, IO: 64, Pool: 8}},
		{"12 cores, many files", 12, 1 << 20, hostlimits.Limits{CPU: 10, IO: 768, Pool: 24}},
		{"64 cores: pool capped", 64, 0, hostlimits.Limits{CPU: 62, IO: 4096, Pool: 64}},
		{"few files: the fd clamp goes below the I/O floor", 4, 50, hostlimits.Limits{CPU: 2, IO: 25, Pool: 8}},
		{"one file: at least 1", 4, 1, hostlimits.Limits{CPU: 2, IO: 1, Pool: 8}},
		{"unknown cores count as 2", 0, 0, hostlimits.Limits{CPU: 2, IO: 128, Pool: 8}},
		{"negative cores count as 2", -3, 0, hostlimits.Limits{CPU: 2, IO: 128, Pool: 8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hostlimits.Derive(tt.cores, tt.nofile); got != tt.want {
				t.Errorf("Derive(%d, %d) = %+v, want %+v", tt.cores, tt.nofile, got, tt.want)
			}
		})
	}
}

func TestDetectUsesGOMAXPROCS(t *testing.T) {
	got := hostlimits.Detect()
	if want := max(2, runtime.GOMAXPROCS(0)-2); got.CPU != want {
		t.Errorf("Detect().CPU = %d, want %d from GOMAXPROCS %d", got.CPU, want, runtime.GOMAXPROCS(0))
	}
	if got.IO < 1 || got.Pool < 8 {
		t.Errorf("Detect() = %+v", got)
	}
}

// The ceilings of a Raspberry Pi 4 whose service runs with 1024 open
// files; Detect does the same for the host it runs on.
func ExampleDerive() {
	fmt.Printf("%+v\n", hostlimits.Derive(4, 1024))
	// Output:
	// {CPU:2 IO:256 Pool:8}
}
