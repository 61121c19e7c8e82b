package inspect

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/procfs"
)

// Finding is one thing fdtop doctor found that keeps socket activation or a
// handoff from working. Its JSON field names are part of fdtop's promise
// (docs/json.md, "doctor --json").
type Finding struct {
	// Unit is the unit it is about.
	Unit string `json:"unit"`
	// Code is a stable identifier (see docs/usage.md, "The doctor", for the list).
	Code string `json:"code"`
	// Problem says what is wrong, in words.
	Problem string `json:"problem"`
	// Evidence are the values, PIDs and log lines it was concluded from.
	Evidence []string `json:"evidence"`
	// Fix is the command (or change) that fixes it.
	Fix string `json:"fix"`
}

// LogLine is one line of a unit's log, for the doctor's evidence.
type LogLine struct {
	// Source is where it was read: "journal", "manager log", or a file.
	Source string `json:"source"`
	// Text is the message.
	Text string `json:"text"`
}

// DoctorInput is what Diagnose looks at: a snapshot plus what the doctor
// read besides. Missing map entries mean "not read" and are never taken
// for "absent".
type DoctorInput struct {
	// Snapshot is a full snapshot of the units in question.
	Snapshot *Snapshot
	// Facts are the units' results, exit statuses and queued jobs; failed
	// units outside the snapshot are among them.
	Facts map[string]dbusclient.UnitFacts
	// Templates says, per template service of an Accept=yes socket, whether
	// its unit file exists.
	Templates map[string]bool
	// Logs are each unit's last log lines; a unit whose log could not be
	// read has no entry.
	Logs map[string][]LogLine
	// LogErrors say, per unit, why its log could not be read (journalctl
	// refused: a user who may not read the system journal).
	LogErrors map[string]string
	// AddressHolders are, per failed socket unit, the processes other than
	// the manager that hold a listener on one of its addresses.
	AddressHolders map[string][]AddressHolder
}

// Unchecked says what the doctor could not look at, so that no finding is
// never taken for a clean bill: the patterns that matched no unit, the
// services whose processes were not readable (what they were passed and
// hold), the holders outside the units while the picture is still
// filling (HostInfo.Filling), and the units whose logs were not (what the
// manager refused them). Sorted; empty when it saw
// everything it checks.
func Unchecked(in DoctorInput) []string {
	var out []string
	if in.Snapshot != nil && len(in.Snapshot.Unmatched) > 0 {
		// The doctor reads inactive units too: the hint about --all is
		// not for it.
		out = append(out, strings.TrimSuffix(NoMatchNote(in.Snapshot.Unmatched), "; inactive units need --all"))
	}
	if in.Snapshot != nil && in.Snapshot.Host.Filling {
		out = append(out, FillingNote)
	}
	if in.Snapshot != nil {
		var blind []string
		for _, svc := range in.Snapshot.Services {
			if svc.PassedUnknown || svc.ConnectionsUnknown {
				blind = append(blind, svc.Unit)
			}
		}
		if len(blind) > 0 {
			const most = 5
			list := strings.Join(blind[:min(len(blind), most)], ", ")
			if len(blind) > most {
				list += fmt.Sprintf(" and %d more", len(blind)-most)
			}
			out = append(out, fmt.Sprintf("the descriptors of %s: processes not readable (run as root)", list))
		}
		if in.Snapshot.Host.HoldersSource == procfs.HoldersBPF {
			var stores []string
			for _, svc := range in.Snapshot.Services {
				if slices.ContainsFunc(svc.FDStore, func(e StoreEntry) bool { return !socketKind(e.Kind) }) {
					stores = append(stores, svc.Unit)
				}
			}
			if len(stores) > 0 {
				out = append(out, fmt.Sprintf("who outside the units holds the pipes, memfds and files in the fd store of %s: the BPF holder pass lists sockets only", strings.Join(stores, ", ")))
			}
		}
	}
	for _, unit := range slices.Sorted(maps.Keys(in.LogErrors)) {
		out = append(out, fmt.Sprintf("the log of %s: %s", unit, in.LogErrors[unit]))
	}
	return out
}

