package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/procfs"
)

// managerFlags are the flags every command that talks to a manager shares.
type managerFlags struct {
	user    bool
	system  bool
	all     bool
	address string
	proc    string
}

func (m *managerFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&m.user, "user", false, "talk to the user's service manager")
	fs.BoolVar(&m.system, "system", false, "talk to the system manager (the default)")
	fs.BoolVar(&m.all, "all", false, "include inactive units")
	fs.StringVar(&m.address, "address", "", "explicit D-Bus address of the manager (e.g. unix:path=$XDG_RUNTIME_DIR/systemd/private)")
	fs.StringVar(&m.proc, "proc", "/proc", "procfs root")
}

// usageError is a command line mistake: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func (m *managerFlags) validate() error {
	if m.user && m.system {
		return usageError{"--user and --system exclude each other"}
	}
	return nil
}

func (m *managerFlags) scope() string {
	if m.user {
		return "user"
	}
	return "system"
}

// connect opens the manager and the kernel, with a one-line error that
// says what to do when no manager answers.
func (m *managerFlags) connect(ctx context.Context, patterns []string) (*dbusclient.Client, *inspect.Builder, error) {
	opts := dbusclient.Options{Scope: dbusclient.System, Address: m.address}
	if m.user {
		opts.Scope = dbusclient.User
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	client, err := dbusclient.Connect(cctx, opts)
	if err != nil {
		if m.address != "" {
			return nil, nil, fmt.Errorf("no systemd manager answers at %s: %v", m.address, err)
		}
		if m.user {
			return nil, nil, fmt.Errorf("no user manager answers (is 'systemd --user' running for this user? XDG_RUNTIME_DIR set?); try 'fdtop demo' for a private one: %v", err)
		}
		return nil, nil, fmt.Errorf("no system manager answers (systemd is not PID 1 here?); try 'fdtop --user', or 'fdtop demo' for a private manager: %v", err)
	}
	fs, err := procfs.New(m.proc)
	if err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("open %s: %w", m.proc, err)
	}
	b := &inspect.Builder{Systemd: client, Kernel: fs, Scope: m.scope(), Patterns: patterns, All: m.all}
	for _, p := range patterns {
		if strings.HasSuffix(p, ".service") && !strings.ContainsAny(p, "*?[") {
			b.ExtraServices = append(b.ExtraServices, p) // named explicitly: show it
		}
	}
	return client, b, nil
}

// parseFlags parses a subcommand's flags, turning -h into exit 0 and a
// mistake into exit 2.
func parseFlags(fs *flag.FlagSet, args []string) (exit int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return 0, true
}

// fail prints a one-line error for a command and returns its exit code.
func fail(w io.Writer, cmd string, err error) int {
	var ue usageError
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	fmt.Fprintf(w, "fdtop %s: %s\n", cmd, msg)
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitRuntime
}
