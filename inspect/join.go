package inspect

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/internal/cescape"
	"github.com/fdtop/fdtop/procfs"
)

// JoinInput is everything the join needs, already read: what the manager
// said and what the kernel holds. Join is pure so it is tested with fixtures.
type JoinInput struct {
	// Time stamps the snapshot.
	Time time.Time
	// Manager describes the manager (scope, version, features).
	Manager Manager
	// ManagerPIDs are the manager's processes (init.scope): the holders whose
	// descriptors are the manager's own, its listeners and its fd stores.
	ManagerPIDs []int
	// State is what dbusclient.Load returned.
	State *dbusclient.State
	// Stores are the fd stores of services with FileDescriptorStoreMax > 0.
	Stores map[string]dbusclient.FDStore
	// Scan is the kernel scan of (at least) the manager and the units'
	// processes.
	Scan *procfs.Scan
	// ScanDuration is how long the scan took.
	ScanDuration time.Duration
	// Hostname names the machine.
	Hostname string
}

// holding is one process's descriptor of an inode.
type holding struct {
	proc *procfs.Process
	fd   procfs.FD
}

// index is the kernel scan reorganised for the join.
type index struct {
	scan     *procfs.Scan
	byPID    map[int]*procfs.Process
	byInode  inodeIndex
	managers map[int]bool
	// forks are the managers' children that have not exec'd yet (see
	// isFork); they are in managers too: what they hold is the manager's.
	forks    map[int]bool
	accepted *acceptedIndex // built on first use
	// peers are the processes peerName named: they hold the other ends
	// of the units' unix connections.
	peers map[int]bool
	// unreadRelevant counts the processes whose descriptors could not be
	// read and that may hold the manager's descriptors or its services'
	// (see unreadable).
	unreadRelevant int
}

// maxUnreadableListed bounds HostInfo.UnreadableProcesses.
const maxUnreadableListed = 10

// unreadable lists the processes of scan whose descriptors could not be
// read (at most maxUnreadableListed) and counts those that started before
// the manager: such a process is not the manager's descendant, so it
// inherited none of its descriptors (its listeners, its fd stores, the
// connections its services accepted, all made after it started). A
// process not read at all, or any when the manager's start is unknown,
// is not counted: it may hold them.
func (ix *index) unreadable(scan *procfs.Scan) ([]UnreadableProcess, int) {
	if scan == nil {
		return nil, 0
	}
	var start uint64
	for pid := range ix.managers {
		if p := ix.byPID[pid]; p != nil && (start == 0 || p.StartTime < start) {
			start = p.StartTime
		}
	}
	var out []UnreadableProcess
	before := 0
	for i := range scan.Processes {
		p := &scan.Processes[i]
		if !p.Denied {
			continue
		}
		earlier := start != 0 && p.StartTime < start && !ix.managers[p.PID]
		if earlier {
			before++
		}
		if len(out) < maxUnreadableListed {
			out = append(out, UnreadableProcess{PID: p.PID, Comm: p.Comm, BeforeManager: earlier})
		}
	}
	return out, before
}

// inodeIndex finds the descriptors of an inode. A host-wide scan holds
// ~100k of them and the join looks up a few hundred, so it stays compact:
// per inode the first and last of a chain of (process, descriptor)
// positions in the scan, not a slice of copied descriptors (that was most
// of what a host-wide pass allocated).
type inodeIndex struct {
	ends  map[uint64][2]int32 // inode -> first and last link
	links []inodeLink
}

type inodeLink struct {
	proc, fd, next int32 // positions in Scan.Processes and its FDs; next link or -1
}

func newIndex(scan *procfs.Scan, managerPIDs []int) *index {
	ix := &index{scan: scan, byPID: map[int]*procfs.Process{}, managers: map[int]bool{}}
	for _, pid := range managerPIDs {
		ix.managers[pid] = true
	}
	if scan == nil {
		ix.scan = &procfs.Scan{Sockets: map[uint64]procfs.Socket{}}
		return ix
	}
	n := 0
	for i := range scan.Processes {
		n += len(scan.Processes[i].FDs)
	}
	ix.byPID = make(map[int]*procfs.Process, len(scan.Processes))
	ix.byInode = inodeIndex{ends: make(map[uint64][2]int32, n), links: make([]inodeLink, 0, n)}
	for i := range scan.Processes {
		p := &scan.Processes[i]
		ix.byPID[p.PID] = p
		for j := range p.FDs {
			fd := &p.FDs[j]
			if fd.Inode == 0 {
				continue
			}
			switch fd.Kind {
			case procfs.KindSocket, procfs.KindPipe, procfs.KindFIFO, procfs.KindMemfd:
				ix.byInode.add(fd.Inode, i, j)
			}
		}
	}
	if ix.scan.Sockets == nil {
		ix.scan.Sockets = map[uint64]procfs.Socket{}
	}
	for pid, p := range ix.byPID {
		if isFork(p, ix.byPID[p.PPID], ix.managers) {
			if ix.forks == nil {
				ix.forks = map[int]bool{}
			}
			ix.forks[pid] = true
		}
	}
	for pid := range ix.forks {
		ix.managers[pid] = true
	}
	return ix
}

// isFork reports that p is a manager's forked child that has not exec'd
// yet: a child of a manager that systemd has named "(unit)", or whose
// argument vector is still its parent's. Such a child holds copies of the
// manager's descriptors.
func isFork(p, parent *procfs.Process, managers map[int]bool) bool {
	if p == nil || parent == nil || managers[p.PID] || !managers[p.PPID] {
		return false
	}
	if strings.HasPrefix(p.Comm, "(") && strings.HasSuffix(p.Comm, ")") {
		return true
	}
	return len(p.Cmdline) > 0 && slices.Equal(trimEmptyTail(p.Cmdline), trimEmptyTail(parent.Cmdline))
}

