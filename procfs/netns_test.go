package procfs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The netns child: a process in its own network namespace holding sockets at
// the same addresses as the parent's (see TestNetNSSockets).
const (
	netnsPortEnv     = "FDTOP_NETNS_PORT"
	netnsAbstractEnv = "FDTOP_NETNS_ABSTRACT"
)

// netnsChildReport is what the netns child prints after "ready ".
type netnsChildReport struct {
	Listener, Client, Accepted, UDP, PairA, PairB, Abstract int // descriptor numbers
	ClientPort                                              int
}

// netnsChild runs in a new network namespace: it brings up lo, opens its
// sockets, prints "ready {json}" and holds them until stdin closes.
func netnsChild() int {
	fail := func(what string, err error) int {
		fmt.Printf("error %s: %v\n", what, err)
		return 1
	}
	port, err := strconv.Atoi(os.Getenv(netnsPortEnv))
	if err != nil {
		return fail("port", err)
	}
	if err := loopbackUp(); err != nil {
		return fail("bring up lo", err)
	}
	var rep netnsChildReport
	var keep []any
	fd := func(f interface{ File() (*os.File, error) }) int {
		file, err := f.File()
		if err != nil {
			panic(err)
		}
		keep = append(keep, file, f)
		return int(file.Fd())
	}
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return fail("listen tcp", err)
	}
	ln := l.(*net.TCPListener)
	rep.Listener = fd(ln)
	c, err := net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		return fail("dial", err)
	}
	a, err := ln.AcceptTCP()
	if err != nil {
		return fail("accept", err)
	}
	rep.Client, rep.Accepted = fd(c), fd(a)
	rep.ClientPort = c.LocalAddr().(*net.TCPAddr).Port
	u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		return fail("listen udp", err)
	}
	rep.UDP = fd(u)
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fail("socketpair", err)
	}
	rep.PairA, rep.PairB = pair[0], pair[1]
	// Abstract names are per network namespace: the parent holds the same one.
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: "@" + os.Getenv(netnsAbstractEnv), Net: "unix"})
	if err != nil {
		return fail("listen unix", err)
	}
	rep.Abstract = fd(ul)
	b, _ := json.Marshal(rep)
	fmt.Printf("ready %s\n", b)
	io.Copy(io.Discard, os.Stdin)
	runtime.KeepAlive(keep)
	return 0
}

// nocapReport is what the scanner without CAP_SYS_ADMIN prints.
type nocapReport struct {
	Scans map[string]nocapScanResult
	Err   string
}

type nocapScanResult struct {
	NetNS    uint64
	Sockets  map[uint64]wireSocket
	Partial  bool
	Warnings []string
}

// wireSocket carries a Socket through JSON (its enums marshal to names only).
type wireSocket struct {
	Inode, NetNS, PeerInode    uint64
	Family                     uint16
	Proto, Type, State, Status uint8
	Abstract                   bool
	Local, Remote              netip.AddrPort
	Path                       string
}

func toWire(s Socket) wireSocket {
	return wireSocket{s.Inode, s.NetNS, s.PeerInode, uint16(s.Family), uint8(s.Proto), uint8(s.Type), uint8(s.State), uint8(s.Status), s.Abstract, s.Local, s.Remote, s.Path}
}

func fromWire(w wireSocket) Socket {
	return Socket{Inode: w.Inode, NetNS: w.NetNS, PeerInode: w.PeerInode, Family: Family(w.Family), Proto: Proto(w.Proto),
		Type: SockType(w.Type), State: SockState(w.State), Status: SocketStatus(w.Status), Abstract: w.Abstract,
		Local: w.Local, Remote: w.Remote, Path: w.Path}
}

