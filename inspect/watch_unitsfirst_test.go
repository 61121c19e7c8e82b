package inspect_test

import (
	"context"
	"testing"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/inspect"
)

// hostPassSnapshots answers a snapshot without FullScan with the units'
// view at once, and one with FullScan with the host-wide view once the
// test lets the pass end (release), so what is published while it runs
// can be looked at.
type hostPassSnapshots struct {
	units, full *inspect.Snapshot
	release     chan struct{}
	asked       chan inspect.SnapshotOptions // every snapshot asked for, in order
}

func (s *hostPassSnapshots) Snapshot(ctx context.Context, opts inspect.SnapshotOptions) (*inspect.Snapshot, error) {
	s.asked <- opts
	v := s.units
	if opts.FullScan {
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		v = s.full
	}
	c := *v
	c.Time = time.Now()
	return &c, nil
}

// unitsAndHost are web.service's view from its own processes (the
// manager and web hold the listener) and from the whole host, where a
// login's shell outside the units also holds a connection accepted from it.
func unitsAndHost() (units, full *inspect.Snapshot) {
	units = serviceView(100, "active", 1, 2)
	units.Sockets[0].Listeners[0].Holders = []inspect.Holder{
		{PID: 1, FD: 12, Comm: "systemd", Manager: true},
		{PID: 100, FD: 3, Comm: "web", Unit: "web.service"},
	}
	full = serviceView(100, "active", 1, 2)
	full.Sockets = units.Sockets
	full.Services[0].Connections = append(full.Services[0].Connections,
		inspect.Connection{Inode: 9, PID: 700, FD: 5, Remote: "127.0.0.1:4100", Outside: true, Comm: "bash", Unit: "session-1.scope"})
	full.Host.HoldersSource = "bpf"
	return units, full
}

// TestWatchUnitsFirst: a live model that is not targeted publishes a view
// of its units read from their own and the manager's processes first,
// marked still filling (listener holders partial), before its host-wide
// pass; the tracker is given nothing of it; the pass's picture follows,
// not filling. A targeted one (the demo) starts with its usual view.
func TestWatchUnitsFirst(t *testing.T) {
	units, full := unitsAndHost()
	snaps := &hostPassSnapshots{units: units, full: full, release: make(chan struct{}), asked: make(chan inspect.SnapshotOptions, 16)}
	pictures := make(chan *inspect.Snapshot, 16)
	steps := make(chan inspect.Step, 64)
	w := &inspect.Watcher{Snapshots: snaps, Events: chanEvents{ch: make(chan dbusclient.Event)}, Interval: time.Hour, FullEvery: 30, UnitsFirst: true,
		OnSnapshot: func(s *inspect.Snapshot) { pictures <- s },
		Trace:      func(s inspect.Step) { steps <- s }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx, make(chan inspect.Event, 16)) }()
	t.Cleanup(func() { cancel(); <-done })

	next := func(what string) *inspect.Snapshot {
		t.Helper()
		select {
		case p := <-pictures:
			return p
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s published", what)
			return nil
		}
	}
	first := next("first picture")
	if opts := <-snaps.asked; opts.FullScan || opts.Units != nil {
		t.Errorf("the first picture was read with %+v, want every unit without the host-wide pass", opts)
	}
	if !first.Host.Filling {
		t.Error("the first picture is not marked still filling")
	}
	for _, l := range first.Sockets[0].Listeners {
		if !l.HoldersPartial {
			t.Errorf("listener %s: holders %+v given as complete before the host-wide pass", l.Address, l.Holders)
		}
	}
	// The host-wide pass is under way (held by the test): the tracker has
	// been given nothing.
	if opts := <-snaps.asked; !opts.FullScan {
		t.Errorf("the second snapshot was read with %+v, want the host-wide pass", opts)
	}
	select {
	case s := <-steps:
		t.Fatalf("the tracker was given %+v before the host-wide view", s)
	default:
	}

	close(snaps.release)
	second := next("host-wide picture")
	if second.Host.Filling {
		t.Error("the host-wide picture is marked still filling")
	}
	if l := second.Sockets[0].Listeners[0]; l.HoldersPartial {
		t.Errorf("the host-wide picture's holders are marked partial: %+v", l)
	}
	if n := len(second.Services[0].Connections); n != 3 {
		t.Errorf("the host-wide picture has %d connections, want 3 (the one held outside among them)", n)
	}
	select {
	case s := <-steps:
		if s.View == nil || s.View.Units != nil || s.View.Snapshot.Host.Filling || len(s.View.Snapshot.Services[0].Connections) != 3 {
			t.Errorf("the tracker's first step is %+v, want the host-wide view", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the tracker was given no view")
	}

	// Targeted (no host-wide pass): one view, never marked filling.
	tsnaps := &scriptedSnapshots{view: units}
	tpics := make(chan *inspect.Snapshot, 16)
	tw := &inspect.Watcher{Snapshots: tsnaps, Events: chanEvents{ch: make(chan dbusclient.Event)}, Interval: time.Hour, FullEvery: -1, UnitsFirst: true,
		OnSnapshot: func(s *inspect.Snapshot) { tpics <- s }}
	tctx, tcancel := context.WithCancel(context.Background())
	tdone := make(chan struct{})
	go func() { defer close(tdone); _ = tw.Run(tctx, make(chan inspect.Event, 16)) }()
	t.Cleanup(func() { tcancel(); <-tdone })
	select {
	case p := <-tpics:
		if p.Host.Filling {
			t.Error("a targeted watcher's picture is marked still filling")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a targeted watcher published no picture")
	}
	if n := tsnaps.count(); n != 1 {
		t.Errorf("a targeted watcher took %d snapshots to start, want 1", n)
	}
}
