package procfs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const childEnv = "FDTOP_PROCFS_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "nobody-scan":
		os.Exit(nobodyScan())
	case "netns-child":
		os.Exit(netnsChild())
	case "netns-scan-nocap":
		os.Exit(nocapScan())
	case "conn-holder":
		os.Exit(connHolder())
	}
	os.Exit(m.Run())
}

// unprivilegedReport is what the nobody child prints.
type unprivilegedReport struct {
	UID        int
	Processes  int
	Unreadable int
	Note       string
	Holders    string
	HoldersWhy string
	Errors     []string
	Err        string
}

func nobodyScan() int {
	rep := unprivilegedReport{UID: os.Getuid()}
	fs, err := New("/proc")
	if err == nil {
		var s *Scan
		s, err = fs.Scan(context.Background(), ScanOptions{})
		if err == nil {
			rep.Processes, rep.Unreadable, rep.Note = len(s.Processes), s.Unreadable, s.UnreadableNote()
			rep.Holders, rep.HoldersWhy = s.HoldersSource, s.HoldersNote
			for _, e := range s.Errors {
				rep.Errors = append(rep.Errors, e.Error())
			}
		}
	}
	if err != nil {
		rep.Err = err.Error()
	}
	json.NewEncoder(os.Stdout).Encode(rep)
	return 0
}

// requireRoot skips a test that needs root, or fails it under CI=true.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (CI=true: not skipping)")
	}
	t.Skip("needs root")
}

func liveFS(t *testing.T) FS {
	t.Helper()
	fs, err := New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	if !fs.Live() {
		t.Fatal("/proc is not a procfs mount")
	}
	// These tests are about the /proc pass; the BPF pass has its own
	// (holders_test.go).
	return fs.WithHolders(Holders{Proc: true})
}

// heldFDs opens one descriptor of each kind in the test process.
type heldFDs struct {
	listener, conn, accepted, udp, unixListener, abstract, pairA, pairB  int
	pipeR, fifo, memfd, eventfd, timerfd, epoll, inotify, pidfd, deleted int
	listenPort                                                           int
	pending                                                              []net.Conn
	unixPath, abstractName, deletedPath                                  string
	closers                                                              []io.Closer
}

func fileFD(t *testing.T, h *heldFDs, f interface{ File() (*os.File, error) }) int {
	t.Helper()
	file, err := f.File()
	if err != nil {
		t.Fatal(err)
	}
	h.closers = append(h.closers, file)
	return int(file.Fd())
}

func openEveryKind(t *testing.T) *heldFDs {
	t.Helper()
	h := &heldFDs{}
	t.Cleanup(func() {
		for _, c := range h.closers {
			c.Close()
		}
	})
	dir := t.TempDir()
	ln, err := listenTCP()
	if err != nil {
		t.Fatal(err)
	}
	h.closers = append(h.closers, ln)
	h.listenPort = ln.Addr().(*net.TCPAddr).Port
	h.listener = fileFD(t, h, ln)
	c, err := net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	a, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	h.closers = append(h.closers, c, a)
	h.conn, h.accepted = fileFD(t, h, c), fileFD(t, h, a)
	// Two connections left in the accept queue: the listener's backlog.
	for range 2 {
		p, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		h.closers = append(h.closers, p)
		h.pending = append(h.pending, p)
	}
	u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	h.closers = append(h.closers, u)
	h.udp = fileFD(t, h, u)
	h.unixPath = filepath.Join(dir, "path.sock")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: h.unixPath, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	h.closers = append(h.closers, ul)
	h.unixListener = fileFD(t, h, ul)
	rawFD := func(fd int, err error) int {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		h.closers = append(h.closers, closerFunc(func() error { return unix.Close(fd) }))
		return fd
	}
	h.abstractName = fmt.Sprintf("fdtop\x00test\nname-%d", os.Getpid())
	h.abstract = rawFD(unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0))
	if err := unix.Bind(h.abstract, &unix.SockaddrUnix{Name: "@" + h.abstractName}); err != nil {
		t.Fatal(err)
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	h.pairA, h.pairB = rawFD(pair[0], nil), rawFD(pair[1], nil)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	h.pipeR = rawFD(p[0], nil)
	rawFD(p[1], nil)
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	h.fifo = rawFD(unix.Open(fifo, unix.O_RDWR|unix.O_CLOEXEC, 0))
	h.memfd = rawFD(unix.MemfdCreate("fdtop-test mem", unix.MFD_CLOEXEC))
	h.eventfd = rawFD(unix.Eventfd(0, unix.EFD_CLOEXEC))
	h.timerfd = rawFD(unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC))
	h.epoll = rawFD(unix.EpollCreate1(unix.EPOLL_CLOEXEC))
	h.inotify = rawFD(unix.InotifyInit1(unix.IN_CLOEXEC))
	h.pidfd = rawFD(unix.PidfdOpen(os.Getpid(), 0))
	h.deletedPath = filepath.Join(dir, "deleted.txt")
	h.deleted = rawFD(unix.Open(h.deletedPath, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600))
	if err := os.Remove(h.deletedPath); err != nil {
		t.Fatal(err)
	}
	return h
}

