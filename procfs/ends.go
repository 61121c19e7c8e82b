package procfs

import (
	"context"
	"encoding/binary"
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
	keep := func(s Socket) {
		if locals == nil || atAny(s.Local, locals) {
			out = append(out, s)
		}
	}
	// The kernel keeps only sockets at the ports asked for (a host can
	// hold hundreds of thousands of TCP sockets; these are a few).
	bc := portFilter(locals)
	for _, fam := range []Family{FamilyInet, FamilyInet6} {
		if err := c.dumpTCP(fam, bc, keep); err != nil {
			return nil, fmt.Errorf("list TCP sockets: %w", err)
		}
	}
	return out, nil
}

// Bytecode of an inet_diag dump filter (linux/inet_diag.h).
const (
	inetDiagReqBytecode = 1  // INET_DIAG_REQ_BYTECODE, the request's attribute
	inetDiagBCJmp       = 1  // INET_DIAG_BC_JMP: always its "no"
	inetDiagBCSEq       = 11 // INET_DIAG_BC_S_EQ: the local port equals the next op's "no" (Linux 4.16)
)

// dumpTCP dumps the TCP sockets of one family in every state, with or
// without a descriptor, that the bytecode attribute bc keeps (every one
// for nil).
func (c *diagConn) dumpTCP(fam Family, bc []byte, fn func(Socket)) error {
	c.seq++
	c.req = appendInetReq(appendNlHdr(c.req[:0], inetDiagReqLen+len(bc), unix.NLM_F_REQUEST|unix.NLM_F_DUMP, c.seq), fam, ProtoTCP, 0xffffffff, nil)
	c.req = append(c.req, bc...)
	return c.dump(c.req, c.seq, func(b []byte) error {
		s, err := parseInetDiagMsg(b, ProtoTCP)
		if err != nil {
			return err
		}
		fn(s)
		return nil
	})
}

// portFilter is the INET_DIAG_REQ_BYTECODE attribute that keeps the
// sockets whose local port is one of locals' ports (nil for no locals:
// every socket). The kernel checks a filter by walking its "yes" jumps,
// every op must be on that walk and every "no" must land on it or past
// the end, so "port a or port b or …" is laid out as ss(8) lays out an
// or: a test per port whose "yes" falls to an unconditional jump to the
// end (keep) and whose "no" skips that jump to the next test; the last
// test's "no" lands past the end (drop).
func portFilter(locals []netip.AddrPort) []byte {
	var ports []uint16
	for _, l := range locals {
		if !slices.Contains(ports, l.Port()) {
			ports = append(ports, l.Port())
		}
	}
	if len(ports) == 0 {
		return nil
	}
	const op = 4        // struct inet_diag_bc_op: code u8, yes u8, no u16
	const test = 2 * op // S_EQ and the op carrying the port in its "no"
	n := len(ports)*(test+op) - op
	b := binary.NativeEndian.AppendUint16(nil, uint16(4+n)) // struct nlattr
	b = binary.NativeEndian.AppendUint16(b, inetDiagReqBytecode)
	appendOp := func(code, yes byte, no uint16) {
		b = append(b, code, yes)
		b = binary.NativeEndian.AppendUint16(b, no)
	}
	for i, p := range ports {
		appendOp(inetDiagBCSEq, test, test+op) // no: past the jump, to the next test (or past the end)
		appendOp(0, 0, p)
		if i < len(ports)-1 {
			at := (i+1)*(test+op) - op // the jump's offset
			appendOp(inetDiagBCJmp, op, uint16(n-at))
		}
	}
	return b
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
