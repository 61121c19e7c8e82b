package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
)

// runDemo starts the sandbox with the demo units and waits for Ctrl-C.
func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fdtop demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	systemd := fs.String("systemd", "", "systemd binary for the sandbox (default: the distribution's; an extracted 254 tree works too)")
	delay := fs.Duration("startup-delay", 500*time.Millisecond, "simulated start-up work of every demo service")
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	env, err := startDemo(ctx, *systemd, *delay, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "fdtop demo: %v\n", err)
		return exitRuntime
	}
	defer env.Close()

	fmt.Fprintf(stdout, "fdtop demo: systemd %s user manager running (pid %d)\n", env.sb.Version, env.sb.PID)
	for _, m := range demo.Modes {
		units := m.Service()
		if s := m.Socket(); s != "" {
			units = s + " → " + units
		}
		fmt.Fprintf(stdout, "  %-10s %-21s %s\n", m, env.cfg.Addr(m), units)
	}
	fmt.Fprintf(stdout, "\nPoint systemctl at it:\n  export %s\n  systemctl --user list-sockets\n  systemctl --user restart demo-handoff.service\n", strings.Join(env.sb.Env(), " "))
	fmt.Fprintln(stdout, "\nTalk to a service:  python3 -c 'import socket,sys; ...' or any line client on the ports above.")
	fmt.Fprintln(stdout, "Ctrl-C stops the manager and every process it started.")
	<-ctx.Done()
	fmt.Fprintln(stdout, "fdtop demo: stopping")
	if err := env.Close(); err != nil {
		fmt.Fprintf(stderr, "fdtop demo: teardown: %v\n", err)
		return exitRuntime
	}
	return exitOK
}

// demoEnv is a running demo: the sandbox and its units.
type demoEnv struct {
	sb  *sandbox.Sandbox
	cfg demo.Config
}

// Close tears the sandbox down.
func (d *demoEnv) Close() error { return d.sb.Close() }

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
	if err := demo.Install(ctx, sb, cfg); err != nil {
		sb.Close()
		return nil, fmt.Errorf("install demo units: %w", err)
	}
	return &demoEnv{sb: sb, cfg: cfg}, nil
}
