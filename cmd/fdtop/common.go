package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/fdtop/fdtop/internal/clierr"
	"io"
	"os"
	"strings"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/termsafe"
	"github.com/fdtop/fdtop/procfs"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
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

func (m *managerFlags) scope() string {
	if m.user {
		return "user"
	}
	return "system"
}

// connect opens the manager and the kernel, with a one-line error that
// says what to do when no manager answers.
func (m *managerFlags) connect(ctx context.Context, patterns []string) (*dbusclient.Client, *inspect.Builder, error) {
	fs, err := openProc(m.proc)
	if err != nil {
		return nil, nil, err
	}
	opts := dbusclient.Options{Scope: dbusclient.System, Address: m.address}
	if m.user {
		opts.Scope = dbusclient.User
	}
	timeout := 10 * time.Second
	hint := ""
	if m.address != "" {
		hint = ownerOnlyHint(m.address)
	}
	if hint != "" {
		// It will most likely refuse us: do not retry for long.
		timeout = time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client, err := dbusclient.Connect(cctx, opts)
	if err != nil {
		if hint != "" {
			return nil, nil, fmt.Errorf("the manager at %s refused the connection (%v): %s", m.address, err, hint)
		}
		if errors.Is(err, dbusclient.ErrConnectionReset) {
			// It is there, but restarting or going away: say that.
			where := "the " + m.scope() + " manager"
			if m.address != "" {
				where = "the manager at " + m.address
			}
			return nil, nil, fmt.Errorf("%s did not stay connected: %v", where, err)
		}
		if m.address != "" {
			return nil, nil, fmt.Errorf("no systemd manager answers at %s: %v", m.address, err)
		}
		if m.user {
			return nil, nil, fmt.Errorf("no user manager answers (is 'systemd --user' running for this user? XDG_RUNTIME_DIR set?); try 'fdtop demo' for a private one: %v", err)
		}
		return nil, nil, fmt.Errorf("no system manager answers (systemd is not PID 1 here?); try 'fdtop --user', or 'fdtop demo' for a private manager: %v", err)
	}
	if p := os.Getenv("FDTOP_DEBUG_CALLS"); p != "" {
		go writeCallCounts(ctx, client, p) // tools/idle-cost: D-Bus calls by method
	}
	scope := m.scope()
	if m.address != "" {
		// An explicit address is labelled by what answers there, not by
		// --user/--system (which only pick the usual places).
		if s := client.ManagerScope(); s != "" {
			scope = s
		}
	}
	b := &inspect.Builder{Systemd: client, Kernel: fs, Scope: scope, Patterns: patterns, All: m.all}
	for _, p := range patterns {
		if strings.HasSuffix(p, ".service") && !strings.ContainsAny(p, "*?[") {
			b.ExtraServices = append(b.ExtraServices, p) // named explicitly: show it
		}
	}
	return client, b, nil
}

// openProc opens the procfs at dir, refusing a directory that is not one:
// fdtop would otherwise find no process there and show no holders.
func openProc(dir string) (procfs.FS, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return procfs.FS{}, clierr.Usage(fmt.Sprintf("--proc %s: %v", dir, err))
	}
	if st.Type != unix.PROC_SUPER_MAGIC {
		return procfs.FS{}, clierr.Usage(fmt.Sprintf("--proc %s: not a procfs (filesystem type %#x; mount one with 'mount -t proc proc %s')", dir, st.Type, dir))
	}
	fs, err := procfs.New(dir)
	if err != nil {
		return procfs.FS{}, fmt.Errorf("open %s: %w", dir, err)
	}
	return fs, nil
}

// ownerOnlyHint explains a connection that a manager's private socket
// refused because fdtop does not run as the socket's owner (systemd admits
// only its own uid there): it points at the system bus and at --user.
// It is "" when that is not the case.
func ownerOnlyHint(address string) string {
	path, ok := strings.CutPrefix(address, "unix:path=")
	if !ok || !strings.HasSuffix(path, "/systemd/private") {
		return ""
	}
	if i := strings.IndexByte(path, ','); i >= 0 {
		path = path[:i]
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return ""
	}
	uid := os.Geteuid()
	if uid == 0 || int(st.Uid) == uid {
		return ""
	}
	return fmt.Sprintf("a manager's private socket admits only its owner (uid %d) and fdtop runs as uid %d; "+
		"leave out --address to reach the system manager over the system bus, or use --user for your own manager", st.Uid, uid)
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