// nocapScan drops CAP_SYS_ADMIN (so setns is impossible) and re-executes
// itself, then scans the pid in FDTOP_NETNS_TARGET and prints a nocapReport.
func nocapScan() int {
	const stageEnv = "FDTOP_NOCAP_STAGE"
	if os.Getenv(stageEnv) == "" {
		// The bounding set is per thread and exec takes the caller's: drop
		// and exec on one locked thread.
		runtime.LockOSThread()
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, unix.CAP_SYS_ADMIN, 0, 0, 0); err != nil {
			fmt.Printf("{\"Err\":%q}\n", "drop CAP_SYS_ADMIN: "+err.Error())
			return 0
		}
		err := syscall.Exec(os.Args[0], os.Args, append(os.Environ(), stageEnv+"=dropped"))
		fmt.Printf("{\"Err\":%q}\n", "exec: "+err.Error())
		return 0
	}
	rep := nocapReport{Scans: map[string]nocapScanResult{}}
	pid, _ := strconv.Atoi(os.Getenv("FDTOP_NETNS_TARGET"))
	fsys, err := New("/proc")
	for _, nl := range []bool{true, false} {
		if err != nil {
			break
		}
		opts := ScanOptions{NoNetlink: !nl}
		for _, full := range []bool{true, false} {
			var s *Scan
			if full {
				s, err = fsys.Scan(context.Background(), opts)
			} else {
				s, err = fsys.ScanPIDs(context.Background(), []int{pid}, opts)
			}
			if err != nil {
				break
			}
			r := nocapScanResult{Sockets: map[uint64]wireSocket{}, Partial: s.Partial, Warnings: s.Warnings}
			if p, ok := s.Process(pid); ok {
				r.NetNS = p.NetNS
				for _, fd := range p.FDs {
					if fd.Kind == KindSocket {
						r.Sockets[fd.Inode] = toWire(s.Sockets[fd.Inode])
					}
				}
			}
			rep.Scans[fmt.Sprintf("netlink=%v full=%v", nl, full)] = r
		}
	}
	if err != nil {
		rep.Err = err.Error()
	}
	json.NewEncoder(os.Stdout).Encode(rep)
	return 0
}

// loopbackUp sets IFF_UP on lo (down in a new network namespace).
func loopbackUp() error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCSIFFLAGS: %w", err)
	}
	return nil
}

// skipOrFail skips a test for a missing prerequisite, or fails it under CI=true.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("missing prerequisite (CI=true: not skipping): %s", msg)
	}
	t.Skip(msg)
}

func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	l, err := os.Readlink(path)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := parseNSLink([]byte(l))
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func socketInode(t *testing.T, pid, fd int) uint64 {
	t.Helper()
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
	if err != nil {
		t.Fatal(err)
	}
	var ino uint64
	if _, err := fmt.Sscanf(l, "socket:[%d]", &ino); err != nil {
		t.Fatalf("fd %d of pid %d is %q, not a socket", fd, pid, l)
	}
	return ino
}

// allSocketInodes lists the socket inodes a process holds.
func allSocketInodes(t *testing.T, pid int) map[uint64]bool {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[uint64]bool{}
	for _, e := range ents {
		l, err := os.Readlink(dir + "/" + e.Name())
		if err != nil {
			continue
		}
		var ino uint64
		if _, err := fmt.Sscanf(l, "socket:[%d]", &ino); err == nil {
			m[ino] = true
		}
	}
	return m
}

// startNetNSChild re-executes the test binary in a new network namespace and
// waits for its sockets. The child is killed in t.Cleanup.
func startNetNSChild(t *testing.T, port int, abstract string) (int, netnsChildReport) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=netns-child", netnsPortEnv+"="+strconv.Itoa(port), netnsAbstractEnv+"="+abstract)
	// No Pdeathsig: it fires when the forking thread exits, and the threads
	// that enter a namespace exit by design.
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSPC) {
			skipOrFail(t, "cannot create a network namespace: %v", err)
		}
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	var once sync.Once
	stop := func() {
		once.Do(func() {
			stdin.Close()
			_ = unix.Kill(pid, unix.SIGKILL)
			_ = cmd.Wait()
		})
	}
	t.Cleanup(stop)
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- l
	}()
	var l string
	select {
	case l = <-line:
	case <-time.After(20 * time.Second):
		stop()
		t.Fatalf("netns child not ready after 20s; stderr: %s", stderr.String())
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(l), "ready ")
	if !ok {
		stop()
		t.Fatalf("netns child: %q; stderr: %s", l, stderr.String())
	}
	var rep netnsChildReport
	if err := json.Unmarshal([]byte(rest), &rep); err != nil {
		t.Fatal(err)
	}
	return pid, rep
}

