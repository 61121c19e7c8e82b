package inspect

import (
	"slices"
	"sort"
	"time"
)

// acceptTracked is what the tracker remembers of one Accept=yes socket
// unit between events. A restart of such a unit has no main process to
// follow: the manager closes its listener and binds it anew, and the
// per-connection instances it spawned run on (or are stopped with it,
// where their unit says so). Its state follows the manager's signals; the
// views give the listeners and the instances.
type acceptTracked struct {
	su          *SocketUnit // the latest view of it
	hist        []timedView // the last few views, oldest first
	activeState string      // as last signalled

	jobActive  bool
	jobID      uint32
	jobType    string
	jobStart   time.Time
	jobStopped bool        // the unit went down during the job (a restart's stop part)
	before     *SocketUnit // the unit as it was before the job (nil: it was not listening)
	awaitStart bool        // a stop finished: the next start completes a stop+start
	stopDone   bool        // this job is the start of a stop+start
}

// acceptSettle bounds how long a finished job of an Accept=yes socket unit
// waits for the jobs on its instances (a restart propagated to them) before
// it is concluded anyway.
const acceptSettle = 30 * time.Second

// acceptViewGuard: a view of an Accept=yes socket unit finished less than
// this before its job was signalled is taken for the unit before the job
// only when there is no older one (the job may have begun before it).
const acceptViewGuard = 10 * time.Millisecond

// timedView is a view of an Accept=yes socket unit and when it was taken.
type timedView struct {
	at time.Time
	su *SocketUnit
}

// acceptUnit returns the tracking of an Accept=yes socket unit, created on
// first use.
func (tr *Tracker) acceptUnit(name string) *acceptTracked {
	a := tr.acc[name]
	if a == nil {
		a = &acceptTracked{}
		tr.acc[name] = a
	}
	return a
}

// IsAccept reports whether name is an Accept=yes socket unit the tracker
// follows (its gap meter runs gentler: every connect spawns an instance).
func (tr *Tracker) IsAccept(name string) bool {
	return tr.acc[name] != nil
}

// acceptBusy lists the Accept=yes socket units in a handoff.
func (tr *Tracker) acceptBusy() []string {
	var out []string
	for name, a := range tr.acc {
		if a.jobActive || a.awaitStart {
			out = append(out, name)
		}
	}
	for _, p := range tr.accFinishing {
		if !slices.Contains(out, p.name) {
			out = append(out, p.name)
		}
	}
	return out
}

// acceptProbeTargets lists the loopback TCP addresses an Accept=yes socket
// unit listens on.
func (tr *Tracker) acceptProbeTargets(name string) []string {
	a := tr.acc[name]
	if a == nil || a.su == nil {
		return nil
	}
	return ProbeTargets(a.su.Listeners)
}

// acceptUnaccounted lists the connections of the instances a finishing
// Accept=yes socket unit had before its job that the view shows in no
// instance of it (see Unaccounted).
func (tr *Tracker) acceptUnaccounted(v *View) []uint64 {
	var out []uint64
	for _, p := range tr.accFinishing {
		a := tr.acc[p.name]
		if a == nil || a.before == nil {
			continue
		}
		after := map[uint64]bool{}
		for _, su := range v.Snapshot.Sockets {
			if su.Unit == p.name {
				for _, in := range su.Instances {
					if len(processHolders(in)) > 0 {
						after[in.Inode] = true
					}
				}
			}
		}
		for _, in := range a.before.Instances {
			if running(in.ActiveState) && in.Inode != 0 && !after[in.Inode] && !tr.isOwnInstance(in) {
				out = append(out, in.Inode)
			}
		}
	}
	return out
}

// isOwnInstance reports that an instance serves one of fdtop's own
// connections (the gap meter's).
func (tr *Tracker) isOwnInstance(in Instance) bool {
	return tr.isOwn(Connection{Remote: in.Remote})
}