func (x *inodeIndex) add(inode uint64, proc, fd int) {
	at := int32(len(x.links))
	x.links = append(x.links, inodeLink{proc: int32(proc), fd: int32(fd), next: -1})
	if e, ok := x.ends[inode]; ok {
		x.links[e[1]].next = at
		x.ends[inode] = [2]int32{e[0], at}
		return
	}
	x.ends[inode] = [2]int32{at, at}
}

// of lists the descriptors of inode, in scan order (by PID, then fd).
func (ix *index) of(inode uint64) []holding {
	e, ok := ix.byInode.ends[inode]
	if !ok {
		return nil
	}
	var out []holding
	for i := e[0]; i >= 0; i = ix.byInode.links[i].next {
		l := ix.byInode.links[i]
		p := &ix.scan.Processes[l.proc]
		out = append(out, holding{proc: p, fd: p.FDs[l.fd]})
	}
	return out
}

// unitOf returns the unit a process belongs to in the manager's scope.
func unitOf(p *procfs.Process, scope string) string {
	if scope == "user" && p.UserUnit != "" {
		return p.UserUnit
	}
	return p.Unit
}

// Join builds a Snapshot from what the manager said and the kernel holds.
func Join(in JoinInput) *Snapshot {
	ix := newIndex(in.Scan, in.ManagerPIDs)
	snap := &Snapshot{
		Time:     in.Time,
		Manager:  in.Manager,
		Sockets:  []SocketUnit{},
		Services: []Service{},
		Warnings: []Warning{},
		Host:     HostInfo{Hostname: in.Hostname, ScanDuration: in.ScanDuration},
	}
	if in.Scan != nil {
		snap.Host.Unreadable = in.Scan.Unreadable
		snap.Host.EnvUnreadable = in.Scan.EnvUnreadable
		snap.Host.Partial = in.Scan.Partial
		snap.Host.HoldersSource = in.Scan.HoldersSource
		snap.Host.HoldersNote = in.Scan.HoldersNote
	}
	if len(in.ManagerPIDs) > 0 {
		snap.Manager.PID = in.ManagerPIDs[0]
	}
	snap.ManagerInodes = map[uint64]bool{}
	for pid := range ix.managers {
		if p := ix.byPID[pid]; p != nil {
			for _, fd := range p.FDs {
				if fd.Inode != 0 {
					snap.ManagerInodes[fd.Inode] = true
				}
			}
		}
	}
	state := in.State
	if state == nil {
		state = &dbusclient.State{}
	}
	scope := in.Manager.Scope

	services := map[string]*dbusclient.Service{}
	for i := range state.Services {
		services[state.Services[i].Name] = &state.Services[i]
	}

	// What could not be read: the manager's descriptors, any process's.
	managerUnread := len(ix.managers) == 0 || in.Scan == nil
	for pid := range ix.managers {
		if p := ix.byPID[pid]; p == nil || p.Denied {
			managerUnread = true
		}
	}
	snap.Host.UnreadableProcesses, snap.Host.UnreadableBeforeManager = ix.unreadable(in.Scan)
	ix.unreadRelevant = snap.Host.Relevant()
	someUnread := in.Scan == nil || ix.unreadRelevant > 0

	// Listeners: every Listen= entry of every socket unit, found among the
	// manager's descriptors by address.
	listenerInodes := map[uint64]string{} // inode -> socket unit
	addrOwners := map[string][]string{}   // "Type address" -> socket units
	svcListeners := map[string][]Listener{}
	for _, su := range state.Sockets {
		out := SocketUnit{
			Unit:                 su.Name,
			ActiveState:          su.ActiveState,
			SubState:             su.SubState,
			Accept:               su.Accept,
			FileDescriptorName:   su.FileDescriptorName,
			NConnections:         su.Counters.NConnections,
			NAccepted:            su.Counters.NAccepted,
			NRefused:             su.Counters.NRefused,
			FlushPending:         su.FlushPending,
			Listeners:            []Listener{},
			ActiveEnterMonotonic: su.ActiveEnterMonotonic,
		}
		setSocketSettings(&out, su.Settings)
		out.Service = su.Service()
		for _, l := range su.Listen {
			key := l.Type + " " + l.Address
			addrOwners[key] = append(addrOwners[key], su.Name)
			lst := Listener{Type: l.Type, Address: l.Address, Holders: []Holder{}}
			if !socketListening(su.ActiveState, su.SubState) {
				// A socket unit that is not up has no listener: the
				// manager holds none (nothing to look for or to blame).
			} else if h, ok := ix.findListener(l); !ok {
				// Not looked for (its holders with it), or not there: a
				// listener the manager does not hold has no holders to
				// miss.
				lst.InodeUnknown = managerUnread
				lst.HoldersPartial = managerUnread
			} else {
				lst.Inode = h.fd.Inode
				lst.HoldersPartial = someUnread
				listenerInodes[h.fd.Inode] = su.Name
				if s, ok := ix.scan.Sockets[h.fd.Inode]; ok {
					lst.State = s.State.String()
					switch {
					case s.State == procfs.StateListen:
						lst.Backlog = s.RecvQ
					case l.Type == "Datagram":
						q := s.RecvQ // unread datagrams, not a backlog
						lst.RecvQ = &q
					}
				}
				lst.Holders = ix.holders(h.fd.Inode, scope, func(unit string) bool {
					// The socket unit's own processes (ExecStartPost=...
					// with PassFileDescriptorsToExec=, v256) are inside.
					return unit == su.Name || su.Starts(unit)
				})
			}
			out.Listeners = append(out.Listeners, lst)
		}
		for _, inst := range su.Instances {
			out.Instances = append(out.Instances, ix.instance(inst, services[inst], scope))
		}
		if !su.Accept {
			// Every service it triggers is passed its listeners: its
			// Service= and those that name it in Sockets=.
			for _, svc := range passedTo(su) {
				svcListeners[svc] = append(svcListeners[svc], out.Listeners...)
			}
		}
		snap.Sockets = append(snap.Sockets, out)
	}

	socketNames := map[string]bool{} // names listeners are passed under
	for _, su := range state.Sockets {
		socketNames[su.Name] = true
		if su.FileDescriptorName != "" {
			socketNames[su.FileDescriptorName] = true
		}
	}
	for _, svc := range state.Services {
		if svc.Template != "" && isAcceptInstance(svc, state.Sockets) {
			continue // shown under its socket unit
		}
		snap.Services = append(snap.Services, ix.service(svc, in.Stores[svc.Name], svcListeners[svc.Name], listenerInodes, socketNames, scope))
	}

	for pid := range ix.peers {
		if !ix.managers[pid] {
			snap.PeerPIDs = append(snap.PeerPIDs, pid)
		}
	}
	sort.Ints(snap.PeerPIDs)
	snap.Warnings = warnings(snap, addrOwners)
	sort.Slice(snap.Sockets, func(i, j int) bool { return snap.Sockets[i].Unit < snap.Sockets[j].Unit })
	sort.Slice(snap.Services, func(i, j int) bool { return snap.Services[i].Unit < snap.Services[j].Unit })
	return snap
}

