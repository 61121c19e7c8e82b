package inspect_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
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
