package thermal

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// ThrottleFlags is the Raspberry Pi firmware's throttle status word, as
// reported by /sys/devices/platform/soc/soc:firmware/get_throttled (and by
// `vcgencmd get_throttled`). Bits 0–3 describe the present; bits 16–19 are
// their sticky "has occurred since boot" counterparts. The zero value means
// no flag is set.
type ThrottleFlags uint32

// The bits of ThrottleFlags.
const (
	// UnderVoltage: the supply voltage is below 4.63 V now.
	UnderVoltage ThrottleFlags = 1 << 0
	// ArmFreqCapped: the ARM frequency is capped now.
	ArmFreqCapped ThrottleFlags = 1 << 1
	// Throttled: the firmware is throttling now.
	Throttled ThrottleFlags = 1 << 2
	// SoftTempLimit: the soft temperature limit is active now.
	SoftTempLimit ThrottleFlags = 1 << 3

	// UnderVoltageOccurred: under-voltage has occurred since boot.
	UnderVoltageOccurred ThrottleFlags = 1 << 16
	// ArmFreqCappedOccurred: ARM frequency capping has occurred since boot.
	ArmFreqCappedOccurred ThrottleFlags = 1 << 17
	// ThrottledOccurred: throttling has occurred since boot.
	ThrottledOccurred ThrottleFlags = 1 << 18
	// SoftTempLimitOccurred: the soft temperature limit has been active
	// since boot.
	SoftTempLimitOccurred ThrottleFlags = 1 << 19
)

var flagNames = [...]struct {
	f    ThrottleFlags
	name string
}{
	{UnderVoltage, "under-voltage"},
	{ArmFreqCapped, "arm-freq-capped"},
	{Throttled, "throttled"},
	{SoftTempLimit, "soft-temp-limit"},
	{UnderVoltageOccurred, "under-voltage-occurred"},
	{ArmFreqCappedOccurred, "arm-freq-capped-occurred"},
	{ThrottledOccurred, "throttled-occurred"},
	{SoftTempLimitOccurred, "soft-temp-limit-occurred"},
}

// Has reports whether every bit of x is set in f.
func (f ThrottleFlags) Has(x ThrottleFlags) bool { return f&x == x }

// String lists the set flags separated by "|" ("none" for zero); bits
// without a name are shown in hex.
func (f ThrottleFlags) String() string {
	if f == 0 {
		return "none"
	}
	var parts []string
	rest := f
	for _, n := range flagNames {
		if f&n.f != 0 {
			parts = append(parts, n.name)
			rest &^= n.f
		}
	}
	if rest != 0 {
		parts = append(parts, "0x"+strconv.FormatUint(uint64(rest), 16))
	}
	return strings.Join(parts, "|")
}

// ParseThrottled parses a get_throttled value: the sysfs form ("50005", hex
// without prefix) or the vcgencmd form ("throttled=0x50005"), surrounded by
// optional white space.
func ParseThrottled(b []byte) (ThrottleFlags, error) {
	s := string(bytes.TrimSpace(b))
	s = strings.TrimPrefix(s, "throttled=")
	if len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X") {
		s = s[2:]
	}
	if s == "" {
		return 0, errors.New("thermal: get_throttled: empty value")
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("thermal: get_throttled: %q is not a 32-bit hex number", truncate(s, 32))
	}
	return ThrottleFlags(v), nil
}

// findThrottledPath looks for the Raspberry Pi firmware driver's
// get_throttled file under a sysfs root: the Pi 4 (and earlier) path first,
// then a pattern that also matches the Pi 5's soc@…:firmware node. It
// returns "" when there is none.
func findThrottledPath(sysfsRoot string) string {
	p := filepath.Join(sysfsRoot, "devices", "platform", "soc", "soc:firmware", "get_throttled")
	if fileExists(p) {
		return p
	}
	matches, _ := filepath.Glob(filepath.Join(sysfsRoot, "devices", "platform", "*", "*:firmware", "get_throttled"))
	if len(matches) > 0 {
		return matches[0]
	}
	return ""
}