// passedTo lists the services an Accept=no socket passes its listeners to
// when they start: its Service= and every service naming it in Sockets=.
func passedTo(su dbusclient.Socket) []string {
	out := []string{}
	if svc := su.Service(); svc != "" {
		out = append(out, svc)
	}
	for _, t := range su.Triggers {
		if strings.HasSuffix(t, ".service") && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// socketListening reports whether a socket unit in this ActiveState has
// its listeners open: active (listening or running) or on its way down
// or reloading; not inactive, failed or activating (not yet bound).
func socketListening(activeState, subState string) bool {
	switch activeState {
	case "", "active", "reloading", "deactivating", "refreshing": // "": not read, looked for
		return true
	case "activating":
		// Its listeners are open once it chowns them and while its
		// ExecStartPost= runs (which holds them with
		// PassFileDescriptorsToExec=, v256).
		return subState == "start-chown" || subState == "start-post"
	}
	return false
}

// setSocketSettings copies the settings newer managers have, leaving
// those this manager lacks unknown.
func setSocketSettings(out *SocketUnit, st dbusclient.SocketSettings) {
	out.PollLimitIntervalUSec = st.PollLimitIntervalUSec
	out.PollLimitBurst = st.PollLimitBurst
	out.PassFDsToExec = st.PassFDsToExec
	if st.DeferTrigger != nil {
		out.DeferTrigger = *st.DeferTrigger
	}
	out.DeferTriggerMaxUSec = st.DeferTriggerMaxUSec
	out.PassPIDFD = st.PassPIDFD
	out.AcceptFDs = st.AcceptFDs
}

// isAcceptInstance reports whether svc is a per-connection instance of an
// Accept=yes socket.
func isAcceptInstance(svc dbusclient.Service, sockets []dbusclient.Socket) bool {
	for _, s := range sockets {
		if s.Accept && s.Template == svc.Template {
			return true
		}
	}
	return false
}

// findListener finds the manager's descriptor behind a Listen= entry.
func (ix *index) findListener(l dbusclient.Listener) (holding, bool) {
	for pid := range ix.managers {
		p := ix.byPID[pid]
		if p == nil {
			continue
		}
		for _, fd := range p.FDs {
			if listenerMatches(l, fd, ix.scan.Sockets) {
				return holding{proc: p, fd: fd}, true
			}
		}
	}
	return holding{}, false
}

// listenerMatches reports whether descriptor fd is the kernel object of
// Listen= entry l.
func listenerMatches(l dbusclient.Listener, fd procfs.FD, sockets map[uint64]procfs.Socket) bool {
	switch l.Type {
	case "FIFO":
		return fd.Kind == procfs.KindFIFO && fd.Name == l.Address
	case "Special", "MessageQueue", "USBFunction":
		return fd.Name == l.Address
	}
	if fd.Kind != procfs.KindSocket {
		return false
	}
	s, ok := sockets[fd.Inode]
	if !ok {
		return false
	}
	if l.Type == "Netlink" {
		// The manager holds netlink sockets of its own (audit, uevent
		// monitors): only the one of this protocol bound to this group
		// is the listener, and one the kernel said nothing of is not
		// taken for it.
		want, err := procfs.ParseNetlinkAddress(l.Address)
		return err == nil && s.Family == procfs.FamilyNetlink && s.Netlink != nil && *s.Netlink == want
	}
	if name, abstract, ok := l.UnixName(); ok {
		// systemd prints the name C-escaped; the kernel has its bytes.
		if s.Family != procfs.FamilyUnix {
			return false
		}
		want := procfs.TypeStream
		switch l.Type {
		case "Datagram":
			want = procfs.TypeDgram
		case "SequentialPacket":
			want = procfs.TypeSeqPacket
		}
		if s.Type != procfs.TypeUnknown && s.Type != want {
			return false
		}
		// An accepted connection carries its listener's path: the listener
		// is the one socket at that path in LISTEN (a datagram one has no
		// peer), never a connection the manager holds in an fd store.
		if want == procfs.TypeDgram && s.PeerInode != 0 || want != procfs.TypeDgram && s.State != procfs.StateListen {
			return false
		}
		return s.Abstract == abstract && s.Path == name
	}
	ap, err := listenAddrPort(l.Address)
	if err != nil || (s.Family != procfs.FamilyInet && s.Family != procfs.FamilyInet6) {
		return false
	}
	switch l.Type {
	case "Stream":
		if s.Proto != procfs.ProtoTCP || s.State != procfs.StateListen {
			return false
		}
	case "Datagram":
		if s.Proto != procfs.ProtoUDP || s.Remote.Port() != 0 {
			return false
		}
	default:
		return false
	}
	return sameBind(ap, s.Local)
}

// listenAddrPort parses systemd's printed inet listen address: "80",
// "[::]:80", "0.0.0.0:80", "127.0.0.1:80".
func listenAddrPort(addr string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap, nil
	}
	if p, err := strconv.ParseUint(addr, 10, 16); err == nil {
		return netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(p)), nil
	}
	return netip.AddrPort{}, fmt.Errorf("not an inet address: %q", addr)
}