// listenTCP listens on loopback with plain TCP (TestLiveMPTCP covers Go's
// default MPTCP listeners).
func listenTCP() (*net.TCPListener, error) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return l.(*net.TCPListener), nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

func TestLiveEveryKind(t *testing.T) {
	fs := liveFS(t)
	h := openEveryKind(t)
	ctx := context.Background()
	ownNS := nsInode(t, "/proc/self/ns/net")
	for _, tc := range []struct {
		name string
		scan func() (*Scan, error)
		diag bool
	}{
		{"targeted", func() (*Scan, error) { return fs.ScanPIDs(ctx, []int{os.Getpid()}, ScanOptions{FDInfo: true}) }, true},
		{"full", func() (*Scan, error) { return fs.Scan(ctx, ScanOptions{}) }, true},
		{"targeted after full", func() (*Scan, error) { return fs.ScanPIDs(ctx, []int{os.Getpid()}, ScanOptions{}) }, true},
		{"proc/net fallback", func() (*Scan, error) { return fs.ScanPIDs(ctx, []int{os.Getpid()}, ScanOptions{NoNetlink: true}) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tc.scan()
			if err != nil {
				t.Fatal(err)
			}
			// A host-wide scan meets other tests' namespaces, whose every
			// process may exit during it: only this one's must resolve.
			if warns := warningsOfNS(s.Warnings, ownNS); len(s.Errors) > 0 || len(warns) > 0 {
				t.Fatalf("errors %v warnings %v", s.Errors, warns)
			}
			me, ok := s.Process(os.Getpid())
			if !ok {
				t.Fatal("own process missing")
			}
			fds := map[int]FD{}
			for _, fd := range me.FDs {
				fds[fd.Num] = fd
			}
			kinds := map[int]FDKind{h.listener: KindSocket, h.conn: KindSocket, h.udp: KindSocket, h.unixListener: KindSocket,
				h.abstract: KindSocket, h.pairA: KindSocket, h.pipeR: KindPipe, h.fifo: KindFIFO, h.memfd: KindMemfd,
				h.eventfd: KindEventfd, h.timerfd: KindTimerfd, h.epoll: KindEpoll, h.inotify: KindInotify,
				h.pidfd: KindPidfd, h.deleted: KindDeleted}
			for num, want := range kinds {
				if got := fds[num].Kind; got != want {
					t.Errorf("fd %d (%s): kind %v, want %v", num, fds[num].Target, got, want)
				}
			}
			diff(t, "fdtop-test mem", fds[h.memfd].Name)
			diff(t, h.deletedPath, fds[h.deleted].Name)
			if !strings.HasSuffix(fds[h.fifo].Name, "/fifo") {
				t.Errorf("fifo name %q", fds[h.fifo].Name)
			}
			sock := func(fd int) Socket {
				t.Helper()
				so, ok := s.Sockets[fds[fd].Inode]
				if !ok || so.Status != Resolved {
					t.Fatalf("fd %d: socket %d not resolved (%+v)", fd, fds[fd].Inode, so)
				}
				return so
			}
			l := sock(h.listener)
			if l.State != StateListen || int(l.Local.Port()) != h.listenPort || l.Proto != ProtoTCP {
				t.Errorf("listener = %+v", l)
			}
			if l.RecvQ != 2 {
				t.Errorf("listener accept backlog = %d, want 2", l.RecvQ)
			}
			c := sock(h.conn)
			if c.State != StateEstablished || int(c.Remote.Port()) != h.listenPort {
				t.Errorf("connection = %+v", c)
			}
			if u := sock(h.udp); u.Proto != ProtoUDP || u.Family != FamilyInet {
				t.Errorf("udp = %+v", u)
			}
			if ul := sock(h.unixListener); ul.Path != h.unixPath || ul.State != StateListen || ul.Type != TypeStream {
				t.Errorf("unix listener = %+v", ul)
			}
			ab := sock(h.abstract)
			if tc.diag {
				if ab.Path != h.abstractName || !ab.Abstract || ab.Type != TypeDgram {
					t.Errorf("abstract = %+v, want name %q", ab, h.abstractName)
				}
				a, b := sock(h.pairA), sock(h.pairB)
				if a.PeerInode != b.Inode || b.PeerInode != a.Inode {
					t.Errorf("socketpair peers: %d↔%d, inodes %d %d", a.PeerInode, b.PeerInode, a.Inode, b.Inode)
				}
			} else if !ab.Abstract || !strings.HasPrefix(ab.Path, "fdtop@test") {
				t.Errorf("abstract (proc/net) = %+v", ab)
			}
			if tc.name == "targeted" {
				if fds[h.memfd].Info == nil || fds[h.memfd].Info.Flags&unix.O_CLOEXEC == 0 {
					t.Errorf("memfd fdinfo = %+v, want O_CLOEXEC set", fds[h.memfd].Info)
				}
			} else if fds[h.memfd].Info != nil {
				t.Error("fdinfo read without being asked")
			}
		})
	}
	m, err := fs.SocketsByInode(ctx, []uint64{mustInode(t, h.listener), mustInode(t, h.pairA), 1})
	if err != nil || len(m) != 2 {
		t.Fatalf("SocketsByInode = %v, %v", m, err)
	}
	if n, ok, err := fs.FDCount(os.Getpid()); err != nil || (ok && n < 15) {
		t.Errorf("FDCount = %d, %v, %v", n, ok, err)
	}
}

