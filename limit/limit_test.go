package limit

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrorMessageAndMatching(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{"memory", &Error{Kind: Memory, Current: 3700, Limit: 3584, Unit: "MB"}, "memory limit exceeded: 3700 MB > 3584 MB"},
		{"percent with subject", &Error{Kind: Disk, Subject: "/data", Current: 96.25, Limit: 95, Unit: "%"}, "disk (/data) limit exceeded: 96.2% > 95%"},
		{"detail", &Error{Kind: Queue, Current: 9, Limit: 8, Detail: "all run slots busy"}, "queue limit exceeded: 9 > 8: all run slots busy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Fatalf("Error() = %q, want %q", got, tt.want)
			}
			wrapped := fmt.Errorf("outer: %w", tt.err)
			if !errors.Is(wrapped, ErrExceeded) {
				t.Fatal("errors.Is(wrapped, ErrExceeded) = false")
			}
			var le *Error
			if !errors.As(wrapped, &le) || le != tt.err {
				t.Fatal("errors.As did not extract the *Error")
			}
		})
	}
	if errors.Is(errors.New("other"), ErrExceeded) {
		t.Fatal("unrelated error matched ErrExceeded")
	}
}
