package inspect_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/inspect"
)

// scriptedSnapshots returns whatever view the test last set, and counts
// the snapshots taken.
type scriptedSnapshots struct {
	mu    sync.Mutex
	view  *inspect.Snapshot
	taken int
}

func (s *scriptedSnapshots) Snapshot(ctx context.Context, opts inspect.SnapshotOptions) (*inspect.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.taken++
	c := *s.view
	c.Time = time.Now()
	return &c, nil
}

func (s *scriptedSnapshots) set(v *inspect.Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.view = v
}

func (s *scriptedSnapshots) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.taken
}

// chanEvents is an EventSource fed by the test.
type chanEvents struct{ ch chan dbusclient.Event }

func (c chanEvents) Events() <-chan dbusclient.Event { return c.ch }
func (c chanEvents) Watch([]string, time.Duration)   {}
func (c chanEvents) Close()                          {}

// runWatcher runs a Watcher on snaps with fast rescans and no slow ones
// until the test ends; the test feeds its signals and reads its events.
func runWatcher(t *testing.T, snaps inspect.Snapshotter) (chanEvents, <-chan inspect.Event) {
	events := chanEvents{ch: make(chan dbusclient.Event)}
	out := make(chan inspect.Event, 256)
	w := &inspect.Watcher{Snapshots: snaps, Events: events, Interval: time.Hour, FullEvery: -1, FastInterval: time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx, out) }()
	t.Cleanup(func() { cancel(); <-done })
	return events, out
}

func serviceView(pid int, state string, conns ...uint64) *inspect.Snapshot {
	// What a real view of a socket-activated service has: its main
	// process among the unit's, passed the socket's listener.
	svc := inspect.Service{Unit: "web.service", ActiveState: state, MainPID: pid, Sockets: []string{"web.socket"},
		Processes: []inspect.Process{{PID: pid, Comm: "web"}},
		Passed:    []inspect.PassedFD{{FD: 3, Name: "web.socket", Kind: "tcp-listen", Inode: 77}}}
	for _, ino := range conns {
		svc.Connections = append(svc.Connections, inspect.Connection{Inode: ino, PID: pid, FD: int(ino) + 3, Remote: "127.0.0.1:4000"})
	}
	return &inspect.Snapshot{
		Sockets: []inspect.SocketUnit{{Unit: "web.socket", Service: "web.service",
			Listeners: []inspect.Listener{{Type: "Stream", Address: "127.0.0.1:8080", Inode: 77}}}},
		Services: []inspect.Service{svc},
	}
}

func u32(v uint32) *uint32 { return &v }
func str(v string) *string { return &v }

// TestWatchHandoffCountsWhatTheOldProcessHeld restarts a service whose old
// process is seen mid-shutdown (connections already closed, still the main
// PID): the summary counts the connections it held before the job.
func TestWatchHandoffCountsWhatTheOldProcessHeld(t *testing.T) {
	tests := []struct {
		name          string
		midShutdown   *inspect.Snapshot // the old process seen during the job
		after         *inspect.Snapshot
		kept, dropped int
		preserved     int
	}{
		{"shutting down closed its connections", serviceView(100, "deactivating"), serviceView(200, "active"), 1, 3, 0},
		{"a connection accepted after the last rescan", serviceView(100, "active", 1, 2, 3, 4), serviceView(200, "active"), 1, 4, 0},
		{"connections carried to the new process", serviceView(100, "deactivating"), serviceView(200, "active", 1, 2, 3), 1, 0, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snaps := &scriptedSnapshots{view: serviceView(100, "active", 1, 2, 3)}
			events, out := runWatcher(t, snaps)

			waitTaken := func(n int) {
				t.Helper()
				deadline := time.Now().Add(5 * time.Second)
				for snaps.count() < n {
					if time.Now().After(deadline) {
						t.Fatalf("%d snapshots taken, want %d", snaps.count(), n)
					}
					time.Sleep(time.Millisecond)
				}
			}
			waitTaken(1)
			events.ch <- dbusclient.JobNew{ID: 7, Unit: "web.service"}
			snaps.set(tc.midShutdown)
			waitTaken(snaps.count() + 2) // the fast rescan sees the old process mid-job
			snaps.set(tc.after)
			events.ch <- dbusclient.UnitChanged{Unit: "web.service", Changes: dbusclient.UnitChanges{MainPID: u32(0), ActiveState: str("activating")}}
			events.ch <- dbusclient.UnitChanged{Unit: "web.service", Changes: dbusclient.UnitChanges{MainPID: u32(200), ActiveState: str("active")}}
			events.ch <- dbusclient.JobRemoved{ID: 7, Unit: "web.service", Result: "done"}

			timeout := time.After(5 * time.Second)
			for {
				select {
				case ev := <-out:
					if ev.Type != inspect.EventHandoff {
						continue
					}
					h := ev.Handoff
					if h.OldPID != 100 || h.NewPID != 200 || h.ListenersKept != tc.kept ||
						h.ConnectionsDropped != tc.dropped || h.ConnectionsPreserved != tc.preserved {
						t.Errorf("handoff %+v, want pid 100 → 200, %d listener kept, %d dropped, %d preserved", *h, tc.kept, tc.dropped, tc.preserved)
					}
					return
				case <-timeout:
					t.Fatal("no handoff event")
				}
			}
		})
	}
}