func mustInode(t *testing.T, fd int) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestLiveProcessesVanish scans while processes start and exit under it.
func TestLiveProcessesVanish(t *testing.T) {
	fs := liveFS(t)
	ctx := context.Background()
	// A reaped process: skipped, no error.
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	s, err := fs.ScanPIDs(ctx, []int{cmd.Process.Pid}, ScanOptions{FDInfo: true})
	if err != nil || len(s.Processes) != 0 || len(s.Errors) != 0 {
		t.Fatalf("scan of exited pid: %d processes, errors %v, err %v", len(s.Processes), s.Errors, err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // churn: short-lived processes holding descriptors
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c := exec.Command("/bin/sh", "-c", "exec 7</dev/null; exit 0")
			_ = c.Run()
		}
	}()
	deadline := time.Now().Add(1500 * time.Millisecond)
	for n := 0; time.Now().Before(deadline); n++ {
		s, err := fs.Scan(ctx, ScanOptions{FDInfo: n%2 == 0})
		if err != nil {
			close(stop)
			<-done
			t.Fatalf("scan %d: %v", n, err)
		}
		if len(s.Errors) > 0 {
			close(stop)
			<-done
			t.Fatalf("scan %d: errors %v", n, s.Errors)
		}
	}
	close(stop)
	<-done
}

