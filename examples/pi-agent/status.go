package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cemaf-go/cemaf/adaptive"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/factories"
	"github.com/cemaf-go/cemaf/thermal"
	"github.com/cemaf-go/cemaf/throttle"
)

// statusReport is what pi-agent status prints.
type statusReport struct {
	Time    time.Time              `json:"time"`
	Sample  *throttle.Sample       `json:"sample"`
	Thermal *thermalReport         `json:"thermal,omitempty"`
	Ladders throttle.BreakerStatus `json:"ladders"`
	Mode    adaptive.Mode          `json:"mode"`
	Active  []adaptive.Pressure    `json:"active_pressures,omitempty"`
	Storage string                 `json:"storage"`
}

type thermalReport struct {
	Board         string            `json:"board,omitempty"`
	TempC         float64           `json:"temp_c"`
	Sensor        string            `json:"sensor,omitempty"`
	Levels        *thermal.Levels   `json:"levels,omitempty"`
	BelowPauseC   float64           `json:"below_pause_c"`
	Zones         []thermal.Reading `json:"zones,omitempty"`
	ThrottleFlags string            `json:"throttle_flags,omitempty"`
	Note          string            `json:"note,omitempty"`
}

// statusFlags are the flags of the status command.
type statusFlags struct {
	*cmdFlags
	watch    bool
	interval time.Duration
	nats     natsFlags
}

func newStatusFlags(stderr io.Writer) *statusFlags {
	f := &statusFlags{cmdFlags: newCmdFlags("status", "Report CPU, memory, swap, PSI, thermal zones, disk, every ladder and the mode.", stderr)}
	f.withResource()
	f.withLog()
	f.withJSON()
	f.fs.BoolVar(&f.watch, "watch", false, "refresh every --interval until interrupted")
	f.ss.durationVar(&f.interval, "interval", "", 2*time.Second, 100*time.Millisecond, time.Hour, "refresh `interval` of --watch")
	f.withNATS(&f.nats, "report the fleet's workers instead of this device")
	return f
}

func statusCmd(ctx context.Context, args []string, env []string, stdout, stderr io.Writer) error {
	c := newStatusFlags(stderr)
	if err := c.parse(args, env, stderr); err != nil {
		return err
	}
	if c.nats.enabled() {
		return fleetStatus(ctx, c, stdout, stderr)
	}
	watch, interval := &c.watch, &c.interval
	logger, _, err := c.logger(stderr)
	if err != nil {
		return err
	}
	cfg, storage, err := c.loadStorage(env, stderr)
	if err != nil {
		return err
	}
	if *watch {
		cfg.CheckInterval = *interval
	}
	g, err := factories.CreateResourceGuard(cfg, guardOptions(env, storage.Path, logger))
	if err != nil {
		return err
	}
	defer g.Close()
	// The mode as the adaptive executor would see it.
	base, err := executor.New(executor.Options{})
	if err != nil {
		return err
	}
	mode, err := adaptive.New(base, adaptive.Options{})
	if err != nil {
		return err
	}
	mode.Attach(g.Breaker)
	defer mode.Close()

	tty := isTerminal(stdout)
	for {
		r := collectStatus(g, mode, storage.Path)
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
	r := statusReport{Time: time.Now(), Sample: snap.Sample, Storage: storage, Ladders: g.Breaker.Status()}
	if tm := g.Thermal; tm != nil {
		st := tm.Status()
		tr := &thermalReport{Board: st.Board, TempC: st.TempC, Sensor: st.Sensor, Levels: &st.Levels, BelowPauseC: st.BelowPauseC}
		tr.Zones, _ = tm.Readings()
		if fl, ok := tm.ThrottleFlags(); ok {
			tr.ThrottleFlags = fl.String()
		}
		r.Thermal = tr
	} else if g.ThermalErr != nil {
		r.Thermal = &thermalReport{Note: g.ThermalErr.Error()}
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
	fmt.Fprintf(w, "CPU      %5.1f%% busy: %.1f%% this process, %.1f%% its helpers, %.1f%% others; load %.2f %.2f %.2f\n",
		s.CPUPercent, s.ProcessCPUPercent, s.HelpersCPUPercent, s.OthersCPUPercent, s.Load1, s.Load5, s.Load15)
	for _, h := range s.Helpers {
		fmt.Fprintf(w, "helper   %-7d %-16s %5.1f%%  (%s)\n", h.PID, h.Name, h.CPUPercent, h.Via)
	}
	limit := ""
	if s.MemoryLimitedByCgroup {
		limit = " (cgroup limit)"
	}
	fmt.Fprintf(w, "memory   %5.1f%% used, %s available of %s%s; this process %s\n", s.MemoryUsedPercent, mib(s.MemoryAvailableBytes), mib(s.MemoryTotalBytes), limit, mib(s.ProcessAnonBytes))
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
			fmt.Fprintf(w, "thermal  %.1f °C (%s), %.1f °C below the pause level; board %s\n", t.TempC, t.Sensor, t.BelowPauseC, t.Board)
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
	fmt.Fprintln(w)
	printLadders(w, r.Ladders)
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

// printLadders prints where each signal stands on its ladder.
func printLadders(w io.Writer, st throttle.BreakerStatus) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LADDER\tNOW\tRUNG\tADAPT AT\tPAUSE ABOVE\t")
	level := func(v float64, unit string) string {
		if v == 0 {
			return "never"
		}
		return throttle.FormatValue(v, unit)
	}
	for _, l := range st.Ladders {
		now := "no reading"
		if l.Known {
			now = throttle.FormatValue(l.Value, l.Unit)
		}
		rung := l.Rung.String()
		if l.Rung == throttle.Pause {
			rung += " until " + l.Until.Local().Format(time.TimeOnly) + ", below " + throttle.FormatValue(l.PauseResume(), l.Unit)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", l.Signal, now, rung, level(l.Adapt, l.Unit), level(l.Pause, l.Unit))
	}
	tw.Flush()
	if st.Paused {
		fmt.Fprintln(w, "work     paused")
	} else {
		fmt.Fprintln(w, "work     running")
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
