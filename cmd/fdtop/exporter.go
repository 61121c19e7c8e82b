package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/exporter"
	"github.com/fdtop/fdtop/procfs"
)

// exporterInterval is the live model's interval in `fdtop exporter`, as
// the dashboard's and watch's default.
const exporterInterval = 2 * time.Second

// runExporter serves the live model to Prometheus (internal/exporter).
func runExporter(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fdtop exporter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		io.WriteString(stderr, "Usage: fdtop exporter [--listen ADDR] [--user|--system] [--address A] [--unit-include RE] [--unit-exclude RE] [--max-units N] [--probe] [PATTERN...]\n\n"+
			"Serves /metrics for Prometheus: fd stores, listener holders, handoff verdicts and doctor findings\n"+
			"of the socket units (and their services) matching PATTERN (all by default). See docs/exporter.md.\n\n")
		fs.PrintDefaults()
	}
	var mf managerFlags
	mf.register(fs)
	listen := fs.String("listen", exporter.DefaultListen, "address to serve /metrics on (loopback by default; ':9786' to expose it)")
	include := fs.String("unit-include", "", "export only the units whose whole name matches this regular expression")
	exclude := fs.String("unit-exclude", "", "leave out the units whose whole name matches this regular expression")
	maxUnits := fs.Int("max-units", 1000, "export at most N units (by name; the rest are counted in fdtop_units_omitted); 0: no limit")
	probe := fs.Bool("probe", false, "run the gap meter on a service's loopback TCP listeners while its job runs: refused connections and the time without a listener are measured")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if err := mf.validate(); err != nil {
		return fail(stderr, "exporter", err)
	}
	inc, err := exporter.UnitFilter(*include)
	if err != nil {
		return fail(stderr, "exporter", usageError{"--unit-include: " + err.Error()})
	}
	exc, err := exporter.UnitFilter(*exclude)
	if err != nil {
		return fail(stderr, "exporter", usageError{"--unit-exclude: " + err.Error()})
	}
	if *maxUnits < 0 {
		return fail(stderr, "exporter", usageError{fmt.Sprintf("--max-units %d: must be 0 (no limit) or more", *maxUnits)})
	}
	// The address first: a port in use is said at once, not after the
	// manager is read.
	ln, err := exporter.Listen(*listen)
	if err != nil {
		return fail(stderr, "exporter", err)
	}
	defer ln.Close()
	ctx, sig, stop := withSignals(context.Background())
	defer stop()
	client, b, err := mf.connect(ctx, fs.Args())
	if err != nil {
		return sig.exit(failUnlessSignalled(stderr, "exporter", sig, err))
	}
	defer client.Close()
	sub, err := client.Subscribe(ctx)
	if err != nil {
		return sig.exit(failUnlessSignalled(stderr, "exporter", sig, fmt.Errorf("subscribe: %w", err)))
	}
	defer sub.Close()

	patterns := fs.Args()
	exp := exporter.New(exporter.Options{Version: version, Include: inc, Exclude: exc, MaxUnits: *maxUnits, Probe: *probe, Log: stderr,
		Doctor: func(ctx context.Context, snap *inspect.Snapshot) ([]inspect.Finding, error) {
			in, err := gatherDoctor(ctx, client, b, snap, patterns, mf.user, false)
			if err != nil {
				return nil, err
			}
			return inspect.Diagnose(in), nil
		}})
	w := &inspect.Watcher{Snapshots: b, Events: sub, Interval: exporterInterval, FullEvery: fullEvery, Shows: b.Names,
		OnSnapshot: exp.OnSnapshot, OnView: exp.OnView}
	if k, ok := b.Kernel.(procfs.FS); ok {
		w.Alive = inspect.SocketsAlive(k.SocketsByInode)
		w.FDCount, w.SocketInode = k.FDCount, k.SocketInode
	}
	if *probe {
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