// socketKind reports whether a store entry's kind is a socket's.
func socketKind(kind string) bool {
	if kind == "socket" {
		return true
	}
	for k := procfs.KindOther; k <= procfs.KindDeleted; k++ {
		if kind == k.String() {
			return false
		}
	}
	return kind != ""
}

// AddressHolder is a process holding a listening socket on an address a
// socket unit wants.
type AddressHolder struct {
	// Address is the socket unit's Listen= address it conflicts with.
	Address string
	// Local is the held socket's own address.
	Local string
	Holder
	// Cmdline is the holder's command line.
	Cmdline string
}

// NothingMatched reports that the doctor was given unit patterns and none
// of them matched a unit: it checked nothing (fdtop doctor exits 4).
func NothingMatched(in DoctorInput) bool {
	s := in.Snapshot
	return s != nil && len(s.Unmatched) > 0 && len(s.Sockets) == 0 && len(s.Services) == 0
}

// Diagnose returns the findings, sorted by unit then code. It does no I/O.
func Diagnose(in DoctorInput) []Finding {
	d := diagnosis{in: in, out: []Finding{}}
	if in.Snapshot != nil {
		d.systemctl = "systemctl"
		if in.Snapshot.Manager.Scope == "user" {
			d.systemctl = "systemctl --user"
		}
	} else {
		d.systemctl = "systemctl"
		in.Snapshot = &Snapshot{}
		d.in.Snapshot = in.Snapshot
	}
	d.units()
	d.unheldListeners()
	d.warnings()
	if in.Snapshot.Host.Filling {
		// Not checked yet (Unchecked says so): the processes outside the
		// units were not read.
		d.out = slices.DeleteFunc(d.out, func(f Finding) bool { return hostWideFindings[f.Code] })
	}
	sort.SliceStable(d.out, func(i, j int) bool {
		if d.out[i].Unit != d.out[j].Unit {
			return d.out[i].Unit < d.out[j].Unit
		}
		return d.out[i].Code < d.out[j].Code
	})
	return d.out
}

type diagnosis struct {
	in        DoctorInput
	systemctl string
	out       []Finding
}

func (d *diagnosis) add(f Finding) {
	if f.Evidence == nil {
		f.Evidence = []string{}
	}
	d.out = append(d.out, f)
}