// targetedSnapshots answers a snapshot of named units with a stale view of
// another service (no connections) alongside, as a Load that reads every
// fd-store service would.
type targetedSnapshots struct {
	mu          sync.Mutex
	full, named *inspect.Snapshot
	namedTaken  int           // snapshots of named units taken
	taken       chan struct{} // signalled (without blocking) on each
}

func (s *targetedSnapshots) Snapshot(ctx context.Context, opts inspect.SnapshotOptions) (*inspect.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.full
	if len(opts.Units) > 0 {
		v = s.named
		s.namedTaken++
		select {
		case s.taken <- struct{}{}:
		default:
		}
	}
	c := *v
	c.Time = time.Now()
	return &c, nil
}

func (s *targetedSnapshots) set(full, named *inspect.Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.full, s.named = full, named
}

// twoServices is web.service and db.service with their connections.
func twoServices(webPID int, webConns []uint64, dbPID int, dbConns []uint64) *inspect.Snapshot {
	s := serviceView(webPID, "active", webConns...)
	db := serviceView(dbPID, "active", dbConns...)
	db.Services[0].Unit, db.Services[0].Sockets = "db.service", []string{"db.socket"}
	db.Services[0].Passed[0].Name, db.Services[0].Passed[0].Inode = "db.socket", 78
	db.Sockets[0].Unit, db.Sockets[0].Service = "db.socket", "db.service"
	db.Sockets[0].Listeners[0].Address, db.Sockets[0].Listeners[0].Inode = "127.0.0.1:5432", 78
	s.Services = append(s.Services, db.Services...)
	s.Sockets = append(s.Sockets, db.Sockets...)
	return s
}

// TestWatchIgnoresServicesItDidNotAskFor: the fast refresh of one unit
// during its job must not overwrite what the watch knows of another.
func TestWatchIgnoresServicesItDidNotAskFor(t *testing.T) {
	snaps := &targetedSnapshots{taken: make(chan struct{}, 1)}
	stale := twoServices(100, nil, 300, nil) // db.service without its sockets' view
	snaps.set(twoServices(100, []uint64{1}, 300, []uint64{11, 12}), stale)
	events, out := runWatcher(t, snaps)

	restart := func(unit string, id uint32, newPID uint32) inspect.Handoff {
		t.Helper()
		events.ch <- dbusclient.JobNew{ID: id, Unit: unit}
		// The fast refreshes of the unit run: wait for two (the first may
		// have been asked for before the job).
		for i := 0; i < 2; i++ {
			select {
			case <-snaps.taken:
			case <-time.After(5 * time.Second):
				t.Fatalf("no fast refresh of %s during its job", unit)
			}
		}
		events.ch <- dbusclient.UnitChanged{Unit: unit, Changes: dbusclient.UnitChanges{MainPID: u32(newPID)}}
		events.ch <- dbusclient.JobRemoved{ID: id, Unit: unit, Result: "done"}
		timeout := time.After(5 * time.Second)
		for {
			select {
			case ev := <-out:
				if ev.Type == inspect.EventHandoff && ev.Unit == unit {
					return *ev.Handoff
				}
			case <-timeout:
				t.Fatalf("no handoff event for %s", unit)
			}
		}
	}
	// web restarts; the fast refreshes show db.service without connections.
	restart("web.service", 1, 200)
	// db restarts and drops its two connections: the summary must know them.
	after := twoServices(200, nil, 301, nil)
	snaps.set(after, after)
	h := restart("db.service", 2, 301)
	if h.ConnectionsDropped != 2 {
		t.Errorf("db.service handoff %+v, want its 2 connections dropped", h)
	}
}
