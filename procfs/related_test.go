package procfs

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fdtop/fdtop/procfs/bpfiter"
	"golang.org/x/sys/unix"
)

func TestRelatedSockets(t *testing.T) {
	tcp := func(ino uint64, local string, st SockState) Socket {
		return Socket{Inode: ino, Family: FamilyInet, Proto: ProtoTCP, State: st, Local: netip.MustParseAddrPort(local)}
	}
	tcp6 := func(ino uint64, local string, st SockState) Socket {
		s := tcp(ino, local, st)
		s.Family = FamilyInet6
		return s
	}
	unixSock := func(ino uint64, path string, peer uint64, st SockState) Socket {
		return Socket{Inode: ino, Family: FamilyUnix, Path: path, PeerInode: peer, State: st}
	}
	all := []Socket{
		tcp(1, "0.0.0.0:80", StateListen),                 // held listener
		tcp(2, "127.0.0.1:80", StateEstablished),          // accepted from it, held elsewhere
		tcp6(3, "[::ffff:127.0.0.1]:80", StateCloseWait),  // accepted, v4-mapped in tcp6
		tcp(4, "127.0.0.1:81", StateEstablished),          // another port
		tcp(5, "0.0.0.0:82", StateListen),                 // a listener nobody of the units holds
		tcp(6, "127.0.0.1:82", StateEstablished),          // accepted from that one
		tcp(7, "127.0.0.1:40000", StateEstablished),       // held client end
		unixSock(10, "/run/a.sock", 0, StateListen),       // held unix listener
		unixSock(11, "/run/a.sock", 90, StateEstablished), // accepted from it (server end)
		unixSock(90, "", 11, StateEstablished),            // its client end: not held, peer not held
		unixSock(12, "/run/b.sock", 91, StateEstablished), // accepted from a listener not held
		unixSock(20, "", 21, StateEstablished),            // held end of a pair
		unixSock(21, "", 20, StateEstablished),            // its other end
		unixSock(30, "", 31, StateEstablished),            // a pair nobody of the units holds
		unixSock(31, "", 30, StateEstablished),
		unixSock(40, "/run/a.sock", 0, StateClose),                                                       // bound to the name, not connected
		{Inode: 50, Family: FamilyInet, Proto: ProtoUDP, Local: netip.MustParseAddrPort("127.0.0.1:80")}, // UDP at the port
	}
	byIno := map[uint64]Socket{}
	for _, s := range all {
		byIno[s.Inode] = s
	}
	tests := []struct {
		name string
		held []uint64
		want []uint64
	}{
		{"nothing held", nil, nil},
		{"a TCP listener: its accepted connections", []uint64{1}, []uint64{1, 2, 3}},
		{"a TCP connection alone", []uint64{7}, []uint64{7}},
		{"a unix listener: its accepted connections", []uint64{10}, []uint64{10, 11}},
		{"one end of a pair: the other", []uint64{20}, []uint64{20, 21}},
		{"the accepted unix end: its client (peer)", []uint64{11}, []uint64{11, 90}},
		{"a held inode not in the tables", []uint64{99}, nil},
		{"all of them", []uint64{1, 7, 10, 20}, []uint64{1, 2, 3, 7, 10, 11, 20, 21}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			held := map[uint64]bool{}
			for _, ino := range tt.held {
				held[ino] = true
			}
			got := slices.Sorted(maps.Keys(relatedSockets(byIno, held)))
			if !slices.Equal(got, tt.want) {
				t.Errorf("kept %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRelatedInodesAndKeepFDs(t *testing.T) {
	sockets := map[uint64]Socket{
		1: {Inode: 1, Family: FamilyUnix, PeerInode: 2}, // held by a fresh process: its peer too
		3: {Inode: 3, Family: FamilyUnix, PeerInode: 4}, // kept, not held fresh (accepted from a held listener): its peer too
	}
	fresh := map[uint64]bool{1: true, 7: true} // 7: a pipe a fresh process holds
	keep := relatedInodes(sockets, fresh)
	if want := []uint64{1, 2, 3, 4, 7}; !slices.Equal(slices.Sorted(maps.Keys(keep)), want) {
		t.Fatalf("relatedInodes = %v, want %v", slices.Sorted(maps.Keys(keep)), want)
	}
	fds := []FD{{Num: 0, Kind: KindPipe, Inode: 7}, {Num: 1, Kind: KindFile, Inode: 1}, {Num: 2, Kind: KindSocket, Inode: 4}, {Num: 3, Kind: KindSocket, Inode: 2}}
	tests := []struct {
		name string
		fds  []FD
		want []int // descriptor numbers
	}{
		{"some kept", fds, []int{0, 2, 3}},
		{"a file whose inode number is a kept socket's", fds[1:2], nil},
		{"no descriptors", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int
			for _, fd := range keepFDs(tt.fds, keep) {
				got = append(got, fd.Num)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("keepFDs = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCompactFDs(t *testing.T) {
	tests := []struct {
		name string
		fds  []FD
		want []FD
	}{
		{"no descriptors", nil, nil},
		{"files only", []FD{{Num: 0, Kind: KindFile, Target: "/dev/null", Name: "/dev/null", Inode: 5}}, nil},
		{
			"sockets, pipes, FIFOs and memfds, without their text",
			[]FD{
				{Num: 0, Kind: KindFile, Target: "/dev/null", Name: "/dev/null", Inode: 5},
				{Num: 3, Kind: KindSocket, Target: "socket:[10]", Inode: 10},
				{Num: 4, Kind: KindPipe, Target: "pipe:[11]", Inode: 11},
				{Num: 5, Kind: KindFIFO, Target: "/run/f", Name: "/run/f", Inode: 12},
				{Num: 6, Kind: KindMemfd, Target: "/memfd:x (deleted)", Name: "x", Inode: 13},
				{Num: 7, Kind: KindSocket, Target: "socket:[0]"}, // no inode: not looked for
			},
			[]FD{{Num: 3, Kind: KindSocket, Inode: 10}, {Num: 4, Kind: KindPipe, Inode: 11}, {Num: 5, Kind: KindFIFO, Inode: 12}, {Num: 6, Kind: KindMemfd, Inode: 13}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := compactFDs(tt.fds); !slices.Equal(got, tt.want) {
				t.Errorf("compactFDs = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestBPFSocketFDs(t *testing.T) {
	recs, at := groupRecords([]bpfiter.Record{
		{PID: 20, FD: 5, Inode: 205}, {PID: 10, FD: 4, Inode: 104}, {PID: 20, FD: 3, Inode: 203}, {PID: 10, FD: 3, Inode: 103},
	})
	b := &bpfSocketFDs{recs: recs, at: at}
	nums := func(fds []FD) []string {
		var out []string
		for _, fd := range fds {
			out = append(out, fmt.Sprintf("%d:%d", fd.Num, fd.Inode))
		}
		return out
	}
	tests := []struct {
		name string
		pid  int
		keep map[uint64]bool
		want []string
	}{
		{"every descriptor, by number", 20, nil, []string{"3:203", "5:205"}},
		{"the kept ones", 10, map[uint64]bool{104: true, 205: true}, []string{"4:104"}},
		{"none kept", 10, map[uint64]bool{205: true}, nil},
		{"a process the run did not list", 30, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nums(b.fds(tt.pid, tt.keep)); !slices.Equal(got, tt.want) {
				t.Errorf("fds(%d) = %v, want %v", tt.pid, got, tt.want)
			}
		})
	}
}

// TestLiveRelated builds a unit process and an outside one around it on
// the live kernel, and checks that a related scan keeps exactly what
// relates to the unit (its sockets, their peers, the connections accepted
// from its listeners, whoever holds them) with the same sockets and
// holders as a full scan, and nothing of the unrelated sockets: with the
// BPF holder pass where it loads, and with the /proc pass.
func TestLiveRelated(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	var closers []func()
	t.Cleanup(func() {
		for _, c := range closers {
			c()
		}
	})
	file := func(f interface{ File() (*os.File, error) }) *os.File {
		t.Helper()
		fl, err := f.File()
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, func() { fl.Close() })
		return fl
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	listenTCP := func() *net.TCPListener {
		t.Helper()
		l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		must(err)
		closers = append(closers, func() { l.Close() })
		return l
	}
	connect := func(l *net.TCPListener) (client, server *net.TCPConn) {
		t.Helper()
		c, err := net.DialTCP("tcp4", nil, l.Addr().(*net.TCPAddr))
		must(err)
		s, err := l.AcceptTCP()
		must(err)
		closers = append(closers, func() { c.Close(); s.Close() })
		return c, s
	}
	pair := func() (*os.File, *os.File) {
		t.Helper()
		sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		must(err)
		a, b := os.NewFile(uintptr(sp[0]), "a"), os.NewFile(uintptr(sp[1]), "b")
		closers = append(closers, func() { a.Close(); b.Close() })
		return a, b
	}
	ino := func(f *os.File) uint64 { return mustInode(t, int(f.Fd())) }

	// The unit's sockets.
	l := listenTCP()
	_, a1 := connect(l)
	_, a2 := connect(l) // accepted, then held outside
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "u.sock"), Net: "unix"})
	must(err)
	closers = append(closers, func() { ul.Close() })
	uc, err := net.DialUnix("unix", nil, ul.Addr().(*net.UnixAddr))
	must(err)
	ua, err := ul.AcceptUnix() // accepted, then held outside
	must(err)
	closers = append(closers, func() { uc.Close(); ua.Close() })
	pa, pb := pair()
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	must(err)
	closers = append(closers, func() { udp.Close() })
	other := listenTCP()
	cl, _ := connect(other) // the unit's client end of a connection elsewhere
	// An unbound TCP socket: in no table (its family only).
	ub, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	must(err)
	unbound := os.NewFile(uintptr(ub), "unbound")
	closers = append(closers, func() { unbound.Close() })
	unitFiles := []*os.File{file(l), file(a1), file(ul), pa, file(udp), file(cl), unbound}

	// The outside process: what relates to the unit, and what does not.
	q1, q2 := pair()
	l3 := listenTCP()
	l3c, l3s := connect(l3)
	outsideRelated := []*os.File{pb, file(a2), file(ua)}
	outsideUnrelated := []*os.File{q1, q2, file(l3c), file(l3s)}

	start := func(files []*os.File) *exec.Cmd {
		t.Helper()
		cmd := exec.Command("/bin/sleep", "120")
		cmd.ExtraFiles = files
		must(cmd.Start())
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		waitQuiet(t, cmd.Process.Pid, "sleep")
		return cmd
	}
	unit := start(unitFiles)
	outside := start(append(slices.Clone(outsideRelated), outsideUnrelated...))

	wantKept := map[uint64]string{}
	for i, f := range unitFiles {
		wantKept[ino(f)] = fmt.Sprintf("unit fd %d", 3+i)
	}
	for i, f := range outsideRelated {
		wantKept[ino(f)] = fmt.Sprintf("outside fd %d", 3+i)
	}
	wantGone := map[uint64]string{}
	for i, f := range outsideUnrelated {
		wantGone[ino(f)] = fmt.Sprintf("outside fd %d", 3+len(outsideRelated)+i)
	}

	bpfFS, err := New("/proc")
	must(err)
	for _, tc := range []struct {
		name string
		fs   FS
		want string
	}{
		{"bpf", bpfFS, HoldersBPF},
		{"proc", bpfFS.WithHolders(Holders{Proc: true}), HoldersProc},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			// The related scan first: the first subtest's finds the unit's
			// inet sockets with no earlier scan's addresses (their tables
			// read whole), the second's by exact lookup.
			opts := ScanOptions{FreshPIDs: []int{unit.Process.Pid}, Related: true}
			rel, err := tc.fs.Scan(ctx, opts)
			must(err)
			opts.Related = false
			full, err := tc.fs.Scan(ctx, opts)
			must(err)
			if rel.HoldersSource != tc.want {
				if tc.want == HoldersBPF {
					t.Skipf("no BPF holder pass here: %s", rel.HoldersNote)
				}
				t.Fatalf("holders source %q, want %q", rel.HoldersSource, tc.want)
			}
			// The unbound socket, looked for in the TCP table and not
			// found, does not make the next related scan read it whole.
			if ino := ino(unbound); !tc.fs.cache.absentInet()[ino] {
				t.Errorf("the unbound socket (inode %d) not noted absent", ino)
			}
			if !rel.Related || full.Related {
				t.Errorf("Related: %v for the related scan, %v for the full one", rel.Related, full.Related)
			}
			for ino, what := range wantKept {
				if _, ok := rel.Sockets[ino]; !ok {
					t.Errorf("%s (inode %d) not kept", what, ino)
				}
			}
			for ino, what := range wantGone {
				if _, ok := rel.Sockets[ino]; ok {
					t.Errorf("%s (inode %d) kept, relates to nothing of the unit", what, ino)
				}
				if _, ok := full.Sockets[ino]; !ok {
					t.Errorf("%s (inode %d) not in the full scan", what, ino)
				}
			}
			// Every socket kept is as the full scan has it, with the same holders.
			fullHolders, relHolders := holdersByInode(full), holdersByInode(rel)
			for ino, s := range rel.Sockets {
				if f, ok := full.Sockets[ino]; !ok {
					t.Errorf("inode %d kept, not in the full scan", ino)
				} else if f.Family != s.Family || f.Status != s.Status || f.State != s.State || f.Local != s.Local || f.Remote != s.Remote || f.Path != s.Path || f.PeerInode != s.PeerInode {
					t.Errorf("inode %d: related %+v, full %+v", ino, s, f)
				}
				if !slices.Equal(relHolders[ino], fullHolders[ino]) {
					t.Errorf("inode %d held by %v, by %v in the full scan", ino, relHolders[ino], fullHolders[ino])
				}
				// Who holds the other end (a unix peer's holders name it).
				if p := s.PeerInode; p != 0 && !slices.Equal(relHolders[p], fullHolders[p]) {
					t.Errorf("peer %d of inode %d held by %v, by %v in the full scan", p, ino, relHolders[p], fullHolders[p])
				}
			}
			up, _ := rel.Process(unit.Process.Pid)
			uf, _ := full.Process(unit.Process.Pid)
			if up == nil || uf == nil || !slices.EqualFunc(up.FDs, uf.FDs, func(a, b FD) bool { return a.Num == b.Num && a.Inode == b.Inode && a.Kind == b.Kind }) {
				t.Errorf("the unit's descriptors differ between the related and the full scan")
			}
			op, _ := rel.Process(outside.Process.Pid)
			if op == nil {
				t.Fatal("the outside process is not in the related scan")
			}
			// Its sockets kept are the ones relating to the unit (a pipe
			// it shares with the unit, inherited from the test, is kept too).
			var got []int
			for _, fd := range op.FDs {
				if fd.Kind == KindSocket {
					got = append(got, fd.Num)
				}
				if what, ok := wantGone[fd.Inode]; ok {
					t.Errorf("%s kept", what)
				}
			}
			if want := []int{3, 4, 5}; !slices.Equal(got, want) {
				t.Errorf("the outside process's socket descriptors kept: %v, want %v", got, want)
			}
		})
	}
}

// holdersByInode lists the holders of every inode of a scan, "pid/fd",
// in scan order.
func holdersByInode(s *Scan) map[uint64][]string {
	out := map[uint64][]string{}
	for _, p := range s.Processes {
		for _, fd := range p.FDs {
			if fd.Kind == KindSocket {
				out[fd.Inode] = append(out[fd.Inode], fmt.Sprintf("%d/%d", p.PID, fd.Num))
			}
		}
	}
	return out
}

// TestLiveResolveUnix: more unix sockets than are looked up one by one are
// found, as a dump of the whole table has them, whether few connected
// ones are left after the listeners and unconnected sockets (looked up by
// inode) or many (the whole table dumped).
func TestLiveResolveUnix(t *testing.T) {
	requireRoot(t)
	fs := liveFS(t)
	tests := []struct {
		name                     string
		listeners, unconn, pairs int
	}{
		{"few connected left", 30, 5, 5},
		{"many connected left", 5, 5, 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var fds []int
			t.Cleanup(func() {
				for _, fd := range fds {
					unix.Close(fd)
				}
			})
			sock := func(typ int) int {
				fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					t.Fatal(err)
				}
				fds = append(fds, fd)
				return fd
			}
			for i := range tt.listeners {
				fd := sock(unix.SOCK_STREAM)
				if err := unix.Bind(fd, &unix.SockaddrUnix{Name: filepath.Join(dir, fmt.Sprintf("l%d", i))}); err != nil {
					t.Fatal(err)
				}
				if err := unix.Listen(fd, 4); err != nil {
					t.Fatal(err)
				}
			}
			for i := range tt.unconn {
				fd := sock(unix.SOCK_DGRAM)
				if err := unix.Bind(fd, &unix.SockaddrUnix{Name: filepath.Join(dir, fmt.Sprintf("d%d", i))}); err != nil {
					t.Fatal(err)
				}
			}
			for range tt.pairs {
				sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					t.Fatal(err)
				}
				fds = append(fds, sp[0], sp[1])
			}
			var inodes []uint64
			for _, fd := range fds {
				inodes = append(inodes, mustInode(t, fd))
			}
			if len(inodes) <= maxUnixLookups {
				t.Fatalf("%d sockets: not more than are looked up one by one", len(inodes))
			}
			ctx := context.Background()
			all, _, err := fs.Sockets(ctx, ScanOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := fs.SocketsByInode(ctx, inodes)
			if err != nil {
				t.Fatal(err)
			}
			for _, ino := range inodes {
				g, ok := got[ino]
				w := all[ino]
				switch {
				case !ok:
					t.Errorf("inode %d not found", ino)
				case g.State != w.State || g.Path != w.Path || g.PeerInode != w.PeerInode || g.Type != w.Type:
					t.Errorf("inode %d: %+v, the whole table has %+v", ino, g, w)
				}
			}
		})
	}
}

// TestLiveRelatedPathStat: a related /proc pass whose fresh processes hold
// no FIFO or memfd does not stat the others' path targets, and a later one
// whose fresh processes hold a memfd does not take those tables: the
// memfd's other holder is found.
func TestLiveRelatedPathStat(t *testing.T) {
	requireRoot(t)
	fs := liveFS(t)
	mfd, err := unix.MemfdCreate("fdtop-test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	memfd := os.NewFile(uintptr(mfd), "memfd")
	defer memfd.Close()
	memIno := mustInode(t, mfd)
	start := func(files ...*os.File) int {
		t.Helper()
		cmd := exec.Command("/bin/sleep", "120")
		cmd.ExtraFiles = files
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		waitQuiet(t, cmd.Process.Pid, "sleep")
		return cmd.Process.Pid
	}
	plain := start()        // a unit holding no FIFO or memfd
	keeper := start(memfd)  // a unit holding the memfd
	outside := start(memfd) // another holder of it
	ctx := context.Background()
	holds := func(s *Scan, pid int) bool {
		p, ok := s.Process(pid)
		return ok && slices.ContainsFunc(p.FDs, func(fd FD) bool { return fd.Inode == memIno && fd.Kind == KindMemfd })
	}
	for i, tc := range []struct {
		fresh int
		want  bool
	}{{plain, false}, {keeper, true}, {plain, false}, {keeper, true}} {
		s, err := fs.Scan(ctx, ScanOptions{FreshPIDs: []int{tc.fresh}, Related: true, ReuseFDs: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := holds(s, outside); got != tc.want {
			t.Errorf("scan %d (fresh pid %d): the outside process holds the memfd: %v, want %v", i+1, tc.fresh, got, tc.want)
		}
	}
}
