package procfs

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLiveReuseFDs scans the host repeatedly with ReuseFDs and checks on
// a child shell: unchanged, it keeps the descriptors read before (nothing
// read again); once it opened a descriptor it is read again; in FreshPIDs
// it is always read.
func TestLiveReuseFDs(t *testing.T) {
	fs, err := New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	if !fs.Live() {
		t.Fatal("/proc is not a procfs")
	}
	fs = fs.WithHolders(Holders{Proc: true}) // reuse is the /proc pass's
	sh := exec.Command("/bin/sh", "-c", "read a; exec 7</dev/null; read b")
	in, err := sh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); _ = sh.Wait() }()
	self := sh.Process.Pid
	waitQuiet(t, self, "sh") // a scan during its loading reads libc's descriptor too
	scan := func(opts ScanOptions) []FD {
		t.Helper()
		s, err := fs.Scan(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		p, ok := s.Process(self)
		if !ok {
			t.Fatalf("the scan lacks this process (pid %d)", self)
		}
		return p.FDs
	}
	has := func(fds []FD, num int) bool {
		for _, fd := range fds {
			if fd.Num == num {
				return true
			}
		}
		return false
	}
	same := func(a, b []FD) bool { return len(a) > 0 && len(a) == len(b) && &a[0] == &b[0] }

	first := scan(ScanOptions{})
	again := scan(ScanOptions{ReuseFDs: true})
	if !same(first, again) {
		t.Errorf("an unchanged process was read again (%d fds, then %d)", len(first), len(again))
	}
	if _, err := in.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := os.Stat("/proc/" + strconv.Itoa(self) + "/fd/7"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the shell never opened fd 7")
		}
		time.Sleep(5 * time.Millisecond)
	}
	moved := scan(ScanOptions{ReuseFDs: true})
	if same(again, moved) || !has(moved, 7) {
		t.Errorf("a process that opened fd 7 was not read again: %+v", moved)
	}
	if fresh := scan(ScanOptions{ReuseFDs: true, FreshPIDs: []int{self}}); same(moved, fresh) {
		t.Error("a process in FreshPIDs was not read again")
	}
	if plain := scan(ScanOptions{}); same(moved, plain) {
		t.Error("a scan without ReuseFDs took the descriptors of an earlier one")
	}
}

