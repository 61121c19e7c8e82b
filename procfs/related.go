package procfs

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"
)

// A related scan (ScanOptions.Related) keeps, of the host beyond the
// processes asked for fresh (the units' and the manager's), only what
// relates to them: what its cost and memory scale with is what the units
// hold, not the host.
//
// The sockets it keeps (Scan.Sockets), in the namespaces of the sockets
// the fresh processes hold:
//   - every socket a fresh process holds (held);
//   - unix sockets whose peer is one of those (the other end of a pair a
//     unit keeps, a client of a unit's listener);
//   - connected unix sockets bound to the name of a held one (accepted
//     from a unit's listener, whoever holds them now);
//   - TCP connections at the local port of a held TCP listener (accepted
//     from it; the kernel filters the dump by port).
//
// The descriptors it keeps of the other processes are those of these
// sockets and of their unix peers, and of the objects the fresh processes
// hold: who else holds what the units hold, and who holds the other end
// of their unix connections. The other
// descriptors of the host are never made into FD values.

// relatedSockets returns the sockets of all (one namespace's tables, or a
// part of them) that a related scan keeps for the held inodes.
func relatedSockets(all map[uint64]Socket, held map[uint64]bool) map[uint64]Socket {
	names := map[unixKey]bool{}
	ports := map[uint16]bool{}
	for ino := range held {
		s, ok := all[ino]
		if !ok {
			continue
		}
		switch {
		case s.Family == FamilyUnix && s.Path != "":
			names[unixKey{s.Path, s.Abstract}] = true
		case isTCP(s) && s.State == StateListen:
			ports[s.Local.Port()] = true
		}
	}
	out := map[uint64]Socket{}
	for ino, s := range all {
		if relatedSocket(s, held, names, ports) {
			out[ino] = s
		}
	}
	return out
}

// relatedSocket reports whether a related scan keeps s: held, the peer of
// a held unix socket, accepted from a held listener (a bound unix name in
// names, a TCP port in ports).
func relatedSocket(s Socket, held map[uint64]bool, names map[unixKey]bool, ports map[uint16]bool) bool {
	switch {
	case held[s.Inode]:
		return true
	case s.Family == FamilyUnix:
		return s.PeerInode != 0 && (held[s.PeerInode] || s.Path != "" && names[unixKey{s.Path, s.Abstract}])
	case isTCP(s):
		return s.State != StateListen && ports[s.Local.Port()]
	}
	return false
}

func isTCP(s Socket) bool {
	return (s.Family == FamilyInet || s.Family == FamilyInet6) && s.Proto == ProtoTCP
}

// unixKey is a unix socket's bound name.
type unixKey struct {
	path     string
	abstract bool
}

// relatedInodes are the inodes whose descriptors a related scan keeps in
// the processes not read fresh: the sockets kept and their unix peers
// (whose holders name the other end of a connection), what the fresh
// processes hold.
func relatedInodes(sockets map[uint64]Socket, fresh map[uint64]bool) map[uint64]bool {
	keep := make(map[uint64]bool, len(sockets)+len(fresh))
	for ino, s := range sockets {
		keep[ino] = true
		if s.PeerInode != 0 {
			keep[s.PeerInode] = true
		}
	}
	for ino := range fresh {
		keep[ino] = true
	}
	return keep
}

// byInode reports whether fd is one whose holders are looked for by inode:
// a socket, pipe, FIFO or memfd (a file's inode number is another
// filesystem's and may equal a socket's).
func byInode(fd FD) bool {
	switch fd.Kind {
	case KindSocket, KindPipe, KindFIFO, KindMemfd:
		return fd.Inode != 0
	}
	return false
}

// keepFDs returns the descriptors of fds (byInode) whose inode is in
// keep, in a new slice (nil when none is).
func keepFDs(fds []FD, keep map[uint64]bool) []FD {
	kept := func(fd FD) bool { return byInode(fd) && keep[fd.Inode] }
	n := 0
	for _, fd := range fds {
		if kept(fd) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]FD, 0, n)
	for _, fd := range fds {
		if kept(fd) {
			out = append(out, fd)
		}
	}
	return out
}

