// Package sandbox starts a private systemd user manager to run the demo
// services and integration tests against, and tears it down without a trace.
//
// Where systemd is not PID 1 (containers, CI) the manager runs in a new mount
// namespace with a tmpfs on /run/systemd holding an empty /run/systemd/system,
// which is how systemd decides it may run. Where systemd is PID 1 the mount is
// skipped: the host's /run/systemd is left as it is. Either way the manager
// gets a private XDG_RUNTIME_DIR, XDG_CONFIG_HOME and HOME, a clean
// environment, and a cgroup subtree of its own, so several sandboxes can run
// side by side without touching the host's own user managers.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
)

// DefaultSystemd is the distribution's systemd binary.
const DefaultSystemd = "/usr/lib/systemd/systemd"

// InitCommand is the hidden fdtop subcommand that runs as the sandbox's tiny
// init: it joins the cgroups, mounts /run/systemd and execs systemd.
const InitCommand = "__sandbox-init"

// Options says how to start a sandbox.
type Options struct {
	// Fdtop is the fdtop binary; its InitCommand prepares the namespace.
	Fdtop string
	// Systemd is the systemd binary; empty means DefaultSystemd.
	Systemd string
	// LibDir, if set, is the LD_LIBRARY_PATH the systemd binary needs (an
	// extracted systemd 254 with its own libsystemd-shared).
	LibDir string
	// Systemctl is the systemctl matching Systemd; empty means the one on PATH.
	Systemctl string
	// StartTimeout bounds the wait for the manager to be running; default 30 s.
	StartTimeout time.Duration
	// Log receives the manager's own log as well as manager.log in Dir
	// (which also has its stdout and stderr); nil: manager.log only.
	Log io.Writer
	// Env adds variables to the manager's clean environment (KEY=VALUE).
	Env []string
}

// Sandbox is a running private systemd user manager.
type Sandbox struct {
	// Dir is the sandbox's temporary directory, removed by Close.
	Dir string
	// RuntimeDir is the manager's XDG_RUNTIME_DIR.
	RuntimeDir string
	// ConfigDir is the manager's XDG_CONFIG_HOME.
	ConfigDir string
	// UnitDir is where unit files go ($XDG_CONFIG_HOME/systemd/user).
	UnitDir string
	// Address is the D-Bus address of the manager's private socket.
	Address string
	// Version is the manager's Version property, e.g. "252.38-1~deb12u1".
	Version string
	// PID is the manager's process ID.
	PID int
	// Tag names the sandbox's cgroup subtree.
	Tag string

	opts   Options
	hs     []hierarchy
	done   chan struct{} // closed when the manager process has been reaped
	err    error         // its exit status, valid after done
	closed sync.Once
	cerr   error
	// console and logFile carry the manager's own log to manager.log.
	console *console
	logFile *os.File
}

// logPath is where the manager's own output goes when Options.Log is nil.
func (s *Sandbox) logPath() string { return filepath.Join(s.Dir, "manager.log") }

// lastWords is the end of the manager's own output (up to 1 KiB) on one
// line, empty when there is none or it went to Options.Log.
func (s *Sandbox) lastWords() string {
	b, err := os.ReadFile(s.logPath())
	if err != nil {
		return ""
	}
	b = b[max(len(b)-1024, 0):]
	return strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "?")), " ")
}

