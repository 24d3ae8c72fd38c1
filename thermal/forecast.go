package thermal

import "time"

// sample is one reading of the hottest chosen sensor.
type sample struct {
	t     time.Time
	tempC float64
}

// slope returns the least-squares slope, in °C per second, of the samples
// (oldest first). It needs at least two samples spread over a non-zero time.
func slope(samples []sample) (float64, bool) {
	n := float64(len(samples))
	if len(samples) < 2 {
		return 0, false
	}
	t0 := samples[0].t
	var sx, sy, sxx, sxy float64
	for _, s := range samples {
		x := s.t.Sub(t0).Seconds()
		sx += x
		sy += s.tempC
		sxx += x * x
		sxy += x * s.tempC
	}
	den := n*sxx - sx*sx
	if den <= 0 {
		return 0, false
	}
	return (n*sxy - sx*sy) / den, true
}
