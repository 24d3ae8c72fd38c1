package thermal_test

import (
	"math"
	"testing"
	"time"

	"github.com/cemaf-go/cemaf/thermal"
)

func TestForecast(t *testing.T) {
	tests := []struct {
		name       string
		temps      []float64 // one reading per second
		window     int
		ahead      time.Duration
		forecast   float64
		forecastOK bool
		ttc        time.Duration
		ttcOK      bool
	}{
		{
			name:  "one reading has no rate",
			temps: []float64{55}, ahead: 10 * time.Second,
		},
		{
			name:  "steady rise of 1 °C/s",
			temps: []float64{50, 51, 52, 53, 54, 55}, ahead: 10 * time.Second,
			forecast: 65, forecastOK: true, ttc: 25 * time.Second, ttcOK: true, // pause level 80 °C
		},
		{
			name:  "window forgets an old plateau",
			temps: []float64{40, 40, 40, 40, 50, 52, 54}, window: 3, ahead: 5 * time.Second,
			forecast: 64, forecastOK: true, ttc: 13 * time.Second, ttcOK: true,
		},
		{
			name:  "falling never reaches the pause level",
			temps: []float64{60, 59, 58}, ahead: 2 * time.Second,
			forecast: 56, forecastOK: true,
		},
		{
			name:  "cold and flat",
			temps: []float64{20, 20}, ahead: time.Minute,
			forecast: 20, forecastOK: true,
		},
		{
			name:  "above the pause level",
			temps: []float64{84, 90}, ahead: time.Second,
			forecast: 96, forecastOK: true, ttc: 0, ttcOK: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fixture(t, "pi4")
			m, err := thermal.New(thermal.Options{SysfsRoot: root, ForecastWindow: tt.window})
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := m.TimeToPause(); ok {
				t.Error("TimeToPause() ok before any reading")
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
			d, ok := m.TimeToPause()
			if ok != tt.ttcOK || ok && (d-tt.ttc).Abs() > time.Millisecond {
				t.Errorf("TimeToPause() = %v, %v; want %v, %v", d, ok, tt.ttc, tt.ttcOK)
			}
			if st := m.Status(); st.RateValid != tt.forecastOK {
				t.Errorf("Status().RateValid = %v", st.RateValid)
			}
		})
	}
}
