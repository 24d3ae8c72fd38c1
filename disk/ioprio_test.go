package disk_test

import (
	"strings"
	"testing"

	"github.com/cemaf-go/cemaf/disk"
)

func TestIOPriorityValidation(t *testing.T) {
	tests := []struct {
		name string
		p    disk.IOPriority
		want string
	}{
		{"best-effort level too high", disk.IOPriority{Class: disk.IOClassBestEffort, Level: 8}, "IOPriority.Level = 8"},
		{"best-effort level negative", disk.IOPriority{Class: disk.IOClassBestEffort, Level: -1}, "IOPriority.Level = -1"},
		{"idle with a level", disk.IOPriority{Class: disk.IOClassIdle, Level: 3}, "must be 0 for class idle"},
		{"realtime needs privileges", disk.IOPriority{Class: 1}, "IOPriority.Class = realtime"},
		{"unknown class", disk.IOPriority{Class: 9}, "IOPriority.Class = IOClass(9)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, set := range []func(disk.IOPriority) error{disk.SetIOPriority, disk.SetThreadIOPriority} {
				if err := set(tt.p); err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("error = %v, want it to contain %q", err, tt.want)
				}
			}
		})
	}
}

func TestIOPriorityString(t *testing.T) {
	for p, want := range map[disk.IOPriority]string{
		{}:                        "none",
		{Class: disk.IOClassIdle}: "idle",
		{Class: disk.IOClassBestEffort, Level: 7}: "best-effort/7",
	} {
		if got := p.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", p, got, want)
		}
	}
}
