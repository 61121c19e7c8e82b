package inspect

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/procfs"
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

// Watcher is the I/O loop around a Tracker: it feeds it the manager's
// signals and the snapshots it asks for, and sends the events it makes.
type Watcher struct {
	// Snapshots takes the snapshots.
	Snapshots Snapshotter
	// Events is the subscription to the manager's signals.
	Events EventSource
	// Interval is how often the loop catches up with what changed (default
	// 2 s): the units the manager's signals named since are read again, and
	// /proc is read again where a process's descriptor count moved. Nothing
	// reads every unit on a timer: every unit is read at the start, on a
	// person's Rescan, after a reload or reconnection, and when a signal
	// names a socket or service the picture does not hold.
	Interval time.Duration
	// FullEvery is how many intervals pass between host-wide passes over
	// /proc (holders outside the units; the units are not read from the
	// manager for it); default 10, 0 keeps the default, negative never.
	FullEvery int
	// FastInterval is the rescan of a unit while a job runs on it
	// (default 15 ms), so short-lived steps are seen.
	FastInterval time.Duration
	// Alive, if set, reports which of the given socket inodes still exist
	// in the kernel. A handoff's connections that no snapshot shows in the
	// new process or the manager are checked with it before they count as
	// dropped (a scan is not atomic across processes: a connection moving
	// from a process to the manager can slip between two reads). It
	// returns nil when the kernel could not be asked: those connections
	// are then unknown, never dropped.
	Alive func(ctx context.Context, inodes []uint64) map[uint64]bool
	// ConnEnds, if set, looks up what the kernel still holds of TCP
	// connections by their addresses (procfs.FS.TCPConnEnds): a connection
	// of a handoff that is gone and whose client's end closed first (maybe
	// just before the job: the view before it can be an interval old) is
	// closed by its client, not dropped.
	ConnEnds func(ctx context.Context, conns []procfs.TCPConn) ([]procfs.ConnEnds, error)
	// FDCount, if set, gives a process's open descriptor count cheaply
	// (procfs.FS.FDCount): /proc is read again at an interval only when
	// a count moved (or for the host-wide pass), so an idle watch costs
	// next to nothing. Without it, /proc is read at every interval.
	FDCount func(pid int) (n int, ok bool, err error)
	// SocketInode, if set, gives the socket inode a process's descriptor
	// refers to now (procfs.FS.SocketInode). With FDCount, the picture's
	// connections are checked with it at each interval: a connection
	// closed while another opened (a count that did not move: a client
	// gone, another come) has /proc read again, so the picture, and the
	// "before" of a handoff, never keep a connection closed since.
	SocketInode func(pid, fd int) (uint64, error)
	// OnSnapshot, if set, is called with every full-picture snapshot.
	OnSnapshot func(*Snapshot)
	// UnitsFirst, if set (with OnSnapshot, and host-wide passes:
	// FullEvery not negative), has Run first take a view of every unit
	// that reads only the manager's and the units' processes and give it
	// to OnSnapshot marked still filling (MarkFilling), before its first
	// host-wide pass: on a host with a million descriptors the units are
	// on screen in a second, not after the pass over every process. The
	// tracker is not given that view: the "before" of a handoff is never
	// one that did not look outside the units.
	UnitsFirst bool
	// OnView, if set, is called with every snapshot limited to units (the
	// rescans of services in a job), so a picture can follow them.
	OnView func(units []string, snap *Snapshot)
	// Rescan, if set, asks for a full host rescan now (a person's ctrl+r).
	Rescan <-chan struct{}
	// SocketInodes, if set, lists the sockets a process holds now: a unit
	// whose descriptor count moved since its last view is on a stale view
	// at a job's start only if it holds a socket that view did not show
	// (not for a file, pipe or memfd opened or closed meanwhile).
	SocketInodes func(pid int) (map[uint64]bool, error)
	// NotConnections, if set, says which of these sockets cannot be a
	// connection the job's end drops: a datagram socket or a listener, or
	// one the kernel no longer has although its process lives on (sd_notify
	// opens and closes one for each message). Such a new socket does not
	// make a view stale.
	NotConnections func(ctx context.Context, inodes []uint64) (map[uint64]bool, error)
	// TCPAt and TCPAborts, if both set, list what the kernel holds of the
	// TCP sockets at some local addresses, in every state
	// (procfs.FS.TCPAt), and count connections reset as they were closed
	// (procfs.FS.TCPAborts). Each view of a service with TCP listeners
	// only notes them first; a service whose old process is gone (or
	// ending) when its job is seen is then still on a good view if the
	// kernel shows no socket at those listeners that it did not show
	// then, and no reset since: a connection accepted after the view and
	// dropped as the process ended would have left either.
	TCPAt     func(ctx context.Context, locals []netip.AddrPort) ([]procfs.Socket, error)
	TCPAborts func() (uint64, error)
	// Fresh, if set, takes requests to read units now: fdtop's own action
	// (a restart from the dashboard or a rollout) asks before it starts
	// its job, so the view the handoff is measured from was taken before
	// the job was asked for, not an interval earlier (a service whose
	// descriptors moved since would have its connections unknown).
	Fresh <-chan FreshRequest
	// Trace, if set, is given every input of the tracker, in order: a
	// recording of it replays through Tracker.Step.
	Trace func(Step)
	// Probe, if set, says whether to run the gap meter on a service whose
	// job just started (on its loopback TCP listeners, until its handoff
	// is summarised); the result goes into the handoff's summary.
	Probe func(service string) bool
	// Shows, if set, says whether a socket unit or service the picture
	// does not hold belongs on the timeline by its name (Builder.Names).
	// Events of the units the picture holds and the manager's own events
	// are always sent; those of other kinds of units (mounts, targets,
	// timers, slices) never: fdtop shows sockets and services, and on a
	// real host the others would bury them. nil sends every socket unit's
	// and service's events.
	Shows func(unit string) bool
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// loop is the watcher's state, owned by Run's goroutine: the tracker and
// what the I/O around it needs.
type loop struct {
	w   *Watcher
	ctx context.Context
	out chan<- Event
	tr  *Tracker

	probes map[string]*probeRun // gap meter runs, by service
	ownMu  sync.Mutex
	own    map[string]time.Time // the gap meter's local addresses, when each connected

	pending   map[string]bool         // units the signals named since they were last read
	needLoad  bool                    // read every unit: a signal named one the picture lacks, or some were lost
	known     map[string]bool         // the socket units and services of the picture
	related   map[string][]string     // each socket unit's service and each service's socket units, as last read
	fdCounts  map[int]int             // descriptor counts of the picture's processes when last read (nil: unknown)
	sockSets  map[int]map[uint64]bool // sockets of the services' processes when last read (Watcher.SocketInodes)
	freshAt   map[string]time.Time    // when an action of fdtop's own had a unit read (Watcher.Fresh)
	held      map[string][]heldConn   // the connections of each service when last read (see Watcher.SocketInode)
	pidUnit   map[int]string          // the unit of each of those processes ("" for the manager)
	stores    []string                // the services with an fd store
	scopeNew  bool                    // a scope appeared (a login) since the last host-wide pass
	lastJob   time.Time               // when a job was last seen (signalled, or under way at an interval)
	interval  time.Duration
	fast      time.Duration
	hotRead   map[string]time.Time        // when each service in a job was last read by the fast rescan
	moved     map[string]bool             // services whose descriptor counts moved since they were last read
	tcpListen map[string][]netip.AddrPort // the TCP listen addresses of each service whose listeners are all TCP
	tcpMarks  map[string]tcpMark          // what the kernel held at those addresses before each service's last view
	counts    *bool                       // whether the kernel gives descriptor counts (kernelCounts), once asked
	pre       map[int]int                 // descriptor counts read just before the view being taken (preCount)
	preSocks  map[int]map[uint64]bool     // and the sockets listed then
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
	st := &loop{w: w, ctx: ctx, out: out, tr: NewTracker(), probes: map[string]*probeRun{}, pending: map[string]bool{}, interval: interval, fast: fast, hotRead: map[string]time.Time{}}
	defer st.stopProbes()
	if w.UnitsFirst && fullEvery > 0 && w.OnSnapshot != nil {
		st.unitsFirst()
	}
	if err := st.refresh(nil, true, false); err != nil {
		return err
	}
	if len(st.tcpListen) > 0 {
		// The first view learned the services' TCP listen addresses; a
		// view of those services now marks what the kernel holds there
		// (markTCP), so a job right after the start is judged as well as
		// any later one.
		_ = st.refresh(slices.Sorted(maps.Keys(st.tcpListen)), false, false)
	}
	// The counters of the units in a handoff that can move are polled every
	// fast interval. (Polling those only waiting for their start at the
	// interval instead restarted the poll at every job and cost true
	// verdicts in TestBackToBackVerdicts on 254.)
	watchList := func() []string { return CountersMove(st.tr.Last(), st.tr.WatchList()) }
	watched := watchList()
	w.Events.Watch(watched, fast)

	slow := time.NewTicker(interval)
	defer slow.Stop()
	// The fast ticker runs only while a job does: an idle loop sleeps
	// until a signal or the interval.
	fastT := time.NewTicker(fast)
	defer fastT.Stop()
	fastT.Stop()
	var fastC <-chan time.Time
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
			st.signal(ev)
			if len(st.tr.Finishing()) > 0 {
				st.drain(events)
				st.finish()
			}
			if st.tr.NeedsFull() {
				_ = st.refresh(nil, false, false)
			}
		case <-slow.C:
			// Signals first: a view is never older than the signals handled.
			st.drain(events)
			st.finish()
			rescans++
			// A new scope (a login's session-N.scope) may hold connections
			// accepted from the units' listeners: only a host-wide pass
			// finds them outside the units.
			if err := st.catchUp(fullEvery > 0 && rescans%fullEvery == 0 || st.scopeNew); err != nil {
				if ctx.Err() != nil {
					return nil // cut short by the end of the watch, not a disconnection
				}
				if errors.Is(err, dbusclient.ErrNotConnected) {
					continue // the subscription's Disconnected records the loss once
				}
				st.emit([]Event{{Type: EventDisconnected, Phase: "rescan", Error: err.Error()}})
			}
		case r := <-w.Fresh:
			st.drain(events)
			st.finish()
			if err := st.refresh(r.Units, false, false); err != nil && ctx.Err() == nil {
				st.emit([]Event{{Type: EventDisconnected, Phase: "rescan", Error: err.Error()}})
			} else {
				if st.freshAt == nil {
					st.freshAt = map[string]time.Time{}
				}
				for _, u := range st.withRelated(r.Units) {
					st.freshAt[u] = st.w.now()
				}
			}
			close(r.Done)
		case <-w.Rescan:
			st.drain(events)
			st.finish()
			if err := st.refresh(nil, true, false); err != nil && ctx.Err() == nil {
				st.emit([]Event{{Type: EventDisconnected, Phase: "rescan", Error: err.Error()}})
			}
		case <-fastC:
			if len(st.tr.Hot()) == 0 {
				break
			}
			st.drain(events)
			st.finish()
			if hot := st.hotDue(); len(hot) > 0 {
				_ = st.refresh(hot, false, false)
			}
		}
		switch hot := len(st.tr.Hot()) > 0; {
		case hot && fastC == nil:
			fastT.Reset(fast)
			fastC = fastT.C
		case !hot && fastC != nil:
			fastT.Stop()
			fastC = nil
		}
		if list := watchList(); !slices.Equal(list, watched) {
			// Only on change: a new watch list reports every counter anew.
			watched = list
			w.Events.Watch(watched, fast)
		}
	}
}

