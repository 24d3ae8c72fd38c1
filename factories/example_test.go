package factories_test

import (
	"fmt"
	"os"

	"github.com/cemaf-go/cemaf/factories"
)

func ExampleLoad() {
	cfg, warnings, err := factories.Load(factories.LoadOptions{
		Environ: []string{
			"CEMAF_RESOURCE_CPU_THRESHOLD=80",
			"CEMAF_RESOURCE_TEMP_TRESHOLD=70", // misspelt
		},
		Flags: map[string]string{"CPU_PARALLEL": "2"},
		Host:  &factories.Host{Cores: 4, MemoryTotalBytes: 4 << 30},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(warnings[0])
	fmt.Println(cfg.CPUThreshold, cfg.Source("CPU_THRESHOLD"))
	fmt.Println(cfg.CPUParallel, cfg.Source("CPU_PARALLEL"))
	fmt.Println(cfg.MemorySoftLimitMB, cfg.Source("MEMORY_SOFT_LIMIT_MB"))
	// Output:
	// unknown variable CEMAF_RESOURCE_TEMP_TRESHOLD (from environment); did you mean CEMAF_RESOURCE_TEMP_THRESHOLD?
	// 80 env
	// 2 flag
	// 3072 host
}

func ExampleLoad_errors() {
	_, _, err := factories.Load(factories.LoadOptions{
		Environ: []string{"CEMAF_RESOURCE_DISK_THRESHOLD=150", "CEMAF_RESOURCE_COOLDOWN_SECONDS=soon"},
		Host:    &factories.Host{Cores: 4, MemoryTotalBytes: 4 << 30},
	})
	fmt.Println(err)
	// Output:
	// factories: CEMAF_RESOURCE_COOLDOWN_SECONDS = "soon" from environment: not a number of seconds; accepted: (0, 86400] (s)
	// factories: CEMAF_RESOURCE_DISK_THRESHOLD = "150" from environment: out of range; accepted: [0, 100] (%)
}

// Ladders are the adapt and pause levels of every signal, from one
// configuration.
func ExampleResourceConfig_Ladders() {
	cfg := factories.DefaultConfig(factories.Host{Cores: 4, MemoryTotalBytes: 4 << 30})
	for _, l := range cfg.Ladders() {
		fmt.Printf("%-19s adapt %6g  pause %6g\n", l.Signal, l.Adapt, l.Pause)
	}
	// Output:
	// temperature_c       adapt     70  pause     80
	// memory_percent      adapt     80  pause     85
	// process_memory_mb   adapt   3072  pause   3584
	// swap_percent        adapt     50  pause     80
	// disk_percent        adapt     90  pause     95
	// cpu_others_percent  adapt     70  pause     95
}

func ExampleResourceConfig_WriteTo() {
	cfg := factories.DefaultConfig(factories.Host{Cores: 4, MemoryTotalBytes: 4 << 30})
	cfg.WriteTo(os.Stdout)
}
