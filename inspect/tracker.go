package inspect

import (
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
)

// Step is one input of the handoff Tracker: a manager signal or a fresh
// view of units. Its JSON form is one line of a trace file (what
// Watcher.Trace records and the replay tests feed back).
type Step struct {
	// At is when it was seen.
	At time.Time `json:"at"`
	// Signal is a manager signal; View a fresh view. One is set.
	Signal *Signal `json:"signal,omitempty"`
	View   *View   `json:"view,omitempty"`
}

// Signal is a manager signal as the tracker takes it (dbusclient.Event
// flattened, plus the job type read for a new job).
type Signal struct {
	// Kind: job_new, job_removed, unit_changed, counters, unit_new,
	// unit_removed, reloading, disconnected, reconnected, overflow.
	Kind string `json:"kind"`
	Unit string `json:"unit,omitempty"`
	// ID, JobType and Result describe a job.
	ID      uint32 `json:"id,omitempty"`
	JobType string `json:"job_type,omitempty"`
	Result  string `json:"result,omitempty"`
	// Active is the reloading bracket (true: started).
	Active bool `json:"active,omitempty"`
	// Iface and Changes are a unit_changed's interface and values.
	Iface   string                  `json:"iface,omitempty"`
	Changes *dbusclient.UnitChanges `json:"changes,omitempty"`
	// Counters are the polled counters of a counters signal.
	Counters *dbusclient.Counters `json:"counters,omitempty"`
	// Version, Error and Dropped describe connection events.
	Version string `json:"version,omitempty"`
	Error   string `json:"error,omitempty"`
	Dropped int    `json:"dropped,omitempty"`
	// Stale (job_new): the unit's processes changed their descriptors
	// since the last view of them, or are gone and whether they had was
	// not known: the connections that view shows may be short.
	Stale bool `json:"stale,omitempty"`
}

// The kinds of Signal.
const (
	SigJobNew       = "job_new"
	SigJobRemoved   = "job_removed"
	SigUnitChanged  = "unit_changed"
	SigCounters     = "counters"
	SigUnitNew      = "unit_new"
	SigUnitRemoved  = "unit_removed"
	SigReloading    = "reloading"
	SigDisconnected = "disconnected"
	SigReconnected  = "reconnected"
	SigOverflow     = "overflow"
)

// SignalOf flattens a dbusclient event. It returns nil for an event it
// does not know.
func SignalOf(ev dbusclient.Event) *Signal {
	switch e := ev.(type) {
	case dbusclient.JobNew:
		return &Signal{Kind: SigJobNew, Unit: e.Unit, ID: e.ID, JobType: e.Type}
	case dbusclient.JobRemoved:
		return &Signal{Kind: SigJobRemoved, Unit: e.Unit, ID: e.ID, Result: string(e.Result)}
	case dbusclient.UnitChanged:
		c := e.Changes
		return &Signal{Kind: SigUnitChanged, Unit: e.Unit, Iface: string(e.Iface), Changes: &c}
	case dbusclient.CountersChanged:
		c := e.Counters
		return &Signal{Kind: SigCounters, Unit: e.Unit, Counters: &c}
	case dbusclient.UnitNew:
		return &Signal{Kind: SigUnitNew, Unit: e.Unit}
	case dbusclient.UnitRemoved:
		return &Signal{Kind: SigUnitRemoved, Unit: e.Unit}
	case dbusclient.Reloading:
		return &Signal{Kind: SigReloading, Active: e.Active}
	case dbusclient.Disconnected:
		s := &Signal{Kind: SigDisconnected}
		if e.Err != nil {
			s.Error = e.Err.Error()
		}
		return s
	case dbusclient.Reconnected:
		return &Signal{Kind: SigReconnected, Version: e.Version}
	case dbusclient.Overflow:
		return &Signal{Kind: SigOverflow, Dropped: e.Dropped}
	}
	return nil
}

// View is a fresh snapshot given to the tracker.
type View struct {
	// Units are the units it was taken of; nil: the full picture.
	Units []string `json:"units,omitempty"`
	// Snapshot is what was seen.
	Snapshot *Snapshot `json:"snapshot"`
	// Held lists the kernel objects the manager held (Snapshot.ManagerInodes,
	// which its JSON leaves out).
	Held []uint64 `json:"held,omitempty"`
	// Alive answers Tracker.Unaccounted for this view: which of those
	// sockets still existed when it was taken.
	Alive map[uint64]bool `json:"alive,omitempty"`
	// AliveUnknown: the kernel could not be asked about those sockets, so
	// one not seen in a process or the manager is unknown, not dropped.
	AliveUnknown bool `json:"alive_unknown,omitempty"`
	// Closed says, of the connections of a handoff seen in no process and
	// not in the manager, which end the kernel says closed first
	// (ClosedByClient, ClosedByService; Watcher.ConnEnds); one it does not
	// name was not learned. One its client closed is not dropped.
	Closed map[uint64]string `json:"closed,omitempty"`
	// Own lists the peer addresses of connections in the view that are
	// fdtop's own (the gap meter's probes, which connect and close at
	// once): they are never a service's connections, neither preserved
	// nor dropped.
	Own []string `json:"own,omitempty"`
}

// NewView makes the View of a snapshot of units (nil: the full picture).
func NewView(units []string, snap *Snapshot) *View {
	v := &View{Units: units, Snapshot: snap}
	for ino := range snap.ManagerInodes {
		v.Held = append(v.Held, ino)
	}
	slices.Sort(v.Held)
	return v
}

func (v *View) held() map[uint64]bool {
	if v.Snapshot.ManagerInodes != nil {
		return v.Snapshot.ManagerInodes
	}
	m := make(map[uint64]bool, len(v.Held))
	for _, ino := range v.Held {
		m[ino] = true
	}
	return m
}

