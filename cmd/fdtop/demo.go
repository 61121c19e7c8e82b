package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/session"
	"github.com/fdtop/fdtop/internal/live"
	"github.com/fdtop/fdtop/ui"
	"github.com/spf13/cobra"
)

// demoOptions are `fdtop demo`'s flags.
type demoOptions struct {
	IO           *ioStreams
	Systemd      string
	Dashboard    bool
	ReadOnly     bool
	StartupDelay time.Duration
	Tour         bool
}

// NewCmdDemo is `fdtop demo`.
func NewCmdDemo(ios *ioStreams, runF func(*demoOptions) int) *cobra.Command {
	opts := &demoOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "demo [--systemd PATH] [--startup-delay D] [--dashboard=false] [--tour]",
		Short: "a private systemd user manager with four demo services (plain, activated, handoff, stored listener) and traffic",
		Long: `Starts a private systemd user manager (no root, no host units touched) with
four demo services that answer lines on loopback ports — plain (binds its own
port), activated (socket activation), handoff (socket activation and an fd
store that carries its connections) and stored listener (binds its own port
and keeps the listener in the fd store) — and traffic against each, then opens
the dashboard on it. Ctrl-C (or q) stops the manager and every process it
started.`,
		Example: `  go run ./cmd/fdtop demo
  fdtop demo --systemd "$(demo/scripts/fetch-systemd-254.sh | tail -1)"
  fdtop demo --dashboard=false`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return exitStatus(runF(opts))
			}
			return exitStatus(demoRun(opts))
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&opts.Systemd, "systemd", "", "systemd binary for the sandbox (default: the distribution's; an extracted 254 tree works too)")
	fs.BoolVar(&opts.Dashboard, "dashboard", true, "open the dashboard (false: print the services and traffic counters instead)")
	fs.BoolVar(&opts.ReadOnly, "read-only", false, "no actions in the dashboard")
	fs.DurationVar(&opts.StartupDelay, "startup-delay", 500*time.Millisecond, "simulated start-up work `D` of every demo service")
	fs.BoolVar(&opts.Tour, "tour", false, "a guided tour in the dashboard: restart the four modes one by one (x ends it)")
	return cmd
}

// demoRun starts the sandbox with the demo units and runs until Ctrl-C (or,
// with the dashboard, until the operator quits); the sandbox is torn down
// either way.
func demoRun(opts *demoOptions) int {
	stdout, stderr := opts.IO.Out, opts.IO.Err
	if opts.Tour && (!opts.Dashboard || opts.ReadOnly) {
		fmt.Fprintln(stderr, "fdtop demo: --tour needs the dashboard and its restart key (not with --dashboard=false or --read-only)")
		return exitUsage
	}
	ctx, sig, stop := withSignals(context.Background())
	defer stop()
	s, err := session.Start(ctx, opts.Systemd, opts.StartupDelay)
	if err != nil {
		return sig.exit(failUnlessSignalled(stderr, "demo", sig, err))
	}
	defer s.Close()
	if opts.Dashboard {
		if err := demoDashboard(ctx, s, ui.Options{ReadOnly: opts.ReadOnly, Tour: opts.Tour}); err != nil {
			s.Close()
			return sig.exit(failUnlessSignalled(stderr, "demo", sig, err))
		}
	} else {
		demoPrint(ctx, s, stdout)
	}
	if err := s.Close(); err != nil {
		return sig.exit(fail(stderr, "demo", fmt.Errorf("teardown: %w", err)))
	}
	return sig.exit(exitOK)
}

// demoDashboard opens the live dashboard on the session's manager, with
// the gap meter on and the traffic counters in the demo units' detail;
// opts carries --read-only and --tour.
func demoDashboard(ctx context.Context, s *session.Session, opts ui.Options) error {
	mf := managerFlags{user: true, address: s.Sandbox.Address, proc: "/proc"}
	client, b, err := mf.connect(ctx, []string{"demo-*", demo.Plain.Service(), demo.StoredListener.Service()})
	if err != nil {
		return err
	}
	defer client.Close()
	src, err := live.New(ctx, client, b, live.Options{Interval: ui.DefaultInterval, Targeted: true})
	if err != nil {
		return err
	}
	src.OnePWhenShown(ctx)
	opts.Probe, opts.Title = true, "demo"
	return ui.Run(ctx, s.Source(src), opts)
}

// demoPrint prints how to reach the session's manager and services, then
// the traffic's counters every 2 s until ctx ends.
func demoPrint(ctx context.Context, s *session.Session, stdout io.Writer) {
	fmt.Fprintf(stdout, "fdtop demo: systemd %s user manager running (pid %d)\n", s.Sandbox.Version, s.Sandbox.PID)
	for _, m := range demo.Modes {
		units := m.Service()
		if so := m.Socket(); so != "" {
			units = so + " → " + units
		}
		fmt.Fprintf(stdout, "  %-10s %-21s %s\n", m.Short(), s.Config.Addr(m), units)
	}
	fmt.Fprintf(stdout, "\nPoint systemctl at it:\n  export %s\n  systemctl --user list-sockets\n  systemctl --user restart demo-handoff.service\n", strings.Join(s.Sandbox.Env(), " "))
	fmt.Fprintln(stdout, "\nEach port answers every line with '<pid> <count> <line>' (try: python3 -c \"import socket;s=socket.create_connection(('127.0.0.1',PORT));s.send(b'hi\\n');print(s.recv(99))\").")
	fmt.Fprintf(stdout, "Traffic: %d connections per mode, a line every 100 ms. Ctrl-C stops the manager and every process it started.\n", session.Conns)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(stdout, "fdtop demo: stopping")
			return
		case <-tick.C:
			for _, m := range demo.Modes {
				st := s.Traffic[m].Stats()
				fmt.Fprintf(stdout, "  %-10s pid %-7d connected %d/%d  replies %-6d refused %-4d dropped %-4d counter resets %d\n",
					m.Short(), st.LastPID, st.Connected, session.Conns, st.Replies, st.Refused, st.Dropped, st.CounterResets)
			}
		}
	}
}
