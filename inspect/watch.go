package inspect

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
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

// Watcher is the I/O loop around a Tracker: it feeds it the manager's
// signals and the snapshots it asks for, and sends the events it makes.
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
	// from a process to the manager can slip between two reads). It
	// returns nil when the kernel could not be asked: those connections
	// are then unknown, never dropped.
	Alive func(ctx context.Context, inodes []uint64) map[uint64]bool
	// FDCount, if set, gives a process's open descriptor count cheaply
	// (procfs.FS.FDCount): a rescan with nothing signalled and no count
	// changed is skipped, so an idle watch costs next to nothing.
	FDCount func(pid int) (n int, ok bool, err error)
	// OnSnapshot, if set, is called with every full-picture snapshot.
	OnSnapshot func(*Snapshot)
	// OnView, if set, is called with every snapshot limited to units (the
	// rescans of services in a job), so a picture can follow them.
	OnView func(units []string, snap *Snapshot)
	// Rescan, if set, asks for a full host rescan now (a person's ctrl+r).
	Rescan <-chan struct{}
	// Trace, if set, is given every input of the tracker, in order: a
	// recording of it replays through Tracker.Step.
	Trace func(Step)
	// Probe, if set, says whether to run the gap meter on a service whose
	// job just started (on its loopback TCP listeners, until its handoff
	// is summarised); the result goes into the handoff's summary.
	Probe func(service string) bool
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

	dirty    bool        // a signal arrived since the last full view
	scopeNew bool        // a scope appeared (a login) since the last full host scan
	fdCounts map[int]int // descriptor counts at the last full view
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
	st := &loop{w: w, ctx: ctx, out: out, tr: NewTracker(), probes: map[string]*probeRun{}}
	defer st.stopProbes()
	if err := st.refresh(nil, true); err != nil {
		return err
	}
	watched := st.tr.WatchList()
	w.Events.Watch(watched, fast)

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
			st.signal(ev)
			if len(st.tr.Finishing()) > 0 {
				st.drain(events)
				st.finish()
			}
			if st.tr.NeedsFull() {
				_ = st.refresh(nil, false)
			}
		case <-slow.C:
			// Signals first: a view is never older than the signals handled.
			st.drain(events)
			st.finish()
			rescans++
			// A new scope (a login's session-N.scope) may hold connections
			// accepted from the units' listeners: only a full host scan
			// finds them outside the units.
			full := fullEvery > 0 && rescans%fullEvery == 0 || st.scopeNew
			if !full && st.unchanged() {
				continue
			}
			if err := st.refresh(nil, full); err != nil {
				if ctx.Err() != nil {
					return nil // cut short by the end of the watch, not a disconnection
				}
				if errors.Is(err, dbusclient.ErrNotConnected) {
					continue // the subscription's Disconnected records the loss once
				}
				st.emit([]Event{{Type: EventDisconnected, Phase: "rescan", Error: err.Error()}})
			}
		case <-w.Rescan:
			st.drain(events)
			st.finish()
			if err := st.refresh(nil, true); err != nil && ctx.Err() == nil {
				st.emit([]Event{{Type: EventDisconnected, Phase: "rescan", Error: err.Error()}})
			}
		case <-fastT.C:
			if len(st.tr.Hot()) == 0 {
				break
			}
			st.drain(events)
			st.finish()
			if hot := st.tr.Hot(); len(hot) > 0 {
				_ = st.refresh(hot, false)
			}
		}
		if list := st.tr.WatchList(); !slices.Equal(list, watched) {
			// Only on change: a new watch list reports every counter anew.
			watched = list
			w.Events.Watch(watched, fast)
		}
	}
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
	if un, ok := ev.(dbusclient.UnitNew); ok && strings.HasSuffix(un.Unit, ".scope") {
		st.scopeNew = true
	}
	if sig := SignalOf(ev); sig != nil {
		st.step(Step{At: at, Signal: sig})
	}
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

// probeRun is a gap meter run on one service.
type probeRun struct {
	cancel context.CancelFunc
	done   chan struct{}
	result ProbeResult
}

// startProbes starts the gap meter on services whose job just started,
// and stops it on those no longer in one.
func (st *loop) startProbes() {
	busy := st.tr.Busy()
	for name, p := range st.probes {
		if !slices.Contains(busy, name) {
			p.cancel()
			<-p.done
			delete(st.probes, name)
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
		go func() {
			defer close(p.done)
			p.result = Probe(ctx, targets, cfg)
		}()
	}
}

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
// connection in snap (its probe connections the services accepted).
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
	for _, svc := range snap.Services {
		for _, c := range svc.Connections {
			k := ownKey(c.Remote)
			if _, ok := st.own[k]; ok && !slices.Contains(out, k) {
				out = append(out, k)
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
		_ = st.refresh(names, false)
	}
}

// countFDs reads the descriptor counts of the manager and every process
// of the snapshot's services (nil without Watcher.FDCount).
func (st *loop) countFDs(snap *Snapshot) map[int]int {
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
func (st *loop) unchanged() bool {
	if st.dirty || st.fdCounts == nil || len(st.tr.Hot()) > 0 || st.skipped >= 9 {
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

// emit sends events out in order.
func (st *loop) emit(evs []Event) {
	for _, e := range evs {
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

// refresh takes a snapshot (of units, or of everything) and gives it to
// the tracker, with the liveness of the connections it cannot place.
func (st *loop) refresh(units []string, full bool) error {
	snap, err := st.w.Snapshots.Snapshot(st.ctx, SnapshotOptions{Units: units, FullScan: full})
	if err != nil {
		return err
	}
	own := st.ownIn(snap)
	if units != nil && st.w.OnView != nil {
		st.w.OnView(units, withoutOwn(snap, own))
	}
	if units == nil && full {
		st.scopeNew = false
	}
	if units == nil {
		st.dirty, st.skipped = false, 0
		st.fdCounts = st.countFDs(snap)
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
	st.step(Step{At: snap.Time, View: v})
	return nil
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
