// Package systemtest boots a throwaway system container — this machine's own
// OS with systemd as PID 1, journald, logind, dbus and polkit — for tests of
// fdtop on a real system manager, as root and as an unprivileged user.
//
// How (each step is a fact found on this Debian 12 host, see issue 12):
// systemd-nspawn (package systemd-container) boots an overlayfs of / with a
// tmpfs upper layer, mounted by a launcher of ours because nspawn refuses
// --volatile=overlay for /. With no systemd on the host there is no bus to
// register a scope on, so nspawn runs with --keep-unit --register=no after
// the launcher moved itself into a cgroup subtree of its own (in every
// hierarchy: name=systemd and the unified one included). The host's /run is
// on disk and nspawn refuses to clean its state there, so the launcher runs
// in a private mount namespace with a tmpfs on /run; every mount goes away
// with that namespace. --private-network (nothing listens on the host's
// ports), --tmpfs=/tmp, the fdtop binary bound read-only at FdtopPath, and
// the units the host image enables that have no place in a test masked.
// Commands run inside with nsenter(1) into PID 1's namespaces.
//
// The packages the container needs (systemd-container, polkitd,
// openssh-server, dbus, libpam-systemd) are installed on the host by
// .ci/test, so the overlay shows them: no download or dpkg run per boot.
package systemtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fdtop/fdtop/demo/sandbox"
)

// FdtopPath is where the fdtop binary appears inside the container.
const FdtopPath = "/usr/local/bin/fdtop"

// UserName is the container's unprivileged user, created at start.
const UserName = "fdtest"

// dirPrefix starts the name of every container's host temp dir, cgroup
// subtree and /run directory: fdtop-systemtest-<owner pid>-<random>.
const dirPrefix = "fdtop-systemtest-"

// Options says how to start a container.
type Options struct {
	// Fdtop is the host path of the fdtop binary, bound read-only at
	// FdtopPath. Required.
	Fdtop string
	// StartTimeout bounds the boot, up to "running"; default 60 s.
	StartTimeout time.Duration
	// Log receives nspawn's and the console's output as well as the
	// launcher's errors; nil keeps them in Dir/console.log only.
	Log io.Writer
	// Root is a root file system tree to boot instead of this host's /
	// (the overlay's lower layer), e.g. a Debian trixie or sid tree from
	// demo/scripts/fetch-debian-root.sh; empty boots the host's own.
	Root string
	// Unified gives the container cgroup v2 only on this hybrid host
	// (SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1): systemd 258 and later refuse
	// cgroup v1, and v2 only is what a current distribution boots with.
	Unified bool
}

// Container is a booted system container.
type Container struct {
	// Dir is the host temp dir (seed, console log, state), removed by Close.
	Dir string
	// Tag names the container's cgroup subtree, machine and /run directory.
	Tag string
	// Launcher is the PID of the launcher, which became systemd-nspawn.
	Launcher int
	// Leader is the container's PID 1 as the host sees it.
	Leader int
	// Version is the container manager's Version, e.g. "252.38-1~deb12u1".
	Version string
	// State is the SystemState when the boot finished: "running", or
	// "degraded" with a unit failed.
	State string
	// Ready is the wall time from Start to the system state being reached.
	Ready time.Duration
	// Boot is the manager's own startup time in userspace (what
	// systemd-analyze prints as "Startup finished in … (userspace)").
	Boot time.Duration
	// Masked lists the units masked in the container.
	Masked []string
	// UID and GID are UserName's IDs inside the container.
	UID, GID int
	// PoweredOff is how long the poweroff took in Close, 0 when it did not
	// finish within 20 s and the container was killed instead.
	PoweredOff time.Duration

	cg     *sandbox.Cgroups
	st     state
	done   chan struct{} // closed when the launcher has been reaped
	err    error         // its exit status, valid after done
	closed sync.Once
	cerr   error
}

// state is what ReapStale needs to tear a container down after its owner
// died: written to Dir/state.json once the container is up.
type state struct {
	Launcher   int    `json:"launcher"`
	Leader     int    `json:"leader"`
	LauncherNS string `json:"launcher_mnt_ns"` // e.g. "mnt:[4026532000]"
	LeaderMnt  string `json:"leader_mnt_ns"`
	LeaderPID  string `json:"leader_pid_ns"`
}

