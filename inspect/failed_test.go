package inspect_test

import (
	"strings"
	"testing"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/inspect"
)

// TestTrackerRestartFailed (issue 20, case 10): a restart that fails on the
// start limit leaves the service failed, its socket unit failed and the
// listener closed. It is no handoff "(pid 100 → 0)", nor a stop+start once
// another start fails: the restart failed, and the summary says what it
// cost.
func TestTrackerRestartFailed(t *testing.T) {
	s := newStepper()
	web := []string{"web.service"}
	s.view(nil, serviceView(100, "active", 1, 2))
	s.sig(dbusclient.JobNew{ID: 7, Unit: "web.service", Type: "restart"})
	s.sig(dbusclient.UnitChanged{Unit: "web.service", Changes: dbusclient.UnitChanges{MainPID: u32(0), ActiveState: str("deactivating")}})
	s.sig(dbusclient.UnitChanged{Unit: "web.service", Changes: dbusclient.UnitChanges{ActiveState: str("failed")}})
	s.sig(dbusclient.JobRemoved{ID: 7, Unit: "web.service", Result: "failed"})
	s.sig(dbusclient.UnitChanged{Unit: "web.socket", Changes: dbusclient.UnitChanges{ActiveState: str("failed")}})
	failed := func() *inspect.Snapshot {
		snap := serviceView(0, "failed")
		snap.Services[0].Result = "start-limit-hit"
		snap.Services[0].Processes, snap.Services[0].Passed = nil, nil
		snap.Sockets[0].ActiveState = "failed"
		snap.Sockets[0].Listeners[0].Inode = 0
		return snap
	}
	v := inspect.NewView(web, failed())
	v.Alive = map[uint64]bool{}
	evs := s.step(inspect.Step{View: v})
	// Another start, refused by the start limit.
	s.sig(dbusclient.JobNew{ID: 8, Unit: "web.service", Type: "start"})
	s.sig(dbusclient.JobRemoved{ID: 8, Unit: "web.service", Result: "failed"})
	evs = append(evs, s.step(inspect.Step{View: inspect.NewView(web, failed())})...)
	hs := handoffsOf(evs, "web.service")
	if len(hs) != 1 {
		t.Fatalf("%d handoff events, want 1 (the failed restart): %+v", len(hs), hs)
	}
	e := hs[0]
	h := *e.Handoff
	verdict := inspect.Verdict(h)
	t.Log(verdict)
	if !h.Failed || h.HandoffJob != "restart" || e.Result != "failed" || h.OldPID != 100 || h.NewPID != 0 {
		t.Errorf("%s: failed %v, job %q, result %q, pid %d → %d; want a failed restart of pid 100", verdict, h.Failed, h.HandoffJob, e.Result, h.OldPID, h.NewPID)
	}
	if h.ServiceState != "failed" || h.ServiceResult != "start-limit-hit" || len(h.SocketsFailed) != 1 || h.SocketsFailed[0] != "web.socket" {
		t.Errorf("%s: service %s (%s), sockets failed %q; want failed (start-limit-hit), [web.socket]", verdict, h.ServiceState, h.ServiceResult, h.SocketsFailed)
	}
	if h.ListenersClosed != 1 || h.ListenersUnknown != 0 || h.ListenersKept != 0 || h.ConnectionsDropped != 2 {
		t.Errorf("%s: listeners closed %d, unknown %d, kept %d, dropped %d; want 1, 0, 0, 2", verdict, h.ListenersClosed, h.ListenersUnknown, h.ListenersKept, h.ConnectionsDropped)
	}
	for _, want := range []string{"✗ restart failed (start-limit-hit)", "service failed", "web.socket failed", "listener closed", "(pid 100, none after)"} {
		if !strings.Contains(verdict, want) {
			t.Errorf("verdict %q lacks %q", verdict, want)
		}
	}
	if strings.Contains(verdict, "→ 0") || strings.Contains(verdict, "not seen") {
		t.Errorf("verdict %q: a handoff to no process, or a listener called unseen", verdict)
	}
}
