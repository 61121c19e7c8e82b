package main

import (
	"context"
	"fmt"
	"time"

	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/clierr"
	"github.com/fdtop/fdtop/internal/exporter"
	"github.com/fdtop/fdtop/internal/live"
	"github.com/spf13/cobra"
)

// exporterInterval is the live model's interval in `fdtop exporter`, as
// the dashboard's and watch's default.
const exporterInterval = 2 * time.Second

// exporterOptions are `fdtop exporter`'s flags and patterns.
type exporterOptions struct {
	IO       *ioStreams
	Manager  managerFlags
	Patterns []string
	Listen   string
	Include  string
	Exclude  string
	MaxUnits int
	Probe    bool
}

// NewCmdExporter is `fdtop exporter`.
func NewCmdExporter(ios *ioStreams, runF func(*exporterOptions) int) *cobra.Command {
	opts := &exporterOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "exporter [--listen ADDR] [--user|--system] [--address A] [--unit-include RE] [--unit-exclude RE] [--max-units N] [--probe] [PATTERN...]",
		Short: "serve /metrics for Prometheus (127.0.0.1:9786 by default): fd stores, listener holders, handoff verdicts, doctor findings (docs/exporter.md)",
		Long: `Serves /metrics for Prometheus: fd stores, listener holders, handoff verdicts and
doctor findings of the socket units (and their services) matching PATTERN (all
by default). See docs/exporter.md.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Patterns = args
			if runF != nil {
				return exitStatus(runF(opts))
			}
			return exitStatus(exporterRun(opts))
		},
	}
	fs := cmd.Flags()
	opts.Manager.register(fs)
	cmd.ValidArgsFunction = opts.Manager.completeUnits
	fs.StringVar(&opts.Listen, "listen", exporter.DefaultListen, "`ADDR` to serve /metrics on (loopback by default; ':9786' to expose it)")
	fs.StringVar(&opts.Include, "unit-include", "", "export only the units whose whole name matches this regular expression `RE`")
	fs.StringVar(&opts.Exclude, "unit-exclude", "", "leave out the units whose whole name matches this regular expression `RE`")
	fs.IntVar(&opts.MaxUnits, "max-units", 1000, "export at most `N` units (by name; the rest are counted in fdtop_units_omitted); 0: no limit")
	fs.BoolVar(&opts.Probe, "probe", false, "run the gap meter on a service's loopback TCP listeners while its job runs: refused connections and the time without a listener are measured")
	return cmd
}

// exporterRun serves the live model to Prometheus (internal/exporter).
func exporterRun(opts *exporterOptions) int {
	stderr, mf := opts.IO.Err, opts.Manager
	if err := mf.validate(); err != nil {
		return fail(stderr, "exporter", err)
	}
	inc, err := exporter.UnitFilter(opts.Include)
	if err != nil {
		return fail(stderr, "exporter", clierr.Usage("--unit-include: "+err.Error()))
	}
	exc, err := exporter.UnitFilter(opts.Exclude)
	if err != nil {
		return fail(stderr, "exporter", clierr.Usage("--unit-exclude: "+err.Error()))
	}
	if opts.MaxUnits < 0 {
		return fail(stderr, "exporter", clierr.Usage(fmt.Sprintf("--max-units %d: must be 0 (no limit) or more", opts.MaxUnits)))
	}
	// The address first: a port in use is said at once, not after the
	// manager is read.
	ln, err := exporter.Listen(opts.Listen)
	if err != nil {
		return fail(stderr, "exporter", err)
	}
	defer ln.Close()
	ctx, sig, stop := withSignals(context.Background())
	defer stop()
	client, b, err := mf.connect(ctx, opts.Patterns)
	if err != nil {
		return sig.exit(failUnlessSignalled(stderr, "exporter", sig, err))
	}
	defer client.Close()
	sub, err := client.Subscribe(ctx)
	if err != nil {
		return sig.exit(failUnlessSignalled(stderr, "exporter", sig, fmt.Errorf("subscribe: %w", err)))
	}
	defer sub.Close()

	exp := exporter.New(exporter.Options{Version: version, Include: inc, Exclude: exc, MaxUnits: opts.MaxUnits, Probe: opts.Probe, Log: stderr,
		Doctor: func(ctx context.Context, snap *inspect.Snapshot) ([]inspect.Finding, error) {
			in, err := live.Doctor(ctx, client, b, live.DoctorOptions{Snapshot: snap, Patterns: opts.Patterns, User: mf.user})
			if err != nil {
				return nil, err
			}
			return inspect.Diagnose(in), nil
		}})
	w := live.NewWatcher(b, sub, live.WatcherOptions{Interval: exporterInterval, OnSnapshot: exp.OnSnapshot, OnView: exp.OnView})
	if opts.Probe {
		w.Probe = func(string) bool { return true }
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- exporter.Serve(ctx, ln, exporter.Gatherer(exp), stderr) }()
	runErr := make(chan error, 1)
	go func() { runErr <- exp.Run(ctx, w) }()
	select {
	case err = <-serveErr:
	case err = <-runErr:
	}
	stop()
	if err != nil {
		return sig.exit(failUnlessSignalled(stderr, "exporter", sig, err))
	}
	return sig.exit(exitOK)
}