// Start boots a container and waits until its manager is running (or
// degraded), then creates the unprivileged user UserName.
func Start(ctx context.Context, opts Options) (*Container, error) {
	begin := time.Now()
	if opts.Fdtop == "" {
		return nil, errors.New("systemtest: Options.Fdtop (the fdtop binary) is required")
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("systemtest: needs root (mount namespace, cgroups, nspawn)")
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	nspawn, err := exec.LookPath("systemd-nspawn")
	if err != nil {
		return nil, fmt.Errorf("systemtest: systemd-nspawn not found (apt-get install systemd-container): %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("systemtest: own executable: %w", err)
	}
	ReapStale()

	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", dirPrefix, os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("systemtest: temp dir: %w", err)
	}
	c := &Container{Dir: dir, Tag: filepath.Base(dir), done: make(chan struct{})}
	fail := func(err error) (*Container, error) {
		return nil, errors.Join(fmt.Errorf("systemtest: %w", err), c.Close())
	}
	seed := filepath.Join(dir, "seed")
	lower := opts.Root
	if lower == "" {
		lower = "/"
	}
	if c.Masked, err = writeSeed(seed, lower); err != nil {
		return fail(fmt.Errorf("seed: %w", err))
	}
	if c.cg, err = sandbox.OwnCgroups(c.Tag); err != nil {
		return fail(err)
	}
	procs, err := c.cg.Create("")
	if err != nil {
		return fail(err)
	}
	runDir := filepath.Join("/run", c.Tag)
	spec := launchSpec{
		Cgroups: procs,
		RunDir:  runDir,
		Seed:    seed,
		Lower:   lower,
		Nspawn: []string{nspawn, "--quiet", "--boot",
			"--directory=" + filepath.Join(runDir, "root"),
			"--machine=" + machineName(c.Tag),
			"--keep-unit", "--register=no",
			"--private-network", "--tmpfs=/tmp",
			"--link-journal=no", "--console=passive",
			"--bind-ro=" + opts.Fdtop + ":" + FdtopPath,
		},
	}
	if opts.Unified {
		spec.Env = []string{"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1"}
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return fail(err)
	}
	started := make(chan error, 1)
	go c.run(self, string(specJSON), opts.Log, started)
	if err := <-started; err != nil {
		return fail(fmt.Errorf("start launcher: %w", err))
	}
	register(c)

	wctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	if err := c.waitLeader(wctx); err != nil {
		return fail(err)
	}
	if err := c.saveState(); err != nil {
		return fail(err)
	}
	if err := c.waitRunning(wctx); err != nil {
		return fail(fmt.Errorf("container did not boot: %w", err))
	}
	c.Ready = time.Since(begin)
	if err := c.addUser(wctx); err != nil {
		return fail(err)
	}
	return c, nil
}

// Major is the manager's major version (252 of "252.38-1~deb12u1"), 0
// when Version does not start with a number.
func (c *Container) Major() int {
	n := 0
	for _, r := range c.Version {
		if r < '0' || r > '9' {
			break
		}
		n = n*10 + int(r-'0')
	}
	return n
}

// machineName is the container's hostname: short, from the tag's tail.
func machineName(tag string) string {
	return "fdtop-st-" + strings.TrimPrefix(tag, dirPrefix)
}

func (c *Container) consolePath() string { return filepath.Join(c.Dir, "console.log") }

// lastWords is the end of the console log (up to 1 KiB) on one line.
func (c *Container) lastWords() string {
	b, err := os.ReadFile(c.consolePath())
	if err != nil {
		return ""
	}
	b = b[max(len(b)-1024, 0):]
	return strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "?")), " ")
}

// run starts the launcher (this binary again, see Main) on a locked OS
// thread and reaps it. The thread lives as long as the launcher, so its
// parent-death signal fires only when this process dies.
func (c *Container) run(self, spec string, log io.Writer, started chan<- error) {
	cmd := exec.Command(self)
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LANG=C.UTF-8",
		launcherEnv + "=" + spec,
	}
	cmd.Dir = "/"
	f, err := os.Create(c.consolePath())
	if err != nil {
		started <- err
		close(c.done)
		return
	}
	defer f.Close()
	// A file, not a pipe: Wait never waits on a process that inherited it.
	var out io.Writer = f
	if log != nil {
		out = io.MultiWriter(f, log)
	}
	cmd.Stdout, cmd.Stderr = out, out
	c.err = sandbox.RunLocked(cmd, started, func(pid int) { c.Launcher = pid })
	close(c.done)
}

