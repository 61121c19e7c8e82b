package inspect_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/inspect"
)

// optsSnapshots returns one view and records the options of every
// snapshot taken.
type optsSnapshots struct {
	mu   sync.Mutex
	view *inspect.Snapshot
	opts []inspect.SnapshotOptions
}

func (s *optsSnapshots) Snapshot(ctx context.Context, opts inspect.SnapshotOptions) (*inspect.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts = append(s.opts, opts)
	c := *s.view
	c.Time = time.Now()
	return &c, nil
}

func (s *optsSnapshots) taken() []inspect.SnapshotOptions {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]inspect.SnapshotOptions(nil), s.opts...)
}

// TestWatchFullScanOnNewScope: a unit that appears as a scope (logind's
// session-N.scope of a login, into which pam_systemd moves an sshd that
// holds a connection accepted from a service's listener) makes the next
// rescan a full host scan, so the connection is in view before a restart
// of the service; another new unit does not.
func TestWatchFullScanOnNewScope(t *testing.T) {
	for _, tt := range []struct {
		unit     string
		wantFull bool
	}{
		{"session-3.scope", true},
		{"web.service", false},
	} {
		t.Run(tt.unit, func(t *testing.T) {
			snaps := &optsSnapshots{view: serviceView(100, "active", 1)}
			events := chanEvents{ch: make(chan dbusclient.Event)}
			out := make(chan inspect.Event, 256)
			w := &inspect.Watcher{Snapshots: snaps, Events: events, Interval: 10 * time.Millisecond, FullEvery: -1, FastInterval: time.Millisecond}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); _ = w.Run(ctx, out) }()
			go func() {
				for range out {
				}
			}()
			t.Cleanup(func() { cancel(); <-done; close(out) })

			waitFor := func(what string, ok func([]inspect.SnapshotOptions) bool) []inspect.SnapshotOptions {
				t.Helper()
				deadline := time.Now().Add(10 * time.Second)
				for {
					if o := snaps.taken(); ok(o) {
						return o
					}
					if time.Now().After(deadline) {
						t.Fatalf("timed out waiting for %s: %+v", what, snaps.taken())
					}
					time.Sleep(time.Millisecond)
				}
			}
			first := waitFor("the first view", func(o []inspect.SnapshotOptions) bool { return len(o) >= 1 })
			if !first[0].FullScan {
				t.Fatalf("the first view is not a full scan: %+v", first[0])
			}
			n := len(waitFor("a rescan", func(o []inspect.SnapshotOptions) bool { return len(o) >= 2 }))
			events.ch <- dbusclient.UnitNew{Unit: tt.unit}
			// Three rescans after the signal: one of them is full, or none.
			after := waitFor("three more rescans", func(o []inspect.SnapshotOptions) bool { return len(o) >= n+4 })[n:]
			full := 0
			for _, o := range after {
				if o.FullScan && o.Units == nil {
					full++
				}
			}
			if tt.wantFull && full != 1 || !tt.wantFull && full != 0 {
				t.Errorf("%d full scans among the %d rescans after UnitNew %s, want %v", full, len(after), tt.unit, tt.wantFull)
			}
		})
	}
}

// TestTimelineShowsOnlyItsUnits: on a manager where other units come and
// go (a timer's service, a target, a socket unit the patterns do not name),
// the timeline has the events of the picture's units, and of the socket
// units its patterns name, and none of the others. With patterns demo-*:
// a restart of demo-handoff.service is there, the other units are not.
// Without patterns: a new socket unit is there (every socket unit is in the
// picture), a plain service and a target are not.
func TestTimelineShowsOnlyItsUnits(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		e := newEnv(t, sb, 100*time.Millisecond)
		units := map[string]string{
			"other.service":    "[Service]\nType=oneshot\nExecStart=/bin/true\n",
			"other.target":     "[Unit]\nDescription=other\n",
			"zz-other.socket":  "[Socket]\nListenStream=%t/zz-other.sock\n",
			"zz-other.service": "[Service]\nExecStart=/bin/sleep 600\n",
		}
		for name, content := range units {
			if err := sb.WriteUnit(name, content); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := sb.Systemctl(context.Background(), "daemon-reload"); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name     string
			patterns []string
			want     []string // units with events
			not      []string // units without
		}{
			{"patterns", []string{"demo-*"}, []string{demo.Handoff.Service()}, []string{"other.service", "other.target", "zz-other.socket"}},
			{"no patterns", nil, []string{demo.Handoff.Service(), "zz-other.socket"}, []string{"other.service", "other.target"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				b := &inspect.Builder{Systemd: e.client, Kernel: e.b.Kernel, Scope: "user", Patterns: tc.patterns}
				ctx, cancel := context.WithCancel(context.Background())
				sub, err := e.client.Subscribe(ctx)
				if err != nil {
					t.Fatal(err)
				}
				out := make(chan inspect.Event, 4096)
				first := make(chan struct{})
				var once sync.Once
				wt := &inspect.Watcher{Snapshots: b, Events: sub, Interval: 100 * time.Millisecond, FullEvery: -1, Shows: b.Names,
					OnSnapshot: func(*inspect.Snapshot) { once.Do(func() { close(first) }) }}
				done := make(chan struct{})
				go func() {
					defer close(done)
					defer sub.Close()
					_ = wt.Run(ctx, out)
				}()
				defer func() { cancel(); <-done }()
				<-first
				for _, args := range [][]string{
					{"start", "other.service"}, {"start", "other.target"}, {"stop", "other.target"},
					{"start", "zz-other.socket"}, {"restart", demo.Handoff.Service()},
				} {
					if _, err := sb.Systemctl(context.Background(), args...); err != nil {
						t.Fatal(err)
					}
				}
				defer sb.Systemctl(context.Background(), "stop", "zz-other.socket")
				// The handoff's verdict comes after the signals of every
				// command before its restart: then they are all out.
				seen := map[string]bool{}
				var lines []string
				timeout := time.After(30 * time.Second)
				for done := false; !done; {
					select {
					case ev := <-out:
						seen[ev.Unit] = true
						lines = append(lines, inspect.FormatEvent(ev))
						done = ev.Type == inspect.EventHandoff && ev.Unit == demo.Handoff.Service()
					case <-timeout:
						t.Fatalf("no handoff of %s in 30 s; events:\n%s", demo.Handoff.Service(), strings.Join(lines, "\n"))
					}
				}
				for _, u := range tc.want {
					if !seen[u] {
						t.Errorf("no event of %s; events:\n%s", u, strings.Join(lines, "\n"))
					}
				}
				for _, u := range tc.not {
					if seen[u] {
						t.Errorf("events of %s, which the picture does not show:\n%s", u, strings.Join(lines, "\n"))
					}
				}
			})
		}
	})
}
