package dbusclient_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
)

// next waits for the first event that match accepts.
func next(t *testing.T, sub *dbusclient.Subscription, within time.Duration, match func(dbusclient.Event) bool) dbusclient.Event {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case ev, ok := <-sub.Events():
			if !ok {
				t.Fatal("subscription ended")
			}
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no matching event within %v", within)
			return nil
		}
	}
}

// TestRestartEvents restarts a service and checks the order of what the
// subscription delivers: JobNew, state changes and the new MainPID,
// JobRemoved(done).
func TestRestartEvents(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		installDemo(t, sb, 200*time.Millisecond)
		c := connect(t, sb)
		ctx := testCtx(t, 30*time.Second)
		svc := demo.Activated.Service()
		before, err := c.Service(ctx, svc)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := c.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		if _, err := sb.Systemctl(ctx, "restart", svc); err != nil {
			t.Fatal(err)
		}
		var seq []string
		var newPID uint32
		for len(seq) == 0 || seq[len(seq)-1] != "JobRemoved" {
			ev := next(t, sub, 10*time.Second, func(dbusclient.Event) bool { return true })
			switch e := ev.(type) {
			case dbusclient.JobNew:
				if e.Unit == svc && len(seq) == 0 {
					seq = append(seq, "JobNew")
				}
			case dbusclient.JobRemoved:
				if e.Unit == svc && len(seq) > 0 {
					if e.Result != dbusclient.JobDone {
						t.Errorf("JobRemoved result %q", e.Result)
					}
					seq = append(seq, "JobRemoved")
				}
			case dbusclient.UnitChanged:
				if e.Unit != svc || len(seq) == 0 {
					continue // before JobNew: late news of the start-up
				}
				if e.Changes.ActiveState != nil {
					seq = append(seq, "state:"+*e.Changes.ActiveState)
				}
				if p := e.Changes.MainPID; p != nil && *p != 0 && *p != before.MainPID {
					newPID = *p
					seq = append(seq, fmt.Sprintf("MainPID=%d", *p))
				}
			}
		}
		t.Logf("sequence: %v (main pid before: %d)", seq, before.MainPID)
		newMain := fmt.Sprintf("MainPID=%d", newPID)
		idx := func(s string) int {
			if s == "MainPID" {
				s = newMain
			}
			return slices.Index(seq, s)
		}
		if idx("JobNew") != 0 {
			t.Errorf("JobNew not first: %v", seq)
		}
		// The manager coalesces a unit's changes per event-loop turn and
		// sends each interface's PropertiesChanged apart: the new MainPID
		// (Service) was seen here before the state changes (Unit) around
		// it, and intermediate states can be skipped. What is sure: all of
		// it between JobNew and JobRemoved.
		states := slices.IndexFunc(seq, func(s string) bool { return len(s) > 6 && s[:6] == "state:" })
		if !(0 < states && states < idx("JobRemoved") && 0 < idx("MainPID") && idx("MainPID") < idx("JobRemoved")) {
			t.Errorf("want JobNew, then state changes and the new MainPID, then JobRemoved: %v", seq)
		}
		if !slices.Contains(seq, "state:active") {
			t.Errorf("never saw active: %v", seq)
		}
		after, err := c.Service(ctx, svc)
		if err != nil || after.MainPID != newPID || after.NRestarts != before.NRestarts {
			t.Errorf("after restart: MainPID %d (event said %d), %v", after.MainPID, newPID, err)
		}
	})
}

