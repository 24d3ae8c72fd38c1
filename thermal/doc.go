// Package thermal reads a board's temperature sensors in sysfs and knows at
// which temperatures the agent should slow down and pause.
//
// # Model
//
// New scans SysfsRoot/class/thermal (default /sys/class/thermal) for
// thermal_zoneN directories, each with a type, a temp in millidegrees
// Celsius, an optional mode and trip_point_K_{type,temp} files. It picks the
// sensors by zone type, never by index, from a built-in board table detected
// from the device-tree model (SysfsRoot/firmware/devicetree/base/model) or
// the zone types:
//
//	raspberry-pi  cpu-thermal (derived levels capped at 70/80 °C: the
//	              VideoCore firmware throttles from 80 °C and hard-limits at
//	              85 °C, below the kernel's 110 °C critical trip)
//	jetson-nano   CPU-therm, GPU-therm, AO-therm (PMIC-Die, which always
//	              reads 100 °C, and thermal-fan-est are ignored)
//	jetson-orin   cpu-, gpu-, tj-, soc0..2-, cv0..2-thermal
//	generic       every zone except PMIC-Die and thermal-fan-est
//
// Options.Sensors (zone types) or Options.SensorPath (one temp file)
// override the table. Disabled zones are not used; zones that fail to read,
// read empty or read an implausible value are skipped for that poll and
// reported (Manager.Readings, the log), never a cause to pause. With no
// usable zone at all New returns ErrNoSensors.
//
// The Manager derives the two levels of the temperature ladder: AdaptC, at
// which the agent slows down, from the lowest "passive" trip point of the
// chosen zones minus TripMarginC (5 °C), and PauseC, above which it pauses,
// from the lowest "hot" or "critical" trip point minus TripMarginC; without
// a passive trip point AdaptC is 10 °C below PauseC, and without trip points
// at all the levels are 70 and 80 °C. Levels says where each
// came from. The Manager keeps no state machine: the throttle package's
// Breaker owns the ladder (hysteresis, cooldown, pause) and reads the
// temperature through ReadTemperatureC once per sample, so that one signal
// has one owner.
//
// The Manager also reports Forecast and TimeToPause from a least-squares fit
// of the last ForecastWindow readings, and on a Raspberry Pi the firmware's
// ThrottleFlags from get_throttled (under-voltage, frequency capped,
// throttled, and their "has occurred" bits).
//
// Every file is read with a bound (a sysfs attribute holds a page at most),
// and a FIFO, a device or a symlink to one where an attribute should be is
// refused without blocking: a hostile or broken sysfs tree cannot hang the
// process or fill its memory.
//
// # Units
//
// Temperatures are float64 degrees Celsius everywhere in the API (sysfs
// millidegrees are converted on read); rates are °C per second; durations
// are time.Duration.
//
// # Goroutines and lifetimes
//
// None: New reads sysfs and starts nothing; Poll and ReadTemperatureC read
// the sensors on the caller's goroutine (the Monitor's, through the Sampler).
// TemperatureC, Forecast, TimeToPause, ThrottleFlags and Status read an
// atomic snapshot published by each poll: no I/O, no lock. Readings rescans
// sysfs and is meant for status commands only. A Manager needs no Close.
//
// # Caveats
//
//   - One pair of levels applies to the hottest chosen sensor; zones with
//     different limits (a GPU that may run hotter than the CPU) are not
//     judged separately. Pick the sensors with Options.Sensors if that
//     matters.
//   - The zone list is fixed at New. A zone that appears later (a hotplugged
//     sensor, a driver loaded late) is not seen until a new Manager is made;
//     a chosen zone that stops reading is skipped until it reads again.
//   - A sensor read can still block inside a kernel driver (a hung I²C
//     sensor); such a read cannot be interrupted from Go.
//   - A Forecast is a straight-line extrapolation; it overshoots when a
//     heatsink or fan is about to flatten the curve, and it is only as good
//     as the last ForecastWindow readings.
//   - Outside Linux there is no sysfs: New returns ErrNoSensors unless
//     SensorPath names a readable file.
package thermal
