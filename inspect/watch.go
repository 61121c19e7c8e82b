package inspect

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
)

// EventSource is a live subscription to the manager's signals;
// *dbusclient.Subscription has it.
type EventSource interface {
	// Events delivers the manager's signals; closed when the source stops.
	Events() <-chan dbusclient.Event
	// Watch polls the never-signalling counters of units.
	Watch(units []string, every time.Duration)
	// Close stops the subscription.
	Close()
}

// Snapshotter takes snapshots; *Builder is one.
type Snapshotter interface {
	Snapshot(ctx context.Context, opts SnapshotOptions) (*Snapshot, error)
}

// Watcher turns the manager's signals and successive snapshots into the
// timeline: job and state events, main PID changes, fds passed, stored and
// removed, and one handoff summary per restart.
type Watcher struct {
	// Snapshots takes the snapshots.
	Snapshots Snapshotter
	// Events is the subscription to the manager's signals.
	Events EventSource
	// Interval is the normal rescan of every unit (default 2 s). A full host
	// scan (holders outside the units) runs every FullEvery rescans.
	Interval time.Duration
	// FullEvery is how many rescans pass between full host scans
	// (default 10; 0 keeps the default, negative never).
	FullEvery int
	// FastInterval is the rescan of a unit while a job runs on it
	// (default 15 ms), so short-lived steps are seen.
	FastInterval time.Duration
	// Alive, if set, reports which of the given socket inodes still exist
	// in the kernel. A handoff's connections that no snapshot shows in the
	// new process or the manager are checked with it before they count as
	// dropped (a scan is not atomic across processes: a connection moving
	// from a process to the manager can slip between two reads).
	Alive func(ctx context.Context, inodes []uint64) map[uint64]bool
	// FDCount, if set, gives a process's open descriptor count cheaply
	// (procfs.FS.FDCount): a rescan with nothing signalled and no count
	// changed is skipped, so an idle watch costs next to nothing.
	FDCount func(pid int) (n int, ok bool, err error)
	// OnSnapshot, if set, is called with every full-picture snapshot.
	OnSnapshot func(*Snapshot)
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// tracked is what the watcher remembers of one service between events.
// Its state (active state, main PID, jobs) follows the manager's signals,
// which arrive in order; snapshots only add detail (listeners,
// connections, the store), so a late snapshot never rewinds the state.
type tracked struct {
	svc     *Service        // latest detailed view
	sockets []SocketUnit    // its socket units, latest view
	held    map[uint64]bool // what the manager held in that view

	activeState string
	mainPID     int
	noMainSince time.Time // when the main PID went to 0 (zero: it has one)

	// A job in progress, or a stop waiting for its start.
	jobActive    bool
	jobID        uint32
	jobStart     time.Time
	before       *Service     // the service as it was before the job
	beforeSocks  []SocketUnit // its sockets before the job
	beforePID    int
	storePeak    int
	noMainGap    time.Duration
	awaitStart   bool // a stop finished: the next start completes a stop+start
	stopDone     bool // this job is the start of a stop+start
	passedFor    int  // main PID whose passed fds were reported
	storeSeen    map[uint64]StoreEntry
	signalledPID bool // the main PID has come from a signal at least once
}

// watchState is the watcher's loop state, owned by Run's goroutine.
type watchState struct {
	w       *Watcher
	out     chan<- Event
	units   map[string]*tracked // by service name
	sockSvc map[string]string   // socket unit -> service
	last    *Snapshot

	finishing []pendingFinish      // jobs finished, summaries not yet made
	reloading bool                 // between Reloading(true) and Reloading(false)
	states    map[string][2]string // last active/sub state reported per unit

	dirty    bool        // a signal arrived since the last rescan
	fdCounts map[int]int // descriptor counts at the last rescan
	skipped  int         // rescans skipped in a row
}

func (w *Watcher) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

// Run watches until ctx ends or the event source closes, sending timeline
// events to out. It never closes out.
func (w *Watcher) Run(ctx context.Context, out chan<- Event) error {
	interval := w.Interval
	if interval <= 0 {
		interval = 2 * time.Second
	}
	fast := w.FastInterval
	if fast <= 0 {
		fast = 15 * time.Millisecond
	}
	fullEvery := w.FullEvery
	if fullEvery == 0 {
		fullEvery = 10
	}
	st := &watchState{w: w, out: out, units: map[string]*tracked{}, sockSvc: map[string]string{}, states: map[string][2]string{}}
	if err := st.refresh(ctx, nil, true); err != nil {
		return err
	}
	watched := st.watchList()
	w.Events.Watch(watched, interval)

	slow := time.NewTicker(interval)
	defer slow.Stop()
	fastT := time.NewTicker(fast)
	defer fastT.Stop()
	rescans := 0
	events := w.Events.Events()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			st.dirty = true
			st.handle(ctx, ev)
			if len(st.finishing) > 0 {
				st.drain(ctx, events)
				st.finish(ctx)
			}
		case <-slow.C:
			rescans++
			full := fullEvery > 0 && rescans%fullEvery == 0
			if !full && st.unchanged() {
				continue
			}
			if err := st.refresh(ctx, nil, full); err != nil {
				if ctx.Err() != nil {
					return nil // cut short by the end of the watch, not a disconnection
				}
				st.emit(Event{Type: EventDisconnected, Message: "rescan failed: " + err.Error()})
			}
			if list := st.watchList(); !slices.Equal(list, watched) {
				// Only on change: a new watch list reports every counter anew.
				watched = list
				w.Events.Watch(watched, interval)
			}
		case <-fastT.C:
			if hot := st.hotUnits(); len(hot) > 0 {
				_ = st.refresh(ctx, hot, false)
			}
		}
	}
}