// hotPeriod is how often a service in a job is read by the fast rescan: at
// every fast interval at first, then less often as the job lasts (a
// twentieth of its age, at most the interval), so a job that runs long,
// or whose end was never signalled, does not cost a core.
func (st *loop) hotPeriod(age time.Duration) time.Duration {
	return min(max(st.fast, age/20), max(st.interval, st.fast))
}

// hotDue lists the services in a job whose fast rescan is due, and notes
// them read.
func (st *loop) hotDue() []string {
	hot := st.tr.Hot()
	now := st.w.now()
	var due []string
	for _, name := range hot {
		age := now.Sub(st.tr.HotSince(name))
		if last, ok := st.hotRead[name]; ok && now.Sub(last)+st.fast/2 < st.hotPeriod(age) {
			continue
		}
		due = append(due, name)
	}
	for name := range st.hotRead {
		if !slices.Contains(hot, name) {
			delete(st.hotRead, name)
		}
	}
	for _, name := range due {
		st.hotRead[name] = now
	}
	return due
}

// signal feeds one manager signal to the tracker, stamped with when it
// arrived.
func (st *loop) signal(ev dbusclient.Event) {
	at := time.Time{}
	switch e := ev.(type) {
	case dbusclient.UnitChanged:
		at = e.At
	case dbusclient.JobNew:
		at = e.At
	case dbusclient.JobRemoved:
		at = e.At
	}
	if at.IsZero() {
		at = st.w.now()
	}
	st.note(ev)
	if sig := SignalOf(ev); sig != nil {
		if sig.Kind == SigJobNew {
			sig.Stale = st.stale(sig.Unit)
		}
		st.step(Step{At: at, Signal: sig})
	}
}