// wantSocket is what a scan must report about one socket.
type wantSocket struct {
	name string
	ino  uint64
	s    Socket // Family, Proto, Type, State, Local, Remote, Path, Abstract, PeerInode
}

// checkSocket compares a scanned socket with want in namespace ns.
func checkSocket(t *testing.T, scan string, got map[uint64]Socket, w wantSocket, ns uint64, peers bool) {
	t.Helper()
	s, ok := got[w.ino]
	if !ok {
		t.Errorf("%s: %s (inode %d) missing", scan, w.name, w.ino)
		return
	}
	if s.NetNS != ns {
		t.Errorf("%s: %s (inode %d) NetNS %d, want %d", scan, w.name, w.ino, s.NetNS, ns)
	}
	if s.Status != Resolved {
		t.Errorf("%s: %s (inode %d) status %s, want resolved", scan, w.name, w.ino, s.Status)
		if s.Status == Unresolved && (s.Local.IsValid() || s.State != StateUnknown || s.Path != "") {
			t.Errorf("%s: unresolved %s carries details: %+v", scan, w.name, s)
		}
		return
	}
	type key struct {
		Family   Family
		Proto    Proto
		Type     SockType
		State    SockState
		Local    netip.AddrPort
		Remote   netip.AddrPort
		Path     string
		Abstract bool
		Peer     uint64
	}
	k := func(s Socket, peer bool) key {
		r := key{s.Family, s.Proto, s.Type, s.State, s.Local, s.Remote, s.Path, s.Abstract, 0}
		if s.State == StateListen {
			r.Remote = netip.AddrPort{} // 0.0.0.0:0 or unset
		}
		if peer {
			r.Peer = s.PeerInode
		}
		return r
	}
	if g, wk := k(s, peers), k(w.s, peers); g != wk {
		t.Errorf("%s: %s (inode %d):\n got %+v\nwant %+v", scan, w.name, w.ino, g, wk)
	}
}

// checkThreads verifies that every thread of the test process is in the
// host network namespace: entering another one must never leak. A thread
// that entered one exits just after handing over its socket: wait for it.
func checkThreads(t *testing.T, hostNS uint64) {
	t.Helper()
	if ns := nsInode(t, "/proc/self/ns/net"); ns != hostNS {
		t.Errorf("the main thread is in network namespace %d, want %d", ns, hostNS)
	}
	var foreign []string
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		foreign = foreign[:0]
		for _, e := range tasks {
			l, err := os.Readlink("/proc/self/task/" + e.Name() + "/ns/net")
			if err != nil {
				continue // thread gone
			}
			if ns, _ := parseNSLink([]byte(l)); ns != hostNS {
				foreign = append(foreign, fmt.Sprintf("thread %s in network namespace %d", e.Name(), ns))
			}
		}
		if len(foreign) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, f := range foreign {
		t.Errorf("%s, want %d", f, hostNS)
	}
}