// Tracker turns the manager's signals and fresh views into timeline
// events: job and state events, main PID changes, fds passed, stored and
// removed, and one handoff summary per restart (or stop and start). It is
// a pure state machine: no I/O, no clock, no goroutine; the loop around it
// (Watcher) takes the views it asks for (Hot, Finishing, NeedsFull).
type Tracker struct {
	units   map[string]*tracked // by service name
	sockSvc map[string]string   // socket unit -> service
	last    *Snapshot           // the last full view

	finishing    []pendingFinish           // jobs finished, summaries waiting for a fresh view
	reloading    bool                      // between Reloading(true) and Reloading(false)
	reloadBefore map[string]bool           // units known when a reload ended, until the full view
	needFull     bool                      // a full view is wanted (reload ended, reconnected)
	states       map[string][2]string      // last active/sub state reported per unit
	jobTypes     map[uint32]string         // type of each job in progress, by id
	lastTime     time.Time                 // time of the last event: times never go back
	own          map[string]time.Time      // fdtop's own connections' peers (View.Own), when last seen
	acc          map[string]*acceptTracked // Accept=yes socket units, by name (accept.go)
	accFinishing []pendingFinish           // their jobs finished, summaries waiting for a fresh view
	jobUnits     map[uint32]string         // unit of each job in progress, by id

	out []Event
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker {
	return &Tracker{units: map[string]*tracked{}, sockSvc: map[string]string{}, states: map[string][2]string{}, jobTypes: map[uint32]string{}, own: map[string]time.Time{}, acc: map[string]*acceptTracked{}, jobUnits: map[uint32]string{}}
}

// ownKey is the form of an address fdtop's own connections are known by
// (an IPv4 address mapped into IPv6 unmapped).
func ownKey(addr string) string {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return addr
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
}

// isOwn reports that a connection is fdtop's own (View.Own).
func (tr *Tracker) isOwn(c Connection) bool {
	if len(tr.own) == 0 || c.Remote == "" {
		return false
	}
	_, ok := tr.own[ownKey(c.Remote)]
	return ok
}

// notOwn is conns without fdtop's own connections (a new slice when
// some are left out: the snapshot is not changed).
func (tr *Tracker) notOwn(conns []Connection) []Connection {
	if !slices.ContainsFunc(conns, tr.isOwn) {
		return conns
	}
	out := make([]Connection, 0, len(conns))
	for _, c := range conns {
		if !tr.isOwn(c) {
			out = append(out, c)
		}
	}
	return out
}

// tracked is what the tracker remembers of one service between events.
// Its state (active state, main PID, jobs) follows the manager's signals,
// which arrive in order; views only add detail (listeners, connections,
// the store), so a late view never rewinds the state.
type tracked struct {
	svc     *Service     // latest detailed view
	sockets []SocketUnit // its socket units, latest view
	// byPID holds the latest view of each of the last few main processes:
	// a view can run ahead of the signals still queued and show a later
	// process than the signals name so far.
	byPID []pidView
	held  map[uint64]bool // what the manager held in that view

	activeState string
	mainPID     int
	noMainSince time.Time // when the main PID went to 0 (zero: it has one)

	// A job in progress, or a stop waiting for its start.
	jobActive   bool
	jobID       uint32
	jobType     string
	jobStopped  bool // the unit went down during the job (a restart's stop part)
	jobStart    time.Time
	before      *Service     // the service as it was before the job
	beforeSocks []SocketUnit // its sockets before the job
	beforePID   int
	storePeak   int
	noMainGap   time.Duration
	awaitStart  bool // a stop finished: the next start completes a stop+start
	stopDone    bool // this job is the start of a stop+start
	passedFor   int  // main PID whose passed fds were reported
	storeSeen   map[uint64]StoreEntry
	// signalledPID: the main PID has come from a signal at least once.
	signalledPID bool
	// sawNoMain: during this job (or the stop before it) the unit was
	// seen without a main process; a main PID that changed without it
	// went through a gap no signal showed (NoMainPIDUnknown).
	sawNoMain bool
	// lost is the main process that died without a job (killed, crashed),
	// with the last view of it: the job that brings the unit back (an
	// automatic restart) is its handoff.
	lost *lostMain
	// storeLast is the last store size seen while the old main process
	// ran during the job (-1: none seen). noDiscard: the store is not
	// known to have held entries when the old process ended (it was seen
	// emptied by the old process itself, FDSTOREREMOVE, or the process
	// went without a job and no view showed the store after): a new
	// process given nothing from it is no sign of a discarded store.
	storeLast int
	noDiscard bool
	// fromLost: this job brings back a main process that went without one
	// (lost): a start, or the manager's automatic restart.
	fromLost bool
	// autoRestart: after it went, the unit was seen in the manager's
	// auto-restart state: the job that brings it back is the manager's
	// restart.
	autoRestart bool
	// beforeStale: the view before the job may be short (Signal.Stale).
	beforeStale bool
	// jobLost: the connection to the manager was lost (re-executed) while
	// this job ran: its end may never be signalled; a view showing the
	// unit settled ends it.
	jobLost bool
	// pendingAlive: which of the connections before the job still existed,
	// as the kernel told for a view taken for the job's summary that did
	// not show the service (its process already going again); used if the
	// job is concluded without a view (concludeNow).
	pendingAlive map[uint64]bool
	// closed is what the kernel told, in the views taken since the job
	// began, of which end of a connection before it closed first
	// (View.Closed, asked while the evidence lasts).
	closed map[uint64]string
	// beforeStarting: the view before the job was taken while the old
	// process started, and the unit became active since (startingView).
	beforeStarting bool
	// unread is the receive queue of each connection of the main process
	// at the last view outside a job; stalled are those whose queue was
	// not empty at two views in a row and did not shrink between them:
	// the service left its client's data unread for an interval or more.
	unread  map[uint64]uint32
	stalled map[uint64]bool
	// lastGone are the connections the main process held at the view
	// before the last one and not at the last (taken at lastGoneAt).
	lastGone   []Connection
	lastGoneAt time.Time
	// beforeStalled is stalled as it was when the job began, beforeHeld
	// what the manager held then (the last view's).
	beforeStalled, beforeHeld map[uint64]bool
}

// recentGone is how soon after a view that showed connections gone a job
// must begin for them to count as the job's (see tracked.lastGone).
const recentGone = time.Second

// noteUnread updates unread and stalled from a view of the service
// outside a job.
func (t *tracked) noteUnread(svc *Service) {
	unread := make(map[uint64]uint32, len(svc.Connections))
	stalled := map[uint64]bool{}
	for _, c := range svc.Connections {
		unread[c.Inode] = c.RecvQ
		if prev, ok := t.unread[c.Inode]; ok && prev > 0 && c.RecvQ >= prev {
			stalled[c.Inode] = true
		}
	}
	t.unread, t.stalled = unread, stalled
}

// lostMain is a main process that went without a job, as last seen.
type lostMain struct {
	pid   int
	at    time.Time
	svc   *Service
	socks []SocketUnit
}

// pendingFinish is a finished job whose summary waits for a fresh view.
type pendingFinish struct {
	name, result string
	at           time.Time // when the job ended (Accept=yes socket units)
}

// Step takes one input and returns the events it makes, in order, with
// times that never go back.
func (tr *Tracker) Step(s Step) []Event {
	tr.out = nil
	switch {
	case s.Signal != nil:
		tr.signal(s.At, s.Signal)
	case s.View != nil && s.View.Snapshot != nil:
		tr.view(s.At, s.View)
	}
	out := tr.out
	tr.out = nil
	return out
}

func (tr *Tracker) emit(e Event) {
	if e.Time.Before(tr.lastTime) {
		e.Time = tr.lastTime
	}
	tr.lastTime = e.Time
	tr.out = append(tr.out, e)
}

// Hot lists the services with a job in progress: the loop views them
// every few milliseconds so short-lived steps are seen.
func (tr *Tracker) Hot() []string {
	var out []string
	for name, t := range tr.units {
		if t.jobActive {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// HotSince is when the job in progress on a service began (zero: none).
func (tr *Tracker) HotSince(name string) time.Time {
	if t := tr.units[name]; t != nil && t.jobActive {
		return t.jobStart
	}
	return time.Time{}
}

// Busy lists the services (and Accept=yes socket units) in a handoff: a
// job running, a stop waiting for its start, or a finished job waiting for
// its summary.
func (tr *Tracker) Busy() []string {
	out := tr.Finishing()
	for name, t := range tr.units {
		if (t.jobActive || t.awaitStart) && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	for _, name := range tr.acceptBusy() {
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// ProbeTargets lists the loopback TCP addresses a service listens on (its
// socket units' and its own), as the gap meter dials them.
func (tr *Tracker) ProbeTargets(name string) []string {
	if tr.IsAccept(name) {
		return tr.acceptProbeTargets(name)
	}
	t := tr.units[name]
	if t == nil || t.svc == nil {
		return nil
	}
	var lists [][]Listener
	for _, su := range t.sockets {
		lists = append(lists, su.Listeners)
	}
	svc, _, _ := t.current()
	lists = append(lists, svc.OwnListeners)
	if t.before != nil {
		lists = append(lists, t.before.OwnListeners)
	}
	return ProbeTargets(lists...)
}

// Finishing lists the services (and Accept=yes socket units) whose job
// ended and whose summary waits for a fresh view of them (taken once the
// signals queued behind the job's end are in).
func (tr *Tracker) Finishing() []string {
	var out []string
	for _, p := range append(tr.finishing[:len(tr.finishing):len(tr.finishing)], tr.accFinishing...) {
		if !slices.Contains(out, p.name) {
			out = append(out, p.name)
		}
	}
	return out
}

// NeedsFull reports that the tracker wants a view of every unit (a reload
// ended, the connection came back).
func (tr *Tracker) NeedsFull() bool { return tr.needFull || tr.last == nil }

// Last is the last full view (nil before the first).
func (tr *Tracker) Last() *Snapshot { return tr.last }

// WatchList names the units whose never-signalling counters are worth
// polling: services in a job or waiting for their start, and their socket
// units.
func (tr *Tracker) WatchList() []string {
	var out []string
	for name, t := range tr.units {
		if !t.jobActive && !t.awaitStart {
			continue
		}
		out = append(out, name)
		for s, svc := range tr.sockSvc {
			if svc == name {
				out = append(out, s)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Unaccounted lists the connections a finishing service held before its
// job that the view shows neither in a process nor in the manager: the
// loop checks whether those sockets still exist and puts the answer in
// View.Alive (a scan is not atomic across processes: a connection moving
// from a process to the manager can slip between two reads).
func (tr *Tracker) Unaccounted(v *View) []uint64 {
	var out []uint64
	for _, c := range tr.unaccountedConns(v) {
		out = append(out, c.Inode)
	}
	return append(out, tr.acceptUnaccounted(v)...)
}

// Unexplained lists the connections a service in a handoff (its job
// running, waiting for its start, or finished) held before its job that
// the view shows in no process and not in the manager, and of which the
// kernel has not yet told which end closed first: the loop asks it for
// those Alive does not report open (View.Closed), at every view, while the
// evidence lasts.
func (tr *Tracker) Unexplained(v *View) []Connection {
	held := v.held()
	var out []Connection
	for name, t := range tr.units {
		if t.before == nil || t.before.MainPID != t.beforePID || (!t.jobActive && !t.awaitStart && !slices.ContainsFunc(tr.finishing, func(p pendingFinish) bool { return p.name == name })) {
			continue
		}
		shown := map[uint64]bool{}
		for _, svc := range v.Snapshot.Services {
			if svc.Unit == name {
				for _, c := range svc.Connections {
					shown[c.Inode] = true
				}
			}
		}
		for _, c := range t.before.Connections {
			if _, told := t.closed[c.Inode]; told || shown[c.Inode] || held[c.Inode] || tr.isOwn(c) || slices.Contains(v.Own, ownKey(c.Remote)) {
				continue
			}
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Inode < out[j].Inode })
	return out
}

// noteClosed keeps what a view's kernel lookups told of which end of a
// connection closed first, for the services whose handoff it belongs to.
func (tr *Tracker) noteClosed(v *View) {
	if len(v.Closed) == 0 {
		return
	}
	for _, t := range tr.units {
		if t.before == nil {
			continue
		}
		for _, c := range t.before.Connections {
			who, ok := v.Closed[c.Inode]
			if !ok {
				continue
			}
			if t.closed == nil {
				t.closed = map[uint64]string{}
			}
			if _, told := t.closed[c.Inode]; !told {
				t.closed[c.Inode] = who
			}
		}
	}
}

func (tr *Tracker) unaccountedConns(v *View) []Connection {
	var out []Connection
	held := v.held()
	for _, p := range tr.finishing {
		t := tr.units[p.name]
		if t == nil || t.before == nil {
			continue
		}
		after := map[uint64]bool{}
		for _, svc := range v.Snapshot.Services {
			if svc.Unit == p.name {
				for _, c := range svc.Connections {
					after[c.Inode] = true
				}
			}
		}
		for _, c := range t.before.Connections {
			if !after[c.Inode] && !held[c.Inode] && !tr.isOwn(c) && !slices.Contains(v.Own, ownKey(c.Remote)) {
				out = append(out, c)
			}
		}
	}
	return out
}

// unit returns the tracking of a service, created on first use.
func (tr *Tracker) unit(name string) *tracked {
	t := tr.units[name]
	if t == nil {
		t = &tracked{storeSeen: map[uint64]StoreEntry{}}
		tr.units[name] = t
	}
	return t
}

// serviceOf maps a unit name to the service it concerns.
func (tr *Tracker) serviceOf(unit string) string {
	if s, ok := tr.sockSvc[unit]; ok {
		return s
	}
	return unit
}

// knownUnits lists the socket units and services of the last full view.
func (tr *Tracker) knownUnits() map[string]bool {
	out := map[string]bool{}
	if tr.last == nil {
		return out
	}
	for _, su := range tr.last.Sockets {
		out[su.Unit] = true
	}
	for _, svc := range tr.last.Services {
		out[svc.Unit] = true
	}
	return out
}

// view diffs a fresh view into the tracked state, then concludes the
// finished jobs of the services it shows.
func (tr *Tracker) view(at time.Time, v *View) {
	snap := v.Snapshot
	if !snap.Time.IsZero() {
		at = snap.Time
	}
	if v.Units == nil {
		tr.last = snap
	}
	for _, su := range snap.Sockets {
		if su.Service != "" && !su.Accept {
			tr.sockSvc[su.Unit] = su.Service
		}
	}
	for _, a := range v.Own {
		tr.own[ownKey(a)] = at
	}
	for a, seen := range tr.own {
		if at.Sub(seen) > ownKeep {
			delete(tr.own, a)
		}
	}
	held := v.held()
	viewed := map[string]bool{}
	for i := range snap.Services {
		svc := snap.Services[i]
		svc.Connections = tr.notOwn(svc.Connections)
		if v.Units != nil && !slices.Contains(v.Units, svc.Unit) {
			// Only what was asked for is read in detail.
			continue
		}
		if preExec(&svc) || gone(&svc) {
			// The manager's forked child before it execs the service (it
			// still holds the manager's descriptors, none of its own yet),
			// or a main process already gone when it was read: the view
			// says nothing of what the service holds.
			continue
		}
		viewed[svc.Unit] = true
		t := tr.unit(svc.Unit)
		var socks []SocketUnit
		for _, su := range snap.Sockets {
			if su.Service == svc.Unit || !su.Accept && slices.Contains(svc.Sockets, su.Unit) {
				socks = append(socks, su) // its Service= or its Sockets=
			}
		}
		t.held = held
		tr.observe(svc.Unit, t, &svc, socks, at)
		tr.settleLost(svc.Unit, t, &svc, at)
	}
	tr.noteClosed(v)
	if len(tr.finishing) > 0 {
		rest := tr.finishing[:0:0]
		for _, p := range tr.finishing {
			t := tr.units[p.name]
			if t == nil {
				continue
			}
			if !viewed[p.name] {
				for ino, ok := range v.Alive {
					if ok {
						if t.pendingAlive == nil {
							t.pendingAlive = map[uint64]bool{}
						}
						t.pendingAlive[ino] = true
					}
				}
				rest = append(rest, p)
				continue
			}
			tr.finishJob(p.name, t, p.result, at, v.Alive, v.AliveUnknown)
		}
		tr.finishing = rest
	}
	tr.viewAccept(at, v)
	if v.Units == nil && tr.needFull {
		tr.needFull = false
		if before := tr.reloadBefore; before != nil {
			tr.reloadBefore = nil
			after := tr.knownUnits()
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
			tr.emit(Event{Time: at, Type: EventReloading, Phase: "finished", UnitsAdded: len(added), UnitsGone: len(removed)})
			for _, u := range added {
				tr.emit(Event{Time: at, Unit: u, Type: EventUnitNew, Phase: "reload"})
			}
			for _, u := range removed {
				tr.emit(Event{Time: at, Unit: u, Type: EventUnitRemoved, Phase: "reload"})
			}
		}
	}
}

// observe diffs a new view of a service into its tracking and emits what
// changed: fds passed, fds stored and removed.
func (tr *Tracker) observe(name string, t *tracked, svc *Service, socks []SocketUnit, at time.Time) {
	first := t.svc == nil
	raw := svc
	if !first && exiting(t.svc, svc, t.held) {
		// The process is closing what it held (a stop is under way, maybe
		// of a job whose signals are still queued): what it held is the
		// last view that had it.
		svc = keepHeld(t.svc, svc)
	}
	t.lastGone, t.lastGoneAt = nil, at
	if !first && !t.jobActive && !t.awaitStart && t.svc.MainPID == svc.MainPID && svc.MainPID != 0 {
		// Connections the main process held at the last view and not at
		// this one: if a job begins right after, its stop may already
		// have closed them (the manager's signals are queued behind the
		// view).
		now := map[uint64]bool{}
		for _, c := range svc.Connections {
			now[c.Inode] = true
		}
		for _, c := range t.svc.Connections {
			if !now[c.Inode] {
				t.lastGone = append(t.lastGone, c)
			}
		}
	}
	t.svc, t.sockets = svc, socks
	t.remember(svc, socks)
	if !t.jobActive && !t.awaitStart {
		t.noteUnread(svc)
	}
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
		tr.setMainPID(name, t, svc.MainPID, at)
	}
	if t.jobActive && t.before != nil && svc.MainPID != 0 && svc.MainPID == t.beforePID {
		// A fresher view of the old process while the job runs: it adds
		// what the old process took on since the last view, but a process
		// already shutting down has closed some of what it held, so
		// nothing the earlier view saw is forgotten. A "before" that was
		// no view of the old process (the job began before one) is
		// replaced by it.
		if t.before.MainPID == t.beforePID {
			t.before = mergeBefore(t.before, svc)
		} else {
			t.before = svc
		}
		t.beforeStarting = t.beforeStarting && startingView(svc, t.activeState)
		t.beforeSocks = mergeSockets(t.beforeSocks, socks)
	}
	if t.jobActive || t.awaitStart {
		if int(raw.FDStoreCount) > t.storePeak {
			t.storePeak = int(raw.FDStoreCount)
		}
		if raw.MainPID != 0 && raw.MainPID == t.beforePID && t.mainPID == t.beforePID {
			t.storeLast = int(raw.FDStoreCount)
		}
	}
	// The store, entry by entry where it is known, with the names its
	// entries had before this view.
	prevStore := map[uint64]bool{}
	prevNames := map[uint64][]string{}
	addPrev := func(e StoreEntry) {
		if e.Inode == 0 {
			return
		}
		prevStore[e.Inode] = true
		if !e.NameUnknown && e.Name != "" && !slices.Contains(prevNames[e.Inode], e.Name) {
			prevNames[e.Inode] = append(prevNames[e.Inode], e.Name)
		}
	}
	for _, e := range t.storeSeen {
		addPrev(e)
	}
	if t.before != nil {
		for _, e := range t.before.FDStore {
			addPrev(e)
		}
	}
	now := map[uint64]StoreEntry{}
	for _, e := range raw.FDStore {
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
			tr.emit(Event{Time: at, Unit: name, Type: EventFDStored, Name: e.Name, NameUnknown: e.NameUnknown, Inode: e.Inode, Kind: e.Kind, Detail: e.Detail, Inferred: e.Inferred})
		}
	}
	gone := make([]StoreEntry, 0)
	var kept []StoreEntry
	for k, e := range t.storeSeen {
		if _, ok := now[k]; ok {
			continue
		}
		if e.Inferred && e.Inode != 0 && t.held[e.Inode] {
			// An entry inferred from the manager's descriptors (before
			// 254) that the manager still holds: the inference could not
			// place it this time (the process closed what it was passed),
			// but it is still the manager's, so still in the store.
			kept = append(kept, e)
			continue
		}
		gone = append(gone, e)
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i].Name < gone[j].Name })
	seen := now
	if len(kept) > 0 {
		seen = maps.Clone(now)
		for _, e := range kept {
			seen[storeKey(e)] = e
		}
	}
	if slack := int(raw.FDStoreCount) - len(now); len(gone) > 0 && slack > 0 {
		// The list is short of the manager's count (entries inferred
		// from the kernel before 254, or not listed during a reload): an
		// entry missing from it may still be in the store. None is said
		// removed until the count leaves no room for it.
		seen = maps.Clone(seen)
		for _, e := range gone {
			seen[storeKey(e)] = e
		}
		gone = nil
	}
	for _, e := range gone {
		ev := Event{Time: at, Unit: name, Type: EventFDRemoved, Name: e.Name, NameUnknown: e.NameUnknown, Inode: e.Inode, Kind: e.Kind, Detail: e.Detail}
		if raw.MainPID != 0 && passedHas(raw, e.Inode) {
			ev.Via = "taken"
		}
		tr.emit(ev)
	}
	t.storeSeen = seen
	// What a new main process was passed.
	if svc.MainPID != 0 && svc.MainPID != t.passedFor && len(svc.Passed) > 0 {
		t.passedFor = svc.MainPID
		sockNames := map[string]bool{}
		for _, su := range socks {
			sockNames[su.Unit], sockNames[su.FileDescriptorName] = true, true
		}
		// The manager passes a descriptor once: a socket at two passed
		// numbers is a copy the process made (Go's net.FileConn dups into
		// the lowest free number, seed 4275165520 on 252), and which of the
		// two it was passed is not known.
		atNumbers := map[uint64]int{}
		for _, p := range svc.Passed {
			if p.Inode != 0 {
				atNumbers[p.Inode]++
			}
		}
		for _, p := range svc.Passed {
			if p.Inode != 0 && !sockNames[p.Name] && atNumbers[p.Inode] > 1 {
				p.Inode, p.Kind, p.Detail = 0, "unknown", "not seen (the same socket is at another passed number: a copy the process made)"
			} else if p.Inode != 0 && !sockNames[p.Name] && (!prevStore[p.Inode] && !t.held[p.Inode] && !storeHas(now, p.Inode) || storeNamesOther(raw.FDStore, p.Name, p.Inode)) {
				// What the descriptor holds now was never in the store
				// nor the manager's hands: the process closed what it was
				// passed and the number was reused. What it was passed
				// there was not seen.
				p.Inode, p.Kind, p.Detail = 0, "unknown", "closed since, not seen"
			} else if p.Inode != 0 && !sockNames[p.Name] && len(prevNames[p.Inode]) > 0 && !slices.Contains(prevNames[p.Inode], p.Name) {
				// What it holds now was in the store under another name
				// (the manager keeps a descriptor once, under its first
				// name): another of the entries it was passed, moved to
				// this number (a dup into the lowest free one, after it
				// closed what it was passed here). Seed 1395449253 on
				// 252: "extra-…" said to be the connection passed as
				// "conn-1". What it was passed here was not seen.
				p.Inode, p.Kind, p.Detail = 0, "unknown", "not seen (the number holds the store's "+prevNames[p.Inode][0]+" now)"
			} else if p.Inode != 0 && !sockNames[p.Name] && t.acceptedSince(svc, p.Inode, prevStore) {
				// A connection accepted from the service's listeners that
				// neither the old process (the view before the job) nor
				// the store held: the new process accepted it on a number
				// it had closed (the manager may hold it by now: the
				// process stored it). What it was passed there was not
				// seen (systemd 252 lists no store to tell).
				p.Inode, p.Kind, p.Detail = 0, "unknown", "not seen (the number holds a connection accepted since)"
			}
			tr.emit(Event{Time: at, Unit: name, Type: EventFDPassed, PID: svc.MainPID, FD: p.FD, Name: p.Name, Inode: p.Inode, Kind: p.Kind, Detail: p.Detail})
		}
	}
}

// setMainPID records a main PID seen at time at.
func (tr *Tracker) setMainPID(name string, t *tracked, pid int, at time.Time) {
	if pid == t.mainPID {
		return
	}
	old := t.mainPID
	inJob := t.jobActive || t.awaitStart
	switch {
	case pid == 0 && old != 0 && !inJob && t.svc != nil:
		// Gone without a job (killed, crashed): the job that brings the
		// unit back is its handoff.
		svc, socks, _ := t.current()
		if svc.MainPID != old {
			svc = nil // no view of it: what it held was not seen
		}
		t.lost, t.autoRestart = &lostMain{pid: old, at: at, svc: svc, socks: socks}, false
	case pid != 0 && !inJob:
		t.lost, t.autoRestart = nil, false
	case inJob && old == t.beforePID && old != 0:
		// The old process ends: the store as last seen while it ran.
		if t.storeLast == 0 && t.storePeak > 0 {
			t.noDiscard = true
		}
	}
	t.mainPID = pid
	if pid == 0 {
		t.sawNoMain = true
		t.noMainSince = at
	} else if !t.noMainSince.IsZero() {
		t.noMainGap += max(at.Sub(t.noMainSince), 0)
		t.noMainSince = time.Time{}
	}
	tr.emit(Event{Time: at, Unit: name, Type: EventMainPID, PID: pid, PrevPID: old})
}

// signal processes one signal from the manager.
func (tr *Tracker) signal(now time.Time, e *Signal) {
	switch e.Kind {
	case SigJobNew:
		if e.JobType != "" {
			tr.jobTypes[e.ID] = e.JobType
		}
		tr.emit(Event{Time: now, Unit: e.Unit, Type: EventJobStarted, JobID: e.ID, Job: e.JobType})
		tr.acceptJobNew(now, e)
		name := tr.serviceOf(e.Unit)
		t := tr.units[name]
		if t == nil || t.svc == nil || t.jobActive {
			return
		}
		// A job that ended without a fresh view since is concluded on the
		// latest one: the new job must not inherit it.
		tr.concludeNow(name, now)
		if t.awaitStart && e.Unit != name {
			// A job on one of its socket units while the service is
			// stopped (stopped with it, or started before it) starts no
			// process of the service: the service's own start completes
			// the stop+start.
			return
		}
		t.jobActive, t.jobID, t.jobType, t.jobStart, t.jobStopped = true, e.ID, e.JobType, now, false
		if t.awaitStart {
			// The start of a stop+start: "before" is the view from
			// before the stop.
			t.awaitStart, t.stopDone = false, true
			return
		}
		t.stopDone = false
		t.before, t.beforeSocks, t.beforePID = t.current()
		t.beforeStalled, t.beforeHeld = t.stalled, t.held
		if len(t.lastGone) > 0 && t.before != nil && t.before.MainPID == t.beforePID && now.Sub(t.lastGoneAt) < recentGone {
			// The last view, a moment before the job, showed the process
			// without connections the one before had: the stop may have
			// begun before that view (its signals were queued behind it)
			// and closed them. They count as held before the job; which
			// end closed them first is asked of the kernel like any
			// other's (a client that hung up is not dropped).
			b := *t.before
			b.Connections = append(slices.Clone(b.Connections), t.lastGone...)
			t.before = &b
		}
		t.beforeStarting = startingView(t.before, t.activeState)
		t.storePeak = int(t.before.FDStoreCount)
		t.storeLast, t.noDiscard = -1, false
		t.noMainGap = 0
		t.pendingAlive = nil
		t.closed = nil
		t.sawNoMain = t.mainPID == 0
		t.jobLost, t.fromLost = false, false
		t.beforeStale = e.Stale
		if t.mainPID == 0 {
			t.noMainSince = now
			if l := t.lost; l != nil {
				// The main process went without a job (killed, crashed)
				// and this job brings the unit back (an automatic
				// restart): the handoff is from it, and the time without a
				// main process runs from its end.
				t.lost = nil
				t.beforePID, t.noMainSince, t.sawNoMain, t.fromLost = l.pid, l.at, true, true
				after := t.svc // the latest view: after the end, if it shows no main process
				if l.svc != nil {
					t.before, t.beforeSocks = l.svc, l.socks
				} else {
					b := *t.before
					b.MainPID = 0 // not a view of the old process
					t.before = &b
				}
				// What the store held when the process went was not seen
				// (it may have emptied it itself): only a view after says.
				t.storePeak = 0
				t.noDiscard = true
				if after.MainPID == 0 {
					t.storePeak = int(after.FDStoreCount)
					t.noDiscard = false
				}
			}
		}
	case SigJobRemoved:
		job := tr.jobTypes[e.ID]
		delete(tr.jobTypes, e.ID)
		name := tr.serviceOf(e.Unit)
		t := tr.units[name]
		if t != nil && t.jobActive && t.jobID == e.ID && name == e.Unit {
			// systemd turns a restart job into a start job once its stop
			// part is done, and a job can be gone before its type is
			// read: a job that took the running unit down and then
			// brought it up again was a restart.
			if (job == "" || job == "start") && (t.jobStopped || t.mainPID != 0 && t.mainPID != t.beforePID) && t.beforePID != 0 && !t.awaitStart && !t.stopDone && (!t.fromLost || t.autoRestart) {
				job = "restart"
			}
			t.jobType = job
		}
		job = tr.acceptJobRemoved(now, e, job)
		tr.emit(Event{Time: now, Unit: e.Unit, Type: EventJobFinished, JobID: e.ID, Job: job, Result: e.Result})
		if t == nil || !t.jobActive || t.jobID != e.ID {
			return
		}
		t.jobActive = false
		// Concluded at the next view of the service, which the loop takes
		// once the signals queued behind this one (the state changes the
		// manager sent with it) are in: the summary comes last.
		tr.finishing = append(tr.finishing, pendingFinish{name: name, result: e.Result})
	case SigUnitChanged:
		c := e.Changes
		if c == nil {
			return
		}
		if c.ActiveState != nil || c.SubState != nil {
			prev := tr.states[e.Unit]
			as, ss := prev[0], prev[1]
			if c.ActiveState != nil {
				as = *c.ActiveState
				if t := tr.units[e.Unit]; t != nil {
					t.activeState = as
					if t.jobActive && (as == "deactivating" || as == "inactive" || as == "failed") {
						t.jobStopped = true
					}
				}
			}
			if c.SubState != nil {
				ss = *c.SubState
				if t := tr.units[e.Unit]; t != nil && t.lost != nil && strings.HasPrefix(ss, "auto-restart") {
					t.autoRestart = true
				}
			}
			tr.acceptChanged(now, e.Unit, as, nil)
			if [2]string{as, ss} != prev {
				// The same change can come on two interfaces: say it once.
				tr.states[e.Unit] = [2]string{as, ss}
				tr.emit(Event{Time: now, Unit: e.Unit, Type: EventState, ActiveState: as, SubState: ss})
			}
		}
		if c.JobID != nil {
			tr.acceptChanged(now, e.Unit, "", c.JobID)
			if t := tr.units[e.Unit]; t != nil && t.jobActive && *c.JobID != t.jobID {
				// The unit has another job, or none, and the end of the one
				// followed never came (lost while the manager re-executed):
				// it ended meanwhile, with an unknown result.
				t.jobActive = false
				tr.finishing = append(tr.finishing, pendingFinish{name: e.Unit})
			}
		}
		if c.MainPID != nil {
			if t := tr.units[e.Unit]; t != nil && t.svc != nil {
				t.signalledPID = true
				tr.setMainPID(e.Unit, t, int(*c.MainPID), now)
			}
		}
		if c.NFileDescriptorStore != nil {
			tr.storeCount(e.Unit, int(*c.NFileDescriptorStore))
		}
	case SigCounters:
		if e.Counters != nil {
			tr.storeCount(e.Unit, int(e.Counters.NFileDescriptorStore))
		}
	case SigUnitNew:
		// A reload unloads and reloads every unit, and reading a unit
		// loads it for a moment: only socket units and services outside a
		// reload make the timeline; a reload is summarised when it ends.
		if !tr.reloading && relevant(e.Unit) {
			tr.emit(Event{Time: now, Unit: e.Unit, Type: EventUnitNew})
		}
	case SigUnitRemoved:
		if !tr.reloading && relevant(e.Unit) {
			tr.emit(Event{Time: now, Unit: e.Unit, Type: EventUnitRemoved})
			tr.acceptRemoved(e.Unit)
			// A service unloaded after its job (a stopped one systemd
			// collects) is in no view again: its finished job is
			// concluded on the latest view there is, rather than waiting
			// (and being read again at every interval) for ever.
			for _, p := range tr.finishing {
				if p.name == e.Unit {
					tr.concludeNow(e.Unit, now)
					break
				}
			}
		}
	case SigReloading:
		tr.reloading = e.Active
		if e.Active {
			tr.emit(Event{Time: now, Type: EventReloading, Phase: "started"})
			return
		}
		tr.reloadBefore = tr.knownUnits()
		tr.needFull = true
	case SigDisconnected:
		tr.emit(Event{Time: now, Type: EventDisconnected, Error: e.Error})
	case SigReconnected:
		tr.emit(Event{Time: now, Type: EventReconnected, Version: e.Version})
		for _, t := range tr.units {
			// Signals were lost with the connection (the manager
			// re-executed): the job's end may be among them.
			t.jobLost = t.jobLost || t.jobActive
		}
		tr.needFull = true
		tr.acceptLost()
	case SigOverflow:
		tr.emit(Event{Time: now, Type: EventDisconnected, Dropped: e.Dropped})
		tr.needFull = true
		tr.acceptLost()
	}
}

// settleLost ends a job whose end may have been lost with the connection
// to the manager (Tracker.jobLost) once a view shows the unit settled
// (not activating, deactivating or reloading): with an unknown result,
// the unit's state and main PID as the view shows them.
func (tr *Tracker) settleLost(name string, t *tracked, svc *Service, at time.Time) {
	if !t.jobActive || !t.jobLost {
		return
	}
	switch svc.ActiveState {
	case "active", "inactive", "failed":
	default:
		return
	}
	if t.activeState != svc.ActiveState {
		t.activeState = svc.ActiveState
		if st := [2]string{svc.ActiveState, svc.SubState}; tr.states[name] != st {
			tr.states[name] = st
			tr.emit(Event{Time: at, Unit: name, Type: EventState, ActiveState: svc.ActiveState, SubState: svc.SubState})
		}
	}
	if svc.MainPID != t.mainPID {
		tr.setMainPID(name, t, svc.MainPID, at)
	}
	t.jobActive, t.jobLost = false, false
	delete(tr.jobTypes, t.jobID)
	tr.emit(Event{Time: at, Unit: name, Type: EventJobFinished, JobID: t.jobID, Job: t.jobType})
	tr.finishing = append(tr.finishing, pendingFinish{name: name})
}

// storeCount notes a store size of a service in a job: the store's peak
// is what it held before the new process took its entries back.
func (tr *Tracker) storeCount(unit string, n int) {
	t := tr.units[tr.serviceOf(unit)]
	if t == nil || !(t.jobActive || t.awaitStart) {
		return
	}
	if n > t.storePeak {
		t.storePeak = n
	}
	if t.mainPID != 0 && t.mainPID == t.beforePID {
		t.storeLast = n
	}
}

// relevant reports whether a unit's loading and unloading belongs on the
// timeline: socket units and services.
func relevant(unit string) bool {
	return strings.HasSuffix(unit, ".socket") || strings.HasSuffix(unit, ".service")
}

// finishJob decides, from the signalled state, what a finished job did:
// a stop (no main process, unit down) waits for its start; a new main
// process after an old one is a handoff, summarised now; anything else
// (a reload, a failed or canceled job on a running process) is not.
func (tr *Tracker) finishJob(name string, t *tracked, result string, at time.Time, alive map[uint64]bool, aliveUnknown bool) {
	if t.before == nil || t.beforePID == 0 {
		t.before = nil
		return
	}
	if t.mainPID == 0 && jobFailed(result) {
		// The job failed (the start limit hit, a start that failed) and
		// left no main process: no handoff took place.
		tr.concludeFailed(name, t, result, at, alive, aliveUnknown)
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
	h := tr.summarise(t, at, alive, aliveUnknown)
	t.before, t.beforeSocks, t.stopDone = nil, nil, false
	job := t.jobType
	if (job == "" || job == "start") && h.HandoffJob == "restart" {
		// A start on a running unit does nothing: one that ended with
		// another main process took the unit down and up (systemd turns
		// a restart job into a start once its stop part is done).
		job = "restart"
	}
	tr.emit(Event{Time: at, Unit: name, Type: EventHandoff, Job: job, Result: result, Handoff: &h})
}

// summarise compares the service before the job with now; alive says which
// of the connections seen nowhere still exist (aliveUnknown: the kernel
// could not be asked, so those are unknown).
func (tr *Tracker) summarise(t *tracked, now time.Time, alive map[uint64]bool, aliveUnknown bool) Handoff {
	b := t.before
	a, socks, _ := t.current()
	h := Handoff{HandoffJob: "restart", OldPID: t.beforePID, NewPID: t.mainPID}
	if t.stopDone {
		h.HandoffJob = "stop+start"
	}
	if t.fromLost && (t.jobType == "start" || t.jobType == "") && !t.autoRestart && a.NRestarts <= b.NRestarts {
		// The process went by itself (killed, crashed) and a start
		// brought the unit back: no restart was asked for. A job whose
		// type was not read in time is one too: the manager restarted
		// nothing (no auto-restart state, NRestarts the same), and a
		// job on a unit already down only starts it.
		h.HandoffJob = "start"
	}
	// The view before the job may not show what the old process held: the
	// job began before any view of it (the view is of another process, or
	// of none: only its socket units' listeners, the manager's, count), or
	// the view had none of the service's listeners, so none of its
	// connections either (a connection is known by the listener it was
	// accepted from). What it did not show is unknown, never 0.
	seenOld := b.MainPID == t.beforePID
	// Listeners: by address, kept if the inode is the same.
	beforeL := listenerInodes(nil, t.beforeSocks)
	if seenOld {
		beforeL = listenerInodes(b, t.beforeSocks)
	}
	afterL := listenerInodes(a, socks)
	closedL := closedListeners(socks)
	blind := !seenOld || (len(beforeL) == 0 && len(afterL) > 0)
	if len(beforeL) == 0 && len(afterL) == 0 && (blind || t.beforeStarting || startingView(a, t.activeState)) {
		// Neither side seen listening, one seen only while its process
		// started (a service binds its own listener before it says it is
		// ready): "no listener" and "no connections" would be guesses.
		// The addresses earlier processes listened on are unknown.
		blind = true
		h.ListenersUnknown += len(t.knownListenAddrs())
	}
	addrs := make([]string, 0, len(beforeL))
	for addr := range beforeL {
		addrs = append(addrs, addr)
	}
	if blind {
		for addr := range afterL {
			if _, ok := beforeL[addr]; !ok {
				// Listened on after; whether it was before, and on the
				// same socket, was not seen.
				h.ListenersUnknown++
			}
		}
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
			ev := Event{Time: now, Unit: a.Unit, Type: EventListenerKept, Inode: ino, Detail: addr}
			if name, ok := storedListener(ino, a, b, t.beforeSocks, socks); ok {
				h.ListenersFromStore = append(h.ListenersFromStore, name)
				ev.Name, ev.Via = name, "fdstore"
			}
			tr.emit(ev)
		case ino != 0 && after == 0 && closedL[addr]:
			// Its socket unit is down after (failed or stopped): the
			// manager closed the listener.
			h.ListenersClosed++
		case ino == 0 || after == 0:
			// Not seen on one side (the manager not readable, or the
			// listener not found then): neither kept nor replaced.
			h.ListenersUnknown++
		default:
			h.ListenersReplaced++
			tr.emit(Event{Time: now, Unit: a.Unit, Type: EventListenerReplaced, Inode: after, PrevInode: ino, Detail: addr})
		}
	}
	h.ConnectionsUnknown = b.ConnectionsUnknown || a.ConnectionsUnknown || blind || t.beforeStale
	// Connections: preserved if the same socket lives on.
	afterC := map[uint64]Connection{}
	for _, c := range a.Connections {
		afterC[c.Inode] = c
	}
	reported := 0
	var beforeC []Connection
	if seenOld {
		beforeC = b.Connections
	}
	// The view the job is concluded on is not of the new main process (a
	// queued job began before a view of it, and the latest view still
	// showed the old one, going): what that view shows the old process
	// holding is in flight, neither preserved nor dropped.
	notNew := a.MainPID != t.mainPID
	for _, c := range beforeC {
		if notNew && !t.held[c.Inode] && !alive[c.Inode] {
			h.ConnectionsUnknown = true
			continue
		}
		if tr.isOwn(c) {
			// A probe of the gap meter's, seen before its address was
			// known: fdtop's own, not the service's.
			continue
		}
		ac, ok := afterC[c.Inode]
		gone := !ok && !t.held[c.Inode] && !alive[c.Inode]
		closer := t.closed[c.Inode]
		if gone && closer == "" && (c.State == "CLOSE-WAIT" || c.State == "LAST-ACK") {
			// Its client had hung up already when the last view was
			// taken (nothing is left of it now: the service's close
			// reset it): closed by the client, not dropped.
			closer = ClosedByClient
		}
		if gone && closer == "" && t.beforeStalled[c.Inode] {
			// Nothing is left of it, and the service had left what its
			// client sent unread for an interval or more before the job:
			// a client that gave up waiting and hung up, and one the
			// service's exit reset, leave the same nothing behind (the
			// unread data makes the close a reset either way). Not said
			// dropped.
			h.ConnectionsUnknown = true
			continue
		}
		if gone && closer == ClosedByClient {
			// Gone, and the kernel says its client's end closed first
			// (maybe before the job began: the view before the job can be
			// an interval old): not dropped.
			h.ConnectionsClosed++
			if reported < 20 {
				reported++
				tr.emit(Event{Time: now, Unit: a.Unit, Type: EventConnectionClosed, Inode: c.Inode, Detail: c.Remote, PrevPID: c.PID, PrevFD: c.FD, Via: ClosedByClient})
			}
			continue
		}
		if !ok && !t.held[c.Inode] && !alive[c.Inode] && aliveUnknown {
			// Seen nowhere, but whether it still exists was not
			// learned: not said dropped.
			h.ConnectionsUnknown = true
			continue
		}
		// A connection the manager holds is alive in the store (a next
		// restart may already have handed it over again).
		if ok || t.held[c.Inode] || alive[c.Inode] {
			h.ConnectionsPreserved++
		} else {
			h.ConnectionsDropped++
		}
		if reported >= 20 {
			continue
		}
		reported++
		ev := Event{Time: now, Unit: a.Unit, Type: EventConnectionPreserved, Inode: c.Inode, Detail: c.Remote, PrevPID: c.PID, PrevFD: c.FD}
		switch {
		case ok:
			ev.PID, ev.FD, ev.Via = ac.PID, ac.FD, "process"
		case t.held[c.Inode]:
			ev.Via = "fdstore"
		case alive[c.Inode]:
			ev.Via = "open"
		default:
			ev.Type = EventConnectionDropped
			ev.PID, ev.FD, ev.PrevPID, ev.PrevFD = c.PID, c.FD, 0, 0
		}
		tr.emit(ev)
	}
	if h.ConnectionsDropped > 0 && (len(beforeL) > 0 || len(b.OwnListeners) > 0) {
		// The old process dropped connections and could accept more from
		// its listeners until it exited (clients reconnecting at once):
		// those no view showed are not counted.
		h.ConnectionsDroppedAtLeast = true
	}
	if seenOld && len(beforeC) == 0 {
		for _, p := range b.Passed {
			if p.Inode == 0 && !slices.ContainsFunc(t.beforeSocks, func(su SocketUnit) bool { return su.Unit == p.Name || su.FileDescriptorName == p.Name }) {
				// The only view of the old process is one taken as it
				// closed what it was passed from the store (stopping, the
				// manager still saying active): "no connections" would
				// be a guess.
				h.ConnectionsUnknown = true
				break
			}
		}
	}
	// The store.
	h.FDStoreBefore = max(t.storePeak, int(b.FDStoreCount))
	if t.fromLost && !t.noDiscard {
		// The process went by itself: what the store held when it went
		// is what a view after showed (storePeak), not what an earlier
		// view did; the process may have taken entries out since
		// (FDSTOREREMOVE), and a kill leaves it no way to put them back.
		h.FDStoreBefore = t.storePeak
	}
	h.FDStoreAfter = int(a.FDStoreCount)
	sockNames := map[string]bool{}
	for _, su := range socks {
		sockNames[su.Unit] = true
		if su.FileDescriptorName != "" {
			sockNames[su.FileDescriptorName] = true
		}
	}
	if a.MainPID != t.mainPID {
		// No view of the new process: what it was passed was not seen.
		h.FDsCarriedUnknown = true
	} else {
		for _, p := range a.Passed {
			if !sockNames[p.Name] {
				h.FDsCarried++
			}
		}
		h.FDsCarriedUnknown = a.PassedUnknown
	}
	// A store seen emptied before the new process (the old one removed its
	// entries itself, FDSTOREREMOVE) was not discarded by anyone.
	h.StoreDiscarded = h.FDStoreBefore > 0 && h.FDsCarried == 0 && !h.FDsCarriedUnknown && !t.noDiscard
	if t.stopDone && b.FDStoreMax > 0 && b.FDStorePreserve != "yes" && h.FDsCarried == 0 && !t.noDiscard {
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
	if !t.sawNoMain && h.OldPID != 0 && h.NewPID != h.OldPID {
		// A new main process means the old one ended first, but no
		// signal showed the unit without one: the gap was not seen.
		h.NoMainPIDMs, h.NoMainPIDUnknown = 0, true
	}
	h.DurationMs = max(now.Sub(t.jobStart), 0).Milliseconds()
	// Refused connections counted by the manager.
	for _, sa := range socks {
		for _, sb := range t.beforeSocks {
			if sa.Unit == sb.Unit && sa.NRefused >= sb.NRefused {
				h.RefusedDelta += int(sa.NRefused - sb.NRefused)
			}
		}
	}
	return h
}

// storedListener reports that the listener ino survived through the fd
// store, and the entry's name: it is no socket unit's, and the new process
// was passed it under a name (LISTEN_FDNAMES), or a store entry is it.
func storedListener(ino uint64, after, before *Service, socks ...[]SocketUnit) (string, bool) {
	names := map[string]bool{}
	for _, ss := range socks {
		for _, su := range ss {
			for _, l := range su.Listeners {
				if l.Inode == ino {
					return "", false // a socket unit's listener
				}
			}
			names[su.Unit] = true
			if su.FileDescriptorName != "" {
				names[su.FileDescriptorName] = true
			}
		}
	}
	for _, p := range after.Passed {
		if p.Inode == ino && p.Name != "" && !names[p.Name] {
			return p.Name, true
		}
	}
	for _, svc := range []*Service{after, before} {
		for _, e := range svc.FDStore {
			if e.Inode == ino {
				return e.Name, true
			}
		}
	}
	return "", false
}

// exiting reports that cur is a view of the same main process as prev
// taken while it shuts down: the unit is deactivating, or the process no
// longer holds the descriptors it was passed, or its own listener, which a
// running process keeps for its life, or it has handed connections it held
// to the manager (held: what the manager held in cur's view), which a
// process does as it stops, maybe before the manager's state says so.
func exiting(prev, cur *Service, held map[uint64]bool) bool {
	if prev == nil || cur.MainPID == 0 || cur.MainPID != prev.MainPID {
		return false
	}
	return cur.ActiveState == "deactivating" || storedConnections(prev, cur, held) ||
		// While it starts, a process is taking its descriptors back from
		// the store: a view then can miss connections it holds a moment
		// later (seen on 254 under back-to-back restarts).
		(cur.ActiveState == "activating" && len(cur.Connections) < len(prev.Connections)) ||
		(len(prev.Passed) > 0 && len(cur.Passed) == 0) ||
		(len(prev.OwnListeners) > 0 && len(cur.OwnListeners) == 0)
}

// storedConnections reports that a connection prev showed in the process
// is in the manager's hands (held) and no longer in cur.
func storedConnections(prev, cur *Service, held map[uint64]bool) bool {
	if len(held) == 0 {
		return false
	}
	now := map[uint64]bool{}
	for _, c := range cur.Connections {
		now[c.Inode] = true
	}
	for _, c := range prev.Connections {
		if !now[c.Inode] && held[c.Inode] {
			return true
		}
	}
	return false
}

// keepHeld is a view of an exiting process (cur) with what it held in the
// last view that showed it (prev): its connections, own listeners, passed
// descriptors and the store as it was then. The unit's state stays cur's.
func keepHeld(prev, cur *Service) *Service {
	m := *mergeBefore(prev, cur)
	m.Passed = prev.Passed
	m.FDStore, m.FDStoreCount = prev.FDStore, prev.FDStoreCount
	return &m
}

// pidView is the latest view of one main process.
type pidView struct {
	svc   *Service
	socks []SocketUnit
}

// maxPIDViews bounds tracked.byPID.
const maxPIDViews = 4

// remember keeps a view as the latest of its main process.
func (t *tracked) remember(svc *Service, socks []SocketUnit) {
	if svc.MainPID == 0 {
		return
	}
	for i := range t.byPID {
		if t.byPID[i].svc.MainPID == svc.MainPID {
			t.byPID = append(t.byPID[:i], t.byPID[i+1:]...)
			break
		}
	}
	t.byPID = append(t.byPID, pidView{svc, socks})
	if len(t.byPID) > maxPIDViews {
		t.byPID = t.byPID[1:]
	}
}

// current is the latest view of the main process the signals name, its
// sockets and its PID; the latest view of any when none showed it.
func (t *tracked) current() (*Service, []SocketUnit, int) {
	for _, v := range t.byPID {
		if v.svc.MainPID == t.mainPID {
			return v.svc, v.socks, t.mainPID
		}
	}
	return t.svc, t.sockets, t.mainPID
}

// concludeNow concludes a finished job of a service that still waits for a
// view, on the latest view there is.
func (tr *Tracker) concludeNow(name string, at time.Time) {
	rest := tr.finishing[:0:0]
	for _, p := range tr.finishing {
		if p.name != name {
			rest = append(rest, p)
			continue
		}
		if t := tr.units[name]; t != nil {
			// No fresh view: a connection of the old process that the
			// latest view shows neither in a process nor in the manager
			// may be in flight between them (a process storing its
			// connections as it stops again): unknown, not dropped,
			// unless the kernel said it still existed.
			tr.finishJob(name, t, p.result, at, t.pendingAlive, true)
		}
	}
	tr.finishing = rest
}

// preExec reports that a view shows the main process as systemd's forked
// child that has not exec'd the service yet: systemd names it "(name)",
// and before that its argument vector is the manager's (the join marks
// both).
func preExec(svc *Service) bool {
	for _, p := range svc.Processes {
		if p.PID == svc.MainPID {
			return p.PreExec || strings.HasPrefix(p.Comm, "(") && strings.HasSuffix(p.Comm, ")")
		}
	}
	return false
}

// gone reports that a view names a main process it did not find, or found
// exiting: it went between the manager's answer and the scan (the unit's
// processes listed without it, nothing of it seen at all, or no passed
// descriptors where the manager passes some).
func gone(svc *Service) bool {
	if svc.MainPID == 0 {
		return false
	}
	if len(svc.Sockets) > 0 && !svc.PassedUnknown {
		// A service with socket units is always passed their listeners
		// and keeps them open: an empty environment, or every passed fd
		// closed, is a process already exiting.
		open := 0
		for _, p := range svc.Passed {
			if p.Inode != 0 {
				open++
			}
		}
		if open == 0 {
			return true
		}
	}
	if len(svc.Processes) == 0 {
		return len(svc.Passed) == 0 && len(svc.Connections) == 0 && len(svc.OwnListeners) == 0
	}
	for _, p := range svc.Processes {
		if p.PID == svc.MainPID {
			return false
		}
	}
	return true
}

// storeHas reports that a store (by storeKey) has an entry of inode.
// acceptedSince reports that inode is one of svc's connections that
// nothing before the job had: not the old process (t.before), not the
// store (prevStore), not the manager at the job's start.
func (t *tracked) acceptedSince(svc *Service, inode uint64, prevStore map[uint64]bool) bool {
	if t.before == nil || t.beforeHeld == nil || prevStore[inode] || t.beforeHeld[inode] {
		return false
	}
	if slices.ContainsFunc(t.before.Connections, func(c Connection) bool { return c.Inode == inode }) {
		return false
	}
	return slices.ContainsFunc(svc.Connections, func(c Connection) bool { return c.Inode == inode })
}

// storeNamesOther reports that the manager's own listing of the store
// (254 and later; not inferred) has entries named name and none of them is
// inode: a process passed that entry under its name holds something else
// at that number now (it closed what it was passed; the number was reused
// for a connection it accepted, one the manager may hold too).
func storeNamesOther(store []StoreEntry, name string, inode uint64) bool {
	named := false
	for _, e := range store {
		if e.Inferred || e.NameUnknown || e.Name != name {
			continue
		}
		if e.Inode == inode {
			return false
		}
		named = true
	}
	return named
}

func storeHas(store map[uint64]StoreEntry, inode uint64) bool {
	for _, e := range store {
		if e.Inode == inode {
			return true
		}
	}
	return false
}
