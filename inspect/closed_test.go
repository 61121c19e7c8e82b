package inspect_test

import (
	"testing"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/inspect"
)

// TestTrackerClosedByClient: a connection the view before the job showed
// (that view can be an interval old) and that is gone after the restart is
// not dropped when the kernel says its client's end closed first (its
// client hung up, maybe before the job began), whether the kernel told it
// at the end or in a view during the job (what the kernel keeps of a
// closed connection does not last).
func TestTrackerClosedByClient(t *testing.T) {
	tests := []struct {
		name             string
		mid, end         map[uint64]string
		dropped, closedN int
		grade            inspect.Level
		event            inspect.EventType
	}{
		{"its client closed it, told at the end", nil, map[uint64]string{3: inspect.ClosedByClient}, 0, 1, inspect.LevelGood, inspect.EventConnectionClosed},
		{"its client closed it, told during the job", map[uint64]string{3: inspect.ClosedByClient}, nil, 0, 1, inspect.LevelGood, inspect.EventConnectionClosed},
		{"the service closed it", map[uint64]string{3: inspect.ClosedByService}, nil, 1, 0, inspect.LevelBad, inspect.EventConnectionDropped},
		{"the kernel did not tell", nil, nil, 1, 0, inspect.LevelBad, inspect.EventConnectionDropped},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStepper()
			web := []string{"web.service"}
			// The view before: three connections; the third one's client
			// hangs up before (or while) the restart runs.
			s.view(nil, serviceView(100, "active", 1, 2, 3))
			s.sig(dbusclient.JobNew{ID: 7, Unit: "web.service", Type: "restart"})
			mid := inspect.NewView(web, serviceView(100, "deactivating", 1, 2))
			mid.Closed = tc.mid
			s.step(inspect.Step{View: mid})
			s.restartSignals(200)
			s.sig(dbusclient.JobRemoved{ID: 7, Unit: "web.service", Result: "done"})
			v := inspect.NewView(web, serviceView(200, "active", 1, 2))
			v.Alive = map[uint64]bool{}
			v.Closed = tc.end
			evs := s.step(inspect.Step{View: v})
			hs := handoffsOf(evs, "web.service")
			if len(hs) != 1 {
				t.Fatalf("%d handoffs in %+v, want 1", len(hs), evs)
			}
			h := *hs[0].Handoff
			if h.ConnectionsPreserved != 2 || h.ConnectionsDropped != tc.dropped || h.ConnectionsClosed != tc.closedN {
				t.Errorf("%s: preserved %d dropped %d closed %d, want 2, %d, %d",
					inspect.Verdict(h), h.ConnectionsPreserved, h.ConnectionsDropped, h.ConnectionsClosed, tc.dropped, tc.closedN)
			}
			if g := inspect.Grade(h); g != tc.grade {
				t.Errorf("%s: grade %s, want %s", inspect.Verdict(h), g.Glyph(), tc.grade.Glyph())
			}
			found := false
			for _, e := range evs {
				if e.Inode != 3 {
					continue
				}
				if e.Type != tc.event {
					t.Errorf("event of the gone connection: %s (%s), want %s", e.Type, inspect.Describe(e), tc.event)
				}
				found = true
			}
			if !found {
				t.Errorf("no event of the gone connection in %+v", evs)
			}
		})
	}
}
