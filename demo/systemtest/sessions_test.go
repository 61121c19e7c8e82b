package systemtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sshtest"
	"github.com/fdtop/fdtop/inspect"
)

// sshClients is an ssh client configuration that logs in as root to the
// container's sshds on the given ports (through nsenter into its network
// namespace, as TestRemoteSnapshotOverSSH does), each port under the alias
// "port-N".
func sshClients(t *testing.T, c *Container, ports ...int) *sshtest.Fleet {
	t.Helper()
	f := sshtest.New(t)
	keys, _ := os.ReadFile(c.Path("/root/.ssh/authorized_keys"))
	if err := c.WriteFile("/root/.ssh/authorized_keys", append(keys, f.PublicKey()...), 0o600); err != nil {
		t.Fatal(err)
	}
	hostKey, err := os.ReadFile(c.Path("/etc/ssh/ssh_host_ed25519_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	for _, port := range ports {
		proxy := fmt.Sprintf(`nsenter --target %d --net -- bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d && { cat <&3 & exec cat >&3; }'`, c.Leader, port)
		f.AddProxyHost(t, fmt.Sprintf("port-%d", port), proxy, string(hostKey))
	}
	return f
}

// sshSession is a logged-in ssh session running a shell loop that answers
// each line "ok LINE PID" (PID: the session's shell inside the container).
type sshSession struct {
	in  io.WriteCloser
	out *bufio.Reader
}

func openSession(t *testing.T, f *sshtest.Fleet, alias string) *sshSession {
	t.Helper()
	cmd := exec.Command("ssh", "-F", f.Config, alias, `while read -r l; do echo "ok $l $$"; done`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	s := &sshSession{in: in, out: bufio.NewReader(out)}
	if _, err := s.try("hello"); err != nil {
		t.Fatalf("ssh %s: %v; stderr: %s", alias, err, stderr.String())
	}
	return s
}

// try sends a line through the session and returns the shell's PID from
// the answer.
func (s *sshSession) try(line string) (int, error) {
	type answer struct {
		reply string
		err   error
	}
	ch := make(chan answer, 1)
	go func() {
		if _, err := io.WriteString(s.in, line+"\n"); err != nil {
			ch <- answer{err: err}
			return
		}
		r, err := s.out.ReadString('\n')
		ch <- answer{r, err}
	}()
	select {
	case a := <-ch:
		if a.err != nil {
			return 0, fmt.Errorf("send %q through the session: %w", line, a.err)
		}
		f := strings.Fields(a.reply)
		if len(f) != 3 || f[0] != "ok" || f[1] != line {
			return 0, fmt.Errorf("answer %q to %q", a.reply, line)
		}
		return strconv.Atoi(f[2])
	case <-time.After(30 * time.Second):
		return 0, fmt.Errorf("no answer to %q through the session in 30 s", line)
	}
}

var scopeRE = regexp.MustCompile(`session-c?[0-9]+\.scope`) // "c1": logind 256+ without an audit session ID

// sessionScope is the login session scope of a process inside.
func sessionScope(t *testing.T, c *Container, pid int) string {
	t.Helper()
	out, err := c.Run(context.Background(), Root, "cat", fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	scope := scopeRE.FindString(out)
	if scope == "" {
		t.Fatalf("pid %d is in no session scope (pam_systemd): %s", pid, out)
	}
	return scope
}

// estab is one established TCP connection as ss -tnpe sees it inside.
type estab struct {
	local, remote string
	inode         uint64
	pids          []int
	line          string
}

var ssPID = regexp.MustCompile(`pid=([0-9]+)`)

// established asks ss inside for the established TCP connections whose
// local port is port: the kernel's word on the sessions.
func established(t *testing.T, c *Container, port int) []estab {
	t.Helper()
	out, err := c.Run(context.Background(), Root, "ss", "-tnpeH", "state", "established", fmt.Sprintf("( sport = :%d )", port))
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var conns []estab
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		// 0 0 [::ffff:127.0.0.1]:22 [::ffff:127.0.0.1]:51802 users:(("sshd",pid=56,fd=4),…) … ino:4753976 …
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		e := estab{local: f[2], remote: f[3], line: line}
		for _, x := range f {
			if v, ok := strings.CutPrefix(x, "ino:"); ok {
				e.inode, _ = strconv.ParseUint(v, 10, 64)
			}
		}
		if e.inode == 0 {
			continue // not a socket line (ss's complaints go to the same output)
		}
		for _, m := range ssPID.FindAllStringSubmatch(line, -1) {
			pid, _ := strconv.Atoi(m[1])
			e.pids = append(e.pids, pid)
		}
		conns = append(conns, e)
	}
	return conns
}

// listenerInodes are the inodes of the TCP sockets listening on port
// inside, by address.
func listenerInodes(t *testing.T, c *Container, port int) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, l := range listening(t, c) {
		if strings.HasSuffix(l.addr, fmt.Sprintf(":%d", port)) {
			out[l.addr] = l.inode
		}
	}
	return out
}

// sshdUnit is an sshd that binds its own listener, as Debian's ssh.service
// does (sshd -D, Type=notify, KillMode=process: a restart stops the
// listening sshd only), on port 2022.
const sshdUnit = `[Unit]
Description=OpenSSH server listening itself (fdtop system test)

[Service]
ExecStartPre=/usr/sbin/sshd -t
ExecStart=/usr/sbin/sshd -D -p 2022 -o PidFile=none
KillMode=process
Type=notify
RuntimeDirectory=sshd
RuntimeDirectoryPreserve=yes
`

// TestSSHDSessionsAsRoot: a login through an sshd that listens itself
// (Debian's ssh.service shape) lives in session-N.scope, out of the
// service's cgroup. fdtop counts its connection as the service's (accepted
// from its listener), held by sshd in that scope, as ss sees it; restarting
// the service with `fdtop watch --json` running gives a verdict that says
// the session was preserved — and the session still runs commands after
// the restart.
func TestSSHDSessionsAsRoot(t *testing.T) {
	c := Shared(t)
	demoUnits(t, c)
	ctx := context.Background()
	const unit, port = "fdtop-sshd.service", 2022
	if err := c.WriteUnit(unit, sshdUnit); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = c.Systemctl(ctx, "stop", unit)
		_ = os.Remove(c.Path("/etc/systemd/system/" + unit))
		_, _ = c.Systemctl(ctx, "daemon-reload")
	})
	if out, err := c.Systemctl(ctx, "daemon-reload"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := c.Systemctl(ctx, "start", unit); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	f := sshClients(t, c, port)
	sess := openSession(t, f, fmt.Sprintf("port-%d", port))
	shell, err := sess.try("before")
	if err != nil {
		t.Fatal(err)
	}
	scope := sessionScope(t, c, shell)
	kernel := established(t, c, port)
	if len(kernel) != 1 {
		t.Fatalf("ss shows %d established connections on port %d, want the session's 1: %+v", len(kernel), port, kernel)
	}
	t.Logf("ss: %s", kernel[0].line)

	snap := snapshot(t, c, Root, unit)
	var svc *inspect.Service
	for i := range snap.Services {
		if snap.Services[i].Unit == unit {
			svc = &snap.Services[i]
		}
	}
	if svc == nil {
		t.Fatalf("%s not in the snapshot", unit)
	}
	if len(svc.Connections) != 1 {
		t.Fatalf("%s: %d connections, ss shows the session's 1: %+v", unit, len(svc.Connections), svc.Connections)
	}
	conn := svc.Connections[0]
	t.Logf("fdtop: connection pid %d fd %d inode %d %s ← %s held by %s in %s (outside %v)", conn.PID, conn.FD, conn.Inode, conn.Local, conn.Remote, conn.Comm, conn.Unit, conn.Outside)
	if conn.Inode != kernel[0].inode || !conn.Outside || conn.Unit != scope || conn.Comm != "sshd" || !slices.Contains(kernel[0].pids, conn.PID) {
		t.Errorf("connection inode %d held by %s pid %d in %s (outside %v); ss: inode %d pids %v, the session's scope %s",
			conn.Inode, conn.Comm, conn.PID, conn.Unit, conn.Outside, kernel[0].inode, kernel[0].pids, scope)
	}
	tree, err := c.Run(ctx, Root, FdtopPath, "snapshot", unit)
	if err != nil {
		t.Fatalf("%v: %s", err, tree)
	}
	if want := fmt.Sprintf("held by sshd pid %d in %s", conn.PID, scope); !strings.Contains(tree, want) {
		t.Errorf("fdtop snapshot does not say %q:\n%s", want, tree)
	}
	// A plain user reads neither sshd nor the session: the connections
	// are unknown, never none.
	for _, s := range snapshot(t, c, Unprivileged, unit).Services {
		if s.Unit == unit && !s.ConnectionsUnknown && len(s.Connections) != 1 {
			t.Errorf("as %s: %d connections and connections_unknown false; the session's 1 is there", UserName, len(s.Connections))
		}
	}

	w := startWatch(t, c, Root, unit, demo.Activated.Service())
	w.ready(t, c, demo.Activated.Service())
	listenersBefore := listenerInodes(t, c, port)
	if out, err := c.Systemctl(ctx, "restart", unit); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	e, ok := w.next(60*time.Second, func(e inspect.Event) bool { return e.Type == inspect.EventHandoff && e.Unit == unit })
	if !ok || e.Handoff == nil {
		t.Fatalf("no handoff event for %s; stderr: %s", unit, w.stderr.String())
	}
	t.Logf("verdict: %s", e.Message)
	after, err := sess.try("after")
	if err != nil {
		t.Fatalf("the session does not answer after the restart: %v", err)
	}
	if after != shell {
		t.Errorf("the session's shell is pid %d after the restart, %d before", after, shell)
	}
	kernelAfter := established(t, c, port)
	survived := len(kernelAfter) == 1 && kernelAfter[0].inode == kernel[0].inode
	t.Logf("ss after: %+v", kernelAfter)
	if !survived {
		t.Fatalf("ss: the session's connection %d is not the one established after the restart: %+v", kernel[0].inode, kernelAfter)
	}
	h := e.Handoff
	// Unknown may be set besides (a connection the old sshd may have
	// accepted after the watch's last view of it, unseen): the counts of
	// what was seen must be the kernel's.
	if h.ConnectionsPreserved != 1 || h.ConnectionsDropped != 0 {
		t.Errorf("connections preserved %d dropped %d unknown %v; the session (ss: inode %d) survived: want 1, 0", h.ConnectionsPreserved, h.ConnectionsDropped, h.ConnectionsUnknown, kernel[0].inode)
	}
	if strings.Contains(e.Message, "no connections") {
		t.Errorf("the verdict says there were no connections: %s", e.Message)
	}
	// The listeners (0.0.0.0 and [::]): sshd binds its own, so a restart
	// replaces them; ss tells the inodes apart.
	listenersAfter := listenerInodes(t, c, port)
	kept, replaced := 0, 0
	for addr, ino := range listenersBefore {
		if listenersAfter[addr] == ino {
			kept++
		} else {
			replaced++
		}
	}
	if h.ListenersReplaced != replaced || h.ListenersKept != kept || h.ListenersUnknown != 0 {
		t.Errorf("listeners kept %d replaced %d unknown %d; ss: %v → %v", h.ListenersKept, h.ListenersReplaced, h.ListenersUnknown, listenersBefore, listenersAfter)
	}
}

