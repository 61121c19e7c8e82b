package inspect_test

import (
	"context"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/inspect"
)

// recordingSnapshots passes snapshots to a Builder and records what was
// asked for.
type recordingSnapshots struct {
	b *inspect.Builder

	mu    sync.Mutex
	asked []inspect.SnapshotOptions
}

func (r *recordingSnapshots) Snapshot(ctx context.Context, opts inspect.SnapshotOptions) (*inspect.Snapshot, error) {
	r.mu.Lock()
	r.asked = append(r.asked, opts)
	r.mu.Unlock()
	return r.b.Snapshot(ctx, opts)
}

func (r *recordingSnapshots) since(n int) []inspect.SnapshotOptions {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.asked[n:])
}

func (r *recordingSnapshots) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.asked)
}

// pictureWatch runs wt (its Events, OnSnapshot and OnView filled in here)
// on the sandbox's manager until the test ends, keeping a picture as the
// live model does: each whole snapshot, with the views of units merged in.
// It returns the picture (nil before the first) and the watch's events.
func (e *env) pictureWatch(t *testing.T, wt *inspect.Watcher) (picture func() *inspect.Snapshot, events <-chan inspect.Event) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := e.client.Subscribe(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var mu sync.Mutex
	var pic *inspect.Snapshot
	wt.Events = sub
	wt.OnSnapshot = func(s *inspect.Snapshot) { mu.Lock(); pic = s; mu.Unlock() }
	wt.OnView = func(units []string, s *inspect.Snapshot) {
		mu.Lock()
		pic = inspect.MergeUnits(pic, s, units)
		mu.Unlock()
	}
	out := make(chan inspect.Event, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer sub.Close()
		_ = wt.Run(ctx, out)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func() *inspect.Snapshot { mu.Lock(); defer mu.Unlock(); return pic }, out
}

// TestWatchIdleAsksNothing runs a watch on a real manager: while nothing
// happens it asks the manager nothing and reads no /proc beyond the
// descriptor counts, interval after interval; a unit whose state changes
// is read again by itself (not every unit) and the picture shows the
// change; a process whose descriptor count moves has /proc read again
// with the units as last read (no call to the manager).
func TestWatchIdleAsksNothing(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		e := newEnv(t, sb, 100*time.Millisecond)
		rec := &recordingSnapshots{b: e.b}
		var rounds atomic.Int64 // intervals passed: the manager's descriptors counted
		fs := fsOf(e.b.Kernel)
		picture, _ := e.pictureWatch(t, &inspect.Watcher{Snapshots: rec, Interval: 100 * time.Millisecond, FullEvery: -1,
			FDCount: func(pid int) (int, bool, error) {
				if pid == sb.PID {
					rounds.Add(1)
				}
				return fs.FDCount(pid)
			},
			SocketInode: fs.SocketInode,
		})
		waitRounds := func(n int64) {
			t.Helper()
			want := rounds.Load() + n
			deadline := time.Now().Add(30 * time.Second)
			for rounds.Load() < want {
				if time.Now().After(deadline) {
					t.Fatalf("the watch counted the manager's descriptors %d times in 30 s, want %d", rounds.Load(), want)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		service := func(unit string) (inspect.Service, bool) {
			p := picture()
			if p == nil {
				return inspect.Service{}, false
			}
			for _, s := range p.Services {
				if s.Unit == unit {
					return s, true
				}
			}
			return inspect.Service{}, false
		}

		// Settle: the demo services finish starting, counts stop moving.
		settle := func() {
			t.Helper()
			for tries := 0; ; tries++ {
				calls, n := e.client.CallCounts(), rec.count()
				waitRounds(5)
				if got := e.client.CallCounts(); maps.Equal(got, calls) && rec.count() == n {
					return // five intervals with no read at all
				}
				if tries == 20 {
					t.Fatalf("the watch kept reading while nothing happened: snapshots %+v, D-Bus calls %v → %v", rec.since(n), calls, e.client.CallCounts())
				}
			}
		}
		waitRounds(3)
		settle()

		// A unit whose state changes is read by itself (a service its
		// socket keeps loaded once stopped).
		plain := demo.Activated.Service()
		if svc, ok := service(plain); !ok || svc.ActiveState != "active" {
			t.Fatalf("%s in the picture = %+v (%v), want active", plain, svc, ok)
		}
		n := rec.count()
		if _, err := sb.Systemctl(context.Background(), "stop", plain); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			if svc, ok := service(plain); ok && svc.ActiveState == "inactive" {
				break
			}
			if time.Now().After(deadline) {
				svc, _ := service(plain)
				t.Fatalf("the picture still shows %s %s after its stop; snapshots asked: %+v", plain, svc.ActiveState, rec.since(n))
			}
			time.Sleep(10 * time.Millisecond)
		}
		for _, o := range rec.since(n) {
			if len(o.Units) == 0 && !o.Cached {
				t.Errorf("a stop of %s had every unit read from the manager (%+v), want only it", plain, o)
			}
		}

		// Started again, it is idle again: nothing waits for its start.
		if _, err := sb.Systemctl(context.Background(), "start", plain); err != nil {
			t.Fatal(err)
		}
		settle()

		// A descriptor count that moves has /proc read again, not the manager.
		n, calls := rec.count(), e.client.CallCounts()
		tr := e.traffic(t, demo.Handoff, 2)
		deadline = time.Now().Add(15 * time.Second)
		for {
			if svc, ok := service(demo.Handoff.Service()); ok && len(svc.Connections) >= 2 && tr.Stats().Connected >= 2 {
				break
			}
			if time.Now().After(deadline) {
				svc, _ := service(demo.Handoff.Service())
				t.Fatalf("the picture shows %d connections of %s, want 2; snapshots asked: %+v", len(svc.Connections), svc.Unit, rec.since(n))
			}
			time.Sleep(10 * time.Millisecond)
		}
		for _, o := range rec.since(n) {
			if !o.Cached || len(o.Units) > 0 {
				t.Errorf("new connections had %+v read, want /proc only (Cached)", o)
			}
		}
		if got := e.client.CallCounts(); !maps.Equal(got, calls) {
			t.Errorf("new connections had the manager asked: %v → %v", calls, got)
		}

		// Live connections, checked where they are at every interval,
		// read nothing again while they stay.
		settle()
	})
}

// TestPictureFollowsRestartToSocket: a restart changes the service's
// processes, and its socket unit names them as the listener's holders. When
// the handoff's verdict comes, the picture built from the watch's views
// (no host-wide pass: FullEvery -1) shows the socket's listener held by the
// new main process, and no longer by the old one, which is gone. (The views
// of the restarting service used to leave its socket unit as it was, with
// the old process as holder, until the next whole rescan, a minute later.)
func TestPictureFollowsRestartToSocket(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		e := newEnv(t, sb, 100*time.Millisecond)
		picture, events := e.pictureWatch(t, &inspect.Watcher{Snapshots: e.b, Interval: 100 * time.Millisecond, FullEvery: -1})
		e.traffic(t, demo.Handoff, 2)

		holders := func() (pids []int, ok bool) {
			p := picture()
			if p == nil {
				return nil, false
			}
			for _, su := range p.Sockets {
				if su.Unit != demo.Handoff.Socket() || len(su.Listeners) == 0 {
					continue
				}
				for _, h := range su.Listeners[0].Holders {
					pids = append(pids, h.PID)
				}
				return pids, true
			}
			return nil, false
		}
		ready := func() bool {
			p := picture()
			if p == nil {
				return false
			}
			for _, svc := range p.Services {
				if svc.Unit == demo.Handoff.Service() {
					return svc.ActiveState == "active" && svc.MainPID != 0 && len(svc.Connections) >= 2
				}
			}
			return false
		}
		var seen []string
		for round := 0; round < 2; round++ {
			// Before each restart: the service up, with its connections.
			deadline := time.Now().Add(30 * time.Second)
			for !ready() {
				if time.Now().After(deadline) {
					t.Fatalf("restart %d: the picture never showed %s active with 2 connections", round+1, demo.Handoff.Service())
				}
				time.Sleep(10 * time.Millisecond)
			}
			if _, err := sb.Systemctl(context.Background(), "restart", demo.Handoff.Service()); err != nil {
				t.Fatal(err)
			}
			var h *inspect.Handoff
			timeout := time.After(30 * time.Second)
			for h == nil {
				select {
				case ev := <-events:
					seen = append(seen, inspect.FormatEvent(ev))
					if ev.Type == inspect.EventHandoff && ev.Unit == demo.Handoff.Service() {
						h = ev.Handoff
					}
				case <-timeout:
					t.Fatalf("restart %d: no handoff event in 30 s; events:\n%s", round+1, strings.Join(seen, "\n"))
				}
			}
			pids, ok := holders()
			if !ok {
				t.Fatalf("restart %d: %s or its listener is missing from the picture", round+1, demo.Handoff.Socket())
			}
			if !slices.Contains(pids, h.NewPID) || slices.Contains(pids, h.OldPID) {
				t.Errorf("restart %d (pid %d → %d): the picture shows %s's listener held by pids %v, want the new main pid and not the old",
					round+1, h.OldPID, h.NewPID, demo.Handoff.Socket(), pids)
			}
		}
	})
}