// waitLeader finds the container's PID 1 among the launcher's descendants:
// the process whose innermost PID is 1.
func (c *Container) waitLeader(ctx context.Context) error {
	for {
		for _, pid := range descendants(c.Launcher) {
			if nsPIDs(pid) == "1" {
				c.Leader = pid
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("container PID 1 never appeared: %w%s", ctx.Err(), c.said())
		case <-c.done:
			return fmt.Errorf("nspawn exited before the container started: %v%s", c.err, c.said())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// said quotes the console's last words for an error, if there are any.
func (c *Container) said() string {
	if w := c.lastWords(); w != "" {
		return "; console: " + w
	}
	return ""
}

// saveState records the PIDs and namespaces for ReapStale and Close.
func (c *Container) saveState() error {
	c.st = state{
		Launcher:   c.Launcher,
		Leader:     c.Leader,
		LauncherNS: nsLink(c.Launcher, "mnt"),
		LeaderMnt:  nsLink(c.Leader, "mnt"),
		LeaderPID:  nsLink(c.Leader, "pid"),
	}
	if c.st.LauncherNS == "" || c.st.LeaderMnt == "" || c.st.LeaderPID == "" {
		return fmt.Errorf("read the namespaces of pids %d and %d: gone%s", c.Launcher, c.Leader, c.said())
	}
	b, err := json.Marshal(c.st)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.Dir, "state.json"), b, 0o644)
}

// waitRunning waits for the boot to finish (systemctl is-system-running
// --wait inside, retried while the manager's socket is not up yet), then
// reads the manager's version and startup timestamps. The manager's private
// socket cannot be used from the host: a peer outside its PID namespace
// (SO_PEERCRED pid 0) has its connection reset.
func (c *Container) waitRunning(ctx context.Context) error {
	var last error
	for {
		out, err := c.Run(ctx, Root, "systemctl", "is-system-running", "--wait")
		st := strings.TrimSpace(out)
		if st == "running" || st == "degraded" {
			c.State = st
			break
		}
		last = fmt.Errorf("%q: %v", st, err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)%s", ctx.Err(), last, c.said())
		case <-c.done:
			return fmt.Errorf("nspawn exited: %v%s", c.err, c.said())
		case <-time.After(50 * time.Millisecond):
		}
	}
	out, err := c.Systemctl(ctx, "show", "-p", "Version", "-p", "UserspaceTimestampMonotonic", "-p", "FinishTimestampMonotonic")
	if err != nil {
		return err
	}
	props := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			props[k] = v
		}
	}
	c.Version = props["Version"]
	us, _ := strconv.ParseUint(props["UserspaceTimestampMonotonic"], 10, 64)
	fin, _ := strconv.ParseUint(props["FinishTimestampMonotonic"], 10, 64)
	if fin > us {
		c.Boot = time.Duration(fin-us) * time.Microsecond
	}
	return nil
}

// addUser creates UserName with a home directory, in the overlay.
func (c *Container) addUser(ctx context.Context) error {
	if out, err := c.Run(ctx, Root, "useradd", "--create-home", "--user-group", "--shell", "/bin/bash", UserName); err != nil {
		return fmt.Errorf("useradd %s: %w: %s", UserName, err, out)
	}
	for _, f := range []struct {
		flag string
		dst  *int
	}{{"-u", &c.UID}, {"-g", &c.GID}} {
		out, err := c.Run(ctx, Root, "id", f.flag, UserName)
		if err != nil {
			return fmt.Errorf("id %s %s: %w: %s", f.flag, UserName, err, out)
		}
		if *f.dst, err = strconv.Atoi(strings.TrimSpace(out)); err != nil {
			return fmt.Errorf("id %s %s: %q: %w", f.flag, UserName, out, err)
		}
	}
	return nil
}

// Done is closed when nspawn has exited.
func (c *Container) Done() <-chan struct{} { return c.done }

// Close powers the container off (SIGRTMIN+4 to its PID 1) and waits up to
// 20 s for nspawn to exit; then it SIGKILLs whatever is left in its cgroups and PID
// namespace, removes its cgroups and temp dir, and verifies by PID, mount
// namespace and cgroup that nothing is left. Safe to call twice.
func (c *Container) Close() error {
	c.closed.Do(func() {
		defer unregister(c)
		var errs []error
		// Signal PID 1 only while it is still the container's (its PID
		// namespace is the one recorded), never a recycled PID.
		if c.Leader > 0 && c.st.LeaderPID != "" && nsLink(c.Leader, "pid") == c.st.LeaderPID {
			// A clean poweroff is the polite way; on a loaded host it can
			// take long, and then the SIGKILLs below do the job.
			begin := time.Now()
			_ = syscall.Kill(c.Leader, sigPoweroff)
			select {
			case <-c.done:
				c.PoweredOff = time.Since(begin)
			case <-time.After(20 * time.Second):
			}
		}
		errs = append(errs, teardown(c.cg, c.st)...)
		if c.Launcher > 0 {
			select {
			case <-c.done: // reaped: its PID may be someone else's now
			default:
				_ = syscall.Kill(c.Launcher, syscall.SIGKILL)
				select {
				case <-c.done:
				case <-time.After(5 * time.Second):
					errs = append(errs, fmt.Errorf("launcher pid %d not reaped", c.Launcher))
				}
			}
		}
		if c.cg != nil {
			if err := c.cg.Remove(); err != nil {
				errs = append(errs, err)
			}
			errs = append(errs, c.Leftovers()...)
		}
		if err := os.RemoveAll(c.Dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", c.Dir, err))
		}
		c.cerr = errors.Join(errs...)
	})
	return c.cerr
}