// stale reports that what the picture shows of a unit's processes may be
// short as a job on it begins: their descriptor counts moved since it was
// read, or a process is gone (whether they had moved before is not
// known). Without Watcher.FDCount nothing is known either way: false.
func (st *loop) stale(unit string) bool {
	if st.w.FDCount == nil || st.fdCounts == nil || !st.known[unit] {
		return false
	}
	moved := st.moved[unit]
	var pids []int
	var quiet *bool // st.quietTCP, asked once
	for pid, n := range st.fdCounts {
		if st.pidUnit[pid] != unit {
			continue
		}
		m, ok, err := st.w.FDCount(pid)
		switch {
		case err != nil || !ok:
			// Gone since, or ending (an exiting process has no descriptor
			// table left for the kernel to count; the old main process of
			// a restart often is by now), or the kernel does not say: what
			// it accepted after its last view and dropped as it ended was
			// not seen, unless that view was the one an action of fdtop's
			// own took just before asking for the job.
			if at, ok := st.freshAt[unit]; ok && st.w.now().Sub(at) < freshJob {
				continue
			}
			if quiet == nil {
				q := st.quietTCP(unit)
				quiet = &q
			}
			if *quiet {
				continue
			}
			return true
		case m != n:
			moved = true
		}
		pids = append(pids, pid)
	}
	if !moved {
		return false
	}
	return st.newSockets(pids)
}

