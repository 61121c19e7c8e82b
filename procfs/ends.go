package procfs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

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

// TCPAt lists what the kernel holds, in the FS's own network namespace, of
// the TCP sockets at the given local addresses, in every state and with
// or without a descriptor: the listeners, connections accepted or still
// in an accept queue (inode 0), and the ends the kernel keeps after a
// close (FIN-WAIT, TIME-WAIT, LAST-ACK...). An unspecified address
// matches any local address on its port (a socket unit's "8080" or
// "0.0.0.0:8080"); nil locals lists every TCP socket. It works on a live
// FS only.
func (p FS) TCPAt(ctx context.Context, locals []netip.AddrPort) ([]Socket, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !p.live {
		return nil, errors.New("list TCP sockets: not a live /proc")
	}
	c, err := openDiag()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var out []Socket
	for _, fam := range []Family{FamilyInet, FamilyInet6} {
		c.seq++
		c.req = appendInetReq(appendNlHdr(c.req[:0], inetDiagReqLen, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, c.seq), fam, ProtoTCP, 0xffffffff, nil)
		err := c.dump(c.req, c.seq, func(b []byte) error {
			s, err := parseInetDiagMsg(b, ProtoTCP)
			if err != nil {
				return err
			}
			if locals == nil || atAny(s.Local, locals) {
				out = append(out, s)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list TCP sockets: %w", err)
		}
	}
	return out, nil
}

// atAny reports whether a is one of locals (an unspecified address in
// locals standing for every address on its port).
func atAny(a netip.AddrPort, locals []netip.AddrPort) bool {
	for _, l := range locals {
		if a.Port() == l.Port() && (l.Addr().IsUnspecified() || a.Addr().Unmap() == l.Addr().Unmap()) {
			return true
		}
	}
	return false
}

// tcpAborts are the TcpExt counters of connections the kernel ended with a
// reset as their owner closed them or went away (nothing of them is kept
// after): closed with data unread, with SO_LINGER 0, with data arriving
// after the close, out of memory.
var tcpAborts = []string{"TCPAbortOnClose", "TCPAbortOnLinger", "TCPAbortOnData", "TCPAbortOnMemory"}

// TCPAborts sums the network namespace's counters of connections reset as
// they were closed (tcpAborts), from net/netstat of the FS's own process.
func (p FS) TCPAborts() (uint64, error) {
	b, err := os.ReadFile(p.path("self", "net", "netstat"))
	if err != nil {
		return 0, fmt.Errorf("read TCP counters: %w", err)
	}
	return parseTCPAborts(b)
}

// parseTCPAborts sums tcpAborts from a net/netstat file: pairs of lines,
// names then values, each starting "TcpExt:".
func parseTCPAborts(b []byte) (uint64, error) {
	var names []string
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "TcpExt:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if names == nil {
			names = f
			continue
		}
		if len(f) != len(names) {
			return 0, errors.New("read TCP counters: TcpExt names and values differ in number")
		}
		var sum uint64
		found := 0
		for i, n := range names {
			if slices.Contains(tcpAborts, n) {
				v, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("read TCP counters: %s: %w", n, err)
				}
				sum += v
				found++
			}
		}
		if found != len(tcpAborts) {
			return 0, errors.New("read TCP counters: TcpExt lacks the abort counters")
		}
		return sum, nil
	}
	return 0, errors.New("read TCP counters: no TcpExt values")
}
