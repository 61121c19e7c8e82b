package inspect_test

import (
	"testing"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/inspect"
)

// plainView is a view of a service that binds its own listener (demo-plain):
// pid in state, listening (and serving conns) once ready.
func plainView(pid int, state string, listening bool, conns ...uint64) *inspect.Snapshot {
	svc := inspect.Service{Unit: "plain.service", ActiveState: state, MainPID: pid, Processes: []inspect.Process{{PID: pid, Comm: "plain"}}}
	if listening {
		svc.OwnListeners = []inspect.Listener{{Type: "Stream", Address: "127.0.0.1:9000", Inode: uint64(1000 + pid)}}
	}
	for _, ino := range conns {
		svc.Connections = append(svc.Connections, inspect.Connection{Inode: ino, PID: pid, FD: int(ino) + 3, Remote: "127.0.0.1:4000"})
	}
	return &inspect.Snapshot{Services: []inspect.Service{svc}}
}

// TestTrackerStartingViews (issue 20, case 15): back-to-back restarts of a
// service that binds its own listener before it says READY=1. Each new
// process is seen only while it starts (not listening yet); the next
// restart begins before any view shows it ready. A restart from such a
// process to another seen only while starting is no "✓ no listener · no
// connections held": what they held was not seen.
func TestTrackerStartingViews(t *testing.T) {
	s := newStepper()
	unit := []string{"plain.service"}
	restart := func(id uint32, from, to int) []inspect.Event {
		var evs []inspect.Event
		evs = append(evs, s.sig(dbusclient.JobNew{ID: id, Unit: "plain.service", Type: "restart"})...)
		evs = append(evs, s.sig(dbusclient.UnitChanged{Unit: "plain.service", Changes: dbusclient.UnitChanges{MainPID: u32(0), ActiveState: str("deactivating")}})...)
		evs = append(evs, s.sig(dbusclient.UnitChanged{Unit: "plain.service", Changes: dbusclient.UnitChanges{MainPID: u32(uint32(to)), ActiveState: str("activating")}})...)
		// Seen only while it starts.
		evs = append(evs, s.step(inspect.Step{View: inspect.NewView(unit, plainView(to, "activating", false))})...)
		evs = append(evs, s.sig(dbusclient.UnitChanged{Unit: "plain.service", Changes: dbusclient.UnitChanges{ActiveState: str("active")}})...)
		return append(evs, s.sig(dbusclient.JobRemoved{ID: id, Unit: "plain.service", Result: "done"})...)
	}
	var evs []inspect.Event
	evs = append(evs, s.step(inspect.Step{View: inspect.NewView(nil, plainView(100, "active", true, 1, 2))})...)
	evs = append(evs, restart(7, 100, 200)...)
	evs = append(evs, restart(8, 200, 300)...)
	evs = append(evs, restart(9, 300, 400)...)
	evs = append(evs, s.step(inspect.Step{View: inspect.NewView(unit, plainView(400, "active", true))})...)
	hs := handoffsOf(evs, "plain.service")
	if len(hs) != 3 {
		t.Fatalf("%d handoffs, want 3", len(hs))
	}
	for _, e := range hs {
		h := *e.Handoff
		t.Log(inspect.Verdict(h))
		if h.ListenersKept+h.ListenersReplaced+h.ListenersUnknown == 0 {
			t.Errorf("%s: says no listener; the processes listened once ready, unseen", inspect.Verdict(h))
		}
		if h.OldPID == 200 && !h.ConnectionsUnknown {
			t.Errorf("%s: connections of a process seen only while it started are unknown", inspect.Verdict(h))
		}
	}
}
