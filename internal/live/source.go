package live

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/ui"
)

// Source is the dashboard's ui.Source on the local manager: the live
// model, in process. A Watcher on the manager's signals is the only thing
// that scans (the whole picture at --interval, skipped while nothing
// changed; the services in a job faster); the manager's signals and the
// polled counters of the units on screen update the picture between
// scans. Each new picture is published to the dashboard, which draws it
// and sends actions back (run through dbusclient, with the gap meter where
// asked).
type Source struct {
	*actions // the jobs it runs, with a fresh view and the gap meter
	events   chan inspect.Event

	// targetedOnly limits every scan to the units' and the manager's
	// processes (the demo: nothing outside the sandbox matters there).
	targetedOnly bool

	pmu     sync.Mutex
	first   chan struct{}     // closed when the first picture is published
	whole   chan struct{}     // closed when the first picture not still filling is published (or the Watcher stopped)
	picture *inspect.Snapshot // the model's picture, never changed once published
	updates chan ui.Update    // the latest picture not yet read (capacity 1)
	rescan  chan struct{}
	signals *modelSignals
}

// Options are how a live model scans.
type Options struct {
	// Interval is the rescan of the whole host when nothing happens (the
	// units on screen are polled at it too).
	Interval time.Duration
	// Targeted limits every scan to the units' and the manager's
	// processes (the demo: nothing outside the sandbox matters there).
	Targeted bool
}

// New starts the live model on client's manager, as b reads it; it runs
// until ctx ends.
func New(ctx context.Context, client *dbusclient.Client, b *inspect.Builder, o Options) (*Source, error) {
	interval, targeted := o.Interval, o.Targeted
	sub, err := client.Subscribe(ctx)
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	src := &Source{events: make(chan inspect.Event, 1024),
		targetedOnly: targeted, updates: make(chan ui.Update, 1), rescan: make(chan struct{}, 1), first: make(chan struct{}), whole: make(chan struct{})}
	src.actions = newActions(client, b, src.Current)
	src.actions.whole = src.whole
	src.signals = newModelSignals(sub, interval, func(ev dbusclient.Event) {
		src.setPicture(false, func(p *inspect.Snapshot) *inspect.Snapshot { return inspect.ApplySignal(p, ev) })
	})
	// The units go on screen before the host-wide pass, marked still
	// filling (a million descriptors take tens of seconds to read).
	w := NewWatcher(b, src.signals, WatcherOptions{Interval: interval, Targeted: targeted, UnitsFirst: true, Probe: src.probeWanted, Rescan: src.rescan, Fresh: src.fresh,
		OnSnapshot: func(snap *inspect.Snapshot) {
			src.setPicture(true, func(*inspect.Snapshot) *inspect.Snapshot { return snap })
		},
		OnView: func(units []string, snap *inspect.Snapshot) {
			src.setPicture(true, func(p *inspect.Snapshot) *inspect.Snapshot { return inspect.MergeUnits(p, snap, units) })
		},
	})
	go src.signals.run(ctx)
	go func() {
		defer src.signals.Close()
		defer func() {
			// No host-wide pass will come: an action waits no longer.
			src.pmu.Lock()
			closeOnce(src.whole)
			src.pmu.Unlock()
		}()
		if err := w.Run(ctx, src.events); err != nil {
			src.publish(ui.Update{Err: err, At: time.Now()})
			src.events <- inspect.Event{Time: time.Now(), Type: inspect.EventDisconnected, Phase: "stopped", Error: err.Error()}
		}
	}()
	return src, nil
}

// setPicture replaces the picture with what f makes of it and publishes it
// when it changed (compared unit by unit with compare: a rescan that saw
// what the picture shows publishes only when it was seen, so an idle
// dashboard rebuilds nothing and its doctor does not run again, while its
// header's scan age stays true). f must not change its argument.
func (s *Source) setPicture(compare bool, f func(*inspect.Snapshot) *inspect.Snapshot) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	p := f(s.picture)
	if p == s.picture || p == nil {
		return
	}
	if compare && s.picture != nil {
		if _, changed := inspect.Diff(s.picture, p); !changed {
			s.publishSeenLocked(time.Now())
			return
		}
	}
	if s.picture == nil {
		close(s.first)
	}
	if !p.Host.Filling {
		closeOnce(s.whole)
	}
	s.picture = p
	s.publishLocked(ui.Update{Snapshot: p, At: time.Now()})
}

// closeOnce closes c unless it is nil or closed already (the caller
// serialises the calls: pmu).
func closeOnce(c chan struct{}) {
	if c == nil {
		return
	}
	select {
	case <-c:
	default:
		close(c)
	}
}

