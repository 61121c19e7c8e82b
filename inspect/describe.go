package inspect

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/fdtop/fdtop/procfs"
)

// sockKind names a socket the way fdtop shows it: tcp, tcp-listen, udp,
// unix-stream, unix-listen, unix-dgram, unix-seqpacket, netlink, ...
func sockKind(s procfs.Socket) string {
	switch s.Family {
	case procfs.FamilyInet, procfs.FamilyInet6:
		k := s.Proto.String()
		if k == "" {
			k = "inet"
		}
		if s.State == procfs.StateListen {
			k += "-listen"
		}
		return k
	case procfs.FamilyUnix:
		k := "unix"
		if t := s.Type.String(); t != "" {
			k += "-" + t
		}
		if s.State == procfs.StateListen {
			k = "unix-listen"
		}
		return k
	case procfs.FamilyUnknown:
		return "socket"
	}
	return s.Family.String()
}

// unixName returns a unix socket's path, or its abstract name as "@name",
// with its exact bytes (ForTerminal escapes them for a terminal).
func unixName(s procfs.Socket) string {
	if s.Path == "" {
		return ""
	}
	if s.Abstract {
		return "@" + s.Path
	}
	return s.Path
}

// addrString prints an inet address port, "*" for a wildcard address.
func addrString(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	a := ap.Addr()
	if a.IsUnspecified() {
		return "*:" + strconv.Itoa(int(ap.Port()))
	}
	return ap.String()
}

// peerNamer names the process holding a unix socket's peer by the peer's
// inode ("systemd pid 1 fd 35"); nil, or a peer no scanned process holds,
// gives "peer socket:[INODE]".
type peerNamer func(inode uint64) string

func (n peerNamer) name(inode uint64) string {
	if n != nil {
		if s := n(inode); s != "" {
			return s
		}
	}
	return fmt.Sprintf("peer socket:[%d]", inode)
}

// sockDetail describes a socket: both ends of a connection, a listener's
// address, a unix socket's name and peer.
func sockDetail(s procfs.Socket, peer peerNamer) string {
	switch s.Family {
	case procfs.FamilyInet, procfs.FamilyInet6:
		if s.State == procfs.StateListen || !s.Remote.IsValid() || s.Remote.Port() == 0 {
			return fmt.Sprintf("%s %s", addrString(s.Local), s.State)
		}
		return fmt.Sprintf("%s → %s %s", addrString(s.Local), addrString(s.Remote), s.State)
	case procfs.FamilyUnix:
		var parts []string
		if n := unixName(s); n != "" {
			parts = append(parts, n)
		} else {
			parts = append(parts, "unnamed")
		}
		if s.PeerInode != 0 {
			parts = append(parts, "↔ "+peer.name(s.PeerInode))
		}
		if st := s.State.String(); st != "" {
			parts = append(parts, st)
		}
		return strings.Join(parts, " ")
	}
	if s.Status != procfs.Resolved {
		return fmt.Sprintf("%s socket:[%d]", s.Family, s.Inode)
	}
	return s.Family.String()
}

// fdKindDetail describes a descriptor, using the socket table for sockets.
func fdKindDetail(fd procfs.FD, sockets map[uint64]procfs.Socket, peer peerNamer) (kind, detail string) {
	switch fd.Kind {
	case procfs.KindSocket:
		if s, ok := sockets[fd.Inode]; ok {
			return sockKind(s), sockDetail(s, peer)
		}
		return "socket", fmt.Sprintf("socket:[%d] (not resolved)", fd.Inode)
	case procfs.KindMemfd:
		return "memfd", "memfd:" + fd.Name
	case procfs.KindPipe:
		return "pipe", fmt.Sprintf("pipe:[%d]", fd.Inode)
	}
	name := fd.Name
	if name == "" {
		name = fd.Target
	}
	return fd.Kind.String(), name
}

// storeKindFromMode names a DumpUnitFileDescriptorStore entry by its st_mode
// and path when the kernel side could not resolve it.
func storeKindFromMode(mode uint32, path string) string {
	switch mode & 0o170000 {
	case 0o140000:
		return "socket"
	case 0o010000:
		if strings.HasPrefix(path, "pipe:") {
			return "pipe"
		}
		return "fifo"
	case 0o100000:
		if strings.HasPrefix(path, "/memfd:") {
			return "memfd"
		}
		return "file"
	case 0o040000:
		return "dir"
	case 0o020000, 0o060000:
		return "device"
	}
	if strings.HasPrefix(path, "anon_inode:") {
		return "anon"
	}
	return "other"
}

// memfdName extracts NAME from "/memfd:NAME (deleted)".
func memfdName(path string) string {
	s := strings.TrimPrefix(path, "/memfd:")
	return strings.TrimSuffix(s, " (deleted)")
}
