package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cemaf-go/cemaf/adaptive"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/factories"
	"github.com/cemaf-go/cemaf/thermal"
	"github.com/cemaf-go/cemaf/throttle"
)

// statusReport is what pi-agent status prints.
type statusReport struct {
	Time    time.Time           `json:"time"`
	Sample  *throttle.Sample    `json:"sample"`
	Thermal *thermalReport      `json:"thermal,omitempty"`
	Breaker breakerReport       `json:"breaker"`
	Mode    adaptive.Mode       `json:"mode"`
	Active  []adaptive.Pressure `json:"active_pressures,omitempty"`
	Storage string              `json:"storage"`
}

type thermalReport struct {
	Board         string            `json:"board,omitempty"`
	State         string            `json:"state,omitempty"`
	TempC         float64           `json:"temp_c"`
	Sensor        string            `json:"sensor,omitempty"`
	WarningC      float64           `json:"warning_c,omitempty"`
	CriticalC     float64           `json:"critical_c,omitempty"`
	Headroom      float64           `json:"headroom"`
	Zones         []thermal.Reading `json:"zones,omitempty"`
	ThrottleFlags string            `json:"throttle_flags,omitempty"`
	Note          string            `json:"note,omitempty"`
}

type breakerReport struct {
	State   string            `json:"state"`
	Reasons []throttle.Reason `json:"reasons,omitempty"`
	ProbeAt time.Time         `json:"probe_at,omitzero"`
}

func statusCmd(ctx context.Context, args []string, env []string, stdout, stderr io.Writer) error {
	c := newCommon("status", stderr)
	watch := c.fs.Bool("watch", false, "refresh every --interval until interrupted")
	interval := c.fs.Duration("interval", 2*time.Second, "refresh `interval` of --watch")
	if err := c.parse(args); err != nil {
		return err
	}
	if *interval < 100*time.Millisecond {
		return usageError{fmt.Sprintf("--interval %v: want at least 100ms", *interval)}
	}
	logger, _, err := c.logger(stderr)
	if err != nil {
		return err
	}
	cfg, storage, err := c.loadStorage(env, stderr)
	if err != nil {
		return err
	}
	cfg.PagerStoragePath = storage
	if *watch {
		cfg.CheckInterval = *interval
	}
	g, err := factories.CreateResourceGuard(cfg, factories.Overrides{Logger: logger})
	if err != nil {
		return err
	}
	defer g.Close()
	// The mode as the adaptive executor would see it.
	base, _ := executor.New(executor.Options{})
	mode, err := adaptive.New(base, adaptive.Options{})
	if err != nil {
		return err
	}
	mode.Observe(g.Monitor.Snapshot().Sample)
	mode.Attach(g.Monitor)
	defer mode.Close()

	tty := isTerminal(stdout)
	for {
		r := collectStatus(g, mode, storage)
		if c.jsonOut {
			if err := writeJSON(stdout, r); err != nil {
				return err
			}
		} else {
			if *watch && tty {
				fmt.Fprint(stdout, "\033[H\033[2J")
			}
			printStatus(stdout, r)
		}
		if !*watch {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-g.Monitor.Next():
		}
	}
}

func collectStatus(g *factories.ResourceGuard, mode *adaptive.Executor, storage string) statusReport {
	snap := g.Monitor.Snapshot()
	r := statusReport{Time: time.Now(), Sample: snap.Sample, Storage: storage}
	if tm := g.Thermal; tm != nil {
		st := tm.Status()
		tr := &thermalReport{Board: st.Board, State: st.State.String(), TempC: st.TempC, Sensor: st.Sensor,
			WarningC: st.WarningC, CriticalC: st.CriticalC, Headroom: st.Headroom}
		tr.Zones, _ = tm.Readings()
		if fl, ok := tm.ThrottleFlags(); ok {
			tr.ThrottleFlags = fl.String()
		}
		r.Thermal = tr
	} else if g.ThermalErr != nil {
		r.Thermal = &thermalReport{Note: g.ThermalErr.Error()}
	}
	bs := g.Breaker.Status()
	r.Breaker = breakerReport{State: bs.State.String(), Reasons: bs.Reasons}
	if bs.State == throttle.BreakerOpen {
		r.Breaker.ProbeAt = bs.ProbeAt
	}
	st := mode.Status()
	r.Mode, r.Active = st.Mode, st.Active
	return r
}

