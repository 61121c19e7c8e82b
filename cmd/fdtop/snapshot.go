package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/fdtop/fdtop/inspect"
)

// runSnapshot prints one joined snapshot as a tree or as JSON.
func runSnapshot(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fdtop snapshot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		io.WriteString(stderr, "Usage: fdtop snapshot [--user|--system] [--all] [--json] [PATTERN...]\n\n")
		fs.PrintDefaults()
	}
	var mf managerFlags
	mf.register(fs)
	asJSON := fs.Bool("json", false, "print one JSON object (schema in README.md)")
	targeted := fs.Bool("targeted", false, "scan only the manager's and the units' processes (faster; misses holders outside the units)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if err := mf.validate(); err != nil {
		return fail(stderr, "snapshot", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	client, b, err := mf.connect(ctx, fs.Args())
	if err != nil {
		return fail(stderr, "snapshot", err)
	}
	defer client.Close()
	snap, err := b.Snapshot(ctx, inspect.SnapshotOptions{FullScan: !*targeted})
	if err != nil {
		return fail(stderr, "snapshot", err)
	}
	if *asJSON {
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