// relevant reports whether a unit's loading and unloading belongs on the
// timeline: socket units and services.
func (st *watchState) relevant(unit string) bool {
	return strings.HasSuffix(unit, ".socket") || strings.HasSuffix(unit, ".service")
}

// knownUnits lists the socket units and services of the last snapshot.
func (st *watchState) knownUnits() map[string]bool {
	out := map[string]bool{}
	if st.last == nil {
		return out
	}
	for _, su := range st.last.Sockets {
		out[su.Unit] = true
	}
	for _, svc := range st.last.Services {
		out[svc.Unit] = true
	}
	return out
}

// pendingFinish is a finished job whose summary waits for the signals
// queued behind its JobRemoved.
type pendingFinish struct {
	name, result string
}

// drain handles the signals already waiting (without blocking), up to a
// bound so a flood cannot starve the summaries.
func (st *watchState) drain(ctx context.Context, events <-chan dbusclient.Event) {
	for i := 0; i < 256; i++ {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			switch ev.(type) {
			case dbusclient.JobNew, dbusclient.JobRemoved:
				// The next job must see this one summarised.
				st.finish(ctx)
			}
			st.handle(ctx, ev)
		default:
			return
		}
	}
}

// finish makes the summaries of the finished jobs, in order.
func (st *watchState) finish(ctx context.Context) {
	pending := st.finishing
	st.finishing = nil
	for _, p := range pending {
		t := st.units[p.name]
		if t == nil {
			continue
		}
		_ = st.refresh(ctx, []string{p.name}, false)
		st.finishJob(ctx, p.name, t, p.result, st.w.now())
	}
}

// countFDs reads the descriptor counts of the manager and every process
// of the snapshot's services (nil without Watcher.FDCount).
func (st *watchState) countFDs(snap *Snapshot) map[int]int {
	if st.w.FDCount == nil {
		return nil
	}
	pids := []int{snap.Manager.PID}
	for _, svc := range snap.Services {
		pids = append(pids, svc.MainPID)
		for _, p := range svc.Processes {
			pids = append(pids, p.PID)
		}
	}
	out := map[int]int{}
	for _, pid := range pids {
		if pid <= 0 {
			continue
		}
		n, ok, err := st.w.FDCount(pid)
		if err != nil || !ok {
			return nil // gone, or the kernel does not say: rescan
		}
		out[pid] = n
	}
	return out
}

// unchanged reports that a rescan can be skipped: no signal since the last
// one, no job running, and every watched process holds as many descriptors
// as then. Every tenth rescan runs anyway (queues and backlogs change
// without touching descriptor counts).
func (st *watchState) unchanged() bool {
	if st.dirty || st.fdCounts == nil || len(st.hotUnits()) > 0 || st.skipped >= 9 {
		return false
	}
	for pid, n := range st.fdCounts {
		m, ok, err := st.w.FDCount(pid)
		if err != nil || !ok || m != n {
			return false
		}
	}
	st.skipped++
	return true
}

func (st *watchState) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = st.w.now()
	}
	st.out <- e
}