// TestPictureSeesSwappedConnection: a client leaves and another comes
// within one interval, so the service's descriptor count does not move;
// the picture (no host-wide pass) still shows the new connection and not
// the closed one: the connections are checked where they were read.
func TestPictureSeesSwappedConnection(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		e := newEnv(t, sb, 100*time.Millisecond)
		fs := fsOf(e.b.Kernel)
		picture, _ := e.pictureWatch(t, &inspect.Watcher{Snapshots: e.b, Interval: time.Second, FullEvery: -1,
			FDCount: fs.FDCount, SocketInode: fs.SocketInode})

		remotes := func() []string {
			var out []string
			if p := picture(); p != nil {
				for _, svc := range p.Services {
					if svc.Unit == demo.Handoff.Service() {
						for _, c := range svc.Connections {
							out = append(out, c.Remote)
						}
					}
				}
			}
			return out
		}
		waitFor := func(what string, ok func([]string) bool) {
			t.Helper()
			deadline := time.Now().Add(20 * time.Second)
			for !ok(remotes()) {
				if time.Now().After(deadline) {
					t.Fatalf("the picture never showed %s; it shows %v", what, remotes())
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		dial := func() net.Conn {
			t.Helper()
			c, err := net.Dial("tcp", e.cfg.Addr(demo.Handoff))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}
		a := dial()
		waitFor("the first connection", func(rs []string) bool { return slices.Contains(rs, a.LocalAddr().String()) })
		a.Close()
		b := dial() // within the interval: the count is as before
		waitFor("the second connection and not the first", func(rs []string) bool {
			return slices.Contains(rs, b.LocalAddr().String()) && !slices.Contains(rs, a.LocalAddr().String())
		})
	})
}
