package throttle

import (
	"testing"
	"time"
)

func TestThrottleDelayMath(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	const window = 5 * time.Second
	budget := sec(2.5) // 50 % of one core
	tests := []struct {
		name      string
		marks     []cpuMark
		now       float64
		cur       float64
		wantDelay time.Duration
		wantUsed  time.Duration
	}{
		{"no history", nil, 0, 0, 0, 0},
		{"within budget", []cpuMark{{at(0), 0}}, 1, 1, 0, sec(1)},
		{"exactly the budget", []cpuMark{{at(0), 0}}, 2.5, 2.5, 0, sec(2.5)},
		// 3 s of CPU in the first 3 s: the window must slide until it
		// starts at 0.5 s, i.e. 5.5 s, 2.5 s from now.
		{"over budget from a standing start", []cpuMark{{at(0), 0}}, 3, 3, sec(2.5), sec(3)},
		// Half a core for 10 s, then a full core for 1 s: 3 s in the
		// last 5 s; the window must drop 0.5 s of usage, which the
		// half-core period took 1 s to accumulate.
		{"steady then a burst", []cpuMark{{at(0), 0}, {at(5), sec(2.5)}, {at(10), sec(5)}}, 11, 6, sec(1), sec(3)},
		{"steady at the target", []cpuMark{{at(0), 0}, {at(5), sec(2.5)}, {at(10), sec(5)}}, 11, 5.5, 0, sec(2.5)},
		// CPU time older than the window does not count.
		{"long ago usage", []cpuMark{{at(0), 0}, {at(1), sec(1)}}, 100, 1, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, used := throttleDelay(tt.marks, at(tt.now), sec(tt.cur), window, budget)
			if d != tt.wantDelay || used != tt.wantUsed {
				t.Errorf("delay %v used %v, want %v %v", d, used, tt.wantDelay, tt.wantUsed)
			}
		})
	}
}

func TestRecordMark(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const window = 32 * time.Second // marks at least 0.5 s apart
	var marks []cpuMark
	var last time.Time
	for i := range 400 { // every 250 ms for 100 s
		last = t0.Add(time.Duration(i) * 250 * time.Millisecond)
		marks = recordMark(marks, last, time.Duration(i)*time.Millisecond, window)
	}
	// Marks every 0.5 s, and only one older than the window (the one the
	// window's start interpolates from).
	if n := len(marks); n != markResolution+1 {
		t.Errorf("%d marks kept, want %d", n, markResolution+1)
	}
	if !marks[0].t.Before(last.Add(-window)) || !marks[1].t.After(last.Add(-window)) {
		t.Errorf("first marks %v %v around the window start %v", marks[0].t, marks[1].t, last.Add(-window))
	}
	// A CPU clock going backwards is not recorded as such.
	top := marks[len(marks)-1].c
	marks = recordMark(marks, last.Add(2*time.Second), 0, window)
	if c := marks[len(marks)-1].c; c != top {
		t.Errorf("backwards CPU time recorded as %v, want %v", c, top)
	}
}
