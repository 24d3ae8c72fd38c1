package thermal_test

import (
	"fmt"

	"github.com/cemaf-go/cemaf/thermal"
)

// New discovers the zones of a Jetson Nano (here a fixture tree standing in
// for /sys), picks its sensors from the board table (PMIC-Die, which always
// reads 100 °C, is left out) and derives the levels of the temperature
// ladder from the zones' trip points.
func ExampleNew() {
	m, err := thermal.New(thermal.Options{SysfsRoot: "testdata/jetson-nano"})
	if err != nil {
		fmt.Println(err)
		return
	}
	t, ok := m.ReadTemperatureC()
	l := m.Levels()
	fmt.Println("board:", m.Board())
	fmt.Println("sensors:", m.Sensors())
	fmt.Printf("adapt at %g °C (%s)\n", l.AdaptC, l.AdaptFrom)
	fmt.Printf("pause above %g °C (%s)\n", l.PauseC, l.PauseFrom)
	fmt.Printf("hottest %g °C (%s) %v, %g °C below the pause level\n", t, m.Status().Sensor, ok, m.Status().BelowPauseC)
	// Output:
	// board: jetson-nano
	// sensors: [AO-therm CPU-therm GPU-therm]
	// adapt at 83.5 °C (pause level − 10)
	// pause above 93.5 °C (hot trip point of CPU-therm (98.5 °C) − 5)
	// hottest 38 °C (CPU-therm) true, 55.5 °C below the pause level
}

// Readings lists every zone for a status command, with the reason a zone is
// not used.
func ExampleManager_Readings() {
	m, err := thermal.New(thermal.Options{SysfsRoot: "testdata/jetson-orin"})
	if err != nil {
		fmt.Println(err)
		return
	}
	rs, err := m.Readings()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range rs[:4] {
		fmt.Printf("%-13s %-12s chosen=%-5v valid=%-5v %g °C [%s]\n", r.Zone, r.Type, r.Chosen, r.Valid, r.TempC, r.Skipped)
	}
	// Output:
	// thermal_zone0 cpu-thermal  chosen=true  valid=true  46 °C []
	// thermal_zone1 gpu-thermal  chosen=true  valid=true  46.718 °C []
	// thermal_zone2 cv0-thermal  chosen=false valid=false 0 °C [disabled; unreadable: empty]
	// thermal_zone3 cv1-thermal  chosen=false valid=false 0 °C [disabled; unreadable: empty]
}

func ExampleParseThrottled() {
	f, err := thermal.ParseThrottled([]byte("throttled=0x50005\n"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(f)
	fmt.Println("under-voltage now:", f.Has(thermal.UnderVoltage))
	// Output:
	// under-voltage|throttled|under-voltage-occurred|throttled-occurred
	// under-voltage now: true
}