// TestLiveIncrementalSockets follows sockets through host-wide passes
// that reuse descriptor tables (ReuseFDs): such a pass does not dump the
// socket tables, it takes an unchanged process's sockets from the last
// dump and looks up what is new; a socket closed since is gone from it,
// one opened since is there with its addresses, a process in FreshPIDs
// has its sockets refreshed, and every ReuseScans-th pass dumps again.
func TestLiveIncrementalSockets(t *testing.T) {
	fs, err := New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	if !fs.Live() {
		t.Fatal("/proc is not a procfs")
	}
	fs = fs.WithHolders(Holders{Proc: true}) // reuse is the /proc pass's
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var peers []net.Conn
	defer func() {
		for _, c := range peers {
			c.Close()
		}
	}()
	// Two children hold connections to ln: one that changes (h), one that
	// does not (still). This process holds the far ends (peers).
	h, still := startConnHolder(t), startConnHolder(t)
	dial := func(c *connHolderProc) uint64 {
		t.Helper()
		ino := c.do(t, "dial "+ln.Addr().String())
		peer, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, peer)
		return ino
	}
	stillIno := dial(still)
	stillPeer := peers[0]
	closingIno := dial(h)

	scan := func(opts ScanOptions) *Scan {
		t.Helper()
		s, err := fs.Scan(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	state := func(s *Scan, ino uint64) string {
		if so, ok := s.Sockets[ino]; ok {
			return so.State.String()
		}
		return "absent"
	}
	if s := scan(ScanOptions{}); state(s, stillIno) != "ESTAB" || state(s, closingIno) != "ESTAB" {
		t.Fatalf("the full scan: still %s, closing %s; want both ESTAB", state(s, stillIno), state(s, closingIno))
	}

	// Since the dump: h closed one connection and opened two (a table of
	// the same size is taken as unchanged, see ReuseFDs); the unchanged
	// child's peer closed its end (its socket is CLOSE-WAIT in the kernel).
	h.do(t, "close 0")
	openedIno := dial(h)
	dial(h)
	opened := peers[len(peers)-2]
	stillPeer.Close()

	s := scan(ScanOptions{ReuseFDs: true})
	if got := state(s, closingIno); got != "absent" {
		t.Errorf("a connection closed since the dump is in the incremental pass: %s", got)
	}
	so, ok := s.Sockets[openedIno]
	if !ok || so.State != StateEstablished || so.Local.String() != opened.RemoteAddr().String() || so.Remote.String() != opened.LocalAddr().String() {
		t.Errorf("a connection opened since the dump: %+v (found %v); want ESTAB %s → %s", so, ok, opened.RemoteAddr(), opened.LocalAddr())
	}
	// Not dumped: the unchanged child's socket as the dump saw it.
	if got := state(s, stillIno); got != "ESTAB" {
		t.Fatalf("the unchanged child's socket is %s: the pass dumped the tables (or the child was read again)", got)
	}
	if got := state(scan(ScanOptions{ReuseFDs: true, FreshPIDs: []int{still.pid}}), stillIno); got != "CLOSE-WAIT" {
		t.Errorf("a process in FreshPIDs: its socket is %s, want CLOSE-WAIT", got)
	}
	// The state stays as last seen until a dump, at most ReuseScans passes on.
	for i := 0; ; i++ {
		if got := state(scan(ScanOptions{ReuseFDs: true}), stillIno); got == "CLOSE-WAIT" {
			break
		} else if i >= ReuseScans {
			t.Fatalf("after %d passes the child's socket is still %s: no pass dumped the tables", i+1, got)
		}
	}
}

// connHolderProc is a child (this test binary, connHolder) that dials and
// closes TCP connections when told to.
type connHolderProc struct {
	pid int
	in  io.WriteCloser
	out *bufio.Scanner
}

func startConnHolder(t *testing.T) *connHolderProc {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=conn-holder")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); _ = cmd.Wait() })
	return &connHolderProc{pid: cmd.Process.Pid, in: in, out: bufio.NewScanner(out)}
}

// do sends one command and returns the number the child answers (a new
// connection's inode).
func (c *connHolderProc) do(t *testing.T, cmd string) uint64 {
	t.Helper()
	if _, err := io.WriteString(c.in, cmd+"\n"); err != nil {
		t.Fatal(err)
	}
	if !c.out.Scan() {
		t.Fatalf("the child ended at %q", cmd)
	}
	n, err := strconv.ParseUint(c.out.Text(), 10, 64)
	if err != nil {
		t.Fatalf("the child answered %q to %q", c.out.Text(), cmd)
	}
	return n
}

// connHolder is the child: "dial ADDR" connects and prints the socket's
// inode, "close N" closes the Nth connection dialled and prints 0; it
// ends with its input.
func connHolder() int {
	var conns []net.Conn
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		verb, arg, _ := strings.Cut(sc.Text(), " ")
		switch verb {
		case "dial":
			c, err := net.Dial("tcp", arg)
			if err != nil {
				fmt.Println("error:", err)
				continue
			}
			conns = append(conns, c)
			var st unix.Stat_t
			f, _ := c.(*net.TCPConn).File()
			_ = unix.Fstat(int(f.Fd()), &st)
			f.Close()
			fmt.Println(st.Ino)
		case "close":
			i, _ := strconv.Atoi(arg)
			conns[i].Close()
			fmt.Println(0)
		}
	}
	return 0
}

// TestLiveUnixLookups: a targeted scan finds every unix listener a process
// holds, whether few (looked up one by one) or many (past maxUnixLookups,
// from one dump of the unix table), with its path and state; so does
// SocketsByInode.
func TestLiveUnixLookups(t *testing.T) {
	fs, err := New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{3, maxUnixLookups + 8} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			dir := t.TempDir()
			want := map[uint64]string{}
			var inodes []uint64
			for i := range n {
				path := dir + "/l" + strconv.Itoa(i) + ".sock"
				ln, err := net.Listen("unix", path)
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				f, err := ln.(*net.UnixListener).File()
				if err != nil {
					t.Fatal(err)
				}
				var st unix.Stat_t
				err = unix.Fstat(int(f.Fd()), &st)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				want[st.Ino] = path
				inodes = append(inodes, st.Ino)
			}
			scan, err := fs.ScanPIDs(context.Background(), []int{os.Getpid()}, ScanOptions{})
			if err != nil {
				t.Fatal(err)
			}
			byInode, err := fs.SocketsByInode(context.Background(), inodes)
			if err != nil {
				t.Fatal(err)
			}
			for ino, path := range want {
				for name, m := range map[string]map[uint64]Socket{"ScanPIDs": scan.Sockets, "SocketsByInode": byInode} {
					if s, ok := m[ino]; !ok || s.Path != path || s.State != StateListen || s.Family != FamilyUnix {
						t.Errorf("%s: listener %s (inode %d): %+v (found %v)", name, path, ino, s, ok)
					}
				}
			}
		})
	}
}
