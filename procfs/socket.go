package procfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Family is a socket address family (AF_INET, AF_UNIX, ...).
type Family uint16

// Address families fdtop names; any other AF_* value may appear too.
const (
	FamilyUnknown Family = 0
	FamilyUnix    Family = unix.AF_UNIX
	FamilyInet    Family = unix.AF_INET
	FamilyInet6   Family = unix.AF_INET6
	FamilyNetlink Family = unix.AF_NETLINK
	FamilyPacket  Family = unix.AF_PACKET
	FamilyVsock   Family = unix.AF_VSOCK
)

var familyNames = map[Family]string{
	FamilyUnknown: "unknown", FamilyUnix: "unix", FamilyInet: "inet", FamilyInet6: "inet6",
	FamilyNetlink: "netlink", FamilyPacket: "packet", FamilyVsock: "vsock",
	unix.AF_BLUETOOTH: "bluetooth", unix.AF_ALG: "alg", unix.AF_KEY: "key", unix.AF_XDP: "xdp",
	unix.AF_CAN: "can", unix.AF_TIPC: "tipc", unix.AF_RDS: "rds", unix.AF_SMC: "smc",
}

// String returns the family's short name, e.g. "inet6".
func (f Family) String() string {
	if s, ok := familyNames[f]; ok {
		return s
	}
	return "af" + strconv.Itoa(int(f))
}

// MarshalText encodes the family as its name.
func (f Family) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// Proto is the transport protocol of an inet socket (IPPROTO_TCP, IPPROTO_UDP).
type Proto uint8

// Transport protocols.
const (
	ProtoNone Proto = 0
	ProtoTCP  Proto = unix.IPPROTO_TCP
	ProtoUDP  Proto = unix.IPPROTO_UDP
)

// String returns "tcp", "udp" or the protocol number.
func (p Proto) String() string {
	switch p {
	case ProtoNone:
		return ""
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	}
	return "proto" + strconv.Itoa(int(p))
}

// MarshalText encodes the protocol as its name.
func (p Proto) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// SockType is a socket type (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET).
type SockType uint8

// Socket types.
const (
	TypeUnknown   SockType = 0
	TypeStream    SockType = unix.SOCK_STREAM
	TypeDgram     SockType = unix.SOCK_DGRAM
	TypeRaw       SockType = unix.SOCK_RAW
	TypeSeqPacket SockType = unix.SOCK_SEQPACKET
)

// String returns "stream", "dgram", "seqpacket", "raw" or the number.
func (t SockType) String() string {
	switch t {
	case TypeUnknown:
		return ""
	case TypeStream:
		return "stream"
	case TypeDgram:
		return "dgram"
	case TypeRaw:
		return "raw"
	case TypeSeqPacket:
		return "seqpacket"
	}
	return "type" + strconv.Itoa(int(t))
}

