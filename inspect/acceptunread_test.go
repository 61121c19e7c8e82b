package inspect_test

import (
	"testing"

	"github.com/fdtop/fdtop/inspect"
)

// TestTrackerAcceptRestartUnreadable (issue 19): a plain user on a system
// manager restarts nothing but sees root restart an Accept=yes socket unit
// whose job is gone before its type is read, and whose listener and
// instance it cannot read (root's descriptors). The manager's time of the
// unit's activation moving on says the unit went down and up: the verdict
// comes, a restart, with the listener and the connection unknown — never
// kept, replaced or dropped. Without that time (an older recording, or the
// same time: a start of a listening unit) there is nothing to tell a
// restart by, and no verdict.
func TestTrackerAcceptRestartUnreadable(t *testing.T) {
	unit := func(activeEnter uint64) *inspect.Snapshot {
		return &inspect.Snapshot{Sockets: []inspect.SocketUnit{{
			Unit: "ssh.socket", ActiveState: "active", SubState: "listening", Accept: true,
			Service: "ssh@.service", ActiveEnterMonotonic: activeEnter,
			Listeners: []inspect.Listener{{Type: "Stream", Address: "0.0.0.0:22", InodeUnknown: true, Holders: []inspect.Holder{}}},
			Instances: []inspect.Instance{{
				Unit: "ssh@0-10.0.0.1:22-10.0.0.2:4711.service", ActiveState: "active",
				Local: "10.0.0.1:22", Remote: "10.0.0.2:4711", MainPID: 300,
			}},
		}}}
	}
	for _, tt := range []struct {
		name          string
		before, after uint64
		verdict       bool
	}{
		{"activated again", 5_000_000, 9_000_000, true},
		{"same activation", 5_000_000, 5_000_000, false},
		{"activation not read", 0, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStepper()
			units := []string{"ssh.socket"}
			s.view(units, unit(tt.before))
			s.step(inspect.Step{Signal: &inspect.Signal{Kind: "job_new", Unit: "ssh.socket", ID: 41}})
			s.step(inspect.Step{Signal: &inspect.Signal{Kind: "job_removed", Unit: "ssh.socket", ID: 41, Result: "done"}})
			evs := s.view(units, unit(tt.after))
			var verdicts []inspect.Event
			for _, e := range evs {
				if e.Type == inspect.EventHandoff {
					verdicts = append(verdicts, e)
				}
				if e.Type == inspect.EventConnectionDropped || e.Type == inspect.EventConnectionPreserved ||
					e.Type == inspect.EventListenerKept || e.Type == inspect.EventListenerReplaced {
					t.Errorf("said of what was not seen: %+v", e)
				}
			}
			if !tt.verdict {
				if len(verdicts) != 0 {
					t.Errorf("a verdict with nothing to tell a restart by: %+v", verdicts)
				}
				return
			}
			if len(verdicts) != 1 || verdicts[0].Handoff == nil || verdicts[0].Handoff.Accept == nil {
				t.Fatalf("want one Accept=yes verdict, got %+v (all: %+v)", verdicts, evs)
			}
			e := verdicts[0]
			h := *e.Handoff
			if e.Job != "restart" || h.ListenersUnknown != 1 || h.ListenersKept+h.ListenersReplaced != 0 ||
				!h.ConnectionsUnknown || h.ConnectionsPreserved+h.ConnectionsDropped != 0 ||
				h.Accept.Instances != 1 || h.Accept.InstancesUnknown != 1 || h.Accept.InstancesStopped != 0 {
				t.Errorf("job %q handoff %+v accept %+v: want a restart, the listener and the connection unknown", e.Job, h, *h.Accept)
			}
		})
	}
}