// TestReloadAndWatch: a unit added by daemon-reload shows up, and polled
// counters report connections.
func TestReloadAndWatch(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		c := connect(t, sb)
		ctx := testCtx(t, 30*time.Second)
		sub, err := c.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		ports, err := demo.FreePorts(1)
		if err != nil {
			t.Fatal(err)
		}
		// Enabled into sockets.target: the reload loads it.
		if err := sb.WriteUnit("fdt-new.socket", fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\nAccept=yes\n", ports[0])); err != nil {
			t.Fatal(err)
		}
		if err := sb.WriteUnit("fdt-new@.service", "[Service]\nExecStart=/bin/cat\nStandardInput=socket\n"); err != nil {
			t.Fatal(err)
		}
		wants := filepath.Join(sb.UnitDir, "sockets.target.wants")
		if err := os.MkdirAll(wants, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(sb.UnitDir, "fdt-new.socket"), filepath.Join(wants, "fdt-new.socket")); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Systemctl(ctx, "daemon-reload"); err != nil {
			t.Fatal(err)
		}
		next(t, sub, 10*time.Second, func(ev dbusclient.Event) bool { r, ok := ev.(dbusclient.Reloading); return ok && r.Active })
		next(t, sub, 10*time.Second, func(ev dbusclient.Event) bool {
			u, ok := ev.(dbusclient.UnitNew)
			return ok && u.Unit == "fdt-new.socket"
		})
		socks, err := c.ListSockets(ctx, []string{"fdt-new.socket"}, true)
		if err != nil || len(socks) != 1 {
			t.Fatalf("ListSockets after reload: %+v, %v", socks, err)
		}
		if res, err := c.Start(ctx, "fdt-new.socket"); err != nil || res != dbusclient.JobDone {
			t.Fatalf("start: %v %v", res, err)
		}
		sub.Watch([]string{"fdt-new.socket"}, 50*time.Millisecond)
		first := next(t, sub, 5*time.Second, func(ev dbusclient.Event) bool { _, ok := ev.(dbusclient.CountersChanged); return ok }).(dbusclient.CountersChanged)
		if first.Unit != "fdt-new.socket" || first.Counters.NAccepted != 0 {
			t.Errorf("first counters: %+v", first)
		}
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		got := next(t, sub, 5*time.Second, func(ev dbusclient.Event) bool {
			cc, ok := ev.(dbusclient.CountersChanged)
			return ok && cc.Counters.NAccepted == 1
		}).(dbusclient.CountersChanged)
		if got.Counters.NConnections != 1 {
			t.Errorf("counters after one connection: %+v", got.Counters)
		}
		sub.Watch(nil, 0)
	})
}

// TestReexec survives daemon-reexec during a subscription: Disconnected,
// Reconnected, and events and reads work afterwards.
func TestReexec(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		if err := sb.WriteUnit("fdt-sleep.service", "[Service]\nExecStart=/bin/sleep 300\n"); err != nil {
			t.Fatal(err)
		}
		ctx := testCtx(t, 60*time.Second)
		if _, err := sb.Systemctl(ctx, "daemon-reload"); err != nil {
			t.Fatal(err)
		}
		c := connect(t, sb)
		version := c.Version()
		sub, err := c.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		if _, err := sb.Systemctl(ctx, "daemon-reexec"); err != nil {
			t.Fatal(err)
		}
		next(t, sub, 20*time.Second, func(ev dbusclient.Event) bool { _, ok := ev.(dbusclient.Disconnected); return ok })
		rc := next(t, sub, 20*time.Second, func(ev dbusclient.Event) bool { _, ok := ev.(dbusclient.Reconnected); return ok }).(dbusclient.Reconnected)
		if rc.Version != version {
			t.Errorf("version after reexec %q, before %q", rc.Version, version)
		}
		if res, err := c.Start(ctx, "fdt-sleep.service"); err != nil || res != dbusclient.JobDone {
			t.Fatalf("Start after reexec: %v %v", res, err)
		}
		next(t, sub, 10*time.Second, func(ev dbusclient.Event) bool {
			jr, ok := ev.(dbusclient.JobRemoved)
			return ok && jr.Unit == "fdt-sleep.service"
		})
		svc, err := c.Service(ctx, "fdt-sleep.service")
		if err != nil || svc.MainPID == 0 {
			t.Errorf("Service after reexec: %+v, %v", svc, err)
		}
	})
}
