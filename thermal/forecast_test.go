package thermal_test

import (
	"math"
	"testing"
	"time"

	"github.com/cemaf-go/cemaf/thermal"
)

func TestForecastAndHeadroom(t *testing.T) {
	tests := []struct {
		name       string
		temps      []float64 // one reading per second
		window     int
		ahead      time.Duration
		forecast   float64
		forecastOK bool
		headroom   float64 // floor 25, critical 85
		ttc        time.Duration
		ttcOK      bool
	}{
		{
			name:  "one reading has no rate",
			temps: []float64{55}, ahead: 10 * time.Second,
			headroom: 0.5,
		},
		{
			name:  "steady rise of 1 °C/s",
			temps: []float64{50, 51, 52, 53, 54, 55}, ahead: 10 * time.Second,
			forecast: 65, forecastOK: true, headroom: 0.5, ttc: 30 * time.Second, ttcOK: true,
		},
		{
			name:  "window forgets an old plateau",
			temps: []float64{40, 40, 40, 40, 50, 52, 54}, window: 3, ahead: 5 * time.Second,
			forecast: 64, forecastOK: true, headroom: 29.0 / 60, ttc: 15500 * time.Millisecond, ttcOK: true,
		},
		{
			name:  "falling never reaches critical",
			temps: []float64{60, 59, 58}, ahead: 2 * time.Second,
			forecast: 56, forecastOK: true, headroom: 33.0 / 60,
		},
		{
			name:  "below the floor is zero",
			temps: []float64{20, 20}, ahead: time.Minute,
			forecast: 20, forecastOK: true, headroom: 0,
		},
		{
			name:  "above critical is one",
			temps: []float64{84, 90}, ahead: time.Second,
			forecast: 96, forecastOK: true, headroom: 1, ttc: 0, ttcOK: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fixture(t, "pi4")
			m, err := thermal.New(thermal.Options{SysfsRoot: root, ForecastWindow: tt.window})
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := m.Headroom(); ok {
				t.Error("Headroom() ok before any reading")
			}
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for i, c := range tt.temps {
				setTemp(t, root, "thermal_zone0", c)
				if err := m.Poll(now.Add(time.Duration(i) * time.Second)); err != nil {
					t.Fatal(err)
				}
			}
			f, ok := m.Forecast(tt.ahead)
			if ok != tt.forecastOK || ok && math.Abs(f-tt.forecast) > 1e-9 {
				t.Errorf("Forecast(%v) = %g, %v; want %g, %v", tt.ahead, f, ok, tt.forecast, tt.forecastOK)
			}
			h, ok := m.Headroom()
			if !ok || math.Abs(h-tt.headroom) > 1e-9 {
				t.Errorf("Headroom() = %g, %v; want %g", h, ok, tt.headroom)
			}
			d, ok := m.TimeToCritical()
			if ok != tt.ttcOK || ok && (d-tt.ttc).Abs() > time.Millisecond {
				t.Errorf("TimeToCritical() = %v, %v; want %v, %v", d, ok, tt.ttc, tt.ttcOK)
			}
			if st := m.Status(); st.RateValid != tt.forecastOK {
				t.Errorf("Status().RateValid = %v", st.RateValid)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	base, maxD := 30*time.Second, 5*time.Minute
	tests := []struct {
		trips int
		want  time.Duration
	}{
		{1, 30 * time.Second}, {2, time.Minute}, {3, 2 * time.Minute}, {4, 4 * time.Minute},
		{5, 5 * time.Minute}, {64, 5 * time.Minute}, {1 << 30, 5 * time.Minute},
	}
	for _, tt := range tests {
		if got := thermal.Backoff(base, maxD, tt.trips); got != tt.want {
			t.Errorf("Backoff(trips=%d) = %v, want %v", tt.trips, got, tt.want)
		}
	}
}
