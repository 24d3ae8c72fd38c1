package thermal_test

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/cemaf-go/cemaf/thermal"
)

func FuzzParseMillidegrees(f *testing.F) {
	for _, s := range []string{"48686\n", "100000", "-5000\n", "", "\n", " 42 ", "abc", "4.5", "0x10", "99999999999999999999", "-256000"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := thermal.ParseMillidegrees(b)
		if err != nil {
			return
		}
		if math.IsNaN(c) || math.IsInf(c, 0) {
			t.Fatalf("ParseMillidegrees(%q) = %g", b, c)
		}
		// A parsed value is an integer number of millidegrees: it
		// round-trips through the kernel's own format.
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || float64(v)/1000 != c {
			t.Fatalf("ParseMillidegrees(%q) = %g, but the text parses as %d (%v)", b, c, v, err)
		}
	})
}

func FuzzParseThrottled(f *testing.F) {
	for _, s := range []string{"0\n", "50005\n", "80008", "throttled=0x50000\n", "0xe0008", "", "zz", "fffffffff", "throttled="} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		flags, err := thermal.ParseThrottled(b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "thermal: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			return
		}
		// The sysfs form of the value parses back to the same flags.
		again, err := thermal.ParseThrottled([]byte(strconv.FormatUint(uint64(flags), 16) + "\n"))
		if err != nil || again != flags {
			t.Fatalf("round trip of %#x: %v, %v", uint32(flags), again, err)
		}
		if flags.String() == "" {
			t.Fatal("empty String()")
		}
	})
}

func FuzzParseModel(f *testing.F) {
	for _, s := range []string{"Raspberry Pi 4 Model B Rev 1.4\x00", "NVIDIA Jetson Nano Developer Kit\x00", "", "\x00\x00", "x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m := thermal.ParseModel(b)
		if strings.ContainsRune(m, 0) || strings.TrimSpace(m) != m {
			t.Fatalf("ParseModel(%q) = %q", b, m)
		}
	})
}

func TestThrottleFlags(t *testing.T) {
	tests := []struct {
		in   string
		want thermal.ThrottleFlags
		str  string
	}{
		{"0\n", 0, "none"},
		{"50000\n", thermal.UnderVoltageOccurred | thermal.ThrottledOccurred, "under-voltage-occurred|throttled-occurred"},
		{"50005", thermal.UnderVoltage | thermal.Throttled | thermal.UnderVoltageOccurred | thermal.ThrottledOccurred, "under-voltage|throttled|under-voltage-occurred|throttled-occurred"},
		{"throttled=0x80008\n", thermal.SoftTempLimit | thermal.SoftTempLimitOccurred, "soft-temp-limit|soft-temp-limit-occurred"},
		{"0x20002", thermal.ArmFreqCapped | thermal.ArmFreqCappedOccurred, "arm-freq-capped|arm-freq-capped-occurred"},
		{"100010", thermal.ThrottleFlags(0x100010), "0x100010"},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSpace(tt.in), func(t *testing.T) {
			got, err := thermal.ParseThrottled([]byte(tt.in))
			if err != nil || got != tt.want || got.String() != tt.str {
				t.Errorf("ParseThrottled(%q) = %v (%s), %v; want %v (%s)", tt.in, uint32(got), got, err, uint32(tt.want), tt.str)
			}
		})
	}
	for _, bad := range []string{"", "throttled=", "0x", "g", "1ffffffff"} {
		if _, err := thermal.ParseThrottled([]byte(bad)); err == nil {
			t.Errorf("ParseThrottled(%q) succeeded", bad)
		}
	}
}

func FuzzSysfsNames(f *testing.F) {
	for _, s := range []string{"thermal_zone0", "thermal_zone10", "thermal_zone", "thermal_zone-1", "cooling_device0", "trip_point_0_type", "trip_point_12_type", "trip_point__type", "trip_point_0_temp", "trip_point_+1_type"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if n, ok := thermal.ZoneNumber(name); ok {
			if n < 0 || "thermal_zone"+strconv.Itoa(n) != name && !strings.HasPrefix(name, "thermal_zone") {
				t.Fatalf("ZoneNumber(%q) = %d", name, n)
			}
		}
		if k, ok := thermal.TripIndex(name); ok {
			if k < 0 || !strings.HasPrefix(name, "trip_point_") || !strings.HasSuffix(name, "_type") {
				t.Fatalf("TripIndex(%q) = %d", name, k)
			}
		}
	})
}
