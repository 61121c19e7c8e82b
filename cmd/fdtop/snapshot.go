package main

import (
	"context"
	"encoding/json"
	"io"

	"github.com/fdtop/fdtop/inspect"
	"github.com/spf13/cobra"
)

// snapshotOptions are `fdtop snapshot`'s flags and patterns.
type snapshotOptions struct {
	IO       *ioStreams
	Manager  managerFlags
	Fleet    fleetFlags
	Patterns []string
	JSON     bool
	Targeted bool
}

// NewCmdSnapshot is `fdtop snapshot`.
func NewCmdSnapshot(ios *ioStreams, runF func(*snapshotOptions) int) *cobra.Command {
	opts := &snapshotOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "snapshot [--user|--system] [--all] [--json] [-H HOSTS] [PATTERN...]",
		Short: "one joined picture: listeners, holders, fd stores, connections",
		Long: `Prints one joined picture of the units matching the patterns (every socket
unit and the services they activate without one) as a tree, or as one JSON
object (docs/json.md); with -H, one per host, each JSON line carrying "target".`,
		Example: `  fdtop snapshot --user 'web*'
  fdtop snapshot 'web*' --json
  fdtop snapshot -H web1,web2 --json 'web*'`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Patterns = args
			if runF != nil {
				return exitStatus(runF(opts))
			}
			return exitStatus(snapshotRun(opts))
		},
	}
	fs := cmd.Flags()
	opts.Manager.register(fs)
	cmd.ValidArgsFunction = opts.Manager.completeUnits
	opts.Fleet.register(fs)
	_ = cmd.RegisterFlagCompletionFunc("host", completeHosts)
	fs.BoolVar(&opts.JSON, "json", false, "print one JSON object (schema in docs/json.md)")
	fs.BoolVar(&opts.Targeted, "targeted", false, "scan only the manager's and the units' processes (faster; misses holders outside the units)")
	return cmd
}

// snapshotRun prints one joined snapshot as a tree or as JSON.
func snapshotRun(opts *snapshotOptions) int {
	stdout, stderr := opts.IO.Out, opts.IO.Err
	if err := opts.Manager.validate(); err != nil {
		return fail(stderr, "snapshot", err)
	}
	ctx, sig, stop := withSignals(context.Background())
	defer stop()
	if opts.Fleet.remote() {
		return sig.exit(runRemoteSnapshot(ctx, &opts.Fleet, &opts.Manager, opts.Patterns, opts.JSON, !opts.Targeted, stdout, stderr))
	}
	return sig.exit(snapshot(ctx, sig, opts.Manager, opts.Patterns, opts.JSON, opts.Targeted, stdout, stderr))
}

// snapshot prints one snapshot once the flags are checked.
func snapshot(ctx context.Context, sig *caught, mf managerFlags, patterns []string, asJSON, targeted bool, stdout, stderr io.Writer) int {
	connect := mf.connectHostWide
	if targeted {
		connect = mf.connect
	}
	client, b, err := connect(ctx, patterns)
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