// OnePWhenShown lets the Go runtime run on one processor once the first
// picture not still filling is out (the host-wide pass done), unless
// GOMAXPROCS is set. The first scan of a large host
// uses every CPU (a 100k-descriptor snapshot: 0.55 s on two, 0.64 s on
// one); what follows is mostly waiting, and with two processors every
// wakeup of an idle dashboard (its renderer's 20 a second, a signal, the
// interval) also woke a second thread to look for work: 1.1–1.3 % of a
// core idle on the demo against 0.4–0.6 % on one (measured by
// tools/idle-cost; a host-wide pass costs less CPU on one, too).
// The channel returned is closed once that is decided.
func (s *Source) OnePWhenShown(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-s.whole:
			if os.Getenv("GOMAXPROCS") == "" {
				runtime.GOMAXPROCS(1)
			}
		case <-ctx.Done():
		}
	}()
	return done
}

// publish sends u to the dashboard, replacing a picture it has not read.
func (s *Source) publish(u ui.Update) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	s.publishLocked(u)
}

func (s *Source) publishLocked(u ui.Update) {
	select {
	case <-s.updates:
	default:
	}
	s.updates <- u // never blocks: emptied above, and sends are serialised by pmu
}

// publishSeenLocked says the picture was seen unchanged at at: a picture
// not yet read is then seen at at; an error not yet read is over.
func (s *Source) publishSeenLocked(at time.Time) {
	u := ui.Update{At: at}
	select {
	case old := <-s.updates:
		if old.Snapshot != nil {
			old.At = at
			u = old
		}
	default:
	}
	s.updates <- u // never blocks: emptied above, and sends are serialised by pmu
}

// Current is the model's picture (nil before the first scan).
func (s *Source) Current() *inspect.Snapshot {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	return s.picture
}

// Updates implements ui.Source.
func (s *Source) Updates() <-chan ui.Update { return s.updates }

// Show implements ui.Source: the units on screen get their counters polled.
// Only the units whose counters can move are polled (inspect.CountersMove).
func (s *Source) Show(units []string) { s.signals.show(inspect.CountersMove(s.Current(), units)) }

// Refresh implements ui.Source.
func (s *Source) Refresh() bool {
	select {
	case s.rescan <- struct{}{}:
	default: // one is asked for already
	}
	return true
}

// Events implements ui.Source.
func (s *Source) Events() <-chan inspect.Event { return s.events }

// modelSignals is the live model's subscription to the manager: every
// signal goes to the picture (apply) and then to the Watcher; the counters
// polled are those of the units the Watcher follows and of the units on
// screen. Poll sets change on its own goroutine, so Show never blocks.
type modelSignals struct {
	sub   *dbusclient.Subscription
	apply func(dbusclient.Event)
	out   chan dbusclient.Event
	kick  chan struct{}
	every time.Duration // the poll of the units on screen

	mu           sync.Mutex
	tracked      []string // the Watcher's
	trackedEvery time.Duration
	shown        []string
}

func newModelSignals(sub *dbusclient.Subscription, every time.Duration, apply func(dbusclient.Event)) *modelSignals {
	return &modelSignals{sub: sub, apply: apply, out: make(chan dbusclient.Event, 256), kick: make(chan struct{}, 1), every: every}
}

// Events implements inspect.EventSource.
func (m *modelSignals) Events() <-chan dbusclient.Event { return m.out }

// Watch implements inspect.EventSource: the Watcher's units.
func (m *modelSignals) Watch(units []string, every time.Duration) {
	m.mu.Lock()
	m.tracked, m.trackedEvery = append([]string(nil), units...), every
	m.mu.Unlock()
	m.wake()
}

// show sets the units on screen.
func (m *modelSignals) show(units []string) {
	m.mu.Lock()
	m.shown = append([]string(nil), units...)
	m.mu.Unlock()
	m.wake()
}

func (m *modelSignals) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Close implements inspect.EventSource.
func (m *modelSignals) Close() { m.sub.Close() }

// run moves the signals to the picture and the Watcher, and keeps the poll
// set, until the subscription ends.
func (m *modelSignals) run(ctx context.Context) {
	defer close(m.out)
	var (
		polled []string
		every  time.Duration
	)
	in := m.sub.Events()
	for {
		select {
		case ev, ok := <-in:
			if !ok {
				return
			}
			m.apply(ev)
			select {
			case m.out <- ev:
			case <-ctx.Done():
				return
			}
		case <-m.kick:
			m.mu.Lock()
			set := map[string]bool{}
			for _, u := range m.tracked {
				set[u] = true
			}
			for _, u := range m.shown {
				set[u] = true
			}
			e := m.every
			if len(m.tracked) > 0 {
				e = m.trackedEvery // a job runs: poll fast
			}
			m.mu.Unlock()
			units := make([]string, 0, len(set))
			for u := range set {
				units = append(units, u)
			}
			slices.Sort(units)
			if !slices.Equal(units, polled) || e != every {
				polled, every = units, e
				m.sub.Watch(units, every) // a new set reports every counter anew
			}
		case <-ctx.Done():
			return
		}
	}
}