// dumpRelated reads the own namespace's sockets a related scan keeps for
// the held inodes (holders names one descriptor of each, to ask a socket
// its protocol): the unix table (kept in part), the TCP listeners, then
// only what is needed of the TCP and UDP tables: the connections at the
// held listeners' ports (filtered by the kernel), and a table in full
// (kept in part) only when a held socket of it is not found otherwise
// (by exact lookup of an address known from an earlier scan).
func (p FS) dumpRelated(ns uint64, held map[uint64]holder) (map[uint64]Socket, []string, error) {
	c, err := openDiag()
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	isHeld := make(map[uint64]bool, len(held))
	for ino := range held {
		isHeld[ino] = true
	}
	m := map[uint64]Socket{}
	var warns []string
	run := func(name string, f func() error) error {
		var err error
		for attempt := 0; attempt < 3; attempt++ {
			if err = f(); !errors.Is(err, errDumpInterrupted) {
				break
			}
		}
		if errors.Is(err, errDumpInterrupted) {
			warns = append(warns, fmt.Sprintf("%s dump interrupted 3 times: data kept, may be inconsistent", name))
			return nil
		}
		return err
	}
	add := func(s Socket) {
		s.NetNS = ns
		m[s.Inode] = s
	}

	// Unix: one dump; connected bound sockets are kept until the names of
	// the held ones are known (relatedSockets below).
	err = run("unix", func() error {
		return c.dumpUnix(func(s Socket) {
			if isHeld[s.Inode] || s.PeerInode != 0 && (isHeld[s.PeerInode] || s.Path != "") {
				add(s)
			}
		})
	})
	if err != nil {
		return nil, warns, fmt.Errorf("unix: %w", err)
	}
	// TCP listeners: the kernel walks only its listening table.
	for _, fam := range []Family{FamilyInet, FamilyInet6} {
		err := run(tableName(fam, ProtoTCP)+" listeners", func() error {
			return c.dumpInetStates(fam, ProtoTCP, 1<<StateListen, nil, func(s Socket) {
				if isHeld[s.Inode] {
					add(s)
				}
			})
		})
		if err != nil {
			if fam == FamilyInet {
				return nil, warns, fmt.Errorf("tcp: %w", err)
			}
			warns = append(warns, fmt.Sprintf("tcp6 table unavailable: %v", err))
		}
	}
	var ports []netip.AddrPort
	for ino := range held {
		if s, ok := m[ino]; ok && isTCP(s) && s.State == StateListen {
			ports = append(ports, netip.AddrPortFrom(netip.IPv4Unspecified(), s.Local.Port()))
		}
	}

	// The held sockets not found yet: inet ones known from an earlier
	// scan by exact lookup; the tables of the rest, asked their protocol.
	type table struct {
		f Family
		p Proto
	}
	whole := map[table]bool{}
	var known []Socket
	// Held inet sockets asked their protocol: those an earlier related
	// scan's whole table did not have (unbound, not connected: in no
	// table) do not make it read whole again.
	var asked []uint64
	absent := p.cache.absentInet()
	buf := make([]byte, 64)
	for ino, h := range held {
		if _, ok := m[ino]; ok {
			continue
		}
		if s, ok := p.cache.get(ino); ok && s.Status == Resolved && s.NetNS == ns && s.Family != FamilyUnix && s.Proto != 0 {
			known = append(known, s)
			continue
		}
		sz, err := unix.Getxattr(p.path(strconv.Itoa(h.pid), "fd", strconv.Itoa(h.fd)), "system.sockprotoname", buf)
		if err != nil {
			continue // closed since: resolveRest says what it can
		}
		name := string(buf[:sz])
		if i := indexNUL(name); i >= 0 {
			name = name[:i]
		}
		if f, pr := protoNameFamily(name); pr != 0 && (f == FamilyInet || f == FamilyInet6) {
			asked = append(asked, ino)
			if !absent[ino] {
				whole[table{f, pr}] = true
			}
		}
	}
	if err := c.lookupInet(known, func(s Socket) {
		if isHeld[s.Inode] {
			add(s)
		}
	}); err != nil {
		return nil, warns, fmt.Errorf("look up inet sockets: %w", err)
	}
	for _, known := range known {
		if _, ok := m[known.Inode]; !ok {
			// Moved or gone since the earlier scan: its table in full.
			asked = append(asked, known.Inode)
			if !absent[known.Inode] {
				whole[table{known.Family, known.Proto}] = true
			}
		}
	}
	portSet := map[uint16]bool{}
	for _, a := range ports {
		portSet[a.Port()] = true
	}
	tcpKeep := func(s Socket) {
		if isHeld[s.Inode] || s.State != StateListen && portSet[s.Local.Port()] {
			add(s)
		}
	}
	for _, fam := range []Family{FamilyInet, FamilyInet6} {
		name := tableName(fam, ProtoTCP)
		var err error
		switch {
		case whole[table{fam, ProtoTCP}]:
			err = run(name, func() error { return c.dumpInetStates(fam, ProtoTCP, inetStates, nil, tcpKeep) })
		case len(ports) > 0:
			bc := portFilter(ports)
			err = run(name, func() error { return c.dumpInetStates(fam, ProtoTCP, inetStates, bc, tcpKeep) })
		}
		if err != nil {
			warns = append(warns, fmt.Sprintf("%s table unavailable: %v", name, err))
		}
		if whole[table{fam, ProtoUDP}] {
			name := tableName(fam, ProtoUDP)
			err := run(name, func() error {
				return c.dumpInetStates(fam, ProtoUDP, 0xffffffff, nil, func(s Socket) {
					if isHeld[s.Inode] {
						add(s)
					}
				})
			})
			if err != nil {
				warns = append(warns, fmt.Sprintf("%s table unavailable: %v", name, err))
			}
		}
	}
	var notFound []uint64
	for _, ino := range asked {
		if _, ok := m[ino]; !ok {
			notFound = append(notFound, ino)
		}
	}
	p.cache.setAbsentInet(notFound)
	return relatedSockets(m, isHeld), warns, nil
}

// tableName names an inet table as /proc/net does: tcp, tcp6, udp, udp6.
func tableName(f Family, pr Proto) string {
	name := "tcp"
	if pr == ProtoUDP {
		name = "udp"
	}
	if f == FamilyInet6 {
		name += "6"
	}
	return name
}

// compactFDs returns, in a new slice, the sockets, pipes, FIFOs and
// memfds of fds that have an inode, as number, kind and inode only (no
// link text, no name): what a related scan needs of a process not read
// fresh.
func compactFDs(fds []FD) []FD {
	n := 0
	for _, fd := range fds {
		if byInode(fd) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]FD, 0, n)
	for _, fd := range fds {
		if byInode(fd) {
			out = append(out, FD{Num: fd.Num, Kind: fd.Kind, Inode: fd.Inode})
		}
	}
	return out
}