// newSockets reports whether any of pids holds a socket it did not hold
// when last read (true where that cannot be told): the descriptors that
// moved the count are then perhaps connections no view showed.
func (st *loop) newSockets(pids []int) bool {
	if st.w.SocketInodes == nil || len(pids) == 0 {
		return true
	}
	var fresh []uint64
	for _, pid := range pids {
		was, ok := st.sockSets[pid]
		if !ok {
			return true
		}
		now, err := st.w.SocketInodes(pid)
		if err != nil {
			return true // gone or not readable: not known to be unchanged
		}
		for ino := range now {
			if !was[ino] {
				fresh = append(fresh, ino)
			}
		}
	}
	if len(fresh) == 0 {
		return false
	}
	if st.w.NotConnections == nil {
		return true
	}
	not, err := st.w.NotConnections(st.ctx, fresh)
	if err != nil {
		return true
	}
	for _, ino := range fresh {
		if !not[ino] {
			return true
		}
	}
	return false
}

// note records what a signal says must be read again at the next
// interval: the unit it names, or every unit when the picture lacks it (a
// socket or service loaded, started or changed that the last read did not
// include: whether it belongs in the picture is the Builder's call) or
// signals were lost.
func (st *loop) note(ev dbusclient.Event) {
	unit, lacking := "", false
	switch e := ev.(type) {
	case dbusclient.UnitChanged:
		unit, lacking = e.Unit, true
	case dbusclient.CountersChanged:
		unit = e.Unit
	case dbusclient.UnitNew:
		if strings.HasSuffix(e.Unit, ".scope") {
			st.scopeNew = true
		}
		unit, lacking = e.Unit, true
	case dbusclient.UnitRemoved:
		unit = e.Unit // one the picture lacks is no loss to it
	case dbusclient.JobNew:
		unit, lacking = e.Unit, true
		st.lastJob = st.w.now()
	case dbusclient.JobRemoved:
		unit, lacking = e.Unit, true
		st.lastJob = st.w.now()
	case dbusclient.Overflow, dbusclient.Reconnected:
		st.needLoad = true
		return
	default:
		return
	}
	if !strings.HasSuffix(unit, ".socket") && !strings.HasSuffix(unit, ".service") {
		return // fdtop shows no other kind of unit
	}
	switch {
	case st.known[unit]:
		st.pending[unit] = true
	case lacking:
		st.needLoad = true
	}
}

// catchUp reads again what changed since the last interval: every unit
// when a signal named one the picture lacks (or signals were lost), the
// units the signals named, and /proc (with the units as last read) where
// a watched process's descriptor count moved, or host-wide when host.
func (st *loop) catchUp(host bool) error {
	moved := st.countsMoved()
	if !moved {
		moved = st.connsMoved()
	}
	if st.needLoad || st.tr.NeedsFull() {
		return st.refresh(nil, host, false)
	}
	if len(st.pending) > 0 {
		units := slices.Sorted(maps.Keys(st.pending))
		if err := st.refresh(units, false, false); err != nil {
			return err
		}
	}
	now := st.w.now()
	if len(st.tr.Busy()) > 0 {
		st.lastJob = now
	}
	if (host || moved) && now.Sub(st.lastJob) >= st.interval {
		// Not while jobs come and go, nor for an interval after: the
		// units as last read may lag their signals (a new main PID), or
		// show a main process already handing its connections to the
		// store for the next job, and the tracker would take that for the
		// service before its job. The counts stay moved until then.
		return st.refresh(nil, host, true)
	}
	return nil
}

