package thermal_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cemaf-go/cemaf/limit"
	"github.com/cemaf-go/cemaf/thermal"
)

// New discovers the zones of a Jetson Nano (here a fixture tree standing in
// for /sys) and picks its sensors from the board table: PMIC-Die, which
// always reads 100 °C, is left out.
func ExampleNew() {
	m, err := thermal.New(thermal.Options{SysfsRoot: "testdata/jetson-nano"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	if err := m.Poll(time.Now()); err != nil {
		fmt.Println(err)
		return
	}
	w, c := m.Thresholds()
	t, _ := m.TemperatureC()
	fmt.Println("board:", m.Board())
	fmt.Println("sensors:", m.Sensors())
	fmt.Printf("warning %g °C, critical %g °C\n", w, c)
	fmt.Printf("hottest %g °C (%s), state %v\n", t, m.Status().Sensor, m.State())
	// Output:
	// board: jetson-nano
	// sensors: [AO-therm CPU-therm GPU-therm]
	// warning 75 °C, critical 93.5 °C
	// hottest 38 °C (CPU-therm), state normal
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

// The callbacks fire once per transition; the guard turns the state into a
// typed limit error that pauses the executor.
func ExampleNewGuard() {
	m, err := thermal.New(thermal.Options{
		SensorPath: "testdata/jetson-nano/class/thermal/thermal_zone4/temp", // PMIC-Die: 100 °C
		CriticalC:  85,
		OnCritical: func(e thermal.Event) { fmt.Printf("critical at %g °C, cooling down %v\n", e.TempC, e.Cooldown) },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	g, _ := thermal.NewGuard(m, thermal.GuardOptions{})
	if err := m.Poll(time.Now()); err != nil {
		fmt.Println(err)
		return
	}
	var le *limit.Error
	if err := g.Check(); errors.As(err, &le) {
		fmt.Printf("paused: %s %g %s > %g %s\n", le.Kind, le.Current, le.Unit, le.Limit, le.Unit)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	fmt.Println("wait fails fast:", errors.Is(g.Wait(ctx), context.DeadlineExceeded))
	// Output:
	// critical at 100 °C, cooling down 30s
	// paused: temperature 100 °C > 85 °C
	// wait fails fast: true
}

// Start owns the polling goroutine; Close stops it.
func ExampleManager_Start() {
	m, err := thermal.New(thermal.Options{SysfsRoot: "testdata/jetson-orin", Interval: 500 * time.Millisecond})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := m.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	t, ok := m.TemperatureC() // the first reading is taken by Start
	fmt.Println(t, ok, m.State())
	// Output: 47 true normal
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