// viewAccept takes the Accept=yes socket units of a fresh view, then
// concludes the finished jobs of those it was asked for.
func (tr *Tracker) viewAccept(at time.Time, v *View) {
	seen := map[string]bool{}
	for i := range v.Snapshot.Sockets {
		su := v.Snapshot.Sockets[i]
		if !su.Accept || (v.Units != nil && !slices.Contains(v.Units, su.Unit)) {
			continue
		}
		seen[su.Unit] = true
		a := tr.acceptUnit(su.Unit)
		a.su = &su
		a.hist = append(a.hist, timedView{at, &su})
		if len(a.hist) > 4 {
			a.hist = a.hist[1:]
		}
	}
	if len(tr.accFinishing) == 0 {
		return
	}
	rest := tr.accFinishing[:0:0]
	for _, p := range tr.accFinishing {
		a := tr.acc[p.name]
		if a == nil {
			continue
		}
		if v.Units != nil && !slices.Contains(v.Units, p.name) {
			rest = append(rest, p)
			continue
		}
		if a.before != nil && at.Sub(p.at) < acceptSettle && tr.instanceJobs(a.before) {
			// A job on an instance that ran before (the restart
			// propagated to it, by BindsTo= or PartOf=) is still under
			// way: what became of it is seen once it ends.
			rest = append(rest, p)
			continue
		}
		if !seen[p.name] || a.su.ActiveState != "active" {
			// Not listening after its job (a stop, or a start that failed;
			// an inactive unit is in no view): a start to come completes
			// it as a stop and start.
			if a.before != nil && !a.stopDone {
				a.awaitStart = true
			} else {
				a.before, a.stopDone = nil, false
			}
			continue
		}
		tr.concludeAccept(p.name, a, p.result, at, v.Alive, v.AliveUnknown)
	}
	tr.accFinishing = rest
}

// acceptJobNew starts following a job on an Accept=yes socket unit.
func (tr *Tracker) acceptJobNew(now time.Time, e *Signal) {
	tr.jobUnits[e.ID] = e.Unit
	a := tr.acc[e.Unit]
	if a == nil || a.jobActive {
		return
	}
	for _, p := range tr.accFinishing {
		if p.name == e.Unit {
			// The job before ended without a fresh view since: concluded
			// on the latest one, so the new job does not inherit it.
			tr.concludeAcceptNow(e.Unit, now)
			break
		}
	}
	a.jobActive, a.jobID, a.jobType, a.jobStart, a.jobStopped = true, e.ID, e.JobType, now, false
	if a.awaitStart {
		// The start of a stop+start: "before" is the view from before
		// the stop.
		a.awaitStart, a.stopDone = false, true
		return
	}
	a.stopDone = false
	a.before = nil
	// The latest view taken before the job: one still being taken when
	// its start was signalled may show the unit already restarted, its
	// instances in between, and so may one finished just before (the
	// signal comes once the manager has run the job a while): such a one
	// only when there is no older.
	var pick *timedView
	for i := len(a.hist) - 1; i >= 0; i-- {
		v := &a.hist[i]
		if v.at.After(now) {
			continue
		}
		if pick == nil || v.at.Before(now.Add(-acceptViewGuard)) {
			pick = v
		}
		if v.at.Before(now.Add(-acceptViewGuard)) {
			break
		}
	}
	if pick != nil && pick.su.ActiveState == "active" {
		b := *pick.su
		a.before = &b
	}
}

// acceptJobRemoved ends a job on an Accept=yes socket unit; it returns the
// job's type as it is best named (a job that took the unit down and up
// again was a restart, whatever systemd turned it into).
func (tr *Tracker) acceptJobRemoved(at time.Time, e *Signal, job string) string {
	delete(tr.jobUnits, e.ID)
	a := tr.acc[e.Unit]
	if a == nil || !a.jobActive || a.jobID != e.ID {
		return job
	}
	down := a.activeState == "inactive" || a.activeState == "failed"
	if (job == "" || job == "start") && a.jobStopped && !down && a.before != nil && !a.awaitStart && !a.stopDone {
		job = "restart"
	}
	a.jobType = job
	a.jobActive = false
	if (job == "stop" || (job == "" && down)) && e.Result == "done" && a.before != nil && !a.stopDone {
		// A stop (its type unread, the unit down: the manager signals a
		// unit's state before the end of its job): the handoff completes
		// at the start, whatever a view taken now shows (the start may
		// already be under way).
		a.awaitStart = true
		return job
	}
	tr.accFinishing = append(tr.accFinishing, pendingFinish{name: e.Unit, result: e.Result, at: at})
	return job
}