func (st *loop) step(s Step) {
	if st.w.Trace != nil {
		st.w.Trace(s)
	}
	evs := st.tr.Step(s)
	for i := range evs {
		if evs[i].Type == EventHandoff && evs[i].Handoff != nil {
			st.attachProbe(&evs[i])
		}
	}
	st.emit(evs)
	if st.w.Probe != nil {
		st.startProbes()
	}
}

// freshJob is how soon after a view asked for through Watcher.Fresh the
// job it was asked before must start for that view to count as the one
// just before the job.
const freshJob = 3 * time.Second

// FreshRequest asks a Watcher to read Units (with their socket units or
// service) now; Done is closed when the view is taken (or failed).
type FreshRequest struct {
	Units []string
	Done  chan<- struct{}
}

// probeRun is a gap meter run on one service.
type probeRun struct {
	cancel  context.CancelFunc
	done    chan struct{}
	result  ProbeResult
	settled chan struct{} // closed when its job ended (Accept=yes only; nil otherwise)
}

// startProbes starts the gap meter on services whose job just started,
// and stops it on those no longer in one.
func (st *loop) startProbes() {
	busy := st.tr.Busy()
	finishing := st.tr.Finishing()
	for name, p := range st.probes {
		if !slices.Contains(busy, name) {
			p.cancel()
			<-p.done
			delete(st.probes, name)
			continue
		}
		if p.settled != nil && !isClosed(p.settled) && slices.Contains(finishing, name) {
			close(p.settled)
		}
	}
	for _, name := range busy {
		if st.probes[name] != nil || !st.w.Probe(name) {
			continue
		}
		targets := st.tr.ProbeTargets(name)
		if len(targets) == 0 {
			continue
		}
		ctx, cancel := context.WithCancel(st.ctx)
		p := &probeRun{cancel: cancel, done: make(chan struct{})}
		st.probes[name] = p
		cfg := ProbeConfig{Every: 10 * time.Millisecond, Max: 2 * time.Minute, OnConnect: st.probed}
		if st.tr.IsAccept(name) {
			// Every connect to an Accept=yes socket spawns an instance:
			// fewer of them, far below its trigger limit (by default 200
			// in 2 s) and MaxConnections= (64); none once the job has
			// ended and the listener answered (a verdict that waits for
			// a view must not keep spawning them: the oracle's seed
			// 2808938044 saw over 1,200 in two minutes, and a view of
			// the socket that took 105 s behind them); at most acceptProbeMax.
			p.settled = make(chan struct{})
			cfg.Every, cfg.Max, cfg.Settled = acceptProbeEvery, acceptProbeMax, p.settled
		}
		go func() {
			defer close(p.done)
			p.result = Probe(ctx, targets, cfg)
		}()
	}
}

// acceptProbeEvery is the gap meter's pause between connects to an
// Accept=yes socket unit.
const acceptProbeEvery = 50 * time.Millisecond

// acceptProbeMax bounds the gap meter's run on an Accept=yes socket unit.
const acceptProbeMax = 30 * time.Second

// ownKeep is how long the gap meter's addresses are remembered: longer
// than a connection it made can wait, unread, in a service (or in the
// listener's queue for the next process).
const ownKeep = 5 * time.Minute

// probed records the local address of a connection the gap meter made.
func (st *loop) probed(local netip.AddrPort) {
	st.ownMu.Lock()
	defer st.ownMu.Unlock()
	if st.own == nil {
		st.own = map[string]time.Time{}
	}
	st.own[ownKey(local.String())] = st.w.now()
}

