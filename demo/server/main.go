package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fdtop/fdtop/demo/activation"
)

// DefaultStartupDelay is the simulated start-up work when --startup-delay
// is not given.
const DefaultStartupDelay = 500 * time.Millisecond

// Main runs the demo server with command-line arguments args (without the
// program or subcommand name) until SIGTERM or SIGINT, logging to stderr.
// It returns the process exit status: 0 after a clean stop, 1 on failure,
// 2 on bad usage. stdout is not used by the server itself.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mode := fs.String("mode", string(ModePlain), "plain, activated, handoff or stored-listener")
	listen := fs.String("listen", "", "TCP address to bind in plain mode (and in stored-listener mode when the store has no listener), e.g. 127.0.0.1:8001")
	delay := fs.Duration("startup-delay", DefaultStartupDelay, "simulated start-up work before serving")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg := Config{Mode: Mode(*mode), Listen: *listen, StartupDelay: *delay}
	if err := cfg.validate(); err != nil {
		fmt.Fprintf(stderr, "demo-server: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("pid", os.Getpid())

	// Take the signals before anything slow, so a stop is never missed.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	env := environment{pid: os.Getpid()}
	if cfg.Mode == ModeHandoff {
		// Taken before anything slow too: unhandled, they would kill it.
		extra := make(chan os.Signal, 8)
		signal.Notify(extra, syscall.SIGUSR1, syscall.SIGUSR2)
		env.extra = extra
	}
	passed, err := activation.ListenFDsWithNames(true)
	switch {
	case errors.Is(err, activation.ErrOtherProcess):
		log.Warn("ignoring inherited LISTEN_FDS", "err", err)
	case err != nil:
		log.Error("cannot take passed fds", "err", err)
		return 1
	}
	env.passed = passed
	env.notifier, err = activation.NotifierFromEnv()
	switch {
	case errors.Is(err, activation.ErrNoNotifySocket):
		log.Info("no NOTIFY_SOCKET: not sending readiness")
	case err != nil:
		log.Warn("bad NOTIFY_SOCKET, not sending notifications", "err", err)
	}

	if err := run(ctx, cfg, env, log); err != nil {
		log.Error("demo server failed", "err", err)
		return 1
	}
	return 0
}

func (c Config) validate() error {
	switch c.Mode {
	case ModePlain, ModeStoredListener:
		if c.Listen == "" {
			return fmt.Errorf("--mode %s needs --listen ADDR", c.Mode)
		}
	case ModeActivated, ModeHandoff:
		if c.Listen != "" {
			return fmt.Errorf("--listen is for plain and stored-listener modes: --mode %s takes its listener from the socket unit", c.Mode)
		}
	default:
		return fmt.Errorf("--mode %q: want plain, activated, handoff or stored-listener", c.Mode)
	}
	if c.StartupDelay < 0 {
		return fmt.Errorf("--startup-delay %v: negative", c.StartupDelay)
	}
	return nil
}
