package procfs

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dial := func() (client, server net.Conn) {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return c, s
	}
	inode := func(c net.Conn) uint64 {
		t.Helper()
		f, err := c.(*net.TCPConn).File()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	// A child holds the client end of a connection, as a process of the
	// host that does not change.
	held, peer := dial()
	defer peer.Close()
	f, err := held.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	heldIno := inode(held)
	child := exec.Command("/bin/sh", "-c", "read a")
	child.ExtraFiles = []*os.File{f}
	in, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); _ = child.Wait() }()
	f.Close()
	held.Close() // the child's is the only client end now
	closing, closingPeer := dial()
	closingIno := inode(closing)

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
	if s := scan(ScanOptions{}); state(s, heldIno) != "ESTAB" || state(s, closingIno) != "ESTAB" {
		t.Fatalf("the full scan: held %s, closing %s; want both ESTAB", state(s, heldIno), state(s, closingIno))
	}

	// Since the dump: one connection closed, one opened; the child's peer
	// closed its end (the child's socket is CLOSE_WAIT in the kernel, the
	// child unchanged).
	closing.Close()
	closingPeer.Close()
	opened, openedPeer := dial()
	defer opened.Close()
	defer openedPeer.Close()
	openedIno := inode(opened)
	peer.Close()

	s := scan(ScanOptions{ReuseFDs: true})
	if got := state(s, closingIno); got != "absent" {
		t.Errorf("a connection closed since the dump is in the incremental pass: %s", got)
	}
	so, ok := s.Sockets[openedIno]
	if !ok || so.State != StateEstablished || so.Local.String() != opened.LocalAddr().String() || so.Remote.String() != opened.RemoteAddr().String() {
		t.Errorf("a connection opened since the dump: %+v (found %v); want ESTAB %s → %s", so, ok, opened.LocalAddr(), opened.RemoteAddr())
	}
	// Not dumped: the unchanged child's socket as the dump saw it.
	if got := state(s, heldIno); got != "ESTAB" {
		t.Fatalf("the unchanged child's socket is %s: the pass dumped the tables (or the child was read again)", got)
	}
	if got := state(scan(ScanOptions{ReuseFDs: true, FreshPIDs: []int{child.Process.Pid}}), heldIno); got != "CLOSE-WAIT" {
		t.Errorf("a process in FreshPIDs: its socket is %s, want CLOSE-WAIT", got)
	}
	// The state stays as last seen until a dump, at most ReuseScans passes on.
	for i := 0; ; i++ {
		if got := state(scan(ScanOptions{ReuseFDs: true}), heldIno); got == "CLOSE-WAIT" {
			break
		} else if i >= ReuseScans {
			t.Fatalf("after %d passes the child's socket is still %s: no pass dumped the tables", i+1, got)
		}
	}
}
