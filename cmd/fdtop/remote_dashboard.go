package main

import (
	"context"
	"fmt"
	"time"

	"github.com/fdtop/fdtop/ui"
)

// remoteDashboard runs the dashboard on remote hosts: the fleet view with
// several, one host's own view with one. Every ControlMaster opens before
// the dashboard takes the terminal, so ssh can ask for a password or a
// host key on it; a host that fails is shown unreachable and retried (or
// failed, when no retry could change why) and the others go on.
func remoteDashboard(ctx context.Context, sig *caught, opts *dashboardOptions) int {
	ff, df, patterns, stderr := &opts.Fleet, opts.View, opts.Patterns, opts.IO.Err
	var interval time.Duration
	if opts.IntervalSet {
		interval = df.interval
	}
	targets, err := ff.targets()
	if err != nil {
		return fail(stderr, "", err)
	}
	f, err := ff.open(ctx, agentArgs(&opts.Manager, interval, patterns))
	if err != nil {
		return failUnlessSignalled(stderr, "", sig, err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(ctx)
	var src ui.Source
	var wait func()
	if len(targets) > 1 {
		src, wait = f.FleetSource(ctx)
	} else if src, wait, err = f.RemoteSource(ctx); err != nil {
		cancel()
		return failUnlessSignalled(stderr, "", sig, err)
	}
	defer wait() // after cancel below
	defer cancel()
	uiOpts := ui.Options{ReadOnly: df.readOnly, Probe: df.probe, Interval: df.interval, Patterns: patterns}
	if err := ui.Run(ctx, src, uiOpts); err != nil {
		return failUnlessSignalled(stderr, "", sig, fmt.Errorf("%w", err))
	}
	return exitOK
}