// acceptChanged follows the state and job of an Accept=yes socket unit.
func (tr *Tracker) acceptChanged(at time.Time, unit, activeState string, jobID *uint32) {
	a := tr.acc[unit]
	if a == nil {
		return
	}
	if activeState != "" {
		a.activeState = activeState
	}
	if !a.jobActive {
		return
	}
	if activeState == "deactivating" || activeState == "inactive" || activeState == "failed" {
		a.jobStopped = true
	}
	if jobID != nil && *jobID != a.jobID {
		// Another job, or none, and the end of the one followed never
		// came (lost while the manager re-executed): it ended meanwhile,
		// with an unknown result.
		a.jobActive = false
		tr.accFinishing = append(tr.accFinishing, pendingFinish{name: unit, at: at})
	}
}

// instanceJobs reports that a job runs on one of the instances of su.
func (tr *Tracker) instanceJobs(su *SocketUnit) bool {
	for _, unit := range tr.jobUnits {
		if slices.ContainsFunc(su.Instances, func(in Instance) bool { return in.Unit == unit }) {
			return true
		}
	}
	return false
}

// acceptLost forgets the jobs in progress: their ends may never come (the
// connection to the manager was lost, or signals were).
func (tr *Tracker) acceptLost() {
	clear(tr.jobUnits)
}

// acceptRemoved forgets a finished job of an Accept=yes socket unit that
// was unloaded: no view will show it again. (A stop waiting for its start
// stays: an inactive socket unit is unloaded, and loaded again to start.)
func (tr *Tracker) acceptRemoved(unit string) {
	tr.accFinishing = slices.DeleteFunc(tr.accFinishing, func(p pendingFinish) bool { return p.name == unit })
}

// concludeAcceptNow concludes a finished job of an Accept=yes socket unit
// on the latest view there is.
func (tr *Tracker) concludeAcceptNow(name string, at time.Time) {
	rest := tr.accFinishing[:0:0]
	for _, p := range tr.accFinishing {
		if p.name != name {
			rest = append(rest, p)
			continue
		}
		if a := tr.acc[name]; a != nil && a.su != nil && a.su.ActiveState == "active" {
			// No fresh view: a connection not seen there is unknown.
			tr.concludeAccept(name, a, p.result, at, nil, true)
		}
	}
	tr.accFinishing = rest
}

