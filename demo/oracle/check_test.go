//go:build oracle

package oracle

import (
	"slices"
	"strings"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/inspect"
)

// check compares every claim the watch made since b was taken with the
// ground truth now (the operation done and settled).
func (r *run) check(m demo.Mode, b before, want int, kind string) {
	evs := r.eventsSince(b.events)
	svc := m.Service()
	pids, _ := r.mainPIDs()
	pidAfter := pids[m]
	socks, err := ssTCP(false, r.ports()...)
	if err != nil {
		r.t.Fatal(err)
	}
	lAfter := map[demo.Mode]uint64{}
	for _, mm := range demo.Modes {
		lAfter[mm] = listenerInode(socks, r.cfg.Ports[mm])
	}
	// One handoff per restart, none without one; a restart queued while
	// one runs may join it or run after it (one or two).
	queued := strings.Contains(r.log[len(r.log)-1], "queued")
	for _, mm := range demo.Modes {
		n := len(handoffsOf(evs, mm.Service()))
		w := 0
		if mm == m {
			w = want
		}
		r.judge("handoff.count", n == w || queued && mm == m && n == 2, "%d handoff events of %s, want %d", n, mm.Service(), w)
	}
	// The handoffs chain the main PIDs from before to after.
	hs := handoffsOf(evs, svc)
	for i, e := range hs {
		old, next := b.pid[m], pidAfter
		if i > 0 {
			old = hs[i-1].Handoff.OldPID
			if hs[i-1].Handoff.NewPID != 0 {
				old = hs[i-1].Handoff.NewPID
			}
		}
		if i < len(hs)-1 {
			next = hs[i+1].Handoff.OldPID
		}
		r.checkHandoff(m, b, e, old, next, lAfter[m], kind, len(hs) > 1)
	}
	if len(hs) > 1 {
		dropped := 0
		for _, e := range hs {
			dropped += e.Handoff.ConnectionsDropped
		}
		drops := int(r.gens[m].Stats().Dropped - b.stats[m].Dropped)
		r.judge("handoff.connections_dropped", dropped <= drops, "%d dropped in %d handoffs, the clients saw %d dropped", dropped, len(hs), drops)
	}
	logOps := r.storeLogs()
	for _, e := range evs {
		em, ok := modeOf(e.Unit)
		if !ok {
			continue
		}
		switch e.Type {
		case inspect.EventFDStored:
			r.storedClaims[e.Inode]++
			stores := 0
			name := ""
			for _, op := range logOps {
				if op.op == "store" && op.inode == e.Inode {
					stores++
					name = op.name
				}
			}
			r.judge("fd_stored.inode", stores >= r.storedClaims[e.Inode], "fd_stored %s inode %d: claimed stored %d times, the servers stored it %d times", e.Name, e.Inode, r.storedClaims[e.Inode], stores)
			if e.Inferred || e.Name == "stored" {
				r.tally.add("fd_stored.name", claimUnknown)
			} else if stores > 0 {
				r.judge("fd_stored.name", e.Name == name, "fd_stored inode %d named %q, the server named it %q", e.Inode, e.Name, name)
			}
		case inspect.EventFDRemoved:
			r.removedClaims[e.Inode]++
			stores := 0
			for _, op := range logOps {
				if op.op == "store" && op.inode == e.Inode {
					stores++
				}
			}
			// An entry leaves the store once per time it went in (the
			// first view's entries count as stored once).
			r.judge("fd_removed.inode", r.removedClaims[e.Inode] <= stores+r.initialStore[e.Inode], "fd_removed %s inode %d: claimed removed %d times, stored %d times", e.Name, e.Inode, r.removedClaims[e.Inode], stores)
		case inspect.EventFDPassed:
			names, ok := listenFDNames(e.PID)
			if !ok || e.FD-3 < 0 || e.FD-3 >= len(names) {
				r.tally.add("fd_passed.name", claimUnknown) // the process is gone
			} else {
				r.judge("fd_passed.name", names[e.FD-3] == e.Name, "pid %d fd %d passed as %q, LISTEN_FDNAMES says %q", e.PID, e.FD, e.Name, names[e.FD-3])
			}
			switch {
			case e.Name == em.Socket():
				r.judge("fd_passed.inode", e.Inode == lAfter[em] || e.Inode == b.listener[em], "pid %d fd %d (the listener) inode %d, ss says %d", e.PID, e.FD, e.Inode, lAfter[em])
			case e.Inode == 0:
				r.tally.add("fd_passed.inode", claimUnknown)
			default:
				got := uint64(0)
				for _, op := range logOps {
					if op.op == "got" && op.pid == e.PID && op.name == e.Name {
						got = op.inode
					}
				}
				if got == 0 {
					r.tally.add("fd_passed.inode", claimUnknown)
				} else {
					r.judge("fd_passed.inode", got == e.Inode, "pid %d fd %d %s inode %d, the server got inode %d", e.PID, e.FD, e.Name, e.Inode, got)
				}
			}
		case inspect.EventListenerKept:
			r.judge("listener_kept", e.Inode == b.listener[em] && e.Inode == lAfter[em], "listener %d kept, ss says %d before and %d after", e.Inode, b.listener[em], lAfter[em])
		case inspect.EventListenerReplaced:
			ok := e.PrevInode == b.listener[em] && e.Inode == lAfter[em] && e.Inode != e.PrevInode
			if !ok {
				// Two handoffs in one operation (a queued restart): the
				// replacements chain from before to after.
				var chain []uint64
				for _, f := range evs {
					if f.Type == inspect.EventListenerReplaced && f.Unit == e.Unit {
						if len(chain) == 0 {
							chain = append(chain, f.PrevInode)
						} else if chain[len(chain)-1] != f.PrevInode {
							break
						}
						chain = append(chain, f.Inode)
					}
				}
				ok = len(chain) > 2 && chain[0] == b.listener[em] && chain[len(chain)-1] == lAfter[em] && slices.Contains(chain, e.Inode) && slices.Contains(chain, e.PrevInode)
			}
			r.judge("listener_replaced", ok, "listener %d replaced by %d, ss says %d before and %d after", e.PrevInode, e.Inode, b.listener[em], lAfter[em])
		case inspect.EventConnectionPreserved:
			_, alive := socks[e.Inode]
			r.judge("connection_preserved", alive, "connection %d (%s) preserved, but it is gone (ss)", e.Inode, e.Detail)
		case inspect.EventConnectionDropped:
			_, alive := socks[e.Inode]
			r.judge("connection_dropped", !alive, "connection %d (%s) dropped, but it is open (ss)", e.Inode, e.Detail)
		}
	}
}

