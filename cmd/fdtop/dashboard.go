package main

import (
	"context"
	"io"
	"os"
	"time"

	"github.com/fdtop/fdtop/internal/clierr"
	"github.com/fdtop/fdtop/internal/live"
	"github.com/fdtop/fdtop/ui"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// dashboardFlags are the dashboard's own flags.
type dashboardFlags struct {
	readOnly bool
	probe    bool
	interval time.Duration
}

func (d *dashboardFlags) register(fs *pflag.FlagSet, probeDefault bool) {
	fs.BoolVar(&d.readOnly, "read-only", false, "no actions: restart, stop, start, reload, try-restart and (fleet) rollout keys are removed")
	fs.BoolVar(&d.probe, "probe", probeDefault, "gap meter: probe a unit's loopback TCP listeners while a restart started here runs")
	fs.DurationVar(&d.interval, "interval", ui.DefaultInterval, "rescan of the whole host every `D` (the units on screen are rescanned faster)")
}

// rootShort is what the dashboard is, in fdtop --help's list of commands.
const rootShort = "the live dashboard (system manager by default)"

// dashboardOptions are `fdtop [PATTERN...]`'s flags and patterns.
type dashboardOptions struct {
	IO       *ioStreams
	Manager  managerFlags
	View     dashboardFlags
	Fleet    fleetFlags
	Patterns []string
	// IntervalSet: --interval was given (it then also goes to remote agents).
	IntervalSet bool
	Version     bool
}

// newCmdDashboard is the root command: the dashboard on a manager, or on
// remote hosts with -H.
func newCmdDashboard(ios *ioStreams, runF func(*dashboardOptions) int) *cobra.Command {
	opts := &dashboardOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "fdtop [--user|--system] [--all] [--read-only] [--probe] [--interval D] [-H HOST[,HOST...]] [--hosts-file FILE] [PATTERN...]",
		Short: "a terminal dashboard for systemd socket activation",
		Long: `fdtop shows systemd's socket units, their listeners, the processes that hold
each descriptor, fd stores and connections, and follows restarts live: every
handoff gets a verdict (listener kept, connections kept, refused, dropped).`,
		Args:                  cobra.ArbitraryArgs,
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Version {
				writeVersion(ios.Out)
				return nil
			}
			opts.Patterns = args
			opts.IntervalSet = flagChanged(cmd.Flags(), "interval")
			if runF != nil {
				return exitStatus(runF(opts))
			}
			return exitStatus(dashboardRun(opts))
		},
	}
	fs := cmd.Flags()
	opts.Manager.register(fs)
	cmd.ValidArgsFunction = opts.Manager.completeUnits
	opts.View.register(fs, false)
	opts.Fleet.register(fs)
	_ = cmd.RegisterFlagCompletionFunc("host", completeHosts)
	fs.BoolVar(&opts.Version, "version", false, "print the version and exit")
	return cmd
}

// dashboardRun opens the live dashboard on a manager.
func dashboardRun(opts *dashboardOptions) int {
	stderr := opts.IO.Err
	mf, df := opts.Manager, opts.View
	if err := mf.validate(); err != nil {
		return fail(stderr, "", err)
	}
	if err := checkInterval(df.interval); err != nil {
		return fail(stderr, "", err)
	}
	ctx, sig, stop := withSignals(context.Background())
	defer stop()
	if opts.Fleet.remote() {
		return sig.exit(remoteDashboard(ctx, sig, opts))
	}
	return sig.exit(dashboard(ctx, sig, mf, df, opts.Patterns, stderr))
}

// dashboard runs the dashboard once the flags are checked; an error that
// follows a termination signal is the signal's doing and not reported.
func dashboard(ctx context.Context, sig *caught, mf managerFlags, df dashboardFlags, patterns []string, stderr io.Writer) int {
	client, b, err := mf.connect(ctx, patterns)
	if err != nil {
		return failUnlessSignalled(stderr, "", sig, err)
	}
	defer client.Close()
	src, err := live.New(ctx, client, b, live.Options{Interval: df.interval})
	if err != nil {
		return failUnlessSignalled(stderr, "", sig, err)
	}
	src.OnePWhenShown(ctx)
	opts := ui.Options{ReadOnly: df.readOnly, Probe: df.probe, Interval: df.interval, Patterns: patterns}
	if err := ui.Run(ctx, src, opts); err != nil {
		return failUnlessSignalled(stderr, "", sig, err)
	}
	return exitOK
}

// replayOptions are `fdtop replay`'s flags and file.
type replayOptions struct {
	IO      *ioStreams
	File    string
	Stepped bool
	Speed   float64
}

// NewCmdReplay is `fdtop replay`.
func NewCmdReplay(ios *ioStreams, runF func(*replayOptions) int) *cobra.Command {
	opts := &replayOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "replay [--stepped] [--speed X] FILE",
		Short: "play a file recorded by 'fdtop watch --record'",
		Long: `The recording streams into the timeline view: the first event shows at once,
the others at their recorded pace (--speed), or one per key press (--stepped).`,
		Args: exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.File = args[0]
			if runF != nil {
				return exitStatus(runF(opts))
			}
			return exitStatus(replayRun(opts))
		},
	}
	cmd.Flags().BoolVar(&opts.Stepped, "stepped", false, "advance one event per key press (n, space, →)")
	cmd.Flags().Float64Var(&opts.Speed, "speed", 1, "playback speed `X` (2 = twice as fast)")
	return cmd
}

// replayRun plays a file recorded by `fdtop watch --record`.
func replayRun(opts *replayOptions) int {
	stderr := opts.IO.Err
	if opts.Speed <= 0 {
		return fail(stderr, "replay", clierr.Usage("--speed must be positive"))
	}
	f, err := os.Open(opts.File)
	if err != nil {
		return fail(stderr, "replay", err)
	}
	defer f.Close()
	ctx, sig, stop := withSignals(context.Background())
	defer stop()
	if err := ui.RunReplay(ctx, f, ui.ReplayOptions{Stepped: opts.Stepped, Speed: opts.Speed}); err != nil {
		return sig.exit(failUnlessSignalled(stderr, "replay", sig, err))
	}
	return sig.exit(exitOK)
}
