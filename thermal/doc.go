// Package thermal watches a board's temperature sensors in sysfs and tells
// the rest of the module when to slow down and when to pause.
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
//	raspberry-pi  cpu-thermal (derived thresholds capped at 75/85 °C: the
//	              VideoCore firmware throttles from 80 °C and hard-limits at
//	              85 °C, below the kernel's 110 °C critical trip)
//	jetson-nano   CPU-therm, GPU-therm, AO-therm (PMIC-Die, which always
//	              reads 100 °C, and thermal-fan-est are ignored)
//	jetson-orin   cpu-, gpu-, tj-, soc0..2-, cv0..2-thermal
//	generic       every zone except PMIC-Die and thermal-fan-est
//
// Options.Sensors (zone types) or Options.SensorPath (one temp file, the
// blueprint's sensor_path) override the table. Disabled zones are not used;
// zones that fail to read, read empty or read an implausible value are
// skipped for that poll and reported (Manager.Readings, the log), never a
// cause to trip. With no usable zone at all New returns ErrNoSensors.
//
// A Manager compares the hottest chosen sensor with two thresholds and
// keeps a State: Normal, Warning (slow down) and Critical (pause). WarningC
// and CriticalC default to values derived from the zones' passive and
// hot/critical trip points minus TripMarginC (5 °C), else 75/85 °C. Steps
// down need the temperature HysteresisC (3 °C) below the threshold. After a
// critical trip the Manager stays Critical for a cooldown that starts at
// CooldownBase (30 s), is extended by every reading still at or above
// CriticalC, doubles with each further trip until the State gets back to
// Normal, and is capped at CooldownMax (5 min); see Manager.Poll for the
// exact rules. OnWarning, OnCritical and OnNormal run once per transition,
// outside locks, with panics recovered.
//
// The Manager also reports Headroom (0 at FloorC, 25 °C, to 1 at
// CriticalC), Forecast and TimeToCritical from a least-squares fit of the
// last ForecastWindow readings, and on a Raspberry Pi the firmware's
// ThrottleFlags from get_throttled; under-voltage starting raises OnWarning
// with Cause CauseUnderVoltage.
//
// A Guard (NewGuard) turns the State into the module's guard interface:
// Wait blocks while Critical (optionally Warning), Check returns a
// *limit.Error (throttle.LimitError) of kind temperature. Manager.TemperatureC
// is the reading the throttle circuit breaker uses as its temperature_c
// signal.
//
// # Units
//
// Temperatures are float64 degrees Celsius everywhere in the API (sysfs
// millidegrees are converted on read); rates are °C per second; durations
// are time.Duration.
//
// # Goroutines and lifetimes
//
// New reads sysfs and starts nothing. Start takes a first reading and
// starts one polling goroutine (every Interval, default 1 s), owned by the
// Manager: Close stops it and waits for it. Callbacks run on that goroutine
// (or on the caller of Poll). TemperatureC, State, Headroom, Forecast,
// ThrottleFlags, Status and Guard.Check read an atomic snapshot published by
// each poll: no I/O, no lock. Readings rescans sysfs and is meant for status
// commands only.
//
// # Caveats
//
//   - One threshold pair applies to the hottest chosen sensor; zones with
//     different limits (a GPU that may run hotter than the CPU) are not
//     judged separately. Pick the sensors with Options.Sensors if that
//     matters.
//   - The zone list is fixed at New. A zone that appears later (a hotplugged
//     sensor, a driver loaded late) is not seen until a new Manager is made;
//     a chosen zone that stops reading is skipped until it reads again.
//   - On a Raspberry Pi the firmware throttles on its own, from 80 °C; the
//     default thresholds pause work at 85 °C, when the firmware is already
//     capping the clock. Use a lower CriticalC for more margin.
//   - A Forecast is a straight-line extrapolation; it overshoots when a
//     heatsink or fan is about to flatten the curve, and it is only as good
//     as the last ForecastWindow readings.
//   - Callbacks run on the polling goroutine: a slow callback delays the
//     next poll.
//   - Outside Linux there is no sysfs: New returns ErrNoSensors unless
//     SensorPath names a readable file.
package thermal