// ownIn lists the gap meter's addresses that are the peer of a
// connection in snap (its probe connections the services accepted, and
// the Accept=yes instances they spawned).
func (st *loop) ownIn(snap *Snapshot) []string {
	st.ownMu.Lock()
	defer st.ownMu.Unlock()
	if len(st.own) == 0 {
		return nil
	}
	now := st.w.now()
	for a, at := range st.own {
		if now.Sub(at) > ownKeep {
			delete(st.own, a)
		}
	}
	var out []string
	add := func(remote string) {
		k := ownKey(remote)
		if _, ok := st.own[k]; ok && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	for _, svc := range snap.Services {
		for _, c := range svc.Connections {
			add(c.Remote)
		}
	}
	for _, su := range snap.Sockets {
		for _, in := range su.Instances {
			if in.Remote != "" {
				add(in.Remote) // an instance the gap meter's connect spawned
			}
		}
	}
	slices.Sort(out)
	return out
}

// withoutOwn is snap without the connections whose peer is one of own
// (the gap meter's probes, which connect and close at once): the picture a
// person reads lists a service's clients, not fdtop's own measuring. The
// snapshot is not changed; one with none of them is returned as it is.
func withoutOwn(snap *Snapshot, own []string) *Snapshot {
	if len(own) == 0 {
		return snap
	}
	isOwn := func(c Connection) bool { return c.Remote != "" && slices.Contains(own, ownKey(c.Remote)) }
	var out *Snapshot
	for i, svc := range snap.Services {
		if !slices.ContainsFunc(svc.Connections, isOwn) {
			continue
		}
		if out == nil {
			c := *snap
			c.Services = slices.Clone(snap.Services)
			out = &c
		}
		out.Services[i].Connections = slices.DeleteFunc(slices.Clone(svc.Connections), isOwn)
	}
	if out == nil {
		return snap
	}
	return out
}

// attachProbe stops the gap meter run that covered a handoff and puts its
// result in the summary.
func (st *loop) attachProbe(e *Event) {
	p := st.probes[e.Unit]
	if p == nil {
		return
	}
	p.cancel()
	<-p.done
	delete(st.probes, e.Unit)
	h := *e.Handoff
	r := p.result
	h.Probe = &r
	e.Handoff = &h
}

func (st *loop) stopProbes() {
	for name, p := range st.probes {
		p.cancel()
		<-p.done
		delete(st.probes, name)
	}
}

// drain handles the signals already waiting (without blocking), up to a
// bound so a flood cannot starve the summaries.
func (st *loop) drain(events <-chan dbusclient.Event) {
	for i := 0; i < 256; i++ {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			switch ev.(type) {
			case dbusclient.JobNew, dbusclient.JobRemoved:
				// The next job must see this one summarised.
				st.finish()
			}
			st.signal(ev)
		default:
			return
		}
	}
}

// finish views the services whose job ended, so the tracker concludes them.
func (st *loop) finish() {
	if names := st.tr.Finishing(); len(names) > 0 {
		_ = st.refresh(names, false, false)
	}
}

// preCount reads, before a view of units (every unit when nil) reads
// their processes, the descriptor counts (and sockets) of the processes
// they had at the last view, for countFDs to record. Counted after the
// view instead, a client that connected between the two would be in the
// count but not in the view, and the count would never move to have it
// read (the view before a restart would lack it for good).
func (st *loop) preCount(units []string) {
	st.pre, st.preSocks = nil, nil
	if st.w.FDCount == nil || st.fdCounts == nil {
		return
	}
	st.pre, st.preSocks = map[int]int{}, map[int]map[uint64]bool{}
	for pid, unit := range st.pidUnit {
		if units != nil && unit != "" && !slices.Contains(units, unit) {
			continue
		}
		if n, ok, err := st.w.FDCount(pid); err == nil && ok {
			st.pre[pid] = n
		}
		if unit != "" && st.w.SocketInodes != nil {
			if socks, err := st.w.SocketInodes(pid); err == nil {
				st.preSocks[pid] = socks
			}
		}
	}
}

// kernelCounts reports whether the kernel gives descriptor counts
// (Watcher.FDCount) at all, asked once of this process, which never lacks
// a descriptor table: where it does, a process whose count it does not
// give is ending.
func (st *loop) kernelCounts() bool {
	if st.counts == nil {
		_, ok, err := st.w.FDCount(os.Getpid())
		v := ok && err == nil
		st.counts = &v
	}
	return *st.counts
}

// countFDs reads the descriptor counts of the manager and every process
// of the snapshot's services into fdCounts (all of them for a view of
// every unit, else put in), with the unit of each. Without
// Watcher.FDCount, or where the kernel does not say, the counts are
// unknown (nil).
func (st *loop) countFDs(snap *Snapshot, all bool) {
	if st.w.FDCount == nil || (!all && st.fdCounts == nil) {
		return
	}
	if all || st.sockSets == nil {
		st.sockSets = map[int]map[uint64]bool{}
	}
	if all {
		st.fdCounts, st.pidUnit = map[int]int{}, map[int]string{}
	}
	add := func(pid int, unit string) bool {
		if pid <= 0 {
			return true
		}
		n, ok, err := 0, true, error(nil)
		if pre, seen := st.pre[pid]; seen {
			n = pre // as counted before the view read it (preCount)
		} else {
			n, ok, err = st.w.FDCount(pid) // new since the last view
		}
		switch {
		case err != nil:
			return true // gone already: nothing to watch
		case !ok && !st.kernelCounts():
			// The kernel does not count (before Linux 6.2, or a fixture).
			st.fdCounts, st.pidUnit = nil, nil
			return false
		case !ok:
			// Ending (no descriptor table left to count): nothing to
			// watch. (Forgetting every count here instead, as this once
			// did, left every later job on a view never known stale: a
			// restart 0.6 s after a stop+start said "no connections"
			// while the new process's clients had reconnected; oracle
			// seed 424242.)
			return true
		}
		st.fdCounts[pid], st.pidUnit[pid] = n, unit
		if unit != "" && st.w.SocketInodes != nil {
			if socks, ok := st.preSocks[pid]; ok {
				st.sockSets[pid] = socks // as listed before the view (preCount)
			} else if socks, err := st.w.SocketInodes(pid); err == nil {
				st.sockSets[pid] = socks
			} else {
				delete(st.sockSets, pid)
			}
		}
		return true
	}
	if !add(snap.Manager.PID, "") {
		return
	}
	for _, svc := range snap.Services {
		if !add(svc.MainPID, svc.Unit) {
			return
		}
		for _, p := range svc.Processes {
			if !add(p.PID, svc.Unit) {
				return
			}
		}
	}
}