// concludeAccept compares an Accept=yes socket unit before its job with
// now (a.su) and emits what became of its listeners and of its running
// instances' connections, then the handoff summary. alive says which of
// the connections seen in no instance still exist (aliveUnknown: the
// kernel could not be asked, so those are unknown).
func (tr *Tracker) concludeAccept(name string, a *acceptTracked, result string, at time.Time, alive map[uint64]bool, aliveUnknown bool) {
	b, now := a.before, a.su
	stopDone := a.stopDone
	a.before, a.stopDone = nil, false
	if b == nil || now == nil {
		return // it was not listening before: a start, no handoff
	}
	h := Handoff{HandoffJob: "restart", Accept: &AcceptHandoff{}}
	if stopDone {
		h.HandoffJob = "stop+start"
	}
	// Listeners: by address, kept if the inode is the same.
	beforeL := listenerInodes(nil, []SocketUnit{*b})
	afterL := listenerInodes(nil, []SocketUnit{*now})
	addrs := make([]string, 0, len(beforeL))
	for addr := range beforeL {
		addrs = append(addrs, addr)
	}
	sort.Strings(addrs)
	var listeners []Event
	for _, addr := range addrs {
		ino, after := beforeL[addr], afterL[addr]
		switch {
		case ino != 0 && after == ino:
			h.ListenersKept++
			listeners = append(listeners, Event{Time: at, Unit: name, Type: EventListenerKept, Inode: ino, Detail: addr})
		case ino == 0 || after == 0:
			h.ListenersUnknown++ // not seen on one side
		default:
			h.ListenersReplaced++
			listeners = append(listeners, Event{Time: at, Unit: name, Type: EventListenerReplaced, Inode: after, PrevInode: ino, Detail: addr})
		}
	}
	switch {
	case stopDone:
	case a.jobType == "restart" || a.jobType == "try-restart" || a.jobType == "reload-or-restart" || a.jobType == "reload-or-try-restart":
	case (a.jobType == "" || a.jobType == "start") && (h.ListenersReplaced > 0 || reactivated(b, now)):
		// A socket unit restarts within one turn of the manager's loop:
		// its job is often gone before its type is read, and no state
		// change comes between its stop and its start. A listener
		// closed and bound anew says it was a restart; so does the
		// manager's own time of the unit's activation moved on (what a
		// user who cannot read the manager's descriptors can see).
		a.jobType = "restart"
	default:
		// A start of a listening unit, a stop that did not stop it, or
		// nothing seen to tell a restart: no handoff.
		return
	}
	for _, e := range listeners {
		tr.emit(e)
	}
	// The instances that ran before, and their connections.
	afterUnit := map[string]Instance{}
	afterIno := map[uint64]Instance{}
	for _, in := range now.Instances {
		afterUnit[in.Unit] = in
		if in.Inode != 0 && len(processHolders(in)) > 0 {
			afterIno[in.Inode] = in
		}
	}
	reported := 0
	for _, bi := range b.Instances {
		if !running(bi.ActiveState) || tr.isOwnInstance(bi) {
			continue
		}
		h.Accept.Instances++
		ai, ok := afterUnit[bi.Unit]
		stillRunning := ok && running(ai.ActiveState)
		if !stillRunning {
			h.Accept.InstancesStopped++
		}
		prev := processHolders(bi)
		if bi.Inode == 0 || len(prev) == 0 {
			// Its connection was not seen before (its process not
			// readable): neither preserved nor dropped.
			h.Accept.InstancesUnknown++
			continue
		}
		ev := Event{Time: at, Unit: name, Type: EventConnectionPreserved, Inode: bi.Inode, Detail: bi.Remote, PrevPID: prev[0].PID, PrevFD: prev[0].FD}
		if held, ok := afterIno[bi.Inode]; ok {
			// Still held: by the same process where one is (the rule), by
			// another otherwise (it was passed on).
			cur := processHolders(held)
			hd, same := cur[0], false
			for _, p := range prev {
				if i := slices.IndexFunc(cur, func(x Holder) bool { return x.PID == p.PID }); i >= 0 {
					hd, ev.PrevPID, ev.PrevFD, same = cur[i], p.PID, p.FD, true
					break
				}
			}
			ev.PID, ev.FD, ev.Via = hd.PID, hd.FD, "process"
			h.ConnectionsPreserved++
			switch {
			case same:
				h.Accept.InstancesKept++
			case stillRunning:
				h.Accept.InstancesRestarted++
			}
		} else {
			switch {
			case alive[bi.Inode]:
				// Open, in no process seen: the manager keeps an
				// instance's connection and passes it to the instance's
				// next process, which may not have it yet (not exec'd).
				ev.Via = "open"
				h.ConnectionsPreserved++
				switch {
				case !stillRunning: // counted stopped
				case ai.MainPID != 0 && bi.MainPID != 0 && ai.MainPID != bi.MainPID:
					h.Accept.InstancesRestarted++
				default:
					// Running on, but whether in the same process was not
					// seen.
					h.Accept.InstancesUnknown++
				}
			case aliveUnknown || (stillRunning && ai.Inode == 0):
				// Seen nowhere, and whether it still exists was not
				// learned, or the instance's process was not readable
				// after: not said dropped.
				h.Accept.InstancesUnknown++
				continue
			default:
				ev.Type = EventConnectionDropped
				ev.PID, ev.FD, ev.PrevPID, ev.PrevFD = prev[0].PID, prev[0].FD, 0, 0
				h.ConnectionsDropped++
			}
		}
		if reported < 20 {
			reported++
			tr.emit(ev)
		}
	}
	h.ConnectionsUnknown = h.Accept.InstancesUnknown > 0
	// Refused connections counted by the manager.
	if now.NRefused >= b.NRefused {
		h.RefusedDelta = int(now.NRefused - b.NRefused)
	}
	h.DurationMs = max(at.Sub(a.jobStart), 0).Milliseconds()
	tr.emit(Event{Time: at, Unit: name, Type: EventHandoff, Job: a.jobType, Result: result, Handoff: &h})
}

// reactivated reports that the manager says the socket unit became
// active again between the two views (both read: 0 is unknown).
func reactivated(before, after *SocketUnit) bool {
	return before.ActiveEnterMonotonic != 0 && after.ActiveEnterMonotonic > before.ActiveEnterMonotonic
}

// running reports whether an instance's state is one of a process running.
func running(activeState string) bool {
	return activeState == "active" || activeState == "reloading"
}

// processHolders are the holders of an instance's connection other than
// the manager.
func processHolders(in Instance) []Holder {
	var out []Holder
	for _, h := range in.Holders {
		if !h.Manager {
			out = append(out, h)
		}
	}
	return out
}
