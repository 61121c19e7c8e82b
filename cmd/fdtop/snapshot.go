package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"

	"github.com/fdtop/fdtop/inspect"
)

// runSnapshot prints one joined snapshot as a tree or as JSON.
func runSnapshot(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fdtop snapshot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		io.WriteString(stderr, "Usage: fdtop snapshot [--user|--system] [--all] [--json] [-H HOSTS] [PATTERN...]\n\n")
		fs.PrintDefaults()
	}
	var mf managerFlags
	mf.register(fs)
	var ff fleetFlags
	ff.register(fs)
	asJSON := fs.Bool("json", false, "print one JSON object (schema in README.md)")
	targeted := fs.Bool("targeted", false, "scan only the manager's and the units' processes (faster; misses holders outside the units)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if err := mf.validate(); err != nil {
		return fail(stderr, "snapshot", err)
	}
	ctx, sig, stop := withSignals(context.Background())
	defer stop()
	if ff.remote() {
		return sig.exit(runRemoteSnapshot(ctx, &ff, &mf, fs.Args(), *asJSON, !*targeted, stdout, stderr))
	}
	return sig.exit(snapshot(ctx, sig, mf, fs.Args(), *asJSON, *targeted, stdout, stderr))
}

// snapshot prints one snapshot once the flags are checked.
func snapshot(ctx context.Context, sig *caught, mf managerFlags, patterns []string, asJSON, targeted bool, stdout, stderr io.Writer) int {
	client, b, err := mf.connect(ctx, patterns)
	if err != nil {
		return failUnlessSignalled(stderr, "snapshot", sig, err)
	}
	defer client.Close()
	snap, err := b.Snapshot(ctx, inspect.SnapshotOptions{FullScan: !targeted})
	if err != nil {
		return failUnlessSignalled(stderr, "snapshot", sig, err)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(snap); err != nil {
			return fail(stderr, "snapshot", err)
		}
		return exitOK
	}
	if err := inspect.WriteTree(stdout, snap); err != nil {
		return fail(stderr, "snapshot", err)
	}
	return exitOK
}