// logMatching returns the unit's log lines containing any of subs, or its
// last n lines when subs is empty.
func (d *diagnosis) logMatching(unit string, n int, subs ...string) []string {
	lines, ok := d.in.Logs[unit]
	if !ok {
		if len(subs) == 0 {
			if why, ok := d.in.LogErrors[unit]; ok {
				return []string{"log: unknown (" + why + ")"}
			}
			return []string{"log: unknown (no journal and no log file found for " + unit + ")"}
		}
		return nil
	}
	var out []string
	for _, l := range lines {
		if len(subs) == 0 || containsAny(l.Text, subs) {
			out = append(out, "log ("+l.Source+"): "+l.Text)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func (d *diagnosis) restartCmd(unit string) string {
	return fmt.Sprintf("%s reset-failed %s && %s start %s", d.systemctl, unit, d.systemctl, unit)
}

// units looks at each unit's state, result and log.
func (d *diagnosis) units() {
	names := make([]string, 0, len(d.in.Facts))
	for n := range d.in.Facts {
		names = append(names, n)
	}
	sort.Strings(names)
	sockets := map[string]*SocketUnit{}
	for i := range d.in.Snapshot.Sockets {
		sockets[d.in.Snapshot.Sockets[i].Unit] = &d.in.Snapshot.Sockets[i]
	}
	services := map[string]*Service{}
	for i := range d.in.Snapshot.Services {
		services[d.in.Snapshot.Services[i].Unit] = &d.in.Snapshot.Services[i]
	}
	for _, n := range names {
		f := d.in.Facts[n]
		switch {
		case strings.HasSuffix(n, ".socket"):
			d.socket(f, sockets[n])
		case strings.HasSuffix(n, ".service"):
			d.service(f, services[n])
		}
	}
}

func (d *diagnosis) socket(f dbusclient.UnitFacts, su *SocketUnit) {
	n := f.Name
	state := fmt.Sprintf("ActiveState=%s SubState=%s Result=%s", f.ActiveState, f.SubState, f.Result)
	template := ""
	if su != nil && su.Accept {
		template = su.Service
	}
	if template != "" {
		if exists, known := d.in.Templates[template]; known && !exists {
			ev := []string{fmt.Sprintf("Accept=yes: each connection starts an instance of %s; no unit file by that name", template)}
			if f.ActiveState == "failed" {
				ev = append(ev, state)
			}
			ev = append(ev, d.logMatching(n, 3, "Failed to queue service startup job", "template")...)
			d.add(Finding{Unit: n, Code: "accept-no-template",
				Problem:  fmt.Sprintf("Accept=yes socket without its template service %s: every connection is reset", template),
				Evidence: ev,
				Fix:      fmt.Sprintf("create %s (%s edit --force --full %s), then %s", template, d.systemctl, template, d.restartCmd(n))})
			return
		}
	}
	if f.ActiveState != "failed" {
		return
	}
	switch f.Result {
	case "trigger-limit-hit":
		ev := []string{state}
		if su != nil {
			ev = append(ev, fmt.Sprintf("NAccepted=%d NRefused=%d", su.NAccepted, su.NRefused))
		}
		ev = append(ev, d.logMatching(n, 3, "Trigger limit hit")...)
		d.add(Finding{Unit: n, Code: "trigger-limit-hit",
			Problem:  "socket stopped after triggering its service too often (TriggerLimitBurst=/TriggerLimitIntervalSec=): the service did not take the connections",
			Evidence: ev,
			Fix:      d.restartCmd(n)})
		return
	case "service-start-limit-hit":
		d.add(Finding{Unit: n, Code: "service-start-limit-hit",
			Problem:  "socket stopped because its service hit its start limit",
			Evidence: append([]string{state}, d.logMatching(n, 3)...),
			Fix:      d.restartCmd(n) + " (after fixing the service)"})
		return
	}
	holders := d.in.AddressHolders[n]
	inUse := d.logMatching(n, 3, "Address already in use")
	if len(holders) > 0 || len(inUse) > 0 {
		var ev []string
		ev = append(ev, state)
		for _, h := range holders {
			who := fmt.Sprintf("%s is held by pid %d (%s", h.Address, h.PID, h.Comm)
			if h.Unit != "" {
				who += ", " + h.Unit
			}
			who += ") fd " + fmt.Sprint(h.FD) + " listening on " + h.Local
			if h.Cmdline != "" {
				who += ": " + h.Cmdline
			}
			ev = append(ev, who)
		}
		if len(holders) == 0 {
			ev = append(ev, "the process holding the address: unknown (not found in /proc)")
		}
		ev = append(ev, inUse...)
		fix := "free the address or change Listen*=, then " + d.restartCmd(n)
		if len(holders) > 0 {
			fix = fmt.Sprintf("stop pid %d (%s) or change Listen*=, then %s", holders[0].PID, holders[0].Comm, d.restartCmd(n))
		}
		d.add(Finding{Unit: n, Code: "address-in-use",
			Problem:  "socket failed to bind: another process holds the address",
			Evidence: ev, Fix: fix})
		return
	}
	d.add(Finding{Unit: n, Code: "socket-failed",
		Problem:  "socket unit failed (Result=" + f.Result + ")",
		Evidence: append([]string{state}, d.logMatching(n, 5)...),
		Fix:      d.restartCmd(n) + " (after fixing what the log says)"})
}

// exitStatus describes how a main process ended, from ExecMainCode and
// ExecMainStatus (CLD_EXITED 1, CLD_KILLED 2, CLD_DUMPED 3).
func exitStatus(code, status int32) string {
	switch code {
	case 1:
		return fmt.Sprintf("main process exited with status %d", status)
	case 2:
		return fmt.Sprintf("main process killed by signal %d", status)
	case 3:
		return fmt.Sprintf("main process dumped core (signal %d)", status)
	}
	return "main process: no exit status recorded"
}

func (d *diagnosis) service(f dbusclient.UnitFacts, svc *Service) {
	n := f.Name
	state := fmt.Sprintf("ActiveState=%s SubState=%s Result=%s", f.ActiveState, f.SubState, f.Result)
	if lines := d.logMatching(n, 3, "FileDescriptorStoreMax=0"); len(lines) > 0 {
		d.add(Finding{Unit: n, Code: "fdstore-disabled",
			Problem:  "the service sends FDSTORE=1 but FileDescriptorStoreMax=0: the manager closes what it sends, nothing survives a restart",
			Evidence: append([]string{"FileDescriptorStoreMax=0"}, lines...),
			Fix:      fmt.Sprintf("set FileDescriptorStoreMax= (e.g. 1024) in [Service] (%s edit %s), then %s restart %s", d.systemctl, n, d.systemctl, n)})
	}
	notify := d.logMatching(n, 3, "reception only permitted for main PID", "reception is disabled", "but reception only permitted")
	if len(notify) > 0 || (f.NotifyAccess == "none" && svc != nil && svc.FDStoreMax > 0) {
		ev := []string{"NotifyAccess=" + f.NotifyAccess}
		if svc != nil {
			ev = append(ev, fmt.Sprintf("FileDescriptorStoreMax=%d", svc.FDStoreMax))
		}
		d.add(Finding{Unit: n, Code: "notify-access",
			Problem:  "NotifyAccess= keeps the manager from taking the service's notifications (FDSTORE=1 among them)",
			Evidence: append(ev, notify...),
			Fix:      fmt.Sprintf("set NotifyAccess=main (or all, if another process sends them) in [Service] (%s edit %s), then %s restart %s", d.systemctl, n, d.systemctl, n)})
	}
	if svc != nil && f.JobType == "stop" && svc.FDStoreCount > 0 && svc.FDStorePreserve != "yes" {
		d.add(Finding{Unit: n, Code: "stop-discards-store",
			Problem:  fmt.Sprintf("a stop job is queued: it will discard the fd store (%d fds)", svc.FDStoreCount),
			Evidence: []string{fmt.Sprintf("job %s queued", f.JobType), fmt.Sprintf("NFileDescriptorStore=%d FileDescriptorStorePreserve=%s", svc.FDStoreCount, orUnknown(svc.FDStorePreserve))},
			Fix:      fmt.Sprintf("%s restart %s keeps the store; or set FileDescriptorStorePreserve=yes (systemd 254+)", d.systemctl, n)})
	}
	if f.ActiveState != "failed" {
		return
	}
	ev := []string{state, exitStatus(f.ExecMainCode, f.ExecMainStatus)}
	ev = append(ev, d.logMatching(n, 5)...)
	if f.Result == "start-limit-hit" {
		d.add(Finding{Unit: n, Code: "start-limit-hit",
			Problem:  "service started too often (StartLimitBurst=/StartLimitIntervalSec=): the manager refuses to start it",
			Evidence: ev,
			Fix:      d.restartCmd(n) + " (after fixing why it kept stopping)"})
		return
	}
	d.add(Finding{Unit: n, Code: "service-failed",
		Problem:  "service failed (Result=" + f.Result + ")",
		Evidence: ev,
		Fix:      fmt.Sprintf("fix what the log says, then %s restart %s", d.systemctl, n)})
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown (before systemd 254)"
	}
	return s
}

// warnings turns the snapshot's warnings (and passed descriptors that were
// closed) into findings with a fix.
func (d *diagnosis) warnings() {
	snap := d.in.Snapshot
	svcOf := map[string]string{}
	for _, su := range snap.Sockets {
		svcOf[su.Unit] = su.Service
	}
	for _, w := range snap.Warnings {
		f := Finding{Unit: w.Unit, Code: w.Code, Problem: w.Message, Evidence: []string{}}
		switch w.Code {
		case "orphan-listener":
			f.Code = "listener-not-held"
			f.Problem = "the service was passed this socket's listener but does not hold it: it closed or ignored it (a LISTEN_PID mismatch: a wrapper forked before the server; or a service not written for socket activation), connections queue unanswered"
			f.Evidence = []string{w.Message}
			f.Fix = fmt.Sprintf("make %s use sd_listen_fds() (LISTEN_FDS, fd 3 on) in its main process, or drop the socket unit; then %s restart %s", svcOf[w.Unit], d.systemctl, svcOf[w.Unit])
		case "leaked-listener":
			f.Evidence = []string{w.Message}
			f.Problem = "a process outside the service holds its listener: it may accept connections meant for the service"
			f.Fix = "find why that process inherited the descriptor (a fork without close-on-exec) and stop it"
		case "flush-pending":
			f.Evidence = []string{"FlushPending=yes"}
			f.Problem = w.Message
			f.Fix = fmt.Sprintf("set FlushPending=no in [Socket] (%s edit %s)", d.systemctl, w.Unit)
		case "fdstore-over-max":
			f.Code = "fdstore-full"
			f.Evidence = []string{w.Message}
			f.Problem = "fd store at its maximum: further FDSTORE=1 messages are refused, those connections will not survive a restart"
			f.Fix = fmt.Sprintf("raise FileDescriptorStoreMax= (%s edit %s), or have the service remove stale entries (FDSTOREREMOVE=1)", d.systemctl, w.Unit)
		case "fdstore-pinned":
			f.Evidence = []string{w.Message}
			f.Problem = "connections pinned by the fd store: the service no longer serves them, the manager keeps them open"
			f.Fix = "have the service take its stored fds back at start (LISTEN_FDNAMES) or remove them (FDSTOREREMOVE=1)"
		case "duplicate-address":
			f.Evidence = []string{w.Message}
			f.Fix = "give each socket unit its own address"
		default:
			f.Evidence = []string{w.Message}
		}
		d.add(f)
	}
	// A listener passed at start and closed since: one finding per
	// service, unless its socket already has one (listener-not-held).
	notHeld := map[string]bool{}
	for _, f := range d.out {
		if f.Code == "listener-not-held" {
			notHeld[svcOf[f.Unit]] = true
		}
	}
	listenerNames := map[string]map[string]bool{} // service -> fd names of its sockets
	heldInside := map[string]map[string]bool{}    // service -> fd names of its sockets a process of it holds
	for _, su := range snap.Sockets {
		if su.Accept {
			continue
		}
		name := su.FileDescriptorName
		if name == "" {
			name = su.Unit
		}
		if listenerNames[su.Service] == nil {
			listenerNames[su.Service] = map[string]bool{}
			heldInside[su.Service] = map[string]bool{}
		}
		listenerNames[su.Service][name] = true
		for _, l := range su.Listeners {
			for _, h := range l.Holders {
				// A worker the main process forked (a pre-forking
				// server) serves it although the main process closed
				// its copy.
				if !h.Manager && !h.Outside && h.Unit == su.Service {
					heldInside[su.Service][name] = true
				}
			}
		}
	}
	for _, svc := range snap.Services {
		if svc.MainPID == 0 || notHeld[svc.Unit] {
			continue
		}
		for _, p := range svc.Passed {
			// A stored connection passed back and closed since is normal.
			if p.Kind != "closed" || !listenerNames[svc.Unit][p.Name] || heldInside[svc.Unit][p.Name] {
				continue
			}
			d.add(Finding{Unit: svc.Unit, Code: "listener-not-held",
				Problem:  fmt.Sprintf("fd %d (%s) was passed at start and is closed now: the main process does not serve it (a LISTEN_PID mismatch, or not written for socket activation)", p.FD, p.Name),
				Evidence: []string{fmt.Sprintf("LISTEN_FDNAMES names fd %d %s; pid %d has no fd %d now", p.FD, p.Name, svc.MainPID, p.FD)},
				Fix:      fmt.Sprintf("use the passed descriptors (sd_listen_fds) in the main process instead of binding or closing them; then %s restart %s", d.systemctl, svc.Unit)})
			break
		}
	}
}

// FindAddressHolders returns the processes in scan, other than the managers,
// holding a socket that conflicts with a Listen= entry: a listening one on
// the same port on the same address or on a wildcard one, or a unix
// socket bound to the same path or abstract name (of any type: they share
// one namespace).
func FindAddressHolders(scan *procfs.Scan, managerPIDs []int, scope string, listen []dbusclient.Listener) []AddressHolder {
	if scan == nil {
		return nil
	}
	ix := newIndex(scan, managerPIDs)
	var out []AddressHolder
	add := func(l dbusclient.Listener, inode uint64, local string) {
		for _, h := range ix.holders(inode, scope, func(string) bool { return true }) {
			if h.Manager {
				continue
			}
			ah := AddressHolder{Address: l.Address, Local: local, Holder: h}
			if p := ix.byPID[h.PID]; p != nil {
				ah.Cmdline = strings.Join(p.Cmdline, " ")
			}
			out = append(out, ah)
		}
	}
	for _, l := range listen {
		if name, abstract, ok := l.UnixName(); ok {
			for inode, s := range scan.Sockets {
				if unixBinds(s, name, abstract) {
					add(l, inode, listenAddress(s))
				}
			}
			continue
		}
		net := l.Network()
		if net != "tcp" && net != "udp" {
			continue
		}
		want, err := listenAddrPort(l.Address)
		if err != nil {
			continue
		}
		for inode, s := range scan.Sockets {
			if s.Family != procfs.FamilyInet && s.Family != procfs.FamilyInet6 {
				continue
			}
			if net == "tcp" && (s.Proto != procfs.ProtoTCP || s.State != procfs.StateListen) {
				continue
			}
			if net == "udp" && (s.Proto != procfs.ProtoUDP || s.Remote.Port() != 0) {
				continue
			}
			if !conflicts(want, s.Local) {
				continue
			}
			add(l, inode, addrString(s.Local))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].PID != out[j].PID {
			return out[i].PID < out[j].PID
		}
		return out[i].FD < out[j].FD
	})
	return out
}

// unixBinds reports whether unix socket s holds the name a bind to name
// (abstract: in the abstract namespace) would need: bound there and not a
// connection accepted from the listener there (which carries its path but
// holds no name).
func unixBinds(s procfs.Socket, name string, abstract bool) bool {
	if s.Family != procfs.FamilyUnix || s.Path == "" || s.Path != name || s.Abstract != abstract {
		return false
	}
	return s.Type == procfs.TypeDgram || s.State == procfs.StateListen || s.PeerInode == 0
}

// conflicts reports whether binding want fails because got is bound: same
// port and the same address, or either one the wildcard.
func conflicts(want, got netip.AddrPort) bool {
	if want.Port() != got.Port() {
		return false
	}
	w, g := want.Addr().Unmap(), got.Addr().Unmap()
	return w == g || w.IsUnspecified() || g.IsUnspecified()
}