// TestNetNSSockets scans a process in another network namespace that holds
// sockets at the same addresses as sockets of the host namespace: every
// socket must be read in its own namespace, with that namespace's inode.
func TestNetNSSockets(t *testing.T) {
	requireRoot(t)
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		skipOrFail(t, "no network namespaces: %v", err)
	}
	hostNS := nsInode(t, "/proc/self/ns/net")
	self := os.Getpid()

	// Host sockets: a listener, a connection to it, a UDP socket on the
	// same port, and an abstract unix listener; the child takes the same
	// addresses in its namespace.
	hln, err := listenTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hln.Close() })
	port := hln.Addr().(*net.TCPAddr).Port
	hc, err := net.DialTCP("tcp4", nil, hln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hc.Close() })
	ha, err := hln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ha.Close() })
	var hostUDP *net.UDPConn
	if u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err == nil {
		hostUDP = u
		t.Cleanup(func() { u.Close() })
	} else {
		t.Logf("host UDP on port %d: %v (only the child has one)", port, err)
	}
	abstract := fmt.Sprintf("fdtop-netns-test-%d", self)
	hul, err := net.ListenUnix("unix", &net.UnixAddr{Name: "@" + abstract, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hul.Close() })

	pid, rep := startNetNSChild(t, port, abstract)
	childNS := nsInode(t, fmt.Sprintf("/proc/%d/ns/net", pid))
	if childNS == hostNS {
		t.Fatalf("child %d is in the host network namespace %d", pid, hostNS)
	}

	lo := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	at := func(p int) netip.AddrPort { return netip.AddrPortFrom(lo, uint16(p)) }
	ino := func(fd int) uint64 { return socketInode(t, pid, fd) }
	pairA, pairB := ino(rep.PairA), ino(rep.PairB)
	child := []wantSocket{
		{"child tcp listener", ino(rep.Listener), Socket{Family: FamilyInet, Proto: ProtoTCP, Type: TypeStream, State: StateListen, Local: at(port)}},
		{"child tcp client", ino(rep.Client), Socket{Family: FamilyInet, Proto: ProtoTCP, Type: TypeStream, State: StateEstablished, Local: at(rep.ClientPort), Remote: at(port)}},
		{"child tcp accepted", ino(rep.Accepted), Socket{Family: FamilyInet, Proto: ProtoTCP, Type: TypeStream, State: StateEstablished, Local: at(port), Remote: at(rep.ClientPort)}},
		{"child udp", ino(rep.UDP), Socket{Family: FamilyInet, Proto: ProtoUDP, Type: TypeDgram, State: StateClose, Local: at(port), Remote: netip.AddrPortFrom(netip.IPv4Unspecified(), 0)}},
		{"child socketpair A", pairA, Socket{Family: FamilyUnix, Type: TypeStream, State: StateEstablished, PeerInode: pairB}},
		{"child socketpair B", pairB, Socket{Family: FamilyUnix, Type: TypeStream, State: StateEstablished, PeerInode: pairA}},
		{"child abstract listener", ino(rep.Abstract), Socket{Family: FamilyUnix, Type: TypeStream, State: StateListen, Path: abstract, Abstract: true}},
	}
	hostFD := func(f interface{ File() (*os.File, error) }) uint64 {
		file, err := f.File()
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		return socketInode(t, self, int(file.Fd()))
	}
	hcPort := hc.LocalAddr().(*net.TCPAddr).Port
	host := []wantSocket{
		{"host tcp listener", hostFD(hln), Socket{Family: FamilyInet, Proto: ProtoTCP, Type: TypeStream, State: StateListen, Local: at(port)}},
		{"host tcp client", hostFD(hc), Socket{Family: FamilyInet, Proto: ProtoTCP, Type: TypeStream, State: StateEstablished, Local: at(hcPort), Remote: at(port)}},
		{"host tcp accepted", hostFD(ha), Socket{Family: FamilyInet, Proto: ProtoTCP, Type: TypeStream, State: StateEstablished, Local: at(port), Remote: at(hcPort)}},
		{"host abstract listener", hostFD(hul), Socket{Family: FamilyUnix, Type: TypeStream, State: StateListen, Path: abstract, Abstract: true}},
	}
	if hostUDP != nil {
		host = append(host, wantSocket{"host udp", hostFD(hostUDP), Socket{Family: FamilyInet, Proto: ProtoUDP, Type: TypeDgram, State: StateClose, Local: at(port), Remote: netip.AddrPortFrom(netip.IPv4Unspecified(), 0)}})
	}
	childInodes := allSocketInodes(t, pid)
	for _, w := range child {
		if !childInodes[w.ino] {
			t.Fatalf("%s: inode %d not held by the child", w.name, w.ino)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	check := func(t *testing.T, name string, s *Scan, err error, full, netlink bool, pids ...int) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, w := range s.Warnings {
			t.Logf("%s: warning: %s", name, w)
		}
		for _, e := range s.Errors {
			t.Logf("%s: error: %v", name, e)
		}
		withSelf := full
		for _, p := range pids {
			withSelf = withSelf || p == self
		}
		cp, ok := s.Process(pid)
		if !ok {
			t.Fatalf("%s: child %d missing", name, pid)
		}
		if cp.NetNS != childNS {
			t.Errorf("%s: child Process.NetNS %d, want %d", name, cp.NetNS, childNS)
		}
		for _, w := range child {
			checkSocket(t, name, s.Sockets, w, childNS, netlink)
		}
		if withSelf {
			sp, ok := s.Process(self)
			if !ok {
				t.Fatalf("%s: own process missing", name)
			}
			if sp.NetNS != hostNS {
				t.Errorf("%s: own Process.NetNS %d, want %d", name, sp.NetNS, hostNS)
			}
			for _, w := range host {
				checkSocket(t, name, s.Sockets, w, hostNS, netlink)
			}
		}
		// Nothing read in the child's namespace but the child's sockets,
		// and no host socket labelled with the child's namespace.
		listeners := map[uint64]uint64{}
		for ino, so := range s.Sockets {
			if so.NetNS == childNS && !childInodes[ino] {
				t.Errorf("%s: socket %d labelled with the child's namespace is not the child's: %+v", name, ino, so)
			}
			if so.Proto == ProtoTCP && so.State == StateListen && so.Local == at(port) {
				listeners[ino] = so.NetNS
			}
		}
		want := map[uint64]uint64{child[0].ino: childNS}
		if withSelf {
			want[host[0].ino] = hostNS
		}
		if fmt.Sprint(listeners) != fmt.Sprint(want) {
			t.Errorf("%s: listeners on %s (inode: netns) %v, want %v", name, at(port), listeners, want)
		}
		checkThreads(t, hostNS)
	}

	// openDiagIn's thread may be the main thread, which Go parks instead of
	// ending: it must never be left in the child's namespace.
	t.Run("main-thread", func(t *testing.T) {
		var r diagResult
		if !onMainThread(func() {
			ch := make(chan diagResult, 1)
			openDiagInThread(fmt.Sprintf("/proc/%d/ns/net", pid), ch)
			r = <-ch
		}) {
			t.Skip("could not schedule a goroutine on the main thread")
		}
		checkThreads(t, hostNS)
		if r.err != nil {
			t.Fatal(r.err)
		}
		defer r.c.Close()
		tcp := map[uint64]bool{}
		if err := r.c.dumpInet(FamilyInet, ProtoTCP, func(s Socket) { tcp[s.Inode] = true }); err != nil {
			t.Fatal(err)
		}
		if !tcp[child[0].ino] || tcp[host[0].ino] {
			t.Errorf("sock_diag socket not in the child's namespace: child listener seen %v, host listener seen %v", tcp[child[0].ino], tcp[host[0].ino])
		}
	})

	// Without CAP_SYS_ADMIN the namespace cannot be entered: sock_diag
	// leaves the child's sockets unresolved (in its namespace, with a
	// warning), while /proc/PID/net still reads them.
	t.Run("no-setns", func(t *testing.T) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=netns-scan-nocap", "FDTOP_NETNS_TARGET="+strconv.Itoa(pid))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("scanner without CAP_SYS_ADMIN: %v: %s", err, out)
		}
		var rep nocapReport
		if err := json.Unmarshal(out, &rep); err != nil {
			t.Fatalf("scanner output %q: %v", out, err)
		}
		if rep.Err != "" {
			t.Fatal(rep.Err)
		}
		if len(rep.Scans) != 4 {
			t.Fatalf("scanner ran %d scans, want 4", len(rep.Scans))
		}
		for name, wr := range rep.Scans {
			r := struct {
				nocapScanResult
				Sockets map[uint64]Socket
			}{wr, map[uint64]Socket{}}
			for ino, w := range wr.Sockets {
				r.Sockets[ino] = fromWire(w)
			}
			if r.NetNS != childNS {
				t.Errorf("%s: child Process.NetNS %d, want %d", name, r.NetNS, childNS)
			}
			if strings.Contains(name, "netlink=false") {
				for _, w := range child {
					checkSocket(t, name, r.Sockets, w, childNS, false)
				}
				continue
			}
			if !r.Partial || !strings.Contains(strings.Join(r.Warnings, "\n"), fmt.Sprintf("network namespace %d unresolved", childNS)) {
				t.Errorf("%s: partial %v, warnings %q: want the child's namespace reported unresolved", name, r.Partial, r.Warnings)
			}
			for _, w := range child {
				s, ok := r.Sockets[w.ino]
				switch {
				case !ok:
					t.Errorf("%s: %s missing", name, w.name)
				case s.Status != Unresolved || s.NetNS != childNS || s.Local.IsValid() || s.Remote.IsValid() || s.Path != "" || s.State != StateUnknown:
					t.Errorf("%s: %s = %+v, want unresolved in namespace %d without details", name, w.name, s, childNS)
				}
			}
		}
	})

	for _, nl := range []bool{true, false} {
		opts := ScanOptions{NoNetlink: !nl}
		mode := "netlink"
		if !nl {
			mode = "proc-net"
		}
		t.Run(mode, func(t *testing.T) {
			// A full scan, then targeted scans with its cache.
			fs := liveFS(t)
			s, err := fs.Scan(ctx, opts)
			check(t, "Scan", s, err, true, nl)
			s, err = fs.ScanPIDs(ctx, []int{pid}, opts)
			check(t, "ScanPIDs(child) after Scan", s, err, false, nl, pid)
			s, err = fs.ScanPIDs(ctx, []int{pid, self}, opts)
			check(t, "ScanPIDs(child, self) after Scan", s, err, false, nl, pid, self)
			// Targeted scans without a cache.
			s, err = liveFS(t).ScanPIDs(ctx, []int{pid}, opts)
			check(t, "ScanPIDs(child) cold", s, err, false, nl, pid)
			s, err = liveFS(t).ScanPIDs(ctx, []int{self, pid}, opts)
			check(t, "ScanPIDs(self, child) cold", s, err, false, nl, pid, self)
		})
	}
}

