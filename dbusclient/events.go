package dbusclient

import (
	"context"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// Event is one thing the manager reported, or a change of the connection:
// UnitNew, UnitRemoved, JobNew, JobRemoved, Reloading, UnitChanged,
// CountersChanged, Disconnected, Reconnected or Overflow.
type Event interface{ event() }

// UnitNew says a unit was loaded into the manager's memory.
type UnitNew struct {
	Unit string
	Path dbus.ObjectPath
}

// UnitRemoved says a unit left the manager's memory. Do not read its
// properties in response: that loads it again, and the manager answers
// with another UnitNew/UnitRemoved pair, forever.
type UnitRemoved struct {
	Unit string
	Path dbus.ObjectPath
}

// JobNew says a job was queued for a unit.
type JobNew struct {
	ID   uint32
	Job  dbus.ObjectPath
	Unit string
	// Type is the job's type (start, stop, restart, ...), read from the job
	// as soon as the signal arrived; "" when it could not be read (the job
	// was already gone). systemd turns a restart job into a start job once
	// its stop part is done, so a late read says "start".
	Type string
	// At is when the signal was read off the connection.
	At time.Time

	typ *jobType // the read of Type in flight
}

// JobRemoved says a job finished. Subscriptions never drop these.
type JobRemoved struct {
	ID     uint32
	Job    dbus.ObjectPath
	Unit   string
	Result JobResult
	// At is when the signal was read off the connection.
	At time.Time
}

// jobType is the read of a new job's type, started when its JobNew
// arrives and shared by every subscription.
type jobType struct {
	done chan struct{}
	typ  string
}

// jobTypeWait bounds how long a subscription holds a JobNew (and every
// signal behind it) back waiting for its type: a busy manager answers late,
// and the signals matter more.
const jobTypeWait = 100 * time.Millisecond

// Reloading brackets a daemon-reload (Active true, then false).
type Reloading struct{ Active bool }

// Iface names the unit interface a property change came on.
type Iface string

// The interfaces whose property changes are reported.
const (
	IfaceUnit    Iface = "Unit"
	IfaceService Iface = "Service"
	IfaceSocket  Iface = "Socket"
)

// UnitChanged reports properties that changed on one interface of a unit.
// Bursts for the same unit and interface are merged while the consumer is
// behind (later values win), but never across job, unit-set or connection
// events, so the order a restart goes through is kept.
type UnitChanged struct {
	Unit  string
	Path  dbus.ObjectPath
	Iface Iface
	// Changes holds the changed properties fdtop shows; nil means unchanged.
	Changes UnitChanges
	// Invalidated lists properties that changed without their value.
	Invalidated []string
	// At is when the signal was read off the connection.
	At time.Time
}

// UnitChanges are typed property values from PropertiesChanged; a nil
// field did not change.
type UnitChanges struct {
	// Unit interface.
	LoadState, ActiveState, SubState *string
	JobID                            *uint32 // 0: no job
	// Service and Socket interfaces.
	MainPID, ControlPID, ExecMainPID *uint32
	ExecMainStart                    *time.Time
	NRestarts                        *uint32
	Result, StatusText               *string
	NFileDescriptorStore             *uint32
	NConnections, NAccepted          *uint32
	NRefused                         *uint32
}

// merge overlays the fields set in n.
func (u *UnitChanges) merge(n UnitChanges) {
	mergeP(&u.LoadState, n.LoadState)
	mergeP(&u.ActiveState, n.ActiveState)
	mergeP(&u.SubState, n.SubState)
	mergeP(&u.JobID, n.JobID)
	mergeP(&u.MainPID, n.MainPID)
	mergeP(&u.ControlPID, n.ControlPID)
	mergeP(&u.ExecMainPID, n.ExecMainPID)
	mergeP(&u.ExecMainStart, n.ExecMainStart)
	mergeP(&u.NRestarts, n.NRestarts)
	mergeP(&u.Result, n.Result)
	mergeP(&u.StatusText, n.StatusText)
	mergeP(&u.NFileDescriptorStore, n.NFileDescriptorStore)
	mergeP(&u.NConnections, n.NConnections)
	mergeP(&u.NAccepted, n.NAccepted)
	mergeP(&u.NRefused, n.NRefused)
}

func mergeP[T any](dst **T, src *T) {
	if src != nil {
		*dst = src
	}
}

// CountersChanged reports polled counters that never signal, for a unit
// passed to Subscription.Watch. It comes once when polling starts and then
// whenever a value differs.
type CountersChanged struct {
	Unit     string
	Counters Counters
}

// Disconnected says the connection to the manager dropped (daemon-reexec,
// a killed bus); the client is reconnecting.
type Disconnected struct{ Err error }

// Reconnected says the client is connected again and subscribed: anything
// may have changed meanwhile, so reload.
type Reconnected struct{ Version string }

// Overflow says the consumer fell so far behind that Dropped events other
// than job events were discarded: reload.
type Overflow struct{ Dropped int }

func (UnitNew) event()         {}
func (UnitRemoved) event()     {}
func (JobNew) event()          {}
func (JobRemoved) event()      {}
func (Reloading) event()       {}
func (UnitChanged) event()     {}
func (CountersChanged) event() {}
func (Disconnected) event()    {}
func (Reconnected) event()     {}
func (Overflow) event()        {}

// decodeSignal turns a systemd signal into an Event, or nil.
func decodeSignal(sig *dbus.Signal) Event {
	switch sig.Name {
	case ifaceManager + ".UnitNew", ifaceManager + ".UnitRemoved":
		var name string
		var path dbus.ObjectPath
		if dbus.Store(sig.Body, &name, &path) != nil {
			return nil
		}
		if sig.Name == ifaceManager+".UnitNew" {
			return UnitNew{Unit: name, Path: path}
		}
		return UnitRemoved{Unit: name, Path: path}
	case ifaceManager + ".JobNew":
		var e JobNew
		if dbus.Store(sig.Body, &e.ID, &e.Job, &e.Unit) != nil {
			return nil
		}
		return e
	case ifaceManager + ".JobRemoved":
		var e JobRemoved
		var result string
		if dbus.Store(sig.Body, &e.ID, &e.Job, &e.Unit, &result) != nil {
			return nil
		}
		e.Result = JobResult(result)
		return e
	case ifaceManager + ".Reloading":
		var active bool
		if dbus.Store(sig.Body, &active) != nil {
			return nil
		}
		return Reloading{Active: active}
	case ifaceProps + ".PropertiesChanged":
		return decodePropertiesChanged(sig.Path, sig.Body, time.Now())
	}
	return nil
}

func decodePropertiesChanged(path dbus.ObjectPath, body []any, at time.Time) Event {
	var iface string
	var changed map[string]dbus.Variant
	var invalidated []string
	if dbus.Store(body, &iface, &changed, &invalidated) != nil {
		return nil
	}
	var which Iface
	switch iface {
	case ifaceUnit:
		which = IfaceUnit
	case ifaceService:
		which = IfaceService
	case ifaceSocket:
		which = IfaceSocket
	default:
		return nil
	}
	unit, err := UnitNameFromPath(path)
	if err != nil {
		return nil
	}
	ev := UnitChanged{Unit: unit, Path: path, Iface: which, Invalidated: invalidated, At: at}
	ch := &ev.Changes
	for name, v := range changed {
		switch name {
		case "LoadState":
			ch.LoadState = variantP[string](v)
		case "ActiveState":
			ch.ActiveState = variantP[string](v)
		case "SubState":
			ch.SubState = variantP[string](v)
		case "Job":
			var job struct {
				ID   uint32
				Path dbus.ObjectPath
			}
			if v.Store(&job) == nil {
				ch.JobID = &job.ID
			}
		case "MainPID":
			ch.MainPID = variantP[uint32](v)
		case "ControlPID":
			ch.ControlPID = variantP[uint32](v)
		case "ExecMainPID":
			ch.ExecMainPID = variantP[uint32](v)
		case "ExecMainStartTimestamp":
			if us := variantP[uint64](v); us != nil {
				t := usecTime(*us)
				ch.ExecMainStart = &t
			}
		case "NRestarts":
			ch.NRestarts = variantP[uint32](v)
		case "Result":
			ch.Result = variantP[string](v)
		case "StatusText":
			ch.StatusText = variantP[string](v)
		case "NFileDescriptorStore":
			ch.NFileDescriptorStore = variantP[uint32](v)
		case "NConnections":
			ch.NConnections = variantP[uint32](v)
		case "NAccepted":
			ch.NAccepted = variantP[uint32](v)
		case "NRefused":
			ch.NRefused = variantP[uint32](v)
		}
	}
	return ev
}

func variantP[T any](v dbus.Variant) *T {
	var x T
	if v.Store(&x) != nil {
		return nil
	}
	return &x
}

// usecTime converts systemd's microseconds since the epoch; 0 is the zero
// time.
func usecTime(us uint64) time.Time {
	if us == 0 || us == ^uint64(0) {
		return time.Time{}
	}
	return time.UnixMicro(int64(us))
}

// maxQueued bounds a subscription's backlog of non-job events.
const maxQueued = 1 << 16

// changeKey identifies what a queued event may be merged with.
type changeKey struct {
	path  dbus.ObjectPath
	iface Iface // "" for CountersChanged
	unit  string
}

func keyOf(ev Event) (changeKey, bool) {
	switch e := ev.(type) {
	case UnitChanged:
		return changeKey{path: e.Path, iface: e.Iface}, true
	case CountersChanged:
		return changeKey{unit: e.Unit}, true
	}
	return changeKey{}, false
}

// Subscription delivers a client's events to one consumer. The consumer's
// channel is fed from an unbounded, coalescing queue, so a slow consumer
// never blocks the D-Bus reader.
type Subscription struct {
	c   *Client
	out chan Event

	mu      sync.Mutex
	queue   []Event
	head    uint64 // sequence number of queue[0]
	index   map[changeKey]uint64
	dropped int
	stopped bool
	wake    chan struct{}
	done    chan struct{}
	once    sync.Once

	watchMu    sync.Mutex
	watchStop  context.CancelFunc
	watchGroup sync.WaitGroup
}

// Subscribe starts delivering events (the client already called
// Manager.Subscribe). The subscription ends when ctx ends, Close is called
// or the client is closed; then the channel is closed.
func (c *Client) Subscribe(ctx context.Context) (*Subscription, error) {
	s := &Subscription{
		c:     c,
		out:   make(chan Event, 16),
		index: map[changeKey]uint64{},
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	c.mu.Lock()
	select {
	case <-c.closed:
		c.mu.Unlock()
		return nil, ErrClosed
	default:
	}
	c.subs[s] = struct{}{}
	c.mu.Unlock()
	go s.pump()
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.done:
		}
	}()
	return s, nil
}

