package inspect

import (
	"net/netip"
	"slices"

	"github.com/fdtop/fdtop/procfs"
)

// tcpMark is what the kernel held at a service's TCP listen addresses just
// before a view read its processes (see Watcher.TCPAt).
type tcpMark struct {
	addrs  []netip.AddrPort // the listen addresses it was taken at
	known  map[string]bool  // the connections there (tcpKey), but for one not yet accepted
	aborts uint64           // Watcher.TCPAborts then
}

// tcpDump is what the kernel held of TCP sockets at some local addresses
// just before a view read processes (see Watcher.TCPAt).
type tcpDump struct {
	socks  []procfs.Socket
	locals []netip.AddrPort
	aborts uint64
}

// has reports whether the dump covers every one of addrs.
func (d *tcpDump) has(addrs []netip.AddrPort) bool {
	for _, a := range addrs {
		if !slices.Contains(d.locals, a) {
			return false
		}
	}
	return true
}

// markTCP notes, before a view of units (every unit when nil) reads their
// processes, what the kernel holds at the TCP listen addresses of their
// services as last read (the kernel dumps only those ports). Nil when
// nothing was asked: no such service yet (the first view learns the
// addresses; its services get no mark), or the kernel could not be asked.
func (st *loop) markTCP(units []string) *tcpDump {
	if st.w.TCPAt == nil || st.w.TCPAborts == nil {
		return nil
	}
	d := &tcpDump{}
	for svc, addrs := range st.tcpListen {
		if units == nil || slices.Contains(units, svc) {
			d.locals = append(d.locals, addrs...)
		}
	}
	if len(d.locals) == 0 {
		return nil
	}
	var err error
	if d.aborts, err = st.w.TCPAborts(); err != nil {
		return nil
	}
	if d.socks, err = st.w.TCPAt(st.ctx, d.locals); err != nil {
		return nil
	}
	return d
}

// noteTCP records, after a view of units (every unit when nil), the TCP
// listen addresses of its services and, from the dump taken before it,
// what the kernel held there. A service not found listening at one of
// them in this network namespace gets no mark: what was there is not
// known.
func (st *loop) noteTCP(units []string, snap *Snapshot, d *tcpDump) {
	if st.w.TCPAt == nil || st.w.TCPAborts == nil {
		return
	}
	if units == nil || st.tcpListen == nil {
		st.tcpListen, st.tcpMarks = map[string][]netip.AddrPort{}, map[string]tcpMark{}
	}
	for i := range snap.Services {
		svc := &snap.Services[i]
		delete(st.tcpMarks, svc.Unit)
		addrs, ok := tcpListenOf(snap, svc)
		if !ok {
			delete(st.tcpListen, svc.Unit)
			continue
		}
		st.tcpListen[svc.Unit] = addrs
		if d == nil || !d.has(addrs) {
			continue
		}
		at, listening := socketsAt(d.socks, addrs)
		if !listening {
			continue
		}
		m := tcpMark{addrs: addrs, known: map[string]bool{}, aborts: d.aborts}
		for _, s := range at {
			// A connection still in an accept queue (no descriptor yet)
			// is not one the view can show: if the process accepts it and
			// drops it, it must count as unseen.
			if s.Inode != 0 || closing(s.State) {
				m.known[tcpKey(s)] = true
			}
		}
		st.tcpMarks[svc.Unit] = m
	}
}

// quietTCP reports that the kernel shows nothing at the TCP listeners of
// a service that it did not show before the service's last view, and no
// connection reset since: no connection was accepted after that view
// (and dropped, or kept) that the view could not show. False wherever
// that cannot be told: a listener not TCP, no mark, the kernel not asked.
func (st *loop) quietTCP(unit string) bool {
	m, ok := st.tcpMarks[unit]
	if !ok || st.w.TCPAt == nil || st.w.TCPAborts == nil {
		return false
	}
	aborts, err := st.w.TCPAborts()
	if err != nil || aborts != m.aborts {
		return false
	}
	socks, err := st.w.TCPAt(st.ctx, m.addrs)
	if err != nil {
		return false
	}
	at, listening := socketsAt(socks, m.addrs)
	if !listening {
		return false
	}
	for _, s := range at {
		if !m.known[tcpKey(s)] {
			return false
		}
	}
	return true
}

// socketsAt returns the sockets of socks but listeners at addrs, and
// whether a listener was found at each of addrs.
func socketsAt(socks []procfs.Socket, addrs []netip.AddrPort) (at []procfs.Socket, listening bool) {
	found := make([]bool, len(addrs))
	for _, s := range socks {
		for i, a := range addrs {
			if s.Local.Port() != a.Port() || !a.Addr().IsUnspecified() && s.Local.Addr().Unmap() != a.Addr().Unmap() {
				continue
			}
			if s.State == procfs.StateListen {
				found[i] = true
			} else {
				at = append(at, s)
			}
			break
		}
	}
	return at, !slices.Contains(found, false)
}

// closing reports a state the kernel keeps a connection's end in after it
// was closed: it belongs to no descriptor and is no connection to drop.
func closing(s procfs.SockState) bool {
	switch s {
	case procfs.StateFinWait1, procfs.StateFinWait2, procfs.StateTimeWait, procfs.StateClosing, procfs.StateLastAck:
		return true
	}
	return false
}

// tcpKey names a TCP connection by its two ends.
func tcpKey(s procfs.Socket) string {
	return netip.AddrPortFrom(s.Local.Addr().Unmap(), s.Local.Port()).String() + " " +
		netip.AddrPortFrom(s.Remote.Addr().Unmap(), s.Remote.Port()).String()
}

// tcpListenOf lists the TCP listen addresses of a service (its socket
// units' Listen= entries and the listeners it opened itself); false when
// it has a listener whose connections the kernel cannot list by address
// (a unix stream or sequential-packet socket, one not understood), a
// socket unit this snapshot lacks, or no TCP listener at all.
func tcpListenOf(snap *Snapshot, svc *Service) ([]netip.AddrPort, bool) {
	var addrs []netip.AddrPort
	add := func(ls []Listener) bool {
		for _, l := range ls {
			switch l.Type {
			case "Stream":
				a, err := listenAddrPort(l.Address)
				if err != nil || a.Port() == 0 {
					return false // a unix stream socket, or not understood
				}
				if !slices.Contains(addrs, a) {
					addrs = append(addrs, a)
				}
			case "SequentialPacket":
				return false
			}
		}
		return true
	}
	for _, name := range svc.Sockets {
		if !slices.ContainsFunc(snap.Sockets, func(su SocketUnit) bool { return su.Unit == name }) {
			return nil, false
		}
	}
	for _, su := range snap.Sockets {
		if su.Accept || su.Service != svc.Unit && !slices.Contains(svc.Sockets, su.Unit) {
			continue
		}
		if !add(su.Listeners) {
			return nil, false
		}
	}
	if !add(svc.OwnListeners) || len(addrs) == 0 {
		return nil, false
	}
	slices.SortFunc(addrs, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return addrs, true
}