// onMainThread runs fn on a goroutine locked to the main thread, if one can
// be scheduled there; it reports whether it could. Goroutines that land
// elsewhere keep their thread busy until the end, so that each next attempt
// runs on another thread: an idle main thread is found within as many
// attempts as there are idle threads.
func onMainThread(fn func()) bool {
	release := make(chan struct{})
	defer close(release)
	found := make(chan bool)
	for range 128 {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if unix.Gettid() == unix.Getpid() {
				fn()
				found <- true
				return
			}
			found <- false
			<-release
		}()
		if <-found {
			return true
		}
		// The main thread may be the one blocked in the network poller: a
		// new timer wakes it up.
		time.Sleep(time.Millisecond)
	}
	return false
}

// copyTree copies a fixture tree, symlinks included.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(l, to)
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestUnknownNetNS: the sockets of a process whose network namespace cannot
// be read are matched only by inode in the own namespace's tables; the
// others stay unresolved with an unknown namespace (0), never labelled as the
// own namespace's.
func TestUnknownNetNS(t *testing.T) {
	root := t.TempDir()
	copyTree(t, "testdata/proc", root)
	// Process 300 (in namespace 4026532500, socket 9501 in its own tables
	// only) gets an unreadable ns/net link (ptrace-denied on a live system;
	// a missing link would mean the process is gone) and socket 5001 of the
	// own tables.
	nsLink := filepath.Join(root, "300", "ns", "net")
	if err := os.Remove(nsLink); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("unknown", nsLink); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("socket:[5001]", filepath.Join(root, "300", "fd", "4")); err != nil {
		t.Fatal(err)
	}
	fsys, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	ownNS := fsys.ownNetNS()
	if ownNS == 0 || ownNS == 4026532500 {
		t.Fatalf("fixture's own namespace %d", ownNS)
	}
	ctx := context.Background()
	full, err := fsys.Scan(ctx, ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	targeted, err := fsys.ScanPIDs(ctx, []int{300}, ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*Scan{"Scan": full, "ScanPIDs": targeted} {
		p, ok := s.Process(300)
		if !ok {
			t.Fatalf("%s: pid 300 missing", name)
		}
		if p.NetNS != 0 {
			t.Errorf("%s: pid 300 NetNS %d, want 0 (unknown)", name, p.NetNS)
		}
		if so := s.Sockets[9501]; so.Status != Unresolved || so.NetNS != 0 || so.Local.IsValid() {
			t.Errorf("%s: socket 9501 of an unknown namespace = %+v, want unresolved in namespace 0", name, so)
		}
		if so := s.Sockets[5001]; so.Status != Resolved || so.NetNS != ownNS || so.State != StateListen {
			t.Errorf("%s: socket 5001 of the own tables = %+v, want resolved LISTEN in namespace %d", name, so, ownNS)
		}
	}
}
