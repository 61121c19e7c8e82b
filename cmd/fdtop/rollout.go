package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/fdtop/fdtop/internal/clierr"
	"github.com/fdtop/fdtop/internal/fleet"
	"github.com/fdtop/fdtop/internal/live"
	"github.com/fdtop/fdtop/internal/termsafe"
	"github.com/spf13/cobra"
)

// rolloutOptions are `fdtop rollout`'s flags and unit.
type rolloutOptions struct {
	IO         *ioStreams
	Manager    managerFlags
	Fleet      fleetFlags
	Unit       string
	Probe      bool
	MaxRefused int
	MaxDropped int
	Pause      time.Duration
	JSON       bool
	Timeout    time.Duration
}

// NewCmdRollout is `fdtop rollout`.
func NewCmdRollout(ios *ioStreams, runF func(*rolloutOptions) int) *cobra.Command {
	opts := &rolloutOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "rollout UNIT [-H HOSTS | --hosts-file FILE] [--probe] [--max-refused N] [--max-dropped N] [--pause D] [--json]",
		Short: "restart UNIT host by host, halting at the first host whose handoff verdict breaks the budget",
		Long: `Restarts UNIT host by host (the local manager without -H); after each
restart waits for its handoff verdict and stops at the first host whose
verdict breaks the budget (default: listener kept, 0 refused, 0 dropped),
touching no further host. Every host is checked first (reachable, the unit
there): nothing is restarted unless all are.

Exit status: 0 every host passed, 1 halted (or not started), 2 usage error.
Ctrl-C stops after the current host (exit 130); a second Ctrl-C cuts it short.`,
		Example: `  fdtop rollout web.service -H web1,web2,web3 --probe
  fdtop rollout web.socket --hosts-file fleet.txt --max-dropped 2 --json`,
		Args: exactArgs(1, "UNIT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Unit = args[0]
			if runF != nil {
				return exitStatus(runF(opts))
			}
			return exitStatus(rolloutRun(opts))
		},
	}
	fs := cmd.Flags()
	opts.Manager.register(fs)
	cmd.ValidArgsFunction = opts.Manager.completeUnits
	opts.Fleet.register(fs)
	_ = cmd.RegisterFlagCompletionFunc("host", completeHosts)
	fs.BoolVar(&opts.Probe, "probe", false, "run the gap meter on the unit's loopback TCP listeners during each restart (counts refusals)")
	fs.IntVar(&opts.MaxRefused, "max-refused", 0, "refusals a host may show and pass (a replaced listener passes only with --probe and `N` > 0)")
	fs.IntVar(&opts.MaxDropped, "max-dropped", 0, "dropped connections a host may show and pass (`N`)")
	fs.DurationVar(&opts.Pause, "pause", 0, "wait `D` between hosts")
	fs.BoolVar(&opts.JSON, "json", false, "one JSON object per host (schema in docs/json.md)")
	fs.DurationVar(&opts.Timeout, "timeout", 2*time.Minute, "how long a host's restart and verdict may take (`D`)")
	return cmd
}

// rolloutRun is `fdtop rollout`.
func rolloutRun(opts *rolloutOptions) int {
	stdout, stderr := opts.IO.Out, opts.IO.Err
	mf, ff := opts.Manager, opts.Fleet
	if err := mf.validate(); err != nil {
		return fail(stderr, "rollout", err)
	}
	if opts.MaxRefused < 0 || opts.MaxDropped < 0 || opts.Pause < 0 || opts.Timeout <= 0 {
		return fail(stderr, "rollout", clierr.Usage("--max-refused, --max-dropped and --pause must not be negative, --timeout must be positive"))
	}
	unit := opts.Unit
	if !strings.Contains(unit, ".") {
		unit += ".service"
	}
	if strings.ContainsAny(unit, "*?[") {
		return fail(stderr, "rollout", clierr.Usage("UNIT must name one unit, not a pattern"))
	}

	// The first Ctrl-C (or SIGTERM, SIGHUP) stops after the current host
	// (before any restart, at once); a second one cuts the current host
	// short. Either way the exit status is 128+N, as for every command.
	// preCtx (reaching the hosts, finding the unit, waiting between
	// hosts) ends at the first signal; ctx, the current host's work, at
	// the second.
	preCtx, sig, stopSignals := withSignals(context.Background())
	defer stopSignals()
	stopAfter := preCtx.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-sig.second():
			cancel()
		case <-ctx.Done():
		}
	}()

	var hosts []*fleet.RolloutHost
	if ff.remote() {
		f, err := ff.open(preCtx, agentArgs(&mf, 0, []string{unit}))
		if err != nil {
			return sig.exit(failUnlessSignalled(stderr, "rollout", sig, err))
		}
		defer f.Close()
		hosts = f.RolloutHosts()
	} else {
		client, b, err := mf.connect(preCtx, []string{unit})
		if err != nil {
			return sig.exit(failUnlessSignalled(stderr, "rollout", sig, err))
		}
		defer client.Close()
		name, _ := os.Hostname()
		local, stopLocal, err := fleet.LocalHost(ctx, name, live.NewAgentModel(client, b, 2*time.Second), version)
		if err != nil {
			return fail(stderr, "rollout", err)
		}
		defer stopLocal()
		hosts = []*fleet.RolloutHost{local}
	}
	r := &fleet.Rollout{Unit: unit, Probe: opts.Probe, Budget: fleet.Budget{MaxRefused: opts.MaxRefused, MaxDropped: opts.MaxDropped},
		Pause: opts.Pause, Timeout: opts.Timeout, StopAfter: stopAfter, OnLine: func(l fleet.RolloutLine) { printRolloutLine(stdout, l, opts.JSON) }}
	out := r.Run(ctx, preCtx, hosts)
	if !out.Passed {
		fmt.Fprintf(stderr, "fdtop rollout: %s\n", out.Message)
		return sig.exit(exitRuntime)
	}
	if !opts.JSON {
		fmt.Fprintf(stdout, "rollout of %s passed on %d host(s)\n", termsafe.String(unit), out.Hosts)
	}
	return sig.exit(exitOK)
}

// printRolloutLine prints a host's outcome: one JSON object, or a line.
func printRolloutLine(w io.Writer, l fleet.RolloutLine, asJSON bool) {
	if asJSON {
		b, _ := json.Marshal(l)
		w.Write(append(b, '\n'))
		return
	}
	text := strings.ReplaceAll(l.Status, "_", " ")
	if l.Message != "" {
		text += "  " + l.Message
	}
	if l.Reason != "" && l.Status != "passed" {
		text += " — " + l.Reason
	}
	fmt.Fprintf(w, "%s  %s  %s\n", termsafe.String(l.Target), termsafe.String(l.Unit), termsafe.String(text))
}
