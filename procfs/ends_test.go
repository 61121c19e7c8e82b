package procfs

import (
	"context"
	"io"
	"net"
	"net/netip"
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