// sameBind compares a listen address with a socket's local address,
// treating v4-mapped and plain v4 as one.
func sameBind(want, got netip.AddrPort) bool {
	if want.Port() != got.Port() {
		return false
	}
	return want.Addr().Unmap() == got.Addr().Unmap()
}

// holders lists who holds inode, the manager first; inUnit says whether a
// unit is where the descriptor belongs (else the holder is Outside).
func (ix *index) holders(inode uint64, scope string, inUnit func(string) bool) []Holder {
	out := []Holder{}
	for _, h := range ix.of(inode) {
		unit := unitOf(h.proc, scope)
		ho := Holder{PID: h.proc.PID, FD: h.fd.Num, Comm: h.proc.Comm, Unit: unit, Manager: ix.managers[h.proc.PID]}
		ho.Outside = !ho.Manager && !inUnit(unit)
		out = append(out, ho)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Manager != out[j].Manager {
			return out[i].Manager
		}
		if out[i].PID != out[j].PID {
			return out[i].PID < out[j].PID
		}
		return out[i].FD < out[j].FD
	})
	return out
}

// instance describes one per-connection service of an Accept=yes socket.
func (ix *index) instance(name string, svc *dbusclient.Service, scope string) Instance {
	inst := Instance{Unit: name}
	if svc == nil {
		return inst
	}
	inst.ActiveState, inst.SubState, inst.MainPID = svc.ActiveState, svc.SubState, int(svc.MainPID)
	if in, ok := ParseInstanceName(name); ok && in.Cookie != 0 {
		// systemd 258+ names the connection by its socket cookie: exact.
		for _, s := range ix.scan.Sockets {
			if s.Cookie == in.Cookie {
				inst.Local, inst.Remote = ix.sockEnds(s)
				ix.instanceHolders(&inst, s.Inode, scope)
				return inst
			}
		}
	}
	if p := ix.byPID[inst.MainPID]; p != nil {
		// The connection is passed as fd 3 (and usually 0/1 too).
		for _, fd := range p.FDs {
			if fd.Kind != procfs.KindSocket || (fd.Num != 3 && fd.Num != 0) {
				continue
			}
			if s, ok := ix.scan.Sockets[fd.Inode]; ok && s.Family != procfs.FamilyUnix || ok && s.PeerInode != 0 {
				inst.Local, inst.Remote = ix.sockEnds(s)
				ix.instanceHolders(&inst, fd.Inode, scope)
				break
			}
		}
	}
	if inst.Local == "" && inst.Remote == "" {
		if in, ok := ParseInstanceName(name); ok {
			inst.Local, inst.Remote = in.Local, in.Remote // as the manager named it
			// The main process may hold the connection elsewhere than
			// fd 0 or 3 (OpenSSH 10's sshd-session moves it): the one
			// kernel socket with the ends the manager named it by.
			if s, ok := ix.socketWithEnds(in.Local, in.Remote); ok {
				inst.Local, inst.Remote = ix.sockEnds(s)
				ix.instanceHolders(&inst, s.Inode, scope)
			}
		}
	}
	return inst
}

