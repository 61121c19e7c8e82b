package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/clierr"
	"github.com/fdtop/fdtop/internal/live"
	"github.com/fdtop/fdtop/internal/termsafe"
	"github.com/spf13/pflag"
)

// managerFlags are the flags every command that talks to a manager shares.
type managerFlags struct {
	user    bool
	system  bool
	all     bool
	address string
	proc    string
}

func (m *managerFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&m.user, "user", false, "talk to the user's service manager")
	fs.BoolVar(&m.system, "system", false, "talk to the system manager (the default)")
	fs.BoolVar(&m.all, "all", false, "include inactive units")
	fs.StringVar(&m.address, "address", "", "explicit D-Bus `ADDRESS` of the manager (e.g. unix:path=$XDG_RUNTIME_DIR/systemd/private)")
	fs.StringVar(&m.proc, "proc", "/proc", "procfs root `DIR`")
}

func (m *managerFlags) validate() error {
	if m.user && m.system {
		return clierr.Usage("--user and --system exclude each other")
	}
	return nil
}

// minInterval is the shortest --interval any command accepts: a rescan
// reads every process's descriptors and asks the manager about every unit,
// and far below this fdtop and the manager would do nothing else.
const minInterval = 100 * time.Millisecond

// checkInterval is the one validation of --interval (dashboard and watch).
func checkInterval(d time.Duration) error {
	if d < minInterval {
		return clierr.Usage(fmt.Sprintf("--interval %s: must be at least %s", d, minInterval))
	}
	return nil
}

// manager is the manager and kernel the flags name.
func (m *managerFlags) manager() live.Manager {
	return live.Manager{User: m.user, System: m.system, All: m.all, Address: m.address, Proc: m.proc}
}

// connect opens the manager and the kernel the flags name (live.Connect).
func (m *managerFlags) connect(ctx context.Context, patterns []string) (*dbusclient.Client, *inspect.Builder, error) {
	return live.Connect(ctx, m.manager(), patterns)
}

// connectHostWide is connect for a command whose first snapshot is a
// host-wide pass: the BPF holder pass loads and runs while the manager is
// dialled and read.
func (m *managerFlags) connectHostWide(ctx context.Context, patterns []string) (*dbusclient.Client, *inspect.Builder, error) {
	mm := m.manager()
	mm.WarmHolders = true
	return live.Connect(ctx, mm, patterns)
}

// fail prints a one-line error for a command and returns its exit code.
func fail(w io.Writer, cmd string, err error) int {
	var ue clierr.UsageError
	fmt.Fprintln(w, errorLine(cmd, err))
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitRuntime
}

// failUnlessSignalled is fail, except after a termination signal: then the
// error is the cancellation's echo and fdtop ends quietly.
func failUnlessSignalled(w io.Writer, cmd string, sig *caught, err error) int {
	if sig.signal() != 0 {
		return exitRuntime // replaced by the signal's status
	}
	return fail(w, cmd, err)
}

// errorLine is a command's one-line error: "fdtop CMD: what went wrong"
// ("fdtop: …" for the dashboard).
func errorLine(cmd string, err error) string {
	// One line, and nothing a unit, a service's log or the manager put in
	// the error reaches the terminal raw.
	msg := termsafe.String(clierr.OneLine(err))
	if cmd == "" {
		return "fdtop: " + msg
	}
	return "fdtop " + cmd + ": " + msg
}
