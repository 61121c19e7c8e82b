package systemtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// User says who runs a command inside the container.
type User int

// The container's users.
const (
	// Root is uid 0.
	Root User = iota
	// Unprivileged is UserName, a plain user with no group of note.
	Unprivileged
)

// String names the user, as subtest names do.
func (u User) String() string {
	if u == Root {
		return "root"
	}
	return UserName
}

// Argv returns the host command line that runs argv inside the container
// as u: nsenter(1) into all of PID 1's namespaces (which also makes the
// root and working directory the container's), then env(1) with a clean
// environment. For a terminal, run it in one (tmux) and start argv with
// "env", "TERM=...".
func (c *Container) Argv(u User, argv ...string) []string {
	args := []string{"nsenter", "--target", strconv.Itoa(c.Leader), "--all"}
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LANG=C.UTF-8",
		"SYSTEMD_COLORS=0",
		"SYSTEMD_PAGER=",
	}
	if u == Root {
		env = append(env, "HOME=/root", "USER=root", "LOGNAME=root")
	} else {
		args = append(args, "--setuid", strconv.Itoa(c.UID), "--setgid", strconv.Itoa(c.GID))
		env = append(env, "HOME=/home/"+UserName, "USER="+UserName, "LOGNAME="+UserName)
	}
	args = append(args, "--", "/usr/bin/env", "-i")
	args = append(args, env...)
	return append(args, argv...)
}

// Command returns a command that runs argv inside the container as u (see
// Argv). It runs in a process group of its own, and cancelling ctx kills
// the whole group: nsenter and the child it forked into the container.
func (c *Container) Command(ctx context.Context, u User, argv ...string) *exec.Cmd {
	args := c.Argv(u, argv...)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Run runs argv inside the container as u and returns its combined output.
func (c *Container) Run(ctx context.Context, u User, argv ...string) (string, error) {
	out, err := c.Command(ctx, u, argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s (as %s in the container): %w", strings.Join(argv, " "), u, err)
	}
	return string(out), nil
}

// Systemctl runs systemctl on the container's system manager, as root.
// With WriteUnit it makes a Container a demo.UnitHost.
func (c *Container) Systemctl(ctx context.Context, args ...string) (string, error) {
	out, err := c.Run(ctx, Root, append([]string{"systemctl", "--no-pager"}, args...)...)
	if err != nil {
		return out, fmt.Errorf("%w: %s", err, strings.TrimSpace(out))
	}
	return out, nil
}

// Path returns the host path of a path inside the container (through PID
// 1's root).
func (c *Container) Path(p string) string {
	return filepath.Join(fmt.Sprintf("/proc/%d/root", c.Leader), p)
}

// WriteFile writes a file inside the container (in the overlay's upper
// layer), creating its directory.
func (c *Container) WriteFile(p string, data []byte, perm os.FileMode) error {
	hp := c.Path(p)
	if err := os.MkdirAll(filepath.Dir(hp), 0o755); err != nil {
		return fmt.Errorf("container mkdir %s: %w", filepath.Dir(p), err)
	}
	if err := os.WriteFile(hp, data, perm); err != nil {
		return fmt.Errorf("container write %s: %w", p, err)
	}
	return nil
}

// WriteUnit writes a system unit file into /etc/systemd/system inside;
// call Systemctl "daemon-reload" afterwards.
func (c *Container) WriteUnit(name, content string) error {
	return c.WriteFile(filepath.Join("/etc/systemd/system", name), []byte(content), 0o644)
}

// DialTCP connects to addr inside the container's network namespace (a
// loopback address there). The socket is made on an OS thread that joined
// that namespace and is then thrown away; the connection itself works from
// any goroutine.
func (c *Container) DialTCP(ctx context.Context, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		// Never unlocked: the thread, now in the container's network
		// namespace, exits with this goroutine instead of running others.
		runtime.LockOSThread()
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", c.Leader))
		if err != nil {
			ch <- result{err: fmt.Errorf("open the container's network namespace: %w", err)}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("join the container's network namespace: %w", err)}
			return
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		ch <- result{conn, err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, fmt.Errorf("dial %s in the container: %w", addr, r.err)
	}
	return r.conn, nil
}