// TestLiveUnprivileged re-runs a scan as nobody: other users' processes are
// counted as not readable, and nothing fails.
func TestLiveUnprivileged(t *testing.T) {
	requireRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary's directory may be private to root: copy it.
	dir, err := os.MkdirTemp("", "fdtop-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "procfs.test")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run", "^$")
	cmd.Env = []string{childEnv + "=nobody-scan", "PATH=/usr/bin:/bin"}
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var rep unprivilegedReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
	if rep.UID != 65534 || rep.Err != "" || len(rep.Errors) > 0 {
		t.Fatalf("child report = %+v", rep)
	}
	if rep.Unreadable == 0 || rep.Processes == 0 || !strings.HasSuffix(rep.Note, "not readable") {
		t.Fatalf("child report = %+v, want unreadable processes counted", rep)
	}
	// Not root: the BPF holder pass does not load, /proc is read and the
	// scan says why.
	if rep.Holders != HoldersProc || !strings.Contains(rep.HoldersWhy, "not permitted") {
		t.Fatalf("child report = %+v, want holders from /proc, for lack of permission", rep)
	}
	t.Logf("as nobody: %d processes, %s", rep.Processes, rep.Note)
}

// TestLiveHandoffKeepsNoSecret runs a process with a secret in its
// environment and LISTEN_* variables: the handoff is decoded and the secret
// appears nowhere in what a scan returns.
func TestLiveHandoffKeepsNoSecret(t *testing.T) {
	fs := liveFS(t)
	const secret = "hunter2-xyz"
	ln, err := listenTCP()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	cmd := exec.Command("/bin/sh", "-c", "LISTEN_PID=$$ exec /bin/sleep 30")
	cmd.Env = []string{"FDTOP_TEST_SECRET=" + secret, "LISTEN_FDS=1", "LISTEN_FDNAMES=web.socket",
		"LISTEN_PIDFDID=4242", "OTHER=" + secret + "-again", "PATH=/usr/bin:/bin"}
	cmd.ExtraFiles = []*os.File{lf}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() }()
	pid := cmd.Process.Pid
	// Wait for the exec of sleep (environ then holds LISTEN_PID).
	var s *Scan
	for i := 0; i < 100; i++ {
		s, err = fs.ScanPIDs(context.Background(), []int{pid}, ScanOptions{FDInfo: true})
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := s.Process(pid); ok && p.Comm == "sleep" && p.Handoff != nil && p.Handoff.ListenPID != 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	p, ok := s.Process(pid)
	if !ok || p.Handoff == nil {
		t.Fatalf("process %d: handoff not found", pid)
	}
	diff(t, &HandoffEnv{ListenPID: pid, ListenFDs: 1, Names: []string{"web.socket"}, PidFDID: 4242,
		Passed: []PassedFD{{3, "web.socket"}}, ForThisProcess: true}, p.Handoff)
	var fd3 FD
	for _, fd := range p.FDs {
		if fd.Num == 3 {
			fd3 = fd
		}
	}
	if so := s.Sockets[fd3.Inode]; fd3.Kind != KindSocket || so.State != StateListen {
		t.Errorf("fd 3 = %+v, socket %+v", fd3, so)
	}
	full, err := fs.Scan(context.Background(), ScanOptions{FDInfo: true})
	if err != nil {
		t.Fatal(err)
	}
	h, err := fs.Handoff(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{s, full, h} {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		for _, text := range []string{string(j), fmt.Sprintf("%#v", v), fmt.Sprintf("%+v", v)} {
			if strings.Contains(text, "hunter2") || strings.Contains(text, "FDTOP_TEST_SECRET") {
				t.Fatal("the secret environment variable leaked into scan output")
			}
		}
	}
	_ = strconv.Itoa
}

// TestLiveMPTCP: Go listens with MPTCP by default where the kernel has it
// (the demo's plain server does). A targeted scan of a process never seen
// before resolves its MPTCP listener and accepted connection like TCP
// ones, with addresses and state.
func TestLiveMPTCP(t *testing.T) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(true)
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The client too: a plain TCP socket in this process would have the
	// scan dump the TCP table anyway and hide a missed MPTCP lookup.
	var d net.Dialer
	d.SetMultipathTCP(true)
	client, err := d.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	lf, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	sf, err := server.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	proto := func(f *os.File) string {
		buf := make([]byte, 32)
		n, err := unix.Getxattr(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), "system.sockprotoname", buf)
		if err != nil {
			return "?"
		}
		return strings.TrimRight(string(buf[:n]), "\x00")
	}
	t.Logf("listener protocol %s, accepted %s", proto(lf), proto(sf))

	for _, tc := range []struct {
		name string
		opts ScanOptions
	}{{"sock_diag", ScanOptions{}}, {"proc/net fallback", ScanOptions{NoNetlink: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			fs := liveFS(t) // a fresh reader: nothing cached from a full scan
			s, err := fs.ScanPIDs(context.Background(), []int{os.Getpid()}, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			me, ok := s.Process(os.Getpid())
			if !ok {
				t.Fatal("own process missing")
			}
			byFD := map[int]Socket{}
			for _, fd := range me.FDs {
				if fd.Kind == KindSocket {
					byFD[fd.Num] = s.Sockets[fd.Inode]
				}
			}
			ls, cs := byFD[int(lf.Fd())], byFD[int(sf.Fd())]
			if ls.State != StateListen || ls.Local.String() != l.Addr().String() || ls.Proto != ProtoTCP {
				t.Errorf("listener: %+v, want TCP LISTEN on %s", ls, l.Addr())
			}
			if cs.State != StateEstablished || cs.Remote.String() != client.LocalAddr().String() {
				t.Errorf("accepted connection: %+v, want ESTAB from %s", cs, client.LocalAddr())
			}
		})
	}
}

