package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/traffic"
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
		Short: "a private systemd user manager with three demo services (plain, activated, handoff) and traffic",
		Long: `Starts a private systemd user manager (no root, no host units touched) with
three demo services that answer lines on loopback ports — plain (binds its own
port), activated (socket activation) and handoff (socket activation and an fd
store) — and traffic against each, then opens the dashboard on it. Ctrl-C (or
q) stops the manager and every process it started.`,
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

// demoRun starts the sandbox with the demo units and waits for Ctrl-C.
func demoRun(opts *demoOptions) int {
	if opts.Tour && (!opts.Dashboard || opts.ReadOnly) {
		fmt.Fprintln(opts.IO.Err, "fdtop demo: --tour needs the dashboard and its restart key (not with --dashboard=false or --read-only)")
		return exitUsage
	}
	ctx, sig, stop := withSignals(context.Background())
	defer stop()
	return sig.exit(runDemoIn(ctx, sig, opts.Systemd, opts.StartupDelay, opts.Dashboard, ui.Options{ReadOnly: opts.ReadOnly, Tour: opts.Tour}, opts.IO.Out, opts.IO.Err))
}

// runDemoIn runs the demo until ctx ends (a signal) or, with the
// dashboard, the operator quits; the sandbox is torn down either way.
func runDemoIn(ctx context.Context, sig *caught, systemd string, delay time.Duration, dashboard bool, opts ui.Options, stdout, stderr io.Writer) int {
	env, err := startDemo(ctx, systemd, delay, stderr)
	if err != nil {
		return failUnlessSignalled(stderr, "demo", sig, err)
	}
	defer env.Close()
	if dashboard {
		if err := env.dashboard(ctx, opts); err != nil {
			env.Close()
			return failUnlessSignalled(stderr, "demo", sig, err)
		}
		if err := env.Close(); err != nil {
			return fail(stderr, "demo", fmt.Errorf("teardown: %w", err))
		}
		return exitOK
	}

	fmt.Fprintf(stdout, "fdtop demo: systemd %s user manager running (pid %d)\n", env.sb.Version, env.sb.PID)
	for _, m := range demo.Modes {
		units := m.Service()
		if s := m.Socket(); s != "" {
			units = s + " → " + units
		}
		fmt.Fprintf(stdout, "  %-10s %-21s %s\n", m.Short(), env.cfg.Addr(m), units)
	}
	fmt.Fprintf(stdout, "\nPoint systemctl at it:\n  export %s\n  systemctl --user list-sockets\n  systemctl --user restart demo-handoff.service\n", strings.Join(env.sb.Env(), " "))
	fmt.Fprintln(stdout, "\nEach port answers every line with '<pid> <count> <line>' (try: python3 -c \"import socket;s=socket.create_connection(('127.0.0.1',PORT));s.send(b'hi\\n');print(s.recv(99))\").")
	fmt.Fprintln(stdout, "Traffic: 4 connections per mode, a line every 100 ms. Ctrl-C stops the manager and every process it started.")
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			for _, m := range demo.Modes {
				st := env.traffic[m].Stats()
				fmt.Fprintf(stdout, "  %-10s pid %-7d connected %d/4  replies %-6d refused %-4d dropped %-4d counter resets %d\n",
					m.Short(), st.LastPID, st.Connected, st.Replies, st.Refused, st.Dropped, st.CounterResets)
			}
		}
	}
	fmt.Fprintln(stdout, "fdtop demo: stopping")
	if err := env.Close(); err != nil {
		return fail(stderr, "demo", fmt.Errorf("teardown: %w", err))
	}
	return exitOK
}

// demoConns is how many connections the traffic generator holds per mode.
const demoConns = 4

// demoEnv is a running demo: the sandbox, its units and the traffic
// generators (one per mode).
type demoEnv struct {
	sb      *sandbox.Sandbox
	cfg     demo.Config
	traffic map[demo.Mode]*traffic.Generator
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// Close stops the traffic and tears the sandbox down.
func (d *demoEnv) Close() error {
	if d.stop != nil {
		d.stop()
		d.wg.Wait()
	}
	return d.sb.Close()
}

// dashboard opens the live dashboard on the sandbox's manager, with the
// gap meter on and the traffic counters in the demo units' detail; opts
// carries --read-only and --tour.
func (d *demoEnv) dashboard(ctx context.Context, opts ui.Options) error {
	mf := managerFlags{user: true, address: d.sb.Address, proc: "/proc"}
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
	return ui.Run(ctx, withDemo(src, d), opts)
}

// startTraffic starts one generator per mode: a few connections each,
// sending a line every 100 ms, for at most a day.
func (d *demoEnv) startTraffic() error {
	ctx, cancel := context.WithCancel(context.Background())
	d.stop = cancel
	d.traffic = map[demo.Mode]*traffic.Generator{}
	for _, m := range demo.Modes {
		g, err := traffic.New(traffic.Config{
			Addr:        d.cfg.Addr(m),
			Conns:       demoConns,
			Interval:    100 * time.Millisecond,
			MaxDuration: 24 * time.Hour,
		})
		if err != nil {
			return fmt.Errorf("traffic for %s: %w", m, err)
		}
		d.traffic[m] = g
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			_ = g.Run(ctx)
		}()
	}
	return nil
}

// startDemo starts the sandbox and installs the demo units in it.
func startDemo(ctx context.Context, systemd string, delay time.Duration, log io.Writer) (*demoEnv, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the fdtop binary: %w", err)
	}
	opts := sandbox.OptionsFor(self, systemd)
	sb, err := sandbox.Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	cfg, err := demo.NewConfig(self)
	if err != nil {
		sb.Close()
		return nil, err
	}
	cfg.StartupDelay = delay
	cfg.PreserveStore = demo.KnowsStorePreserve(sb.Version)
	cfg.LogDir = sb.Dir // removed with the sandbox
	if err := demo.Install(ctx, sb, cfg); err != nil {
		sb.Close()
		return nil, fmt.Errorf("install demo units: %w", err)
	}
	env := &demoEnv{sb: sb, cfg: cfg}
	if err := env.startTraffic(); err != nil {
		env.Close()
		return nil, err
	}
	return env, nil
}

// demoSource is the live model of `fdtop demo` with the traffic
// generators' counters (ui.DemoSource), which the dashboard reads every
// fast interval. Only the demo has them: the live model knows nothing of
// the demo.
type demoSource struct {
	*live.Source
	traffic map[string]*traffic.Generator // service -> generator
	conns   map[string]int
}

// DemoCounters implements ui.DemoSource for `fdtop demo`.
func (s demoSource) DemoCounters() map[string]ui.DemoCounters {
	out := map[string]ui.DemoCounters{}
	for svc, g := range s.traffic {
		st := g.Stats()
		out[svc] = ui.DemoCounters{
			Conns: s.conns[svc], Connected: st.Connected, Sent: st.Sent, Replies: st.Replies,
			Refused: st.Refused, Dropped: st.Dropped, CounterResets: st.CounterResets,
			LastPID: st.LastPID, MaxLatency: st.MaxLatency,
		}
	}
	return out
}

// withDemo is src with the demo's traffic generators.
func withDemo(src *live.Source, env *demoEnv) demoSource {
	d := demoSource{Source: src, traffic: map[string]*traffic.Generator{}, conns: map[string]int{}}
	for m, g := range env.traffic {
		d.traffic[m.Service()] = g
		d.conns[m.Service()] = demoConns
	}
	return d
}