func printStatus(w io.Writer, r statusReport) {
	s := r.Sample
	fmt.Fprintf(w, "pi-agent status  %s\n\n", r.Time.Format(time.DateTime))
	if s == nil {
		fmt.Fprintln(w, "no sample yet")
		return
	}
	fmt.Fprintf(w, "CPU      %5.1f%% total, %5.1f%% this process; load %.2f %.2f %.2f\n", s.CPUPercent, s.ProcessCPUPercent, s.Load1, s.Load5, s.Load15)
	limit := ""
	if s.MemoryLimitedByCgroup {
		limit = " (cgroup limit)"
	}
	fmt.Fprintf(w, "memory   %5.1f%% used, %s available of %s%s\n", s.MemoryUsedPercent, mib(s.MemoryAvailableBytes), mib(s.MemoryTotalBytes), limit)
	if s.SwapTotalBytes > 0 {
		fmt.Fprintf(w, "swap     %5.1f%% used of %s\n", s.SwapUsedPercent, mib(s.SwapTotalBytes))
	} else {
		fmt.Fprintln(w, "swap     none")
	}
	if s.PSI.Available {
		fmt.Fprintf(w, "pressure cpu some %.2f; memory some %.2f full %.2f; io some %.2f full %.2f (avg10, %%)\n",
			s.PSI.CPUSomeAvg10, s.PSI.MemorySomeAvg10, s.PSI.MemoryFullAvg10, s.PSI.IOSomeAvg10, s.PSI.IOFullAvg10)
	} else {
		fmt.Fprintln(w, "pressure not available (no /proc/pressure)")
	}
	for _, d := range s.Disks {
		fmt.Fprintf(w, "disk     %5.1f%% used, %s free of %s  %s\n", d.UsedPercent, mib(d.FreeBytes), mib(d.TotalBytes), d.Path)
	}
	if t := r.Thermal; t != nil {
		if t.Note != "" {
			fmt.Fprintf(w, "thermal  %s\n", t.Note)
		} else {
			fmt.Fprintf(w, "thermal  %.1f °C (%s), %s; warning %.0f °C, critical %.0f °C; headroom %.0f%%; board %s\n",
				t.TempC, t.Sensor, t.State, t.WarningC, t.CriticalC, 100*t.Headroom, t.Board)
			for _, z := range t.Zones {
				mark := " "
				if z.Chosen {
					mark = "*"
				}
				temp := "   n/a"
				if z.Valid {
					temp = fmt.Sprintf("%5.1f °C", z.TempC)
				}
				note := ""
				if z.Skipped != "" {
					note = "  (" + z.Skipped + ")"
				}
				fmt.Fprintf(w, "       %s %-14s %-16s %s%s\n", mark, z.Zone, z.Type, temp, note)
			}
			if t.ThrottleFlags != "" {
				fmt.Fprintf(w, "throttle flags (Raspberry Pi firmware): %s\n", t.ThrottleFlags)
			}
		}
	}
	fmt.Fprintf(w, "breaker  %s", r.Breaker.State)
	for _, rs := range r.Breaker.Reasons {
		fmt.Fprintf(w, "; %s %.1f (threshold %.1f)", rs.Signal, rs.Value, rs.Threshold)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "mode     %s", r.Mode)
	var act []string
	for _, p := range r.Active {
		act = append(act, p.String())
	}
	if len(act) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(act, "; "))
	}
	fmt.Fprintln(w)
	for _, e := range s.Errors {
		fmt.Fprintf(w, "note     %s\n", e)
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
