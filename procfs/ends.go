package procfs

import (
	"context"
	"errors"
	"net/netip"

	"golang.org/x/sys/unix"
)

// ConnEnds is what the kernel still holds of one TCP connection, looked up
// by its addresses in any state (TIME-WAIT too): the state of its local end
// (the socket at the connection's local address) and of its peer's end
// (the socket at its remote address, found only when the peer is on this
// host). StateUnknown where the kernel holds none.
type ConnEnds struct {
	Local, Peer SockState
}

// TCPConn is a TCP connection as a process saw it: its local and remote
// addresses.
type TCPConn struct {
	Local, Remote netip.AddrPort
}

// TCPConnEnds looks up, in the FS's own network namespace, what the kernel
// still holds of each connection (ConnEnds, in the order given). After a
// socket is closed the kernel keeps the end that closed first in FIN-WAIT
// or TIME-WAIT for up to a minute, and the other in CLOSE-WAIT or LAST-ACK
// until its owner closes it too: which end closed first can be told from
// them. It works on a live FS only (a fixture root has no kernel to ask).
func (p FS) TCPConnEnds(ctx context.Context, conns []TCPConn) ([]ConnEnds, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !p.live {
		return nil, errors.New("look up TCP connections: not a live /proc")
	}
	c, err := openDiag()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// Two lookups per connection: its local end, then its peer's.
	type lookup struct {
		s    Socket
		conn int
		peer bool
	}
	var ls []lookup
	for i, tc := range conns {
		if !tc.Local.IsValid() || !tc.Remote.IsValid() {
			continue
		}
		fam := FamilyInet
		if !tc.Local.Addr().Is4() || !tc.Remote.Addr().Is4() {
			fam = FamilyInet6
		}
		local := Socket{Family: fam, Proto: ProtoTCP, Local: tc.Local, Remote: tc.Remote, Cookie: noCookie}
		peer := Socket{Family: fam, Proto: ProtoTCP, Local: tc.Remote, Remote: tc.Local, Cookie: noCookie}
		ls = append(ls, lookup{local, i, false}, lookup{peer, i, true})
	}
	out := make([]ConnEnds, len(conns))
	err = c.exact(len(ls), func(b []byte, i int, seq uint32) []byte {
		s := &ls[i].s
		return appendInetReq(appendNlHdr(b, inetDiagReqLen, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq), s.Family, s.Proto, 0xffffffff, s)
	}, func(i int, p []byte) error {
		s, err := parseInetDiagMsg(p, ProtoTCP)
		if err != nil {
			return err
		}
		want := ls[i].s
		// An exact lookup that finds no connection answers with a
		// listener on the local address, if there is one: not this.
		if s.State == StateListen || !sameAddrPort(s.Local, want.Local) || !sameAddrPort(s.Remote, want.Remote) {
			return nil
		}
		if ls[i].peer {
			out[ls[i].conn].Peer = s.State
		} else {
			out[ls[i].conn].Local = s.State
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// noCookie is INET_DIAG_NOCOOKIE: a lookup by addresses alone.
const noCookie = ^uint64(0)

// sameAddrPort compares addresses with IPv4-mapped IPv6 ones unmapped.
func sameAddrPort(a, b netip.AddrPort) bool {
	return a.Port() == b.Port() && a.Addr().Unmap() == b.Addr().Unmap()
}