// Events returns the channel events arrive on; it is closed when the
// subscription ends.
func (s *Subscription) Events() <-chan Event { return s.out }

// Close ends the subscription.
func (s *Subscription) Close() {
	s.c.mu.Lock()
	delete(s.c.subs, s)
	s.c.mu.Unlock()
	s.stop()
}

func (s *Subscription) stop() {
	s.once.Do(func() {
		s.mu.Lock()
		s.stopped = true
		s.mu.Unlock()
		close(s.done)
		s.watchMu.Lock()
		if s.watchStop != nil {
			s.watchStop()
		}
		s.watchMu.Unlock()
	})
}

// push queues ev without blocking.
func (s *Subscription) push(ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	key, mergeable := keyOf(ev)
	if mergeable {
		if seq, ok := s.index[key]; ok && seq >= s.head {
			switch e := ev.(type) {
			case UnitChanged:
				q := s.queue[seq-s.head].(UnitChanged)
				q.Changes.merge(e.Changes)
				q.Invalidated = append(q.Invalidated, e.Invalidated...)
				q.At = e.At
				s.queue[seq-s.head] = q
			case CountersChanged:
				s.queue[seq-s.head] = e
			}
			return
		}
	} else {
		// A barrier: nothing queued before it may absorb what comes after.
		clear(s.index)
	}
	switch ev.(type) {
	case JobNew, JobRemoved, Disconnected, Reconnected:
	default:
		if len(s.queue) >= maxQueued {
			s.dropped++
			return
		}
	}
	if mergeable {
		s.index[key] = s.head + uint64(len(s.queue))
	}
	s.queue = append(s.queue, ev)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pump moves queued events to the consumer's channel.
func (s *Subscription) pump() {
	defer close(s.out)
	for {
		s.mu.Lock()
		var ev Event
		switch {
		case s.dropped > 0:
			ev = Overflow{Dropped: s.dropped}
			s.dropped = 0
		case len(s.queue) > 0:
			ev = s.queue[0]
			if j, ok := ev.(JobNew); ok && j.typ != nil {
				// Outside the lock: the read may take a moment.
				s.mu.Unlock()
				select {
				case <-j.typ.done:
					j.Type = j.typ.typ
				case <-time.After(jobTypeWait):
				case <-s.done:
				}
				j.typ = nil
				s.mu.Lock()
				ev = j
			}
			s.queue[0] = nil
			s.queue = s.queue[1:]
			if key, ok := keyOf(ev); ok && s.index[key] == s.head {
				delete(s.index, key)
			}
			s.head++
			if len(s.queue) == 0 {
				s.queue = nil
			}
		}
		s.mu.Unlock()
		if ev == nil {
			select {
			case <-s.wake:
				continue
			case <-s.done:
				return
			}
		}
		select {
		case s.out <- ev:
		case <-s.done:
			return
		}
	}
}

// Watch polls the counters that never signal (NConnections, NAccepted,
// NRefused of sockets; NFileDescriptorStore of services) for units, every
// interval, and reports changes as CountersChanged. Each call replaces the
// previous set; an empty set or interval <= 0 stops polling. Units that are
// not loaded are skipped (reading them would load them).
func (s *Subscription) Watch(units []string, every time.Duration) {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	if s.watchStop != nil {
		s.watchStop()
		s.watchGroup.Wait()
		s.watchStop = nil
	}
	if len(units) == 0 || every <= 0 {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.watchStop = cancel
	units = append([]string(nil), units...)
	s.watchGroup.Add(1)
	go func() {
		defer s.watchGroup.Done()
		s.poll(ctx, units, every)
	}()
}

func (s *Subscription) poll(ctx context.Context, units []string, every time.Duration) {
	last := map[string]Counters{}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, max(every, time.Second))
		got, err := s.c.Counters(rctx, units)
		cancel()
		if err == nil {
			for _, u := range units {
				n, ok := got[u]
				if !ok {
					continue
				}
				if old, seen := last[u]; !seen || old != n {
					last[u] = n
					s.push(CountersChanged{Unit: u, Counters: n})
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