// watchList names the units whose counters are polled: every service with
// an fd store and every socket unit.
func (st *watchState) watchList() []string {
	var out []string
	for name, t := range st.units {
		if t.svc != nil && t.svc.FDStoreMax > 0 {
			out = append(out, name)
		}
	}
	for s := range st.sockSvc {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// hotUnits lists the units with a job in progress or a main process
// missing: they are rescanned every FastInterval.
func (st *watchState) hotUnits() []string {
	var out []string
	for name, t := range st.units {
		if t.jobActive {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// unit returns the tracking of a service, created on first use.
func (st *watchState) unit(name string) *tracked {
	t := st.units[name]
	if t == nil {
		t = &tracked{storeSeen: map[uint64]StoreEntry{}}
		st.units[name] = t
	}
	return t
}

// serviceOf maps a unit name to the service it concerns.
func (st *watchState) serviceOf(unit string) string {
	if s, ok := st.sockSvc[unit]; ok {
		return s
	}
	return unit
}

// refresh takes a snapshot (of units, or of everything) and diffs it into
// the tracked state.
func (st *watchState) refresh(ctx context.Context, units []string, full bool) error {
	snap, err := st.w.Snapshots.Snapshot(ctx, SnapshotOptions{Units: units, FullScan: full})
	if err != nil {
		return err
	}
	if units == nil {
		st.last = snap
		st.dirty, st.skipped = false, 0
		st.fdCounts = st.countFDs(snap)
		if st.w.OnSnapshot != nil {
			st.w.OnSnapshot(snap)
		}
	}
	for _, su := range snap.Sockets {
		if su.Service != "" && !su.Accept {
			st.sockSvc[su.Unit] = su.Service
		}
	}
	for i := range snap.Services {
		svc := snap.Services[i]
		if units != nil && !slices.Contains(units, svc.Unit) {
			// Only what was asked for is read in detail.
			continue
		}
		t := st.unit(svc.Unit)
		var socks []SocketUnit
		for _, su := range snap.Sockets {
			if su.Service == svc.Unit {
				socks = append(socks, su)
			}
		}
		t.held = snap.ManagerInodes
		st.observe(svc.Unit, t, &svc, socks, snap.Time)
	}
	return nil
}

// observe diffs a new view of a service into its tracking and emits what
// changed: fds passed, fds stored and removed.
func (st *watchState) observe(name string, t *tracked, svc *Service, socks []SocketUnit, at time.Time) {
	first := t.svc == nil
	t.svc, t.sockets = svc, socks
	if first {
		t.activeState = svc.ActiveState
		t.mainPID = svc.MainPID
		t.passedFor = svc.MainPID
		for _, e := range svc.FDStore {
			t.storeSeen[storeKey(e)] = e
		}
		return
	}
	if !t.signalledPID && !t.jobActive && svc.MainPID != t.mainPID {
		// No signal has told us yet (a change before the subscription).
		st.setMainPID(name, t, svc.MainPID, at)
	}
	if t.jobActive && t.before != nil && svc.MainPID != 0 && svc.MainPID == t.beforePID {
		// A fresher view of the old process while the job runs: it adds
		// what the old process took on since the last view, but a process
		// already shutting down has closed some of what it held, so
		// nothing the earlier view saw is forgotten.
		t.before, t.beforeSocks = mergeBefore(t.before, svc), mergeSockets(t.beforeSocks, socks)
	}
	if int(svc.FDStoreCount) > t.storePeak && (t.jobActive || t.awaitStart) {
		t.storePeak = int(svc.FDStoreCount)
	}
	// The store, entry by entry where it is known.
	now := map[uint64]StoreEntry{}
	for _, e := range svc.FDStore {
		now[storeKey(e)] = e
	}
	keys := make([]uint64, 0, len(now))
	for k := range now {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return now[keys[i]].Name < now[keys[j]].Name })
	for _, k := range keys {
		e := now[k]
		if _, ok := t.storeSeen[k]; !ok {
			st.emit(Event{Time: at, Unit: name, Type: EventFDStored, Name: e.Name, Inode: e.Inode, Detail: e.Detail,
				Message: fmt.Sprintf("%q stored: %s %s%s", e.Name, e.Kind, e.Detail, ifSet(e.Inferred, " (inferred)"))})
		}
	}
	for k, e := range t.storeSeen {
		if _, ok := now[k]; !ok {
			why := "removed (FDSTOREREMOVE, or its peer hung up)"
			if svc.MainPID != 0 && passedHas(svc, e.Inode) {
				why = "taken back by the service and removed (FDSTOREREMOVE)"
			}
			st.emit(Event{Time: at, Unit: name, Type: EventFDRemoved, Name: e.Name, Inode: e.Inode, Detail: e.Detail,
				Message: fmt.Sprintf("%q %s", e.Name, why)})
		}
	}
	t.storeSeen = now
	// What a new main process was passed.
	if svc.MainPID != 0 && svc.MainPID != t.passedFor && len(svc.Passed) > 0 {
		t.passedFor = svc.MainPID
		for _, p := range svc.Passed {
			st.emit(Event{Time: at, Unit: name, Type: EventFDPassed, PID: svc.MainPID, FD: p.FD, Name: p.Name, Inode: p.Inode, Detail: p.Detail,
				Message: fmt.Sprintf("pid %d got fd %d = %q (%s %s)", svc.MainPID, p.FD, p.Name, p.Kind, p.Detail)})
		}
	}
}

// mergeBefore is a fresher view of the old process (fresh) with every
// connection and own listener of the earlier view (prev) it no longer shows.
func mergeBefore(prev, fresh *Service) *Service {
	m := *fresh
	conns := map[uint64]bool{}
	for _, c := range fresh.Connections {
		conns[c.Inode] = true
	}
	m.Connections = slices.Clone(fresh.Connections)
	for _, c := range prev.Connections {
		if !conns[c.Inode] {
			m.Connections = append(m.Connections, c)
		}
	}
	own := map[string]bool{}
	for _, l := range fresh.OwnListeners {
		own[l.Type+" "+l.Address] = true
	}
	m.OwnListeners = slices.Clone(fresh.OwnListeners)
	for _, l := range prev.OwnListeners {
		if !own[l.Type+" "+l.Address] {
			m.OwnListeners = append(m.OwnListeners, l)
		}
	}
	return &m
}

// mergeSockets is a fresher view of a service's socket units with the
// units and listeners of the earlier view it no longer shows.
func mergeSockets(prev, fresh []SocketUnit) []SocketUnit {
	out := slices.Clone(fresh)
	for _, p := range prev {
		i := slices.IndexFunc(out, func(su SocketUnit) bool { return su.Unit == p.Unit })
		if i < 0 {
			out = append(out, p)
			continue
		}
		if len(out[i].Listeners) == 0 && len(p.Listeners) > 0 {
			out[i].Listeners = p.Listeners
		}
	}
	return out
}

func passedHas(svc *Service, inode uint64) bool {
	for _, p := range svc.Passed {
		if p.Inode == inode {
			return true
		}
	}
	return false
}

// storeKey identifies a store entry across snapshots: its inode, or its
// name where the inode is unknown.
func storeKey(e StoreEntry) uint64 {
	if e.Inode != 0 {
		return e.Inode
	}
	var h uint64 = 14695981039346656037
	for i := 0; i < len(e.Name); i++ {
		h = (h ^ uint64(e.Name[i])) * 1099511628211
	}
	return h | 1<<63
}

// setMainPID records a main PID seen at time at.
func (st *watchState) setMainPID(name string, t *tracked, pid int, at time.Time) {
	if pid == t.mainPID {
		return
	}
	old := t.mainPID
	t.mainPID = pid
	switch {
	case pid == 0:
		t.noMainSince = at
		st.emit(Event{Time: at, Unit: name, Type: EventMainPID, PID: 0, Message: fmt.Sprintf("main process %d gone", old)})
	default:
		if !t.noMainSince.IsZero() {
			t.noMainGap += max(at.Sub(t.noMainSince), 0)
			t.noMainSince = time.Time{}
		}
		msg := fmt.Sprintf("main PID %d", pid)
		if old != 0 {
			msg = fmt.Sprintf("main PID %d → %d", old, pid)
		}
		st.emit(Event{Time: at, Unit: name, Type: EventMainPID, PID: pid, Message: msg})
	}
}

// handle processes one signal from the manager.
func (st *watchState) handle(ctx context.Context, ev dbusclient.Event) {
	now := st.w.now()
	switch e := ev.(type) {
	case dbusclient.JobNew:
		st.emit(Event{Time: now, Unit: e.Unit, Type: EventJobStarted, Message: fmt.Sprintf("job %d queued", e.ID)})
		name := st.serviceOf(e.Unit)
		t := st.units[name]
		if t == nil || t.svc == nil || t.jobActive {
			return
		}
		t.jobActive, t.jobID, t.jobStart = true, e.ID, now
		if t.awaitStart {
			// The start of a stop+start: "before" is the view from
			// before the stop.
			t.awaitStart, t.stopDone = false, true
			return
		}
		t.stopDone = false
		t.before, t.beforeSocks, t.beforePID = t.svc, t.sockets, t.mainPID
		t.storePeak = int(t.svc.FDStoreCount)
		t.noMainGap = 0
		if t.mainPID == 0 {
			t.noMainSince = now
		}
	case dbusclient.JobRemoved:
		st.emit(Event{Time: now, Unit: e.Unit, Type: EventJobFinished, Result: string(e.Result), Message: fmt.Sprintf("job %d %s", e.ID, e.Result)})
		name := st.serviceOf(e.Unit)
		t := st.units[name]
		if t == nil || !t.jobActive || t.jobID != e.ID {
			return
		}
		t.jobActive = false
		// Finished once the signals already queued behind this one (the
		// state changes the manager sent with it) are handled: the
		// summary comes last on the timeline.
		st.finishing = append(st.finishing, pendingFinish{name: name, result: string(e.Result)})
	case dbusclient.UnitChanged:
		at := e.At
		if at.IsZero() {
			at = now
		}
		c := e.Changes
		if c.ActiveState != nil || c.SubState != nil {
			prev := st.states[e.Unit]
			as, ss := prev[0], prev[1]
			if c.ActiveState != nil {
				as = *c.ActiveState
				if t := st.units[e.Unit]; t != nil {
					t.activeState = as
				}
			}
			if c.SubState != nil {
				ss = *c.SubState
			}
			if [2]string{as, ss} != prev {
				// The same change can come on two interfaces: say it once.
				st.states[e.Unit] = [2]string{as, ss}
				st.emit(Event{Time: at, Unit: e.Unit, Type: EventState, ActiveState: as, SubState: ss, Message: strings.Trim(as+"/"+ss, "/")})
			}
		}
		if c.MainPID != nil {
			if t := st.units[e.Unit]; t != nil && t.svc != nil {
				t.signalledPID = true
				st.setMainPID(e.Unit, t, int(*c.MainPID), at)
			}
		}
	case dbusclient.CountersChanged:
		name := st.serviceOf(e.Unit)
		if t := st.units[name]; t != nil && (t.jobActive || t.awaitStart) && int(e.Counters.NFileDescriptorStore) > t.storePeak {
			t.storePeak = int(e.Counters.NFileDescriptorStore)
		}
	case dbusclient.UnitNew:
		// A reload unloads and reloads every unit, and reading a unit
		// loads it for a moment: only socket units and services outside a
		// reload make the timeline; a reload is summarised when it ends.
		if !st.reloading && st.relevant(e.Unit) {
			st.emit(Event{Time: now, Unit: e.Unit, Type: EventUnitNew, Message: "loaded"})
		}
	case dbusclient.UnitRemoved:
		if !st.reloading && st.relevant(e.Unit) {
			st.emit(Event{Time: now, Unit: e.Unit, Type: EventUnitRemoved, Message: "unloaded"})
		}
	case dbusclient.Reloading:
		st.reloading = e.Active
		if e.Active {
			st.emit(Event{Time: now, Type: EventReloading, Message: "reloading"})
			return
		}
		before := st.knownUnits()
		_ = st.refresh(ctx, nil, false)
		after := st.knownUnits()
		var added, removed []string
		for u := range after {
			if !before[u] {
				added = append(added, u)
			}
		}
		for u := range before {
			if !after[u] {
				removed = append(removed, u)
			}
		}
		sort.Strings(added)
		sort.Strings(removed)
		msg := "reload finished"
		if len(added)+len(removed) > 0 {
			msg += fmt.Sprintf(": %d units added, %d gone", len(added), len(removed))
		}
		st.emit(Event{Time: now, Type: EventReloading, Message: msg})
		for _, u := range added {
			st.emit(Event{Time: now, Unit: u, Type: EventUnitNew, Message: "added by the reload"})
		}
		for _, u := range removed {
			st.emit(Event{Time: now, Unit: u, Type: EventUnitRemoved, Message: "gone after the reload"})
		}
	case dbusclient.Disconnected:
		msg := "connection to the manager lost"
		if e.Err != nil {
			msg += ": " + e.Err.Error()
		}
		st.emit(Event{Time: now, Type: EventDisconnected, Message: msg})
	case dbusclient.Reconnected:
		st.emit(Event{Time: now, Type: EventReconnected, Message: "reconnected to systemd " + e.Version})
		_ = st.refresh(ctx, nil, false)
	case dbusclient.Overflow:
		st.emit(Event{Time: now, Type: EventDisconnected, Message: fmt.Sprintf("%d property changes coalesced", e.Dropped)})
	}
}

// finishJob decides, from the signalled state, what a finished job did:
// a stop (no main process, unit down) waits for its start; a new main
// process after an old one is a handoff, summarised now; anything else
// (a reload, a failed or canceled job on a running process) is not.
func (st *watchState) finishJob(ctx context.Context, name string, t *tracked, result string, now time.Time) {
	if t.before == nil || t.beforePID == 0 {
		t.before = nil
		return
	}
	down := t.activeState == "inactive" || t.activeState == "failed" || t.activeState == "deactivating"
	if t.mainPID == 0 && down && !t.stopDone {
		t.awaitStart = true // a stop: the handoff completes at the start
		return
	}
	if t.mainPID == t.beforePID {
		t.before, t.stopDone = nil, false
		return
	}
	h := st.summarise(ctx, t, now)
	t.before, t.beforeSocks, t.stopDone = nil, nil, false
	st.emit(Event{Time: now, Unit: name, Type: EventHandoff, Result: result, Handoff: &h, Message: Verdict(h)})
}

// summarise compares the service before the job with now.
func (st *watchState) summarise(ctx context.Context, t *tracked, now time.Time) Handoff {
	b, a := t.before, t.svc
	h := Handoff{HandoffJob: "restart", OldPID: t.beforePID, NewPID: t.mainPID}
	if t.stopDone {
		h.HandoffJob = "stop+start"
	}
	// Listeners: by address, kept if the inode is the same.
	beforeL := listenerInodes(b, t.beforeSocks)
	afterL := listenerInodes(a, t.sockets)
	addrs := make([]string, 0, len(beforeL))
	for addr := range beforeL {
		addrs = append(addrs, addr)
	}
	sort.Strings(addrs)
	// What the new main process holds or was passed: a listener it has
	// is kept whatever the socket unit's view says.
	newHolds := map[uint64]bool{}
	for _, p := range a.Passed {
		newHolds[p.Inode] = true
	}
	for _, addr := range addrs {
		ino, after := beforeL[addr], afterL[addr]
		switch {
		case ino != 0 && (after == ino || newHolds[ino]):
			h.ListenersKept++
			st.emit(Event{Time: now, Unit: a.Unit, Type: EventListenerKept, Inode: ino, Detail: addr, Message: fmt.Sprintf("listener %s kept (inode %d)", addr, ino)})
		case ino == 0 || after == 0:
			// Not seen on one side (the manager not readable, or the
			// listener not found then): neither kept nor replaced.
			h.ListenersUnknown++
		default:
			h.ListenersReplaced++
			st.emit(Event{Time: now, Unit: a.Unit, Type: EventListenerReplaced, Inode: after, Detail: addr,
				Message: fmt.Sprintf("listener %s replaced (inode %d → %d): closed and opened anew, so connects in between could be refused", addr, ino, after)})
		}
	}
	h.ConnectionsUnknown = b.ConnectionsUnknown || a.ConnectionsUnknown
	// Connections: preserved if the same socket lives on.
	afterC := map[uint64]Connection{}
	for _, c := range a.Connections {
		afterC[c.Inode] = c
	}
	alive := map[uint64]bool{}
	if st.w.Alive != nil {
		var missing []uint64
		for _, c := range b.Connections {
			if _, ok := afterC[c.Inode]; !ok && !t.held[c.Inode] {
				missing = append(missing, c.Inode)
			}
		}
		if len(missing) > 0 {
			alive = st.w.Alive(ctx, missing)
		}
	}
	reported := 0
	for _, c := range b.Connections {
		ac, ok := afterC[c.Inode]
		// A connection the manager holds is alive in the store (a next
		// restart may already have handed it over again).
		if ok || t.held[c.Inode] || alive[c.Inode] {
			h.ConnectionsPreserved++
		} else {
			h.ConnectionsDropped++
		}
		if reported < 20 {
			reported++
			switch {
			case ok:
				st.emit(Event{Time: now, Unit: a.Unit, Type: EventConnectionPreserved, PID: ac.PID, FD: ac.FD, Inode: c.Inode, Detail: c.Remote,
					Message: fmt.Sprintf("connection from %s preserved: pid %d fd %d → pid %d fd %d", c.Remote, c.PID, c.FD, ac.PID, ac.FD)})
			case t.held[c.Inode]:
				st.emit(Event{Time: now, Unit: a.Unit, Type: EventConnectionPreserved, Inode: c.Inode, Detail: c.Remote,
					Message: fmt.Sprintf("connection from %s preserved: held in the fd store", c.Remote)})
			case alive[c.Inode]:
				st.emit(Event{Time: now, Unit: a.Unit, Type: EventConnectionPreserved, Inode: c.Inode, Detail: c.Remote,
					Message: fmt.Sprintf("connection from %s preserved: the socket is still open", c.Remote)})
			default:
				st.emit(Event{Time: now, Unit: a.Unit, Type: EventConnectionDropped, PID: c.PID, FD: c.FD, Inode: c.Inode, Detail: c.Remote,
					Message: fmt.Sprintf("connection from %s dropped", c.Remote)})
			}
		}
	}
	// The store.
	h.FDStoreBefore = max(t.storePeak, int(b.FDStoreCount))
	h.FDStoreAfter = int(a.FDStoreCount)
	sockNames := map[string]bool{}
	for _, su := range t.sockets {
		sockNames[su.Unit] = true
		if su.FileDescriptorName != "" {
			sockNames[su.FileDescriptorName] = true
		}
	}
	if a.MainPID == t.mainPID {
		for _, p := range a.Passed {
			if !sockNames[p.Name] {
				h.FDsCarried++
			}
		}
		h.FDsCarriedUnknown = a.PassedUnknown
	}
	h.StoreDiscarded = h.FDStoreBefore > 0 && h.FDsCarried == 0 && !h.FDsCarriedUnknown
	if t.stopDone && b.FDStoreMax > 0 && b.FDStorePreserve != "yes" && h.FDsCarried == 0 {
		// A stop releases the store in the same turn of the manager's
		// event loop that sees the old process exit, too fast to watch
		// the entries the process stored on its way out: what tells is
		// that the new process got nothing from the store, which systemd
		// guarantees after a stop (before 254, or with
		// FileDescriptorStorePreserve=no or restart).
		h.StoreDiscarded = true
	}
	// Time without a main process.
	gap := t.noMainGap
	if !t.noMainSince.IsZero() {
		gap += now.Sub(t.noMainSince)
	}
	gap = max(gap, 0) // signal and scan clocks can disagree by a few ms
	h.NoMainPIDMs = gap.Milliseconds()
	h.DurationMs = now.Sub(t.jobStart).Milliseconds()
	// Refused connections counted by the manager.
	for _, sa := range t.sockets {
		for _, sb := range t.beforeSocks {
			if sa.Unit == sb.Unit && sa.NRefused >= sb.NRefused {
				h.RefusedDelta += int(sa.NRefused - sb.NRefused)
			}
		}
	}
	return h
}

// listenerInodes maps each listen address of a service (its socket units'
// and its own) to the inode behind it.
func listenerInodes(svc *Service, socks []SocketUnit) map[string]uint64 {
	out := map[string]uint64{}
	for _, su := range socks {
		for _, l := range su.Listeners {
			out[l.Type+" "+l.Address] = l.Inode
		}
	}
	if svc != nil {
		for _, l := range svc.OwnListeners {
			out[l.Type+" "+l.Address] = l.Inode
		}
	}
	return out
}

// SocketsAlive adapts a socket lookup by inode (procfs.FS.SocketsByInode)
// to Watcher.Alive.
func SocketsAlive[S any](lookup func(ctx context.Context, inodes []uint64) (map[uint64]S, error)) func(ctx context.Context, inodes []uint64) map[uint64]bool {
	return func(ctx context.Context, inodes []uint64) map[uint64]bool {
		found, err := lookup(ctx, inodes)
		out := map[uint64]bool{}
		if err != nil {
			return out
		}
		for ino := range found {
			out[ino] = true
		}
		return out
	}
}