// TestSSHSocketSessionsAsRoot: a login through the Accept=yes ssh.socket
// moves the instance's sshd into session-N.scope. The snapshot shows the
// instance with the connection ss shows, held by sshd in that scope; a
// restart of ssh.socket (a new listener; the instances are not touched)
// reports no connection dropped, and the session still runs commands.
func TestSSHSocketSessionsAsRoot(t *testing.T) { ForEach(t, testSSHSocketSessionsAsRoot) }

func testSSHSocketSessionsAsRoot(t *testing.T, c *Container) {
	demoUnits(t, c)
	ctx := context.Background()
	f := sshClients(t, c, 22)
	sess := openSession(t, f, "port-22")
	shell, err := sess.try("before")
	if err != nil {
		t.Fatal(err)
	}
	scope := sessionScope(t, c, shell)
	kernel := established(t, c, 22)
	var mine *estab
	for i := range kernel {
		for _, pid := range kernel[i].pids {
			if out, err := c.Run(ctx, Root, "cat", fmt.Sprintf("/proc/%d/cgroup", pid)); err == nil && strings.Contains(out, "/"+scope) {
				mine = &kernel[i]
			}
		}
	}
	if mine == nil {
		t.Fatalf("ss shows no established connection on port 22 held in %s: %+v", scope, kernel)
	}
	t.Logf("ss: %s", mine.line)

	findInstance := func(snap inspect.Snapshot) *inspect.Instance {
		s := socketUnit(snap, "ssh.socket")
		if s == nil {
			t.Fatal("ssh.socket not in the snapshot")
		}
		for i := range s.Instances {
			if s.Instances[i].Inode == mine.inode {
				return &s.Instances[i]
			}
		}
		t.Fatalf("no instance of ssh.socket with the session's connection (inode %d): %+v", mine.inode, s.Instances)
		return nil
	}
	in := findInstance(snapshot(t, c, Root, "ssh*"))
	var held *inspect.Holder
	for i, h := range in.Holders {
		// sshd -i is "sshd-session" from OpenSSH 10 on (Debian 13),
		// two processes holding the connection: the first is the one
		// fdtop names.
		if held == nil && !h.Manager && h.Unit == scope && strings.HasPrefix(h.Comm, "sshd") && slices.Contains(mine.pids, h.PID) {
			held = &in.Holders[i]
		}
	}
	if held == nil {
		t.Fatalf("instance %s: no holder sshd in %s among %+v (ss: pids %v)", in.Unit, scope, in.Holders, mine.pids)
	}
	tree, err := c.Run(ctx, Root, FdtopPath, "snapshot", "ssh*")
	if err != nil {
		t.Fatalf("%v: %s", err, tree)
	}
	if want := fmt.Sprintf("held by %s pid %d in %s", held.Comm, held.PID, scope); !strings.Contains(tree, want) {
		t.Errorf("fdtop snapshot does not say %q:\n%s", want, tree)
	}

	w := startWatch(t, c, Root, "ssh*", demo.Activated.Service())
	w.ready(t, c, demo.Activated.Service())
	listenersBefore := listenerInodes(t, c, 22)
	if out, err := c.Systemctl(ctx, "restart", "ssh.socket"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var (
		lost, preserved []inspect.Event
		replaced        = map[uint64]uint64{} // new inode -> old, as fdtop says
	)
	verdict, ok := w.next(30*time.Second, func(e inspect.Event) bool {
		if e.Unit != "ssh.socket" {
			return false
		}
		switch e.Type {
		case inspect.EventConnectionDropped:
			lost = append(lost, e)
		case inspect.EventConnectionPreserved:
			preserved = append(preserved, e)
		case inspect.EventListenerReplaced:
			replaced[e.Inode] = e.PrevInode
		}
		return e.Type == inspect.EventHandoff
	})
	if !ok {
		t.Fatalf("no handoff verdict for ssh.socket; stderr: %s", w.stderr.String())
	}
	t.Logf("ssh.socket: %s", verdict.Message)
	if _, err := sess.try("after"); err != nil {
		t.Fatalf("the session does not answer after the restart of ssh.socket: %v", err)
	}
	for _, e := range lost {
		t.Errorf("fdtop says a connection was dropped; the session still answers: %s", e.Message)
	}
	after := findInstance(snapshot(t, c, Root, "ssh*"))
	if after.Unit != in.Unit {
		t.Errorf("the session's instance is %s after the restart, %s before", after.Unit, in.Unit)
	}
	// The verdict against the kernel: ss's listeners on port 22 are all
	// new (systemd closed and bound them again), and the session's
	// connection is still held by the same sshd in its scope.
	listenersAfter := listenerInodes(t, c, 22)
	for addr, ino := range listenersAfter {
		if old := listenersBefore[addr]; old == 0 || old == ino || replaced[ino] != old {
			t.Errorf("ss: listener %s inode %d → %d; fdtop says replaced %v", addr, old, ino, replaced)
		}
	}
	h := verdict.Handoff
	if h == nil || h.Accept == nil || h.ListenersReplaced != len(listenersAfter) || h.ListenersKept != 0 ||
		h.ConnectionsDropped != 0 || h.Accept.InstancesKept < 1 || h.Accept.InstancesStopped != 0 {
		t.Errorf("handoff %+v: want the Accept=yes verdict, %d listeners replaced, the session's instance kept, nothing dropped", h, len(listenersAfter))
	}
	if !slices.ContainsFunc(preserved, func(e inspect.Event) bool {
		return e.Inode == mine.inode && e.Via == "process" && e.PID == held.PID && e.PrevPID == held.PID
	}) {
		t.Errorf("no connection_preserved of the session's connection (inode %d) in sshd pid %d: %+v", mine.inode, held.PID, preserved)
	}
}

// TestSSHSocketInstancesAsUnprivileged: a plain user sees the Accept=yes
// ssh.socket's instance of a live login in the snapshot and in the
// dashboard (its process is root's: the connection's ends are the ones
// the manager named it by, its holders unknown — never left out).
func TestSSHSocketInstancesAsUnprivileged(t *testing.T) {
	ForEach(t, testSSHSocketInstancesAsUnprivileged)
}

func testSSHSocketInstancesAsUnprivileged(t *testing.T, c *Container) {
	f := sshClients(t, c, 22)
	openSession(t, f, "port-22")
	rootSnap := snapshot(t, c, Root, "ssh*")
	s := socketUnit(rootSnap, "ssh.socket")
	if s == nil || len(s.Instances) == 0 {
		t.Fatalf("root sees no instance of ssh.socket with a session open: %+v", s)
	}
	snap := snapshot(t, c, Unprivileged, "ssh*")
	us := socketUnit(snap, "ssh.socket")
	if us == nil {
		t.Fatalf("ssh.socket not in %s's snapshot", UserName)
	}
	var names []string
	for _, in := range us.Instances {
		names = append(names, in.Unit)
		if in.MainPID == 0 || in.Local == "" || in.Remote == "" {
			t.Errorf("%s: main pid %d ends %q ← %q; want the manager's pid and the ends from the instance's name", in.Unit, in.MainPID, in.Local, in.Remote)
		}
		// The kernel's socket tables are everyone's: the connection's
		// inode may be found by its cookie (258+) or its ends, and is then
		// root's; who holds it is not readable.
		rootInode := uint64(0)
		for _, ri := range s.Instances {
			if ri.Unit == in.Unit {
				rootInode = ri.Inode
			}
		}
		if in.Inode != 0 && in.Inode != rootInode || len(in.Holders) != 0 {
			t.Errorf("%s: inode %d (root sees %d) holders %+v for a root process %s cannot read", in.Unit, in.Inode, rootInode, in.Holders, UserName)
		}
	}
	for _, in := range s.Instances {
		if !slices.Contains(names, in.Unit) {
			t.Errorf("%s's snapshot lacks instance %s (root sees it); it has %v", UserName, in.Unit, names)
		}
	}

	tm := newTmux(t)
	term := tm.start(t, c.Argv(Unprivileged, "env", "TERM=tmux-256color", FdtopPath, "ssh*"))
	term.waitFor(t, "ssh.socket", func(s string) bool { return strings.Contains(s, "ssh.socket") })
	term.selectUnit(t, "ssh.socket")
	term.send(t, "Enter")
	inst := s.Instances[0].Unit
	screen := term.waitFor(t, "the instance in the detail pane", func(s string) bool {
		return strings.Contains(s, "Instances (") && strings.Contains(s, inst[:min(len(inst), 30)])
	})
	t.Logf("%s's dashboard:\n%s", UserName, screen)
	term.quit(t)
}