// MarshalText encodes the type as its name.
func (t SockType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// SockState is a socket state in the kernel's TCP numbering, which unix and
// UDP sockets share (UDP unconnected and unix unconnected are StateClose).
type SockState uint8

// Socket states (include/net/tcp_states.h).
const (
	StateUnknown     SockState = 0
	StateEstablished SockState = 1
	StateSynSent     SockState = 2
	StateSynRecv     SockState = 3
	StateFinWait1    SockState = 4
	StateFinWait2    SockState = 5
	StateTimeWait    SockState = 6
	StateClose       SockState = 7
	StateCloseWait   SockState = 8
	StateLastAck     SockState = 9
	StateListen      SockState = 10
	StateClosing     SockState = 11
	StateNewSynRecv  SockState = 12
)

var stateNames = [...]string{"", "ESTAB", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2",
	"TIME-WAIT", "UNCONN", "CLOSE-WAIT", "LAST-ACK", "LISTEN", "CLOSING", "NEW-SYN-RECV"}

// String returns the state as ss(8) prints it ("LISTEN", "ESTAB", "UNCONN", ...).
func (s SockState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "state" + strconv.Itoa(int(s))
}

// MarshalText encodes the state as its name.
func (s SockState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// SocketStatus says how much is known about a socket.
type SocketStatus uint8

// Socket statuses.
const (
	// Resolved: full details from sock_diag or /proc/net.
	Resolved SocketStatus = iota
	// FamilyOnly: not a TCP, UDP or unix socket; only its family is known.
	FamilyOnly
	// Unresolved: details could not be read (another network namespace that
	// could not be entered, the socket closed, or no permission).
	Unresolved
)

// String returns "resolved", "family-only" or "unresolved".
func (s SocketStatus) String() string {
	switch s {
	case Resolved:
		return "resolved"
	case FamilyOnly:
		return "family-only"
	}
	return "unresolved"
}

// MarshalText encodes the status as its name.
func (s SocketStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Socket is one socket, keyed by its inode.
type Socket struct {
	// Inode is the socket inode, as in "socket:[INODE]".
	Inode uint64
	// NetNS is the inode of the network namespace the socket was read in;
	// 0 if unknown.
	NetNS uint64
	// Family is the address family.
	Family Family
	// Proto is TCP or UDP for inet sockets.
	Proto Proto
	// Type is the socket type (unix sockets, and inet by protocol).
	Type SockType
	// State is the connection state; LISTEN for listeners.
	State SockState
	// Status says how much of the rest is known.
	Status SocketStatus
	// Abstract reports a unix socket in the abstract namespace: Path then
	// holds its name without the leading NUL, raw bytes preserved.
	Abstract bool
	// Local and Remote are the inet addresses (zero for other families).
	Local, Remote netip.AddrPort
	// Path is the unix socket's bound path or abstract name; empty if unbound.
	Path string
	// PeerInode is the inode of a connected unix socket's peer; 0 if none.
	PeerInode uint64
	// RecvQ is the receive queue; on a listener, the accept backlog (the
	// connections waiting for accept(2)).
	RecvQ uint32
	// SendQ is the send queue; on a listener, the maximum backlog.
	SendQ uint32
	// UID is the owner of an inet socket.
	UID uint32
	// Cookie is the kernel's socket cookie (sock_diag only).
	Cookie uint64
	// Netlink is a netlink socket's protocol and groups; nil when not a
	// netlink socket or not read.
	Netlink *NetlinkInfo
}

// IsListener reports whether the socket is listening.
func (s Socket) IsListener() bool { return s.State == StateListen }

// ---- /proc/net fallback parsers ----

// parseProcNetInet parses /proc/net/{tcp,tcp6,udp,udp6}, calling fn for each
// socket with an inode.
func parseProcNetInet(b []byte, family Family, proto Proto, fn func(Socket)) error {
	lines := bytes.Split(b, []byte("\n"))
	for i, line := range lines {
		if i == 0 || len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		f := bytes.Fields(line)
		if len(f) < 10 {
			return fmt.Errorf("line %d: %d fields", i+1, len(f))
		}
		local, err := parseHexAddrPort(f[1])
		if err != nil {
			return fmt.Errorf("line %d: local address: %w", i+1, err)
		}
		remote, err := parseHexAddrPort(f[2])
		if err != nil {
			return fmt.Errorf("line %d: remote address: %w", i+1, err)
		}
		st, err := strconv.ParseUint(string(f[3]), 16, 8)
		if err != nil {
			return fmt.Errorf("line %d: state: %w", i+1, err)
		}
		txs, rxs, ok := bytes.Cut(f[4], []byte(":"))
		if !ok {
			return fmt.Errorf("line %d: queues %q", i+1, f[4])
		}
		tx, err1 := strconv.ParseUint(string(txs), 16, 32)
		rx, err2 := strconv.ParseUint(string(rxs), 16, 32)
		uid, err3 := strconv.ParseUint(string(f[7]), 10, 32)
		ino, err4 := strconv.ParseUint(string(f[9]), 10, 64)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return fmt.Errorf("line %d: %w", i+1, err)
		}
		if ino == 0 {
			continue
		}
		typ := TypeStream
		if proto == ProtoUDP {
			typ = TypeDgram
		}
		fn(Socket{Inode: ino, Family: family, Proto: proto, Type: typ, State: SockState(st),
			Local: local, Remote: remote, RecvQ: uint32(rx), SendQ: uint32(tx), UID: uint32(uid)})
	}
	return nil
}

// parseHexAddrPort decodes "0100007F:1F90": the address as 32-bit words in
// host byte order, the port as a number.
func parseHexAddrPort(b []byte) (netip.AddrPort, error) {
	a, p, ok := bytes.Cut(b, []byte(":"))
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("%q: no port", b)
	}
	port, err := strconv.ParseUint(string(p), 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: port: %w", b, err)
	}
	if len(a) != 8 && len(a) != 32 {
		return netip.AddrPort{}, fmt.Errorf("%q: address length %d", b, len(a))
	}
	var raw [16]byte
	for w := 0; w < len(a)/8; w++ {
		v, err := strconv.ParseUint(string(a[w*8:w*8+8]), 16, 32)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("%q: address: %w", b, err)
		}
		binary.NativeEndian.PutUint32(raw[w*4:], uint32(v))
	}
	var addr netip.Addr
	if len(a) == 8 {
		addr = netip.AddrFrom4([4]byte(raw[:4]))
	} else {
		addr = netip.AddrFrom16(raw)
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

const soAcceptCon = 0x10000 // __SO_ACCEPTCON in /proc/net/unix Flags

// parseProcNetUnix parses /proc/net/unix. The kernel prints NUL bytes of
// abstract names as '@' and does not escape newlines: a line that does not
// start a record continues the previous record's path. There is no peer inode.
func parseProcNetUnix(b []byte, fn func(Socket)) error {
	var cur *Socket
	flush := func() {
		if cur != nil {
			fn(*cur)
			cur = nil
		}
	}
	lines := strings.Split(string(b), "\n")
	for i, line := range lines {
		if i == 0 {
			continue
		}
		s, ok := parseUnixLine(line)
		if !ok {
			if cur != nil && i < len(lines)-1 || cur != nil && line != "" {
				cur.Path += "\n" + line
			}
			continue
		}
		flush()
		cur = &s
	}
	flush()
	return nil
}

func parseUnixLine(line string) (Socket, bool) {
	// Num RefCount Protocol Flags Type St Inode [Path]; the inode is padded
	// with spaces, the path may hold spaces.
	var f [7]string
	rest := line
	for i := range f {
		rest = strings.TrimLeft(rest, " ")
		end := strings.IndexByte(rest, ' ')
		if end < 0 {
			end = len(rest)
		}
		f[i], rest = rest[:end], rest[end:]
	}
	if !strings.HasSuffix(f[0], ":") || f[6] == "" {
		return Socket{}, false
	}
	flags, err1 := strconv.ParseUint(f[3], 16, 32)
	typ, err2 := strconv.ParseUint(f[4], 16, 8)
	st, err3 := strconv.ParseUint(f[5], 16, 8)
	ino, err4 := strconv.ParseUint(f[6], 10, 64)
	if errors.Join(err1, err2, err3, err4) != nil {
		return Socket{}, false
	}
	s := Socket{Inode: ino, Family: FamilyUnix, Type: SockType(typ)}
	switch {
	case flags&soAcceptCon != 0:
		s.State = StateListen
	case st == 3: // SS_CONNECTED
		s.State = StateEstablished
	case st == 2: // SS_CONNECTING
		s.State = StateSynSent
	default:
		s.State = StateClose
	}
	if len(rest) > 1 && rest[0] == ' ' {
		s.Path = rest[1:]
		if strings.HasPrefix(s.Path, "@") {
			s.Abstract = true
			s.Path = s.Path[1:]
		}
	}
	return s, true
}

// protoNameFamily maps the "system.sockprotoname" attribute of a socket
// (e.g. "NETLINK", "TCPv6") to a family and protocol.
func protoNameFamily(name string) (Family, Proto) {
	switch name {
	case "TCP":
		return FamilyInet, ProtoTCP
	case "TCPv6":
		return FamilyInet6, ProtoTCP
	case "UDP", "UDP-Lite":
		return FamilyInet, ProtoUDP
	case "UDPv6", "UDPLITEv6":
		return FamilyInet6, ProtoUDP
	case "UNIX", "UNIX-STREAM", "UNIX-DGRAM":
		return FamilyUnix, 0
	case "NETLINK":
		return FamilyNetlink, 0
	case "PACKET":
		return FamilyPacket, 0
	case "AF_VSOCK", "VSOCK":
		return FamilyVsock, 0
	case "MPTCP":
		// Go listens with MPTCP by default (1.24+): the socket's first
		// subflow is a TCP socket reported under the same inode.
		return FamilyInet, ProtoTCP
	case "MPTCPv6":
		return FamilyInet6, ProtoTCP
	case "RAW", "PING":
		return FamilyInet, 0
	case "RAWv6", "PINGv6":
		return FamilyInet6, 0
	case "ALG":
		return unix.AF_ALG, 0
	case "XDP":
		return unix.AF_XDP, 0
	case "KEY":
		return unix.AF_KEY, 0
	}
	return FamilyUnknown, 0
}