// Start starts a private systemd user manager and waits until it is running.
func Start(ctx context.Context, opts Options) (*Sandbox, error) {
	if opts.Fdtop == "" {
		return nil, errors.New("sandbox: Options.Fdtop (the fdtop binary) is required")
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("sandbox: needs root (a mount namespace and cgroups of its own)")
	}
	if opts.Systemd == "" {
		opts.Systemd = DefaultSystemd
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 30 * time.Second
	}
	if fi, err := os.Stat(opts.Systemd); err != nil {
		return nil, fmt.Errorf("sandbox: systemd binary: %w", err)
	} else if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return nil, fmt.Errorf("sandbox: systemd binary %s is not an executable file", opts.Systemd)
	}
	ReapStale()

	dir, err := os.MkdirTemp("", fmt.Sprintf("fdtop-sandbox-%d-", os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("sandbox: temp dir: %w", err)
	}
	s := &Sandbox{
		Dir:        dir,
		RuntimeDir: filepath.Join(dir, "run"),
		ConfigDir:  filepath.Join(dir, "config"),
		Tag:        filepath.Base(dir),
		opts:       opts,
		done:       make(chan struct{}),
	}
	s.UnitDir = filepath.Join(s.ConfigDir, "systemd", "user")
	s.Address = "unix:path=" + filepath.Join(s.RuntimeDir, "systemd", "private")
	home := filepath.Join(dir, "home")
	for _, d := range []string{s.RuntimeDir, s.UnitDir, home} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("sandbox: mkdir %s: %w", d, err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil { // services may run as other users
		os.RemoveAll(dir)
		return nil, fmt.Errorf("sandbox: chmod %s: %w", dir, err)
	}

	s.hs, err = hierarchies()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	procs, err := createSubtree(s.hs, s.Tag, "init.scope")
	if err != nil {
		_ = removeSubtree(s.hs, s.Tag)
		os.RemoveAll(dir)
		return nil, fmt.Errorf("sandbox: %w", err)
	}

	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + home,
		"USER=root",
		"LOGNAME=root",
		"XDG_RUNTIME_DIR=" + s.RuntimeDir,
		"XDG_CONFIG_HOME=" + s.ConfigDir,
		"LANG=C.UTF-8",
		// The manager's own log goes to /dev/console: see console.go.
		"SYSTEMD_LOG_TARGET=console",
	}
	if opts.LibDir != "" {
		env = append(env, "LD_LIBRARY_PATH="+opts.LibDir)
	}
	env = append(env, opts.Env...)
	args := []string{InitCommand}
	for _, p := range procs {
		args = append(args, "--cgroup", p)
	}
	if !systemdIsPID1() {
		args = append(args, "--mount-run-systemd")
	}
	logw, err := os.OpenFile(s.logPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		_ = removeSubtree(s.hs, s.Tag)
		os.RemoveAll(dir)
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	s.logFile = logw
	var cw io.Writer = logw
	if opts.Log != nil {
		cw = io.MultiWriter(logw, opts.Log)
	}
	if s.console, err = openConsole(cw); err != nil {
		logw.Close()
		_ = removeSubtree(s.hs, s.Tag)
		os.RemoveAll(dir)
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	args = append(args, "--bind", s.console.path()+":/dev/console")
	if opts.Systemd != DefaultSystemd {
		// daemon-reexec execs the compiled-in path: make it this binary.
		args = append(args, "--bind", opts.Systemd+":"+DefaultSystemd)
	}
	args = append(args, "--", DefaultSystemd, "--user")

	started := make(chan error, 1)
	go s.run(opts, args, env, started)
	if err := <-started; err != nil {
		s.console.close()
		logw.Close()
		_ = removeSubtree(s.hs, s.Tag)
		os.RemoveAll(dir)
		return nil, fmt.Errorf("sandbox: start manager: %w", err)
	}
	register(s)

	wctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	if err := s.waitRunning(wctx); err != nil {
		cerr := s.Close()
		return nil, errors.Join(fmt.Errorf("sandbox: manager did not come up: %w", err), cerr)
	}
	return s, nil
}

// run starts the init on a locked OS thread and reaps it. The thread lives as
// long as the manager, so the manager's parent-death signal fires only when
// this process dies: a killed test run does not leave a manager behind.
func (s *Sandbox) run(opts Options, args, env []string, started chan<- error) {
	cmd := exec.Command(opts.Fdtop, args...)
	cmd.Env = env
	cmd.Dir = "/"
	if f, err := os.OpenFile(s.logPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err == nil {
		// A file, not a pipe: Wait never waits on a service that inherited
		// it. The last words of a manager that dies at startup go into the
		// error, and fdtop doctor finds the manager's log as its stderr.
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	s.err = RunLocked(cmd, started, func(pid int) { s.PID = pid })
	close(s.done)
}

// RunLocked starts cmd on a locked OS thread of the calling goroutine
// (never unlocked: the thread ends with the goroutine), in a mount
// namespace and a session of its own, with SIGKILL as its parent-death
// signal: as the thread lives as long as cmd, that fires only when this
// process dies, so a killed test run leaves nothing behind. It sends
// Start's error, or nil after calling onStart with the PID, to started, and
// returns what Wait returns (nil when cmd did not start).
func RunLocked(cmd *exec.Cmd, started chan<- error, onStart func(pid int)) error {
	runtime.LockOSThread()
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Unshareflags: syscall.CLONE_NEWNS, // Go also makes / MS_REC|MS_PRIVATE
		Pdeathsig:    syscall.SIGKILL,
		Setsid:       true,
	}
	if err := cmd.Start(); err != nil {
		started <- err
		return nil
	}
	onStart(cmd.Process.Pid)
	started <- nil
	return cmd.Wait()
}

// waitRunning polls the manager's SystemState over its private socket.
func (s *Sandbox) waitRunning(ctx context.Context) error {
	var last error
	for {
		state, version, err := s.systemState(ctx)
		switch {
		case err != nil:
			last = err
		case state == "running" || state == "degraded":
			s.Version = version
			return nil
		default:
			last = fmt.Errorf("system state %q", state)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-s.done:
			if out := s.lastWords(); out != "" {
				return fmt.Errorf("manager exited: %v; it said: %s", s.err, out)
			}
			return fmt.Errorf("manager exited: %v", s.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Sandbox) systemState(ctx context.Context) (state, version string, err error) {
	conn, err := Dial(ctx, s.Address)
	if err != nil {
		return "", "", err
	}
	defer conn.Close()
	obj := conn.Object("org.freedesktop.systemd1", "/org/freedesktop/systemd1")
	// Each call is bounded: a manager that has not answered a call on a
	// fresh private connection may sit on it until more data arrives, so a
	// stuck attempt is abandoned and the next poll tries a new connection.
	get := func(prop string) (dbus.Variant, error) {
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		var v dbus.Variant
		err := obj.CallWithContext(cctx, "org.freedesktop.DBus.Properties.Get", 0, "org.freedesktop.systemd1.Manager", prop).Store(&v)
		return v, err
	}
	var st, ver dbus.Variant
	if st, err = get("SystemState"); err != nil {
		return "", "", err
	}
	if ver, err = get("Version"); err != nil {
		return "", "", err
	}
	state, _ = st.Value().(string)
	version, _ = ver.Value().(string)
	return state, version, nil
}

// Dial opens a private, authenticated peer-to-peer connection to a manager's
// private socket (no bus daemon, so no Hello). The context bounds only the
// dial; the connection outlives it.
func Dial(ctx context.Context, address string) (*dbus.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	conn, err := dbus.Dial(address)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("auth %s: %w", address, err)
	}
	return conn, nil
}

// Env returns the variables that point systemctl --user and fdtop --user at
// this sandbox's manager.
func (s *Sandbox) Env() []string {
	return []string{
		"XDG_RUNTIME_DIR=" + s.RuntimeDir,
		"DBUS_SESSION_BUS_ADDRESS=" + s.Address,
	}
}

// WriteUnit writes a unit file into the sandbox's unit directory. Call
// DaemonReload (or Systemctl "daemon-reload") afterwards.
func (s *Sandbox) WriteUnit(name, content string) error {
	p := filepath.Join(s.UnitDir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		return fmt.Errorf("write unit %s: %w", p, err)
	}
	return nil
}

// Systemctl runs systemctl --user against the sandbox and returns its
// combined output.
func (s *Sandbox) Systemctl(ctx context.Context, args ...string) (string, error) {
	bin := s.opts.Systemctl
	if bin == "" {
		bin = "systemctl"
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"--user", "--no-pager"}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8", "SYSTEMD_COLORS=0"}, s.Env()...)
	if s.opts.LibDir != "" {
		cmd.Env = append(cmd.Env, "LD_LIBRARY_PATH="+s.opts.LibDir)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("systemctl --user %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// PIDs lists every process in the sandbox's cgroup subtree, the manager
// included.
func (s *Sandbox) PIDs() []int { return subtreePIDs(s.hs, s.Tag) }

// Done is closed when the manager process has exited.
func (s *Sandbox) Done() <-chan struct{} { return s.done }

// closeGrace is how long Close lets the manager act on SIGTERM. A manager
// still starting its units takes a second or more to; the sandbox is
// disposable and everything in it is killed next anyway, and fdtop must end
// within a second of Ctrl-C.
const closeGrace = 50 * time.Millisecond

// Close stops the manager: SIGTERM and a short grace period, then SIGKILL to
// everything left in the sandbox's cgroups. It verifies by PID that no
// process remains, removes the cgroups and the temp dir. Safe to call twice.
func (s *Sandbox) Close() error {
	s.closed.Do(func() {
		defer unregister(s)
		var errs []error
		if s.PID > 0 {
			select {
			case <-s.done: // already reaped: never signal a reused PID
			default:
				_ = syscall.Kill(s.PID, syscall.SIGTERM)
				select {
				case <-s.done:
				case <-time.After(closeGrace):
				}
			}
		}
		_, left := killSubtree(s.hs, s.Tag, 5*time.Second)
		if s.PID > 0 {
			select {
			case <-s.done: // reaped: its PID may be someone else's now
			default:
				_ = syscall.Kill(s.PID, syscall.SIGKILL)
				select {
				case <-s.done:
				case <-time.After(5 * time.Second):
					errs = append(errs, fmt.Errorf("manager pid %d not reaped", s.PID))
				}
			}
		}
		if len(left) > 0 {
			errs = append(errs, fmt.Errorf("processes still alive after SIGKILL: %v", left))
		}
		if err := removeSubtree(s.hs, s.Tag); err != nil {
			errs = append(errs, err)
		}
		s.console.close()
		s.logFile.Close()
		if err := os.RemoveAll(s.Dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", s.Dir, err))
		}
		s.cerr = errors.Join(errs...)
	})
	return s.cerr
}

// systemdIsPID1 reports whether this host was booted with systemd (the test
// sd_booted makes).
func systemdIsPID1() bool {
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

var (
	liveMu sync.Mutex
	live   = map[*Sandbox]bool{}
)

func register(s *Sandbox)   { liveMu.Lock(); live[s] = true; liveMu.Unlock() }
func unregister(s *Sandbox) { liveMu.Lock(); delete(live, s); liveMu.Unlock() }

// CloseAll closes every sandbox this process started and has not closed yet;
// signal handlers call it so an interrupted run cleans up.
func CloseAll() {
	liveMu.Lock()
	all := make([]*Sandbox, 0, len(live))
	for s := range live {
		all = append(all, s)
	}
	liveMu.Unlock()
	for _, s := range all {
		_ = s.Close()
	}
}

// ReapStale tears down sandboxes left behind by processes that died without
// closing them (a SIGKILLed test binary): their temp dir names the owner PID.
func ReapStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "fdtop-sandbox-*"))
	hs, err := hierarchies()
	if err != nil {
		return
	}
	for _, d := range dirs {
		parts := strings.Split(filepath.Base(d), "-")
		if len(parts) < 4 {
			continue
		}
		owner, err := strconv.Atoi(parts[2])
		if err != nil || owner == os.Getpid() || Alive(owner) {
			continue
		}
		tag := filepath.Base(d)
		killSubtree(hs, tag, 2*time.Second)
		_ = removeSubtree(hs, tag)
		_ = os.RemoveAll(d)
	}
}
