package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/traffic"
	"github.com/fdtop/fdtop/ui"
)

// runDemo starts the sandbox with the demo units and waits for Ctrl-C.
func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fdtop demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	systemd := fs.String("systemd", "", "systemd binary for the sandbox (default: the distribution's; an extracted 254 tree works too)")
	dashboard := fs.Bool("dashboard", true, "open the dashboard (false: print the services and traffic counters instead)")
	readOnly := fs.Bool("read-only", false, "no actions in the dashboard")
	delay := fs.Duration("startup-delay", 500*time.Millisecond, "simulated start-up work of every demo service")
	tour := fs.Bool("tour", false, "a guided tour in the dashboard: restart the four modes one by one (x ends it)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fdtop demo: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *tour && (!*dashboard || *readOnly) {
		fmt.Fprintln(stderr, "fdtop demo: --tour needs the dashboard and its restart key (not with --dashboard=false or --read-only)")
		return exitUsage
	}
	ctx, sig, stop := withSignals(context.Background())
	defer stop()
	return sig.exit(runDemoIn(ctx, sig, *systemd, *delay, *dashboard, ui.Options{ReadOnly: *readOnly, Tour: *tour}, stdout, stderr))
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
	src, err := newLiveSource(ctx, client, b, ui.DefaultInterval, true)
	if err != nil {
		return err
	}
	src.onePWhenShown(ctx)
	opts.Probe, opts.Title = true, "demo"
	return ui.Run(ctx, src.withDemo(d), opts)
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