// sigPoweroff is SIGRTMIN+4 (glibc's SIGRTMIN is 34): systemd as PID 1
// starts poweroff.target on it.
const sigPoweroff = syscall.Signal(34 + 4)

// teardown SIGKILLs every process in the container's cgroup subtree and
// PID namespace (commands run with nsenter are in the namespace but not in
// the cgroups) until none is left. A recorded namespace counts only once a
// process of the subtree has been seen in it, and is then held open until
// the sweep ends, so that its number cannot pass to a stranger's namespace
// meanwhile (see provenNamespaces).
func teardown(cg *sandbox.Cgroups, st state) []error {
	var errs []error
	want := recorded(st)
	held := map[string]*os.File{}
	defer func() {
		for _, f := range held {
			f.Close()
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		pinHeld(want, cg, held)
		proven := map[string]bool{}
		for ns := range held {
			proven[ns] = true
		}
		pids := inNamespaces(proven)
		if cg != nil {
			pids = append(pids, cg.PIDs()...)
		}
		if len(pids) == 0 {
			return errs
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return append(errs, fmt.Errorf("processes still alive after SIGKILL: %v", pids))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Leftovers checks that nothing of the container is left: no process in
// its PID namespace or holding its mount namespaces (so none of its mounts
// exists), no process or directory in its cgroup subtree, no mount on the
// host naming its tag. It returns one error per kind of thing left.
func (c *Container) Leftovers() []error {
	var errs []error
	if pids := inNamespaces(provenNamespaces(c.st, c.cg)); len(pids) > 0 {
		errs = append(errs, fmt.Errorf("processes left in the container's namespaces: %v", pids))
	}
	if c.cg != nil {
		if pids := c.cg.PIDs(); len(pids) > 0 {
			errs = append(errs, fmt.Errorf("processes left in cgroup subtree %s: %v", c.Tag, pids))
		}
		if dirs := c.cg.Dirs(); len(dirs) > 0 {
			errs = append(errs, fmt.Errorf("cgroups left: %v", dirs))
		}
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(b), c.Tag) {
		errs = append(errs, fmt.Errorf("a mount naming %s is on the host", c.Tag))
	}
	return errs
}

var (
	liveMu sync.Mutex
	live   = map[*Container]bool{}
)

func register(c *Container)   { liveMu.Lock(); live[c] = true; liveMu.Unlock() }
func unregister(c *Container) { liveMu.Lock(); delete(live, c); liveMu.Unlock() }

// CloseAll closes every container this process started and has not closed;
// signal handlers call it so an interrupted run cleans up.
func CloseAll() {
	liveMu.Lock()
	all := make([]*Container, 0, len(live))
	for c := range live {
		all = append(all, c)
	}
	liveMu.Unlock()
	for _, c := range all {
		if err := c.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "systemtest: close container %s: %v\n", c.Tag, err)
		}
	}
}

// ReapStale tears down containers left behind by processes that died
// without closing them (a SIGKILLed test binary): their temp dir names the
// owner PID, and its state.json the namespaces to empty.
func ReapStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		tag := filepath.Base(d)
		parts := strings.Split(strings.TrimPrefix(tag, dirPrefix), "-")
		if len(parts) < 2 {
			continue
		}
		owner, err := strconv.Atoi(parts[0])
		if err != nil || owner == os.Getpid() || sandbox.Alive(owner) {
			continue
		}
		var st state
		if b, err := os.ReadFile(filepath.Join(d, "state.json")); err == nil {
			_ = json.Unmarshal(b, &st)
		}
		cg, err := sandbox.OwnCgroups(tag)
		if err != nil {
			cg = nil
		}
		_ = teardown(cg, st)
		if cg != nil {
			_ = cg.Remove()
		}
		_ = os.RemoveAll(d)
	}
}
