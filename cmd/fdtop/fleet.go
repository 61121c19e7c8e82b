package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/clierr"
	"github.com/fdtop/fdtop/internal/fleet"
	"github.com/fdtop/fdtop/internal/termsafe"
	"github.com/spf13/pflag"
)

// hostList is the value of -H/--host: hosts separated by commas, the flag
// repeatable.
type hostList []string

func (h *hostList) String() string { return strings.Join(*h, ",") }

// Type implements pflag.Value.
func (h *hostList) Type() string { return "hosts" }

// Set implements pflag.Value: hosts separated by commas, added to those
// given before.
func (h *hostList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*h = append(*h, s)
		}
	}
	return nil
}

// fleetFlags are the flags of the commands that reach remote hosts.
type fleetFlags struct {
	hosts     hostList
	hostsFile string
	ssh       string
	push      bool
	sudo      bool
}

func (f *fleetFlags) register(fs *pflag.FlagSet) {
	fs.VarP(&f.hosts, "host", "H", "remote `HOSTS` over ssh: [user@]host[:port], several separated by commas; repeatable")
	fs.StringVar(&f.hostsFile, "hosts-file", "", "read hosts from `FILE`, one per line (# comments)")
	fs.StringVar(&f.ssh, "ssh", "ssh", "the ssh `COMMAND` to reach hosts with, e.g. 'ssh -F ./fleet.conf'")
	fs.BoolVar(&f.push, "push", false, "copy this fdtop to ~/.cache/fdtop/ on hosts that have none speaking its protocol")
	fs.BoolVar(&f.sudo, "sudo", false, "run the remote agent under 'sudo -n' (never prompts: sudo must allow it without a password)")
}

// remote reports whether any host was named.
func (f *fleetFlags) remote() bool { return len(f.hosts) > 0 || f.hostsFile != "" }

// targets reads -H and --hosts-file, in that order.
func (f *fleetFlags) targets() ([]fleet.Target, error) {
	return fleet.Targets(f.hosts, f.hostsFile)
}

// agentOptions are how the fleet starts the agent on each host: args are
// its flags and patterns.
func (f *fleetFlags) agentOptions(args []string) fleet.AgentOptions {
	return fleet.AgentOptions{Args: args, Sudo: f.sudo, Push: f.push, Version: version}
}

// open reaches every host the flags name and starts the agent there.
func (f *fleetFlags) open(ctx context.Context, args []string) (*fleet.Fleet, error) {
	targets, err := f.targets()
	if err != nil {
		return nil, err
	}
	return fleet.Open(ctx, f.ssh, targets, f.agentOptions(args))
}

// agentArgs are the agent's flags: the manager flags and patterns apply on
// each remote as they would here, and interval (0: the agent's default) is
// its rescan interval.
func agentArgs(mf *managerFlags, interval time.Duration, patterns []string) []string {
	var a []string
	if interval > 0 {
		a = append(a, "--interval="+interval.String())
	}
	if mf.user {
		a = append(a, "--user")
	}
	if mf.system {
		a = append(a, "--system")
	}
	if mf.all {
		a = append(a, "--all")
	}
	if mf.address != "" {
		a = append(a, "--address="+mf.address)
	}
	a = append(a, "--")
	return append(a, patterns...)
}

// runRemoteSnapshot prints each host's snapshot: JSON lines carrying
// "target", or a tree per host. Exit 1 when any host failed.
func runRemoteSnapshot(ctx context.Context, ff *fleetFlags, mf *managerFlags, patterns []string, asJSON, full bool, stdout, stderr io.Writer) int {
	f, err := ff.open(ctx, agentArgs(mf, 0, patterns))
	if err != nil {
		return fail(stderr, "snapshot", err)
	}
	defer f.Close()
	snaps := f.Snapshots(ctx, full)
	if ctx.Err() != nil {
		return exitRuntime // interrupted: the signal's exit status, nothing half-said
	}
	code := exitOK
	enc := json.NewEncoder(stdout)
	for _, s := range snaps {
		name := termsafe.String(s.Target)
		if s.Err != nil {
			code = exitRuntime
			fmt.Fprintf(stderr, "fdtop snapshot: %s: %s\n", name, termsafe.String(clierr.OneLine(s.Err)))
		}
		if asJSON {
			if err := enc.Encode(s); err != nil {
				return exitRuntime
			}
			continue
		}
		fmt.Fprintf(stdout, "== %s ==\n", name)
		if s.Err != nil {
			fmt.Fprintf(stdout, "unreachable: %s\n\n", termsafe.String(clierr.OneLine(s.Err)))
			continue
		}
		if err := inspect.WriteTree(stdout, s.Snapshot); err != nil {
			return exitRuntime
		}
		fmt.Fprintln(stdout)
	}
	return code
}

// runRemoteWatch prints every host's timeline as it happens, each line
// tagged with its host. A host lost is said once; the others go on. A host
// not reached at start is said at once and retried unless no retry could
// change why; exit 1 at once when that is every host.
func runRemoteWatch(ctx context.Context, opts *watchOptions) int {
	ff, stdout, stderr, asJSON := &opts.Fleet, opts.IO.Out, opts.IO.Err, opts.JSON
	var interval time.Duration
	if opts.IntervalSet {
		interval = opts.Interval
	}
	f, err := ff.open(ctx, agentArgs(&opts.Manager, interval, opts.Patterns))
	if err != nil {
		return fail(stderr, "watch", err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rec := &recorder{path: opts.Record}
	defer rec.close()
	out := make(chan fleet.HostEvent, 1024)
	followed, wait := f.Watch(ctx, out, func(host, msg string) {
		fmt.Fprintf(stderr, "fdtop watch: %s: %s\n", termsafe.String(host), termsafe.String(msg))
	})
	defer wait() // after cancel
	if followed == 0 {
		return exitRuntime // every host failed in a way no retry changes
	}
	for {
		select {
		case <-ctx.Done():
			return exitOK
		case e := <-out:
			line, err := json.Marshal(e)
			if err != nil {
				return fail(stderr, "watch", err)
			}
			line = append(line, '\n')
			if err := rec.write(line); err != nil {
				return fail(stderr, "watch", err)
			}
			if asJSON {
				_, err = stdout.Write(line)
			} else {
				_, err = fmt.Fprintf(stdout, "%s  %s\n", termsafe.String(e.Target), termsafe.String(inspect.FormatEvent(e.Event)))
			}
			if err != nil {
				return exitRuntime
			}
		}
	}
}
