package systemtest

import (
	"context"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/inspect"
)

// TestSSHSocketRestartAsRootAndUnprivileged (issue 19): root restarts the
// Accept=yes ssh.socket while a login through it is open; `fdtop watch
// --json` run by root and by a plain user at the same time each give the
// handoff verdict. Root's says what ss shows (listeners replaced, the
// session kept); the plain user cannot read the manager's or sshd's fds:
// its verdict says the listeners and the connection are unknown — never
// kept, replaced or dropped.
func TestSSHSocketRestartAsRootAndUnprivileged(t *testing.T) {
	ForEach(t, testSSHSocketRestartAsRootAndUnprivileged)
}

func testSSHSocketRestartAsRootAndUnprivileged(t *testing.T, c *Container) {
	demoUnits(t, c)
	ctx := context.Background()
	f := sshClients(t, c, 22)
	sess := openSession(t, f, "port-22")
	if _, err := sess.try("before"); err != nil {
		t.Fatal(err)
	}
	watchers := map[User]*watcher{
		Root:         startWatch(t, c, Root, "ssh*", demo.Activated.Service()),
		Unprivileged: startWatch(t, c, Unprivileged, "ssh*", demo.Activated.Service()),
	}
	for _, w := range watchers {
		w.ready(t, c, demo.Activated.Service())
	}
	listenersBefore := listenerInodes(t, c, 22)
	if out, err := c.Systemctl(ctx, "restart", "ssh.socket"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	listenersAfter := listenerInodes(t, c, 22)
	if _, err := sess.try("after"); err != nil {
		t.Fatalf("the session does not answer after the restart of ssh.socket: %v", err)
	}
	for _, u := range []User{Root, Unprivileged} {
		w := watchers[u]
		var others []inspect.Event
		verdict, ok := w.next(30*time.Second, func(e inspect.Event) bool {
			if e.Unit != "ssh.socket" {
				return false
			}
			if e.Type == inspect.EventHandoff {
				return true
			}
			others = append(others, e)
			return false
		})
		if !ok || verdict.Handoff == nil || verdict.Handoff.Accept == nil {
			t.Errorf("%v: no Accept=yes handoff verdict for ssh.socket (events %+v); stderr: %s", u, others, w.stderr.String())
			continue
		}
		h := verdict.Handoff
		t.Logf("%v on %s: %s; %+v %+v", u, c.Version, verdict.Message, *h, *h.Accept)
		if verdict.Job != "restart" {
			t.Errorf("%v: job %q, want restart", u, verdict.Job)
		}
		if h.ConnectionsDropped != 0 || h.Accept.InstancesStopped != 0 {
			t.Errorf("%v: dropped %d, instances stopped %d; the session still answers", u, h.ConnectionsDropped, h.Accept.InstancesStopped)
		}
		switch u {
		case Root:
			if h.ListenersReplaced != len(listenersAfter) || h.ListenersKept != 0 || h.ListenersUnknown != 0 ||
				h.Accept.InstancesKept < 1 || h.ConnectionsUnknown {
				t.Errorf("root: listeners kept %d replaced %d unknown %d, instances kept %d, connections unknown %v; ss: %v → %v, the session kept",
					h.ListenersKept, h.ListenersReplaced, h.ListenersUnknown, h.Accept.InstancesKept, h.ConnectionsUnknown, listenersBefore, listenersAfter)
			}
		case Unprivileged:
			// Not one of root's fds is readable: nothing seen kept,
			// replaced or preserved, all of it said unknown.
			if h.ListenersKept != 0 || h.ListenersReplaced != 0 || h.ListenersUnknown != len(listenersBefore) ||
				h.ConnectionsPreserved != 0 || !h.ConnectionsUnknown || h.Accept.InstancesUnknown < 1 || h.Accept.InstancesKept != 0 {
				t.Errorf("%s: listeners kept %d replaced %d unknown %d (want %d unknown), preserved %d, connections unknown %v, instances unknown %d kept %d",
					UserName, h.ListenersKept, h.ListenersReplaced, h.ListenersUnknown, len(listenersBefore), h.ConnectionsPreserved, h.ConnectionsUnknown, h.Accept.InstancesUnknown, h.Accept.InstancesKept)
			}
		}
	}
}