// warningsOfNS drops the warnings about another network namespace's
// sockets (see nsNeed.eachPID) from warns.
func warningsOfNS(warns []string, ns uint64) []string {
	var out []string
	for _, w := range warns {
		var other uint64
		if _, err := fmt.Sscanf(w, "sockets of network namespace %d unresolved", &other); err == nil && other != ns {
			continue
		}
		out = append(out, w)
	}
	return out
}

// TestNSNeedEachPID: a namespace's sockets are resolved through its next
// process when the one tried has exited, and only then.
func TestNSNeedEachPID(t *testing.T) {
	gone := fmt.Errorf("open /proc/1/ns/net: %w", fs.ErrNotExist)
	denied := fmt.Errorf("open /proc/1/ns/net: %w", unix.EACCES)
	for _, tc := range []struct {
		name  string
		pids  []int
		errs  map[int]error
		tried []int
		err   error
	}{
		{"first works", []int{1, 2, 3}, nil, []int{1}, nil},
		{"first gone", []int{1, 2, 3}, map[int]error{1: gone}, []int{1, 2}, nil},
		{"all gone", []int{1, 2}, map[int]error{1: gone, 2: gone}, []int{1, 2}, gone},
		{"denied is not gone", []int{1, 2}, map[int]error{1: denied}, []int{1}, denied},
		{"one process", []int{1}, map[int]error{1: gone}, []int{1}, gone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &nsNeed{pid: tc.pids[0]}
			for _, p := range tc.pids {
				n.addPID(p)
				n.addPID(p) // a process with several sockets: once
			}
			var tried []int
			err := n.eachPID(func(pid int) error { tried = append(tried, pid); return tc.errs[pid] })
			if !slices.Equal(tried, tc.tried) || err != tc.err {
				t.Errorf("tried %v, err %v; want %v, %v", tried, err, tc.tried, tc.err)
			}
		})
	}
}
