package main

import (
	"context"
	"flag"
	"io"
	"os"
	"time"

	"github.com/fdtop/fdtop/ui"
)

// dashboardFlags are the dashboard's own flags.
type dashboardFlags struct {
	readOnly bool
	probe    bool
	interval time.Duration
}

func (d *dashboardFlags) register(fs *flag.FlagSet, probeDefault bool) {
	fs.BoolVar(&d.readOnly, "read-only", false, "no actions: restart, stop, start, reload, try-restart and (fleet) rollout keys are removed")
	fs.BoolVar(&d.probe, "probe", probeDefault, "gap meter: probe a unit's loopback TCP listeners while a restart started here runs")
	fs.DurationVar(&d.interval, "interval", ui.DefaultInterval, "rescan of the whole host (the units on screen are rescanned faster)")
}

// runDashboard opens the live dashboard on a manager.
func runDashboard(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("fdtop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		io.WriteString(stderr, "Usage: fdtop [--user|--system] [--all] [--read-only] [--probe] [--interval D] [-H HOST[,HOST...]] [--hosts-file FILE] [PATTERN...]\n\n")
		fs.PrintDefaults()
	}
	var mf managerFlags
	mf.register(fs)
	var df dashboardFlags
	df.register(fs, false)
	var ff fleetFlags
	ff.register(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if err := mf.validate(); err != nil {
		return fail(stderr, "", err)
	}
	if err := checkInterval(df.interval); err != nil {
		return fail(stderr, "", err)
	}
	ctx, sig, stop := withSignals(context.Background())
	defer stop()
	if ff.remote() {
		return sig.exit(remoteDashboard(ctx, sig, &ff, mf, df, fs.Args(), stderr))
	}
	return sig.exit(dashboard(ctx, sig, mf, df, fs.Args(), stderr))
}

// dashboard runs the dashboard once the flags are checked; an error that
// follows a termination signal is the signal's doing and not reported.
func dashboard(ctx context.Context, sig *caught, mf managerFlags, df dashboardFlags, patterns []string, stderr io.Writer) int {
	client, b, err := mf.connect(ctx, patterns)
	if err != nil {
		return failUnlessSignalled(stderr, "", sig, err)
	}
	defer client.Close()
	src, err := newLiveSource(ctx, client, b, df.interval, false)
	if err != nil {
		return failUnlessSignalled(stderr, "", sig, err)
	}
	src.onePWhenShown(ctx)
	opts := ui.Options{ReadOnly: df.readOnly, Probe: df.probe, Interval: df.interval, Patterns: patterns}
	if err := ui.Run(ctx, src, opts); err != nil {
		return failUnlessSignalled(stderr, "", sig, err)
	}
	return exitOK
}

// runReplay plays a file recorded by `fdtop watch --record`.
func runReplay(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("fdtop replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		io.WriteString(stderr, "Usage: fdtop replay [--stepped] [--speed X] FILE\n\n")
		fs.PrintDefaults()
	}
	stepped := fs.Bool("stepped", false, "advance one event per key press (n, space, →)")
	speed := fs.Float64("speed", 1, "playback speed (2 = twice as fast)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	if *speed <= 0 {
		return fail(stderr, "replay", usageError{"--speed must be positive"})
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return fail(stderr, "replay", err)
	}
	defer f.Close()
	ctx, sig, stop := withSignals(context.Background())
	defer stop()
	if err := ui.RunReplay(ctx, f, ui.ReplayOptions{Stepped: *stepped, Speed: *speed}); err != nil {
		return sig.exit(failUnlessSignalled(stderr, "replay", sig, err))
	}
	return sig.exit(exitOK)
}