// heldConn is a connection where /proc last showed it.
type heldConn struct {
	pid, fd int
	inode   uint64
}

// noteConns records where the services' connections are, as read.
func (st *loop) noteConns(snap *Snapshot, all bool) {
	if st.w.SocketInode == nil {
		return
	}
	if all || st.held == nil {
		st.held = map[string][]heldConn{}
	}
	for _, svc := range snap.Services {
		var hs []heldConn
		for _, c := range svc.Connections {
			if c.PID > 0 && c.Inode != 0 {
				hs = append(hs, heldConn{c.PID, c.FD, c.Inode})
			}
		}
		if len(hs) == 0 {
			delete(st.held, svc.Unit)
			continue
		}
		st.held[svc.Unit] = hs
	}
}

// connsMoved reports that a connection of the picture is no longer where
// it was read (closed, or its descriptor reused): one readlink each.
func (st *loop) connsMoved() bool {
	if st.w.SocketInode == nil {
		return false
	}
	for _, hs := range st.held {
		for _, h := range hs {
			ino, err := st.w.SocketInode(h.pid, h.fd)
			if err == nil && ino != h.inode || procfs.IsGone(err) {
				return true // another error (not readable) tells nothing
			}
		}
	}
	return false
}

// countsMoved reports that a watched process holds another number of
// descriptors than when /proc was last read (always, when the counts are
// unknown). A process gone meanwhile has its unit read again (the manager
// signals a new main PID, not the end of another process of the unit);
// the manager's count moving has the fd-store services read again (the
// manager signals no change of a store's size).
func (st *loop) countsMoved() bool {
	if st.fdCounts == nil {
		return true
	}
	moved := false
	for pid, n := range st.fdCounts {
		m, ok, err := st.w.FDCount(pid)
		switch {
		case err != nil:
			delete(st.fdCounts, pid)
			if u := st.pidUnit[pid]; u != "" {
				st.pending[u] = true
			} else {
				st.needLoad = true // the manager's process
			}
		case !ok || m != n:
			moved = true
			if u := st.pidUnit[pid]; u != "" {
				if st.moved == nil {
					st.moved = map[string]bool{}
				}
				st.moved[u] = true
			}
			if st.pidUnit[pid] == "" {
				for _, u := range st.stores {
					st.pending[u] = true
				}
			}
		}
	}
	return moved
}

// noteRead records what a snapshot read: the units it holds are no
// longer pending, and the descriptor counts of its processes are those
// now watched.
func (st *loop) noteRead(units []string, snap *Snapshot, cached bool) {
	if units == nil {
		if !cached {
			clear(st.pending)
			st.needLoad = false
		}
		st.known = map[string]bool{}
		st.stores = nil
		st.related = map[string][]string{}
	}
	for _, u := range units {
		delete(st.pending, u)
	}
	for _, su := range snap.Sockets {
		delete(st.pending, su.Unit)
		st.known[su.Unit] = true
		if su.Service != "" && !su.Accept { // an Accept=yes socket's is a template
			if !slices.Contains(st.related[su.Service], su.Unit) {
				st.related[su.Service] = append(st.related[su.Service], su.Unit)
			}
			st.related[su.Unit] = []string{su.Service}
		}
	}
	for _, svc := range snap.Services {
		delete(st.pending, svc.Unit)
		delete(st.moved, svc.Unit)
		st.known[svc.Unit] = true
		for _, so := range svc.Sockets { // a second service naming the socket in Sockets=
			if st.known[so] && !slices.Contains(st.related[svc.Unit], so) {
				st.related[svc.Unit] = append(st.related[svc.Unit], so)
			}
		}
		if svc.FDStoreMax > 0 && !slices.Contains(st.stores, svc.Unit) {
			st.stores = append(st.stores, svc.Unit)
		}
	}
	st.countFDs(snap, units == nil)
	st.noteConns(snap, units == nil)
}