// socketWithEnds finds the one inet socket of the scan connected from
// local to remote ("127.0.0.1:22", "[::1]:22", v4-mapped or not); false
// when none or more than one (other network namespaces) has them.
func (ix *index) socketWithEnds(local, remote string) (procfs.Socket, bool) {
	l, err1 := netip.ParseAddrPort(local)
	r, err2 := netip.ParseAddrPort(remote)
	if err1 != nil || err2 != nil {
		return procfs.Socket{}, false
	}
	var found []procfs.Socket
	for _, s := range ix.scan.Sockets {
		if (s.Family == procfs.FamilyInet || s.Family == procfs.FamilyInet6) && s.State != procfs.StateListen &&
			sameBind(l, s.Local) && sameBind(r, s.Remote) {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		return procfs.Socket{}, false
	}
	return found[0], true
}

// instanceHolders records an instance's connection and who holds it, one
// entry per process (its lowest fd), each with its unit (none is "outside": the session scope a login moved
// the instance's process to is where it belongs now).
func (ix *index) instanceHolders(inst *Instance, inode uint64, scope string) {
	inst.Inode = inode
	seen := map[int]bool{}
	for _, h := range ix.holders(inode, scope, func(string) bool { return true }) {
		if !seen[h.PID] { // one per process (sshd -i holds it as 0, 1 and 3)
			seen[h.PID] = true
			inst.Holders = append(inst.Holders, h)
		}
	}
}

// InstanceName is what the name of an Accept=yes instance says about its
// connection: systemd names it NAME@NR-LOCAL-REMOTE.service (AF_UNIX:
// NAME@NR-PID-UID.service, NAME@NR-unknown.service for a peer in another
// namespace), and from 258 on puts the socket's cookie after the number:
// NAME@NR-COOKIE-LOCAL-REMOTE.service (AF_UNIX: NR-COOKIE-PID_PIDFDID-UID,
// NR-COOKIE-PID-UID or NR-COOKIE-unknown). IPv6 ends are printed without
// brackets ("::1:22"); none of the forms has a "-" inside a field.
type InstanceName struct {
	// Nr is the socket unit's connection counter at accept.
	Nr uint64
	// Cookie is the kernel socket cookie (SO_COOKIE), 0 when the name has
	// none (systemd before 258).
	Cookie uint64
	// Local and Remote are the inet addresses, "" for other families.
	Local, Remote string
}

// ParseInstanceName parses an Accept=yes instance name in either form.
func ParseInstanceName(unit string) (InstanceName, bool) {
	_, inst, ok := strings.Cut(strings.TrimSuffix(unit, ".service"), "@")
	if !ok || inst == "" {
		return InstanceName{}, false
	}
	f := strings.Split(inst, "-")
	var in InstanceName
	var err error
	if in.Nr, err = strconv.ParseUint(f[0], 10, 64); err != nil {
		return InstanceName{}, false
	}
	switch {
	case len(f) == 2 && f[1] == "unknown": // AF_UNIX, a peer in another namespace
	case len(f) == 3 && f[2] == "unknown": // the same from 258 on: NR-COOKIE-unknown
		if in.Cookie, err = strconv.ParseUint(f[1], 10, 64); err != nil {
			return InstanceName{}, false
		}
	case len(f) == 3: // NR-LOCAL-REMOTE, NR-PID-UID
	case len(f) == 4: // NR-COOKIE-LOCAL-REMOTE, NR-COOKIE-PID-UID, NR-COOKIE-PID_PIDFDID-UID
		if in.Cookie, err = strconv.ParseUint(f[1], 10, 64); err != nil {
			return InstanceName{}, false
		}
	default:
		return InstanceName{}, false
	}
	if l, r := f[len(f)-2], f[len(f)-1]; strings.Contains(l, ":") && strings.Contains(r, ":") {
		in.Local, in.Remote = l, r
	}
	return in, true
}

// sockEnds returns a socket's two ends as text; a unix socket's remote end
// is the process holding its peer (sock_diag's UNIX_DIAG_PEER joined to the
// descriptors), e.g. "systemd pid 1 fd 35".
func (ix *index) sockEnds(s procfs.Socket) (local, remote string) {
	if s.Family == procfs.FamilyUnix {
		return unixName(s), peerNamer(ix.peerName).name(s.PeerInode)
	}
	return addrString(s.Local), addrString(s.Remote)
}

// peerName names who holds a unix socket's peer: the first process that is
// not the manager (a client), else the manager, with how many more hold
// it; "" when no scanned process does.
func (ix *index) peerName(inode uint64) string {
	hs := ix.of(inode)
	if len(hs) == 0 {
		return ""
	}
	best := hs[0]
	for _, h := range hs {
		if !ix.managers[h.proc.PID] {
			best = h
			break
		}
	}
	pids := map[int]bool{}
	for _, h := range hs {
		pids[h.proc.PID] = true
	}
	if ix.peers == nil {
		ix.peers = map[int]bool{}
	}
	ix.peers[best.proc.PID] = true
	name := fmt.Sprintf("%s pid %d fd %d", best.proc.Comm, best.proc.PID, best.fd.Num)
	if len(pids) > 1 {
		name += fmt.Sprintf(" (+%d more)", len(pids)-1)
	}
	return name
}

// service joins one service with the kernel: processes, passed fds, fd
// store and connections.
func (ix *index) service(svc dbusclient.Service, store dbusclient.FDStore, listeners []Listener, listenerInodes map[uint64]string, socketNames map[string]bool, scope string) Service {
	out := Service{
		Unit:            svc.Name,
		ActiveState:     svc.ActiveState,
		SubState:        svc.SubState,
		Type:            svc.Type,
		Result:          svc.Result,
		StatusText:      svc.StatusText,
		Sockets:         svc.TriggeredBy,
		MainPID:         int(svc.MainPID),
		NRestarts:       svc.NRestarts,
		StartedAt:       svc.ExecMainStart,
		FDStoreMax:      svc.FDStoreMax,
		FDStoreCount:    svc.NFDStore,
		FDStorePreserve: svc.FDStorePreserve,
		FDStore:         []StoreEntry{},
		Passed:          []PassedFD{},
		Connections:     []Connection{},
	}
	pids := map[int]bool{}
	for _, p := range svc.Processes {
		pid := int(p.PID)
		pids[pid] = true
		pr := Process{PID: pid, Cmdline: p.Cmdline}
		if kp := ix.byPID[pid]; kp != nil {
			pr.Comm = kp.Comm
			// The kernel's argument vector joined by spaces: the manager's
			// string quotes an argument with spaces, so a process that
			// rewrote its argv into one title (sshd) came out quoted.
			if args := trimEmptyTail(kp.Cmdline); len(args) > 0 {
				pr.Cmdline = strings.Join(args, " ") // exact: ForTerminal escapes it for a terminal
			}
		}
		out.Processes = append(out.Processes, pr)
	}
	if out.MainPID != 0 {
		pids[out.MainPID] = true
	}
	// The manager's child before it execs the service holds the manager's
	// descriptors (its private bus, its listeners, every fd store): none
	// is the service's, and what the service will hold is not known yet.
	for pid := range pids {
		if ix.forks[pid] {
			delete(pids, pid)
			out.ConnectionsUnknown = true
			for i := range out.Processes {
				if out.Processes[i].PID == pid {
					out.Processes[i].PreExec = true
				}
			}
		}
	}

	// What the main process was passed at start, and what it is now.
	main := ix.byPID[out.MainPID]
	if main != nil && !pids[out.MainPID] {
		main = nil
		out.PassedUnknown = true
	}
	out.PassedUnknown = out.PassedUnknown || main != nil && (main.Denied || main.EnvDenied)
	for pid := range pids {
		if p := ix.byPID[pid]; p != nil && p.Denied {
			out.ConnectionsUnknown = true
		}
	}
	passedInodes := map[uint64]string{}
	if main != nil && main.Handoff != nil && main.Handoff.ForThisProcess {
		out.ListenPIDFDID = main.Handoff.PidFDID
		for _, pf := range main.Handoff.Passed {
			p := PassedFD{FD: pf.FD, Name: pf.Name, Kind: "closed"}
			for _, fd := range main.FDs {
				if fd.Num == pf.FD {
					p.Inode = fd.Inode
					p.Kind, p.Detail = fdKindDetail(fd, ix.scan.Sockets, ix.peerName)
					if fd.Inode != 0 {
						passedInodes[fd.Inode] = pf.Name
					}
					break
				}
			}
			out.Passed = append(out.Passed, p)
		}
	}

	// Listeners the service opened itself: they count as listeners for
	// its connections and for a handoff's "listener kept or replaced".
	fromSockets := map[uint64]bool{}
	for _, l := range listeners {
		fromSockets[l.Inode] = true
	}
	pidList := make([]int, 0, len(pids))
	for pid := range pids {
		pidList = append(pidList, pid)
	}
	sort.Ints(pidList)
	for _, pid := range pidList {
		p := ix.byPID[pid]
		if p == nil {
			continue
		}
		for _, fd := range p.FDs {
			s, ok := ix.scan.Sockets[fd.Inode]
			if fd.Kind != procfs.KindSocket || !ok || s.State != procfs.StateListen || fromSockets[fd.Inode] {
				continue
			}
			fromSockets[fd.Inode] = true
			l := Listener{Type: listenType(s), Address: listenAddress(s), Inode: fd.Inode, Backlog: s.RecvQ, State: s.State.String()}
			l.Holders = ix.holders(fd.Inode, scope, func(unit string) bool { return unit == svc.Name })
			l.PassedBy = passedBySocket(passedInodes[fd.Inode])
			out.OwnListeners = append(out.OwnListeners, l)
		}
	}
	listeners = append(append([]Listener(nil), listeners...), out.OwnListeners...)

	// Connections accepted from this service's listeners, one per socket.
	seenConn := map[uint64]bool{}
	for _, pid := range pidList {
		p := ix.byPID[pid]
		if p == nil {
			continue
		}
		for _, fd := range p.FDs {
			if fd.Kind != procfs.KindSocket || seenConn[fd.Inode] {
				continue
			}
			s, ok := ix.scan.Sockets[fd.Inode]
			if !ok || s.State == procfs.StateListen || !acceptedFrom(s, listeners, ix.scan.Sockets) {
				continue
			}
			seenConn[fd.Inode] = true
			local, remote := ix.sockEnds(s)
			out.Connections = append(out.Connections, Connection{
				PID: pid, FD: fd.Num, Inode: fd.Inode, Local: local, Remote: remote,
				State: s.State.String(), RecvQ: s.RecvQ, SendQ: s.SendQ,
			})
		}
	}
	// Connections accepted from its listeners that other processes hold:
	// a login moves an sshd session out of the service into
	// session-N.scope (pam_systemd), where the session lives on across a
	// restart of the service. One no readable process holds (not root)
	// makes the list short: unknown, never absent.
	for _, s := range ix.acceptedElsewhere(listeners) {
		if seenConn[s.Inode] {
			continue
		}
		seenConn[s.Inode] = true
		h, byManager, ok := ix.outsideHolder(s.Inode, pids)
		if !ok {
			// Held only by the manager (an fd store entry, listed there),
			// or by no process read: unknown when some were not readable.
			if !byManager && ix.unreadRelevant > 0 {
				out.ConnectionsUnknown = true
			}
			continue
		}
		local, remote := ix.sockEnds(s)
		out.Connections = append(out.Connections, Connection{
			PID: h.proc.PID, FD: h.fd.Num, Inode: s.Inode, Local: local, Remote: remote,
			State: s.State.String(), RecvQ: s.RecvQ, SendQ: s.SendQ,
			Outside: true, Comm: h.proc.Comm, Unit: unitOf(h.proc, scope),
		})
	}
	sort.Slice(out.Connections, func(i, j int) bool {
		a, b := out.Connections[i], out.Connections[j]
		if a.PID != b.PID {
			return a.PID < b.PID
		}
		return a.FD < b.FD
	})

	// The fd store.
	switch {
	case store.Listed:
		for _, e := range store.Entries {
			se := StoreEntry{Name: e.Name, Inode: e.Inode, Kind: storeKindFromMode(e.Mode, e.Path), Detail: e.Path}
			if s, ok := ix.scan.Sockets[e.Inode]; ok && se.Kind == "socket" {
				se.Kind, se.Detail = sockKind(s), sockDetail(s, ix.peerName)
			} else if se.Kind == "memfd" {
				se.Detail = "memfd:" + memfdName(e.Path)
			}
			se.ManagerOnly = ix.onlyManagerHolds(e.Inode)
			out.FDStore = append(out.FDStore, se)
		}
	case store.Denied:
		out.FDStoreUnknown = out.FDStoreCount > 0
	case out.FDStoreCount > 0:
		out.FDStore = ix.inferStore(out, pids, passedInodes, listenerInodes, socketNames)
	}
	out.FDStoreIdentified = len(out.FDStore)
	return out
}

// trimEmptyTail drops the empty arguments at the end of an argument
// vector: a process that rewrote its argv pads the old area with NULs.
func trimEmptyTail(args []string) []string {
	for len(args) > 0 && args[len(args)-1] == "" {
		args = args[:len(args)-1]
	}
	return args
}

// listenType names a listening socket's type as systemd's Listen= does,
// from the kernel's socket type.
func listenType(s procfs.Socket) string {
	switch s.Type {
	case procfs.TypeSeqPacket:
		return "SequentialPacket"
	case procfs.TypeDgram:
		return "Datagram"
	}
	return "Stream"
}

// listenAddress prints a listening socket's address the way systemd prints
// Listen= entries (a unix name C-escaped, as systemd's cescape does).
func listenAddress(s procfs.Socket) string {
	if s.Family == procfs.FamilyUnix {
		if s.Path != "" && s.Abstract {
			return "@" + cescape.Escape(s.Path)
		}
		return cescape.Escape(s.Path)
	}
	if !s.Local.IsValid() {
		return ""
	}
	return s.Local.String()
}

// acceptedFrom reports whether connected socket s was accepted from one of
// listeners: same local address (or port, for a wildcard listener), or, for
// unix sockets, the same bound path.
func acceptedFrom(s procfs.Socket, listeners []Listener, sockets map[uint64]procfs.Socket) bool {
	for _, l := range listeners {
		ls, ok := sockets[l.Inode]
		if !ok || l.Inode == 0 {
			continue
		}
		switch s.Family {
		case procfs.FamilyInet, procfs.FamilyInet6:
			if ls.Family != procfs.FamilyInet && ls.Family != procfs.FamilyInet6 || ls.Proto != s.Proto || s.Proto != procfs.ProtoTCP {
				continue
			}
			if ls.Local.Port() != s.Local.Port() {
				continue
			}
			if ls.Local.Addr().IsUnspecified() || ls.Local.Addr().Unmap() == s.Local.Addr().Unmap() {
				return true
			}
		case procfs.FamilyUnix:
			if ls.Family == procfs.FamilyUnix && ls.Path != "" && ls.Path == s.Path && ls.Abstract == s.Abstract && s.PeerInode != 0 {
				return true
			}
		}
	}
	return false
}

// acceptedElsewhere lists the connected sockets of the scan that were
// accepted from one of listeners (acceptedFrom: same local port and
// address, or the same bound unix name), in the listener's network
// namespace, whoever holds them. The candidates are indexed once per join.
func (ix *index) acceptedElsewhere(listeners []Listener) []procfs.Socket {
	var out []procfs.Socket
	for _, l := range listeners {
		ls, ok := ix.scan.Sockets[l.Inode]
		if !ok || l.Inode == 0 {
			continue
		}
		if ix.accepted == nil {
			ix.indexAccepted()
		}
		var cands []uint64
		switch ls.Family {
		case procfs.FamilyInet, procfs.FamilyInet6:
			cands = ix.accepted.byPort[ls.Local.Port()]
		case procfs.FamilyUnix:
			cands = ix.accepted.byName[unixKey{ls.Path, ls.Abstract}]
		}
		for _, ino := range cands {
			s := ix.scan.Sockets[ino]
			if ls.NetNS != 0 && s.NetNS != 0 && ls.NetNS != s.NetNS {
				continue
			}
			if acceptedFrom(s, []Listener{l}, ix.scan.Sockets) {
				out = append(out, s)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Inode < out[j].Inode })
	return out
}

// unixKey is a unix socket's bound name.
type unixKey struct {
	path     string
	abstract bool
}

// acceptedIndex holds the inodes of the scan's connected sockets that can
// have been accepted from a listener: TCP by local port, unix by bound
// name.
type acceptedIndex struct {
	byPort map[uint16][]uint64
	byName map[unixKey][]uint64
}

func (ix *index) indexAccepted() {
	a := &acceptedIndex{byPort: map[uint16][]uint64{}, byName: map[unixKey][]uint64{}}
	for ino, s := range ix.scan.Sockets {
		if s.Inode == 0 || s.State == procfs.StateListen {
			continue // an inode 0 socket waits in an accept queue: no one holds it yet
		}
		switch {
		case (s.Family == procfs.FamilyInet || s.Family == procfs.FamilyInet6) && s.Proto == procfs.ProtoTCP:
			a.byPort[s.Local.Port()] = append(a.byPort[s.Local.Port()], ino)
		case s.Family == procfs.FamilyUnix && s.Path != "" && s.PeerInode != 0:
			k := unixKey{s.Path, s.Abstract}
			a.byName[k] = append(a.byName[k], ino)
		}
	}
	ix.accepted = a
}

// outsideHolder is the process, neither the manager nor one of pids,
// that holds inode (the lowest PID and fd when several do); byManager
// says whether the manager holds it.
func (ix *index) outsideHolder(inode uint64, pids map[int]bool) (h holding, byManager, ok bool) {
	for _, c := range ix.of(inode) {
		switch {
		case ix.managers[c.proc.PID]:
			byManager = true
		case pids[c.proc.PID]:
		case !ok || c.proc.PID < h.proc.PID || c.proc.PID == h.proc.PID && c.fd.Num < h.fd.Num:
			h, ok = c, true
		}
	}
	return h, byManager, ok
}

// onlyManagerHolds reports whether nothing but the manager holds inode.
func (ix *index) onlyManagerHolds(inode uint64) bool {
	hs := ix.of(inode)
	if len(hs) == 0 {
		return false // not seen at all: say nothing
	}
	for _, h := range hs {
		if !ix.managers[h.proc.PID] {
			return false
		}
		if h.fd.Kind != procfs.KindSocket && ix.scan.HoldersSource == procfs.HoldersBPF {
			// The BPF pass lists the sockets of the processes outside
			// the units: who else holds a pipe, memfd or file is unknown.
			return false
		}
	}
	return true
}

// inferStore reconstructs a service's fd store where the manager cannot
// list it (systemd < 254). Each store entry is one descriptor the manager
// holds (both ends of a pipe are two entries with one inode), so the
// manager's descriptors are taken one by one: those that are not a socket
// unit's listener and that the service's main process was passed at start
// (named from LISTEN_FDNAMES), whose object a process of the service holds,
// or that are one end of a socket pair whose other end the service holds.
// Entries are marked inferred; what cannot be matched is left out and
// counted by Service.FDStoreIdentified, never guessed.
//
// socketNames are the names socket units' listeners are passed under; a
// passed descriptor so named is a listener, not a store entry.
func (ix *index) inferStore(svc Service, pids map[int]bool, passedInodes map[uint64]string, listenerInodes map[uint64]string, socketNames map[string]bool) []StoreEntry {
	for _, su := range svc.Sockets {
		if !socketNames[su] { // a socket unit triggering svc was not read
			socketNames = maps.Clone(socketNames)
			socketNames[su] = true
		}
	}
	type candidate struct {
		fd   procfs.FD
		name string
		rank int // 0 passed, 1 held by the service, 2 peer held by the service
	}
	heldByService := func(inode uint64) bool {
		for _, h := range ix.of(inode) {
			if pids[h.proc.PID] {
				return true
			}
		}
		return false
	}
	var cands []candidate
	mpids := make([]int, 0, len(ix.managers))
	for pid := range ix.managers {
		mpids = append(mpids, pid)
	}
	sort.Ints(mpids)
	for _, mpid := range mpids {
		mp := ix.byPID[mpid]
		if mp == nil {
			continue
		}
		for _, fd := range mp.FDs {
			if fd.Inode == 0 || listenerInodes[fd.Inode] != "" || !storeCandidate(fd) {
				continue
			}
			if name, ok := passedInodes[fd.Inode]; ok {
				// A socket unit's listener is passed under the unit's name
				// (or its FileDescriptorName=), an Accept=yes connection
				// as "connection": not store entries.
				if !socketNames[name] && name != "connection" && !strings.HasSuffix(name, ".socket") {
					cands = append(cands, candidate{fd, name, 0})
				}
				continue
			}
			if sock, ok := ix.scan.Sockets[fd.Inode]; ok && (sock.State == procfs.StateListen || sock.Family == procfs.FamilyUnix && sock.Path != "" && sock.PeerInode == 0) {
				// Unnamed, a listener (or a bound, unconnected unix
				// socket) the manager and the service share may be the
				// listener of a socket unit this snapshot did not read:
				// not claimed.
				continue
			}
			// Not passed to the running process: its name is unknown
			// (only LISTEN_FDNAMES tells it before systemd 254).
			if heldByService(fd.Inode) {
				cands = append(cands, candidate{fd, "", 1})
				continue
			}
			// One end of a socket pair (or an unbound client end) whose
			// other end the service keeps. A connection accepted on a
			// path (the manager's bus, a listener) is not one: it is
			// bound, and its peer points back only for stream pairs.
			if s, ok := ix.scan.Sockets[fd.Inode]; ok && s.Family == procfs.FamilyUnix && s.Path == "" && s.PeerInode != 0 {
				if ps, ok := ix.scan.Sockets[s.PeerInode]; ok && ps.PeerInode == fd.Inode && heldByService(s.PeerInode) {
					cands = append(cands, candidate{fd, "", 2})
				}
			}
		}
	}
	// The most certain first; never more entries than the store holds.
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].rank < cands[j].rank })
	if len(cands) > int(svc.FDStoreCount) {
		cands = cands[:svc.FDStoreCount]
	}
	out := make([]StoreEntry, 0, len(cands))
	for _, c := range cands {
		kind, detail := fdKindDetail(c.fd, ix.scan.Sockets, ix.peerName)
		out = append(out, StoreEntry{Name: c.name, NameUnknown: c.rank > 0, Kind: kind, Inode: c.fd.Inode, Inferred: true, Detail: detail, ManagerOnly: ix.onlyManagerHolds(c.fd.Inode)})
	}
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].Name < out[j].Name || out[i].Name == out[j].Name && out[i].Inode < out[j].Inode
	})
	return out
}