// checkHandoff compares a handoff's fields with the truth.
func (r *run) checkHandoff(m demo.Mode, b before, e inspect.Event, pidBefore, pidAfter int, lAfter uint64, kind string, several bool) {
	h := e.Handoff
	r.judge("handoff.old_pid", h.OldPID == pidBefore, "old_pid %d, the manager's MainPID was %d", h.OldPID, pidBefore)
	r.judge("handoff.new_pid", h.NewPID == pidAfter, "new_pid %d, the manager's MainPID is %d", h.NewPID, pidAfter)
	r.judge("handoff.handoff_job", h.HandoffJob == kind, "handoff_job %q, the operation was a %s", h.HandoffJob, kind)
	if kind == "restart" {
		r.judge("handoff.job", e.Job == "restart", "job %q for a restart", e.Job)
	}
	// Listeners.
	kept := b.listener[m] != 0 && b.listener[m] == lAfter
	switch {
	case h.ListenersUnknown > 0:
		r.tally.add("handoff.listeners", claimUnknown)
	case kept:
		r.judge("handoff.listeners", h.ListenersKept == 1 && h.ListenersReplaced == 0, "kept %d replaced %d, ss says the listener %d was kept", h.ListenersKept, h.ListenersReplaced, lAfter)
	default:
		r.judge("handoff.listeners", h.ListenersKept == 0 && h.ListenersReplaced == 1, "kept %d replaced %d, ss says %d then %d", h.ListenersKept, h.ListenersReplaced, b.listener[m], lAfter)
	}
	if several {
		// The clients' counts cover both: the sums are checked by the
		// caller.
		return
	}
	// Connections, against what the clients saw.
	st := r.gens[m].Stats()
	drops := int(st.Dropped - b.stats[m].Dropped)
	held := b.stats[m].Connected
	switch {
	case h.ConnectionsUnknown && h.ConnectionsDropped <= drops:
		r.tally.add("handoff.connections_dropped", claimUnknown)
	case h.ConnectionsDroppedAtLeast || h.ConnectionsUnknown:
		r.judge("handoff.connections_dropped", h.ConnectionsDropped <= drops, "at least %d dropped, the clients saw %d dropped", h.ConnectionsDropped, drops)
	default:
		r.judge("handoff.connections_dropped", h.ConnectionsDropped == drops, "%d dropped, the clients saw %d dropped", h.ConnectionsDropped, drops)
	}
	switch {
	case h.ConnectionsPreserved > held:
		r.falseClaim("handoff.connections_preserved", "%d preserved, the clients held %d", h.ConnectionsPreserved, held)
	case drops > 0:
		r.judge("handoff.connections_preserved", h.ConnectionsPreserved < held, "%d/%d preserved, the clients saw %d dropped", h.ConnectionsPreserved, held, drops)
	case h.ConnectionsUnknown:
		r.tally.add("handoff.connections_preserved", claimUnknown)
	default:
		r.judge("handoff.connections_preserved", h.ConnectionsPreserved == held, "%d preserved, the clients held %d and saw none dropped", h.ConnectionsPreserved, held)
	}
	if st.CounterResets != b.stats[m].CounterResets && h.ConnectionsPreserved > 0 && drops == 0 {
		r.falseClaim("handoff.connections_preserved", "%d preserved, but the clients saw their counters reset", h.ConnectionsPreserved)
	}
	// What the new process was passed from the store.
	names, ok := listenFDNames(h.NewPID)
	carried := 0
	for _, n := range names {
		if n != m.Socket() {
			carried++
		}
	}
	switch {
	case h.FDsCarriedUnknown || !ok || h.NewPID != pidAfter:
		r.tally.add("handoff.fds_carried", claimUnknown)
	default:
		r.judge("handoff.fds_carried", h.FDsCarried == carried, "%d fds carried, LISTEN_FDNAMES of pid %d says %d (%s)", h.FDsCarried, h.NewPID, carried, strings.Join(names, ":"))
	}
	if h.StoreDiscarded {
		// Something must have been in the store as the old process ended,
		// and the new one got none of it.
		storedByOld := slices.ContainsFunc(r.storeLogs(), func(op storeOp) bool { return op.pid == h.OldPID && op.op == "store" })
		r.judge("handoff.store_discarded", ok && carried == 0 && (b.store[m] > 0 || storedByOld),
			"store discarded, but the store held %d before, the old process stored %v, the new one was passed %d", b.store[m], storedByOld, carried)
	} else {
		r.tally.add("handoff.store_discarded", claimTrue)
	}
	// Time without a main process, against the manager's timestamps.
	switch {
	case h.NoMainPIDUnknown:
		r.tally.add("handoff.no_main_pid_ms", claimUnknown)
	case strings.Contains(r.log[len(r.log)-1], "queued"):
		// Two processes may have come and gone: the manager's timestamps
		// tell only the last gap.
	default:
		st := r.service(m)
		start, exit := st.startMono, st.exitMono
		if exit == 0 || start < exit {
			break
		}
		gap := int64(start-exit) / 1000
		ok := h.NoMainPIDMs <= gap+50+gap/2 && h.NoMainPIDMs >= gap-50-gap/2 && (h.NoMainPIDMs > 0 || gap < 2)
		r.judge("handoff.no_main_pid_ms", ok, "%d ms without a main PID, the manager's timestamps say %d ms", h.NoMainPIDMs, gap)
	}
}