// withRelated adds to units the socket units of each service and the
// service of each socket unit, as last read: a socket unit's listeners
// name the processes of its service as holders, so a view of a service
// that changed its processes (a restart) must read its socket units again,
// or the picture keeps showing the old process as their holder until the
// next whole rescan. nil (every unit) stays nil.
func (st *loop) withRelated(units []string) []string {
	if units == nil {
		return nil
	}
	out := slices.Clone(units)
	for _, u := range units {
		for _, r := range st.related[u] {
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	slices.Sort(out)
	return out
}

// shown reports whether e belongs on the timeline (see Watcher.Shows).
func (st *loop) shown(e Event) bool {
	switch {
	case e.Unit == "" || st.known[e.Unit]:
		return true
	case !strings.HasSuffix(e.Unit, ".socket") && !strings.HasSuffix(e.Unit, ".service"):
		return false
	case st.w.Shows != nil:
		return st.w.Shows(e.Unit)
	}
	return true
}

// emit sends out, in order, the events that belong on the timeline.
func (st *loop) emit(evs []Event) {
	for _, e := range evs {
		if !st.shown(e) {
			continue
		}
		if e.Time.IsZero() {
			e.Time = st.w.now()
		}
		select {
		case st.out <- e:
		case <-st.ctx.Done():
			return
		}
	}
}

// refresh takes a snapshot (of units, or of everything; with cached, the
// units as last read and /proc read again) and gives it to the tracker,
// with the liveness of the connections it cannot place.
func (st *loop) refresh(units []string, full, cached bool) error {
	units = st.withRelated(units)
	tcp := st.markTCP(units) // before the processes are read
	st.preCount(units)       // likewise
	snap, err := st.w.Snapshots.Snapshot(st.ctx, SnapshotOptions{Units: units, FullScan: full, Cached: cached})
	if err != nil {
		return err
	}
	st.noteTCP(units, snap, tcp)
	own := st.ownIn(snap)
	if units != nil && st.w.OnView != nil {
		st.w.OnView(units, withoutOwn(snap, own))
	}
	if units == nil && full {
		st.scopeNew = false
	}
	st.noteRead(units, snap, cached)
	if units == nil {
		if st.w.OnSnapshot != nil {
			st.w.OnSnapshot(withoutOwn(snap, own))
		}
	}
	v := NewView(units, snap)
	v.Own = own
	if st.w.Alive != nil {
		if missing := st.tr.Unaccounted(v); len(missing) > 0 {
			v.Alive = st.w.Alive(st.ctx, missing)
			v.AliveUnknown = v.Alive == nil
		}
	}
	if st.w.ConnEnds != nil {
		// Which end closed first is told by what the kernel keeps of a
		// closed connection only for a while: asked at every view of a
		// service in a handoff, not only at its end.
		var gone []Connection
		for _, c := range st.tr.Unexplained(v) {
			if !v.Alive[c.Inode] {
				gone = append(gone, c)
			}
		}
		if len(gone) > 0 {
			v.Closed = closers(st.ctx, st.w.ConnEnds, gone)
		}
	}
	st.step(Step{At: snap.Time, View: v})
	return nil
}

// unitsFirst gives OnSnapshot a view of every unit read from the
// manager's and the units' processes only, marked still filling (see
// Watcher.UnitsFirst). The tracker does not see it, nor does what the
// loop notes of a read (the host-wide pass that follows reads it all
// again). A failure is left to that pass to report.
func (st *loop) unitsFirst() {
	snap, err := st.w.Snapshots.Snapshot(st.ctx, SnapshotOptions{})
	if err != nil {
		return
	}
	st.w.OnSnapshot(MarkFilling(snap))
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
// to Watcher.Alive: a lookup that failed answers nil (unknown).
func SocketsAlive[S any](lookup func(ctx context.Context, inodes []uint64) (map[uint64]S, error)) func(ctx context.Context, inodes []uint64) map[uint64]bool {
	return func(ctx context.Context, inodes []uint64) map[uint64]bool {
		found, err := lookup(ctx, inodes)
		if err != nil {
			return nil // not asked: unknown, not gone
		}
		out := map[uint64]bool{}
		for ino := range found {
			out[ino] = true
		}
		return out
	}
}