// storeCandidate reports whether a manager descriptor is of a kind an fd
// store entry can be (a socket, pipe, FIFO or memfd); which ones belong to
// a service's store is decided by inferStore.
func storeCandidate(fd procfs.FD) bool {
	switch fd.Kind {
	case procfs.KindMemfd, procfs.KindPipe, procfs.KindFIFO, procfs.KindSocket:
		return true
	}
	return false
}

// warnings computes the problems worth an operator's attention.
func warnings(snap *Snapshot, addrOwners map[string][]string) []Warning {
	out := []Warning{}
	svcs := map[string]*Service{}
	for i := range snap.Services {
		svcs[snap.Services[i].Unit] = &snap.Services[i]
	}
	keys := make([]string, 0, len(addrOwners))
	for k := range addrOwners {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if units := addrOwners[k]; len(units) > 1 {
			_, addr, _ := strings.Cut(k, " ")
			for _, u := range units {
				out = append(out, Warning{Unit: u, Code: "duplicate-address",
					Message: fmt.Sprintf("%s is in %d socket units: %s", addr, len(units), strings.Join(units, ", "))})
			}
		}
	}
	for _, su := range snap.Sockets {
		if su.FlushPending {
			out = append(out, Warning{Unit: su.Unit, Code: "flush-pending",
				Message: "FlushPending=yes: connections queued while the service is down are dropped when it exits"})
		}
		svc := svcs[su.Service]
		for _, l := range su.Listeners {
			var others []Holder
			for _, h := range l.Holders {
				if !h.Manager {
					others = append(others, h)
				}
			}
			for _, h := range others {
				if h.Outside {
					out = append(out, Warning{Unit: su.Unit, Code: "leaked-listener",
						Message: fmt.Sprintf("listener %s is held by pid %d (%s, %s) outside %s", l.Address, h.PID, h.Comm, orNone(h.Unit), orNone(su.Service))})
				}
			}
			if svc == nil || su.Accept || l.Inode == 0 {
				continue
			}
			if len(others) == 0 && svc.ActiveState == "active" && svc.MainPID != 0 {
				out = append(out, Warning{Unit: su.Unit, Code: "orphan-listener",
					Message: fmt.Sprintf("listener %s is held only by the manager while %s is active: the service does not serve it", l.Address, svc.Unit)})
			}
			if svc.MainPID == 0 && svc.ActiveState != "active" {
				for _, h := range others {
					// Another service the socket passes it to (Sockets=)
					// holds it by right.
					if !h.Outside && h.Unit == svc.Unit {
						out = append(out, Warning{Unit: su.Unit, Code: "leaked-listener",
							Message: fmt.Sprintf("listener %s is still held by pid %d (%s) although %s has no main process", l.Address, h.PID, h.Comm, svc.Unit)})
					}
				}
			}
		}
	}
	for _, svc := range snap.Services {
		if svc.FDStoreMax > 0 && svc.FDStoreCount >= svc.FDStoreMax {
			out = append(out, Warning{Unit: svc.Unit, Code: "fdstore-over-max",
				Message: fmt.Sprintf("fd store full (%d of FileDescriptorStoreMax=%d): further FDSTORE=1 messages are refused", svc.FDStoreCount, svc.FDStoreMax)})
		}
		pinned := 0
		for _, e := range svc.FDStore {
			if e.ManagerOnly {
				pinned++
			}
		}
		if pinned > 0 && svc.MainPID != 0 {
			out = append(out, Warning{Unit: svc.Unit, Code: "fdstore-pinned",
				Message: fmt.Sprintf("%d fd store entries are held only by the manager while the service runs: connections pinned open by the store", pinned)})
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "no unit"
	}
	return s
}
