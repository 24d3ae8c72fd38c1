package throttle

// Signal is an extra signal a Sampler reads with every sample, beside the
// built-in ones. The thermal package provides one named SignalTemperatureC
// ("temperature_c", unit "°C") whose Read is its manager's TemperatureC.
//
// Read is called once per sample from the sampling goroutine, outside any
// lock of this package; it should be cheap and must be safe for concurrent
// use with the rest of its owner. It returns false when it has no value
// (the value is then left out of the sample). A panic in Read is recovered
// and recorded in Sample.Errors.
type Signal struct {
	// Name is the name Sample.Value and the Breaker's ladders use. It
	// must not be empty nor the name of a built-in signal.
	Name string
	// Unit is shown in limit errors and metrics ("°C", "%", "MB/s").
	Unit string
	// Read returns the current value.
	Read func() (float64, bool)
}

// builtinSignals lists the names Sample.Value answers without extra signals.
var builtinSignals = [...]string{
	SignalCPUPercent, SignalProcessCPUPercent, SignalHelpersCPUPercent,
	SignalCPUOthersPercent, SignalMemoryPercent,
	SignalSwapPercent, SignalDiskPercent, SignalLoad1, SignalLoad5, SignalLoad15,
	SignalPSICPUSome, SignalPSIMemorySome, SignalPSIMemoryFull, SignalPSIIOSome,
	SignalPSIIOFull, SignalProcessMemoryMB,
}

func isBuiltinSignal(name string) bool {
	for _, b := range builtinSignals {
		if b == name {
			return true
		}
	}
	return false
}
