package procfs

import (
	"context"
	"io"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestTCPConnEnds closes real loopback connections from one end or the
// other and checks that the kernel's leftovers say which end closed first.
func TestTCPConnEnds(t *testing.T) {
	fs, err := New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// pair returns the server's end and the client's end of a new connection.
	pair := func(t *testing.T) (srv, cli net.Conn) {
		t.Helper()
		cli, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		srv, err = ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return srv, cli
	}
	tcpConn := func(c net.Conn) TCPConn {
		return TCPConn{Local: c.LocalAddr().(*net.TCPAddr).AddrPort(), Remote: c.RemoteAddr().(*net.TCPAddr).AddrPort()}
	}
	// waitEnds looks the server's end up until ok says the kernel settled.
	waitEnds := func(t *testing.T, c TCPConn, ok func(ConnEnds) bool) ConnEnds {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, err := fs.TCPConnEnds(context.Background(), []TCPConn{c})
			if err != nil {
				t.Fatal(err)
			}
			if ok(got[0]) || time.Now().After(deadline) {
				return got[0]
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	t.Run("open", func(t *testing.T) {
		srv, cli := pair(t)
		defer srv.Close()
		defer cli.Close()
		got := waitEnds(t, tcpConn(srv), func(e ConnEnds) bool { return e.Local == StateEstablished && e.Peer == StateEstablished })
		if got.Local != StateEstablished || got.Peer != StateEstablished {
			t.Errorf("ends %v/%v, want ESTAB/ESTAB", got.Local, got.Peer)
		}
	})
	t.Run("client closed first", func(t *testing.T) {
		srv, cli := pair(t)
		c := tcpConn(srv)
		cli.Close()
		if _, err := io.ReadAll(srv); err != nil { // EOF: the client's FIN
			t.Fatal(err)
		}
		srv.Close()
		got := waitEnds(t, c, func(e ConnEnds) bool { return e.Peer == StateTimeWait && e.Local == StateUnknown })
		if got.Peer != StateTimeWait || got.Local != StateUnknown {
			t.Errorf("ends local %v peer %v, want none and TIME-WAIT", got.Local, got.Peer)
		}
	})
	t.Run("service closed first", func(t *testing.T) {
		srv, cli := pair(t)
		c := tcpConn(srv)
		srv.Close()
		got := waitEnds(t, c, func(e ConnEnds) bool { return e.Local == StateFinWait2 && e.Peer == StateCloseWait })
		if got.Local != StateFinWait2 || got.Peer != StateCloseWait {
			t.Errorf("ends local %v peer %v, want FIN-WAIT-2 and CLOSE-WAIT", got.Local, got.Peer)
		}
		cli.Close()
		got = waitEnds(t, c, func(e ConnEnds) bool { return e.Local == StateTimeWait && e.Peer == StateUnknown })
		if got.Local != StateTimeWait || got.Peer != StateUnknown {
			t.Errorf("after the client closed too: ends local %v peer %v, want TIME-WAIT and none", got.Local, got.Peer)
		}
	})
	t.Run("never existed", func(t *testing.T) {
		// The listener's address with a peer that never connected: the
		// kernel's exact lookup falls back to the listener, which is not
		// this connection.
		c := TCPConn{Local: ln.Addr().(*net.TCPAddr).AddrPort(), Remote: netip.MustParseAddrPort("127.0.0.1:9")}
		got, err := fs.TCPConnEnds(context.Background(), []TCPConn{c})
		if err != nil {
			t.Fatal(err)
		}
		if got[0] != (ConnEnds{}) {
			t.Errorf("ends %+v, want none", got[0])
		}
	})
}

// TestTCPAt lists what the kernel holds at a real loopback listener: the
// listener, an accepted connection, one not yet accepted (no inode) and
// the end the service closed first (TIME-WAIT, no inode); nothing at
// another port; and every TCP socket for nil.
func TestTCPAt(t *testing.T) {
	fs, err := New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	at := ln.Addr().(*net.TCPAddr).AddrPort()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", at.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	accepted := dial()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	closed := dial()
	srv2, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	srv2.Close() // the service's end closes first: TIME-WAIT once the client closes too
	closed.Close()
	queued := dial() // never accepted
	key := func(c net.Conn) netip.AddrPort { return c.LocalAddr().(*net.TCPAddr).AddrPort() }
	want := map[netip.AddrPort]func(Socket) bool{
		netip.MustParseAddrPort("0.0.0.0:0"): func(s Socket) bool { return s.State == StateListen && s.Inode != 0 },
		key(accepted):                        func(s Socket) bool { return s.State == StateEstablished && s.Inode != 0 },
		key(closed):                          func(s Socket) bool { return s.State == StateTimeWait && s.Inode == 0 },
		key(queued):                          func(s Socket) bool { return s.State == StateEstablished && s.Inode == 0 },
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		socks, err := fs.TCPAt(context.Background(), []netip.AddrPort{netip.AddrPortFrom(netip.IPv4Unspecified(), at.Port())})
		if err != nil {
			t.Fatal(err)
		}
		var bad []string
		seen := map[netip.AddrPort]bool{}
		for _, s := range socks {
			if s.Local.Port() != at.Port() {
				bad = append(bad, "a socket at another port: "+s.Local.String())
				continue
			}
			ok, known := want[s.Remote]
			if !known {
				bad = append(bad, "a socket not made by the test: "+s.Remote.String())
				continue
			}
			if !ok(s) {
				bad = append(bad, "to "+s.Remote.String()+": "+s.State.String())
				continue
			}
			seen[s.Remote] = true
		}
		if len(bad) == 0 && len(seen) == len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("at %s: %v, found %d of %d", at, bad, len(seen), len(want))
		}
		time.Sleep(5 * time.Millisecond)
	}
	all, err := fs.TCPAt(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range all {
		found = found || s.Local == other.Addr().(*net.TCPAddr).AddrPort() && s.State == StateListen
	}
	if !found {
		t.Error("TCPAt(nil) lacks a listener at another port")
	}
	if _, err := fs.TCPAborts(); err != nil {
		t.Error(err)
	}
}

// TestParseTCPAborts sums the reset counters of a net/netstat file.
func TestParseTCPAborts(t *testing.T) {
	tests := []struct {
		name, in string
		want     uint64
		err      bool
	}{
		{"counters", "TcpExt: SyncookiesSent TCPAbortOnData TCPAbortOnClose TCPAbortOnMemory TCPAbortOnTimeout TCPAbortOnLinger\nTcpExt: 9 1 20 300 5000 4000\nIpExt: InNoRoutes\nIpExt: 0\n", 4321, false},
		{"no values", "TcpExt: TCPAbortOnData\n", 0, true},
		{"values short", "TcpExt: TCPAbortOnData TCPAbortOnClose\nTcpExt: 1\n", 0, true},
		{"a counter missing", "TcpExt: TCPAbortOnData TCPAbortOnClose\nTcpExt: 1 2\n", 0, true},
		{"not a number", "TcpExt: TCPAbortOnData TCPAbortOnClose TCPAbortOnMemory TCPAbortOnLinger\nTcpExt: 1 x 2 3\n", 0, true},
		{"empty", "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTCPAborts([]byte(tt.in))
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("got %d, %v; want %d, error %v", got, err, tt.want, tt.err)
			}
		})
	}
}

// TestTCPPortFilter: the kernel takes and applies the port filter of
// TCPAt's dumps: only sockets at the ports asked for come back (a listener
// at another port does not), for one port and for many.
func TestTCPPortFilter(t *testing.T) {
	var lns []net.Listener
	for range 40 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		lns = append(lns, ln)
	}
	port := func(ln net.Listener) uint16 { return ln.Addr().(*net.TCPAddr).AddrPort().Port() }
	other := lns[len(lns)-1] // never asked for
	for _, n := range []int{1, 2, 3, 39} {
		var want []uint16
		var locals []netip.AddrPort
		for _, ln := range lns[:n] {
			want = append(want, port(ln))
			locals = append(locals, netip.AddrPortFrom(netip.IPv4Unspecified(), port(ln)))
		}
		c, err := openDiag()
		if err != nil {
			t.Fatal(err)
		}
		found := map[uint16]bool{}
		err = c.dumpTCP(FamilyInet, portFilter(locals), func(s Socket) {
			if !slices.Contains(want, s.Local.Port()) {
				t.Errorf("%d ports: the kernel returned a socket at %s", n, s.Local)
			}
			found[s.Local.Port()] = true
		})
		c.Close()
		if err != nil {
			t.Fatalf("%d ports: %v", n, err)
		}
		for _, p := range want {
			if !found[p] {
				t.Errorf("%d ports: no listener at port %d", n, p)
			}
		}
		if found[port(other)] {
			t.Errorf("%d ports: the listener at %d, not asked for, came back", n, port(other))
		}
	}
}