// checkSnapshot takes a snapshot as fdtop snapshot does and checks it
// against the manager and the kernel read around it.
// storeLogs are the store operations every demo server logged.
func (r *run) storeLogs() []storeOp {
	var out []storeOp
	for _, m := range demo.Modes {
		out = append(out, storeLog(r.cfg.LogPath(m))...)
	}
	return out
}

func (r *run) checkSnapshot() {
	pids, storeBefore := r.mainPIDs()
	// A host-wide scan (outside holders) one time in four: it is slow on
	// a busy host, and the units' own processes are what is checked.
	snap, err := r.b.Snapshot(r.ctx, inspect.SnapshotOptions{FullScan: r.rng.IntN(4) == 0})
	if err != nil {
		r.t.Fatal(err)
	}
	socks, err := ssTCP(false, r.ports()...)
	if err != nil {
		r.t.Fatal(err)
	}
	// The holders, among the sandbox's processes (ss -p reads every
	// process of the host: seconds on a busy one).
	holders := socketHolders(r.pids())
	for ino, s := range socks {
		s.holders = holders[ino]
		socks[ino] = s
	}
	pidsAfter, storeAfter := r.mainPIDs()
	mgr := processInodes(r.sb.PID)
	logOps := r.storeLogs()
	for _, su := range snap.Sockets {
		m, ok := modeOf(su.Unit)
		if !ok {
			continue
		}
		for _, l := range su.Listeners {
			want := listenerInode(socks, r.cfg.Ports[m])
			r.judge("snapshot.listener_inode", l.Inode == want, "%s listens on inode %d, ss says %d", su.Unit, l.Inode, want)
		}
	}
	for _, svc := range snap.Services {
		m, ok := modeOf(svc.Unit)
		if !ok {
			continue
		}
		if pid := pidsAfter[m]; pid == pids[m] {
			r.judge("snapshot.main_pid", svc.MainPID == pid, "%s main PID %d, the manager says %d", svc.Unit, svc.MainPID, pid)
		}
		for _, l := range svc.OwnListeners {
			want := listenerInode(socks, r.cfg.Ports[m])
			r.judge("snapshot.own_listener_inode", l.Inode == want, "%s own listener inode %d, ss says %d", svc.Unit, l.Inode, want)
		}
		claimed := map[uint64]bool{}
		for _, c := range svc.Connections {
			claimed[c.Inode] = true
			s, ok := socks[c.Inode]
			if !ok {
				r.tally.add("snapshot.connection", claimUnknown) // closed since
				continue
			}
			r.judge("snapshot.connection", slices.Contains(s.holders, [2]int{c.PID, c.FD}), "%s connection %d at pid %d fd %d, ss says %v", svc.Unit, c.Inode, c.PID, c.FD, s.holders)
		}
		// Every connection the main process holds is listed.
		for ino, s := range socks {
			if s.state != "ESTAB" || !strings.HasSuffix(s.local, ":"+itoa(r.cfg.Ports[m])) || claimed[ino] {
				continue
			}
			if slices.ContainsFunc(s.holders, func(h [2]int) bool { return h[0] == svc.MainPID }) {
				if svc.ConnectionsUnknown {
					r.tally.add("snapshot.connections_complete", claimUnknown)
				} else {
					r.falseClaim("snapshot.connections_complete", "%s: connection %d held by its main process %d not listed", svc.Unit, ino, svc.MainPID)
				}
			}
		}
		if storeBefore[m] == storeAfter[m] {
			r.judge("snapshot.fdstore_count", int(svc.FDStoreCount) == storeAfter[m], "fdstore_count %d, NFileDescriptorStore %d", svc.FDStoreCount, storeAfter[m])
		}
		for _, e := range svc.FDStore {
			if mgr != nil {
				r.judge("snapshot.fdstore_inode", mgr[e.Inode], "store entry %s inode %d: the manager holds no such inode", e.Name, e.Inode)
			}
			if e.Inferred || e.Name == "stored" {
				r.tally.add("snapshot.fdstore_name", claimUnknown)
				continue
			}
			name := ""
			for _, op := range logOps {
				if op.op == "store" && op.inode == e.Inode {
					name = op.name
				}
			}
			if name != "" {
				r.judge("snapshot.fdstore_name", e.Name == name, "store entry inode %d named %q, the server stored it as %q", e.Inode, e.Name, name)
			}
		}
	}
}
