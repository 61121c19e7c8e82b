package inspect_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/demo/traffic"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/procfs"
)

func TestMain(m *testing.M) {
	if runHelper() {
		return
	}
	sandboxtest.Main(m)
}

// env is a sandbox with the demo units and a Builder on it.
type env struct {
	sb     *sandbox.Sandbox
	cfg    demo.Config
	client *dbusclient.Client
	b      *inspect.Builder
}

func newEnv(t *testing.T, sb *sandbox.Sandbox, delay time.Duration) *env {
	return newEnvDelay(t, sb, delay)
}

// newEnvTB is newEnv for benchmarks, with the default start-up delay.
func newEnvTB(t testing.TB, sb *sandbox.Sandbox) *env {
	return newEnvDelay(t, sb, 100*time.Millisecond)
}

func newEnvDelay(t testing.TB, sb *sandbox.Sandbox, delay time.Duration) *env {
	t.Helper()
	cfg := sandboxtest.InstallDemo(t, sb, delay)
	client, err := dbusclient.Connect(context.Background(), dbusclient.Options{Scope: dbusclient.User, Address: sb.Address})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	fs, err := procfs.New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	b := &inspect.Builder{Systemd: client, Kernel: fs, Scope: "user", Patterns: []string{"demo-*", "leaky*"}} // demo-plain.service by the pattern
	return &env{sb: sb, cfg: cfg, client: client, b: b}
}

// traffic holds conns connections to a mode until the test ends.
func (e *env) traffic(t *testing.T, m demo.Mode, conns int) *traffic.Generator {
	t.Helper()
	return sandboxtest.Traffic(t, e.cfg.Addr(m), conns, 50*time.Millisecond)
}

func (e *env) snapshot(t *testing.T) *inspect.Snapshot {
	t.Helper()
	s, err := e.b.Snapshot(context.Background(), inspect.SnapshotOptions{FullScan: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func findSocket(t *testing.T, s *inspect.Snapshot, unit string) inspect.SocketUnit {
	t.Helper()
	for _, su := range s.Sockets {
		if su.Unit == unit {
			return su
		}
	}
	t.Fatalf("socket %s not in snapshot", unit)
	return inspect.SocketUnit{}
}

func findService(t *testing.T, s *inspect.Snapshot, unit string) inspect.Service {
	t.Helper()
	for _, svc := range s.Services {
		if svc.Unit == unit {
			return svc
		}
	}
	t.Fatalf("service %s not in snapshot", unit)
	return inspect.Service{}
}

func mainPID(t *testing.T, sb *sandbox.Sandbox, unit string) string {
	t.Helper()
	out, err := sb.Systemctl(context.Background(), "show", "-P", "MainPID", unit)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// TestSnapshotDemo: every listener is held by the manager and by the
// service on fd 3; the service was passed fd 3 under the socket's name;
// connections are found; the plain service's own listener is found.
func TestSnapshotDemo(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		e := newEnv(t, sb, 100*time.Millisecond)
		e.traffic(t, demo.Handoff, 3)
		s := e.snapshot(t)
		if s.Manager.Scope != "user" || !strings.HasPrefix(s.Manager.Version, sb.Version[:3]) {
			t.Errorf("manager = %+v, want user %s", s.Manager, sb.Version)
		}
		if s.Manager.PID != sb.PID {
			t.Errorf("manager pid = %d, want %d", s.Manager.PID, sb.PID)
		}
		for _, m := range []demo.Mode{demo.Activated, demo.Handoff} {
			su := findSocket(t, s, m.Socket())
			svc := findService(t, s, m.Service())
			if su.Service != m.Service() || len(su.Listeners) != 1 {
				t.Fatalf("%s: service %q, listeners %+v", su.Unit, su.Service, su.Listeners)
			}
			l := su.Listeners[0]
			if l.Address != e.cfg.Addr(m) || l.Inode == 0 || l.Type != "Stream" {
				t.Errorf("%s listener = %+v, want Stream %s with an inode", su.Unit, l, e.cfg.Addr(m))
			}
			var manager, service bool
			for _, h := range l.Holders {
				switch {
				case h.Manager && h.PID == sb.PID:
					manager = true
				case h.PID == svc.MainPID && h.FD == 3 && h.Unit == m.Service() && !h.Outside:
					service = true
				case h.Outside:
					t.Errorf("%s: holder %+v flagged outside", su.Unit, h)
				}
			}
			if !manager || !service {
				t.Errorf("%s holders = %+v, want the manager (pid %d) and %s's main pid %d on fd 3", su.Unit, l.Holders, sb.PID, m.Service(), svc.MainPID)
			}
			if len(svc.Passed) == 0 || svc.Passed[0].FD != 3 || svc.Passed[0].Name != m.Socket() || svc.Passed[0].Inode != l.Inode {
				t.Errorf("%s passed = %+v, want fd 3 = %q (inode %d)", svc.Unit, svc.Passed, m.Socket(), l.Inode)
			}
		}
		h := findService(t, s, demo.Handoff.Service())
		if len(h.Connections) != 3 {
			t.Errorf("%s connections = %+v, want the 3 traffic connections", h.Unit, h.Connections)
		}
		for _, c := range h.Connections {
			if c.Local != e.cfg.Addr(demo.Handoff) || !strings.HasPrefix(c.Remote, "127.0.0.1:") || c.State != "ESTAB" {
				t.Errorf("connection %+v, want local %s ESTAB", c, e.cfg.Addr(demo.Handoff))
			}
		}
		p := findService(t, s, demo.Plain.Service())
		if len(p.OwnListeners) != 1 || p.OwnListeners[0].Address != e.cfg.Addr(demo.Plain) {
			t.Errorf("%s own listeners = %+v, want %s", p.Unit, p.OwnListeners, e.cfg.Addr(demo.Plain))
		}
		for _, w := range s.Warnings {
			t.Errorf("unexpected warning %+v", w)
		}
	})
}

// TestSnapshotFDStore: while the handoff service is between instances, its
// store holds one entry per connection plus the state memfd: listed with
// their names on 254, inferred (named from LISTEN_FDNAMES of the new
// process) on 252.
func TestSnapshotFDStore(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		e := newEnv(t, sb, 3*time.Second)
		e.traffic(t, demo.Handoff, 3)
		if _, err := sb.Systemctl(context.Background(), "restart", "--no-block", demo.Handoff.Service()); err != nil {
			t.Fatal(err)
		}
		var svc inspect.Service
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			svc = findService(t, e.snapshot(t), demo.Handoff.Service())
			if svc.FDStoreCount == 4 && len(svc.FDStore) == 4 && svc.MainPID != 0 && len(svc.Passed) == 5 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if svc.FDStoreCount != 4 || len(svc.FDStore) != 4 {
			t.Fatalf("fd store count %d, entries %+v; want 4 (3 connections + state)", svc.FDStoreCount, svc.FDStore)
		}
		listed := strings.HasPrefix(sb.Version, "254")
		names := map[string]bool{}
		for _, se := range svc.FDStore {
			names[se.Name] = true
			if se.Inferred == listed {
				t.Errorf("entry %+v: inferred = %v on systemd %s", se, se.Inferred, sb.Version)
			}
			switch {
			case se.Name == "state":
				if se.Kind != "memfd" || !strings.Contains(se.Detail, "fdtop-state") {
					t.Errorf("state entry = %+v, want memfd fdtop-state", se)
				}
			case strings.HasPrefix(se.Name, "conn-"):
				if se.Kind != "tcp" || !strings.Contains(se.Detail, e.cfg.Addr(demo.Handoff)+" → 127.0.0.1:") {
					t.Errorf("connection entry = %+v, want tcp %s → client", se, e.cfg.Addr(demo.Handoff))
				}
			default:
				t.Errorf("unexpected store entry %+v", se)
			}
		}
		for _, n := range []string{"state", "conn-1", "conn-2", "conn-3"} {
			if !names[n] {
				t.Errorf("store entries %+v lack %q", svc.FDStore, n)
			}
		}
	})
}

// TestLeakedListener: a service whose child keeps the listener after the
// main process is gone is flagged.
func TestLeakedListener(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		e := newEnv(t, sb, 100*time.Millisecond)
		ports, err := demo.FreePorts(1)
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
		if err := sb.WriteUnit("leaky.socket", "[Socket]\nListenStream="+addr+"\n"); err != nil {
			t.Fatal(err)
		}
		// The child inherits fd 3 and outlives the main process.
		if err := sb.WriteUnit("leaky.service", "[Service]\nKillMode=process\nExecStart=/bin/sh -c 'sleep 300 & exit 0'\n"); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for _, args := range [][]string{{"daemon-reload"}, {"start", "leaky.socket"}, {"start", "leaky.service"}} {
			if _, err := sb.Systemctl(ctx, args...); err != nil {
				t.Fatal(err)
			}
		}
		var warn *inspect.Warning
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) && warn == nil {
			s := e.snapshot(t)
			for i, w := range s.Warnings {
				if w.Unit == "leaky.socket" && w.Code == "leaked-listener" {
					warn = &s.Warnings[i]
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		if warn == nil {
			t.Fatalf("no leaked-listener warning for leaky.socket; snapshot:\n%s", tree(t, e.snapshot(t)))
		}
		// The holder is the background child: sh until it has exec'd sleep.
		if !strings.Contains(warn.Message, "(sleep)") && !strings.Contains(warn.Message, "(sh)") {
			t.Errorf("warning %q does not name the holder", warn.Message)
		}
	})
}

func tree(t *testing.T, s *inspect.Snapshot) string {
	var b strings.Builder
	if err := inspect.WriteTree(&b, s); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// watch runs a Watcher for the test and collects its events.
type watch struct {
	mu     sync.Mutex
	events []inspect.Event
	steps  []inspect.Step // the tracker's inputs, in order (Watcher.Trace)
	cancel context.CancelFunc
	done   chan struct{}
}

func (e *env) watch(t *testing.T) *watch {
	t.Helper()
	return e.watchWith(t, nil)
}

// watchWith is watch with the Watcher set up further by opts (nil: as it is).
func (e *env) watchWith(t *testing.T, opts func(*inspect.Watcher)) *watch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := e.client.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := &watch{cancel: cancel, done: make(chan struct{})}
	out := make(chan inspect.Event, 1024)
	first := make(chan struct{})
	var once sync.Once
	wt := &inspect.Watcher{Snapshots: e.b, Events: sub, Interval: 500 * time.Millisecond, FullEvery: -1,
		Alive:      inspect.SocketsAlive(fsOf(e.b.Kernel).SocketsByInode),
		OnSnapshot: func(*inspect.Snapshot) { once.Do(func() { close(first) }) },
		Trace: func(s inspect.Step) {
			w.mu.Lock()
			w.steps = append(w.steps, s)
			w.mu.Unlock()
		}}
	if opts != nil {
		opts(wt)
	}
	go func() {
		defer close(w.done)
		defer sub.Close()
		_ = wt.Run(ctx, out)
	}()
	go func() {
		for {
			select {
			case ev := <-out:
				w.mu.Lock()
				w.events = append(w.events, ev)
				w.mu.Unlock()
			case <-w.done:
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-w.done })
	select {
	case <-first:
	case <-w.done:
		t.Fatal("the watch stopped before its first snapshot")
	case <-time.After(30 * time.Second):
		t.Fatal("the watch took no first snapshot in 30 s")
	}
	return w
}

// text renders the timeline seen so far.
func (w *watch) text() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for _, e := range w.events {
		b.WriteString(inspect.FormatEvent(e) + "\n")
	}
	return b.String()
}

// handoffs returns the handoff events of unit seen so far.
func (w *watch) handoffs(unit string) []inspect.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []inspect.Event
	for _, e := range w.events {
		if e.Type == inspect.EventHandoff && e.Unit == unit {
			out = append(out, e)
		}
	}
	return out
}

// waitConns waits until the latest full view of the watch shows unit with
// at least n connections.
func (w *watch) waitConns(t *testing.T, unit string, n int) {
	t.Helper()
	waitCount(t, fmt.Sprintf("view of %s with %d connections", unit, n), n, func() int { return w.conns(unit) })
}

// waitCount waits up to 15 s until count says at least n, or fails saying
// what it waited for and the last count.
func waitCount(t *testing.T, what string, n int, count func() int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if count() >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %s in 15 s (last: %d)", what, count())
}

// conns counts the connections of unit in the latest full view (-1: none).
func (w *watch) conns(unit string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.steps) - 1; i >= 0; i-- {
		if v := w.steps[i].View; v != nil && v.Units == nil {
			for _, svc := range v.Snapshot.Services {
				if svc.Unit == unit {
					return len(svc.Connections)
				}
			}
			return -1
		}
	}
	return -1
}

func (w *watch) waitHandoffs(t *testing.T, unit string, n int) []inspect.Event {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if hs := w.handoffs(unit); len(hs) >= n {
			return hs
		}
		time.Sleep(20 * time.Millisecond)
	}
	// (handoffs and text lock w.mu: not held here.)
	t.Fatalf("%d handoff events of %s, want %d; timeline:\n%s", len(w.handoffs(unit)), unit, n, w.text())
	return nil
}

// TestWatchRestarts restarts each demo mode under traffic and checks the
// handoff summary: plain replaces its listener, activated keeps it but
// drops the clients, handoff keeps it and carries every connection.
func TestWatchRestarts(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		e := newEnv(t, sb, 300*time.Millisecond)
		for _, m := range demo.Modes {
			e.traffic(t, m, 3)
		}
		w := e.watch(t)
		for _, m := range demo.Modes {
			old := mainPID(t, sb, m.Service())
			w.waitConns(t, m.Service(), 3) // a view has seen the connections
			if _, err := sb.Systemctl(context.Background(), "restart", m.Service()); err != nil {
				t.Fatal(err)
			}
			hs := w.waitHandoffs(t, m.Service(), 1)
			h := hs[0].Handoff
			t.Logf("%s: %s", m, inspect.Verdict(*h))
			if fmt.Sprint(h.OldPID) != old || fmt.Sprint(h.NewPID) != mainPID(t, sb, m.Service()) || h.HandoffJob != "restart" {
				t.Errorf("%s: handoff %+v, want restart from pid %s to the new main pid", m, h, old)
			}
			switch m {
			case demo.Plain:
				if h.ListenersReplaced != 1 || h.ListenersKept != 0 {
					t.Errorf("plain: listeners kept %d replaced %d, want 0/1", h.ListenersKept, h.ListenersReplaced)
				}
				if h.ConnectionsDropped != 3 {
					t.Errorf("plain: dropped %d, want 3", h.ConnectionsDropped)
				}
			case demo.Activated:
				if h.ListenersKept != 1 || h.ListenersReplaced != 0 {
					t.Errorf("activated: listeners kept %d replaced %d, want 1/0", h.ListenersKept, h.ListenersReplaced)
				}
				if h.ConnectionsDropped != 3 || h.ConnectionsPreserved != 0 {
					t.Errorf("activated: preserved %d dropped %d, want 0/3", h.ConnectionsPreserved, h.ConnectionsDropped)
				}
			case demo.Handoff:
				if h.ListenersKept != 1 || h.ListenersReplaced != 0 {
					t.Errorf("handoff: listeners kept %d replaced %d, want 1/0", h.ListenersKept, h.ListenersReplaced)
				}
				if h.ConnectionsPreserved != 3 || h.ConnectionsDropped != 0 {
					t.Errorf("handoff: preserved %d dropped %d, want 3/0", h.ConnectionsPreserved, h.ConnectionsDropped)
				}
				if h.FDsCarried != 4 || h.FDStoreBefore != 4 || h.FDStoreAfter != 0 || h.StoreDiscarded {
					t.Errorf("handoff: carried %d, store %d → %d, discarded %v; want 4 carried, 4 → 0", h.FDsCarried, h.FDStoreBefore, h.FDStoreAfter, h.StoreDiscarded)
				}
				if len(h.ListenersFromStore) != 0 {
					t.Errorf("handoff: listeners from the store %q, want none (the socket unit's)", h.ListenersFromStore)
				}
			case demo.StoredListener:
				if h.ListenersKept != 1 || h.ListenersReplaced != 0 || strings.Join(h.ListenersFromStore, ",") != "listener" {
					t.Errorf("stored-listener: listeners kept %d replaced %d from the store %q, want 1/0 from \"listener\"", h.ListenersKept, h.ListenersReplaced, h.ListenersFromStore)
				}
				if h.ConnectionsDropped != 3 || h.ConnectionsPreserved != 0 {
					t.Errorf("stored-listener: preserved %d dropped %d, want 0/3", h.ConnectionsPreserved, h.ConnectionsDropped)
				}
				if h.FDsCarried != 1 || h.StoreDiscarded {
					t.Errorf("stored-listener: carried %d, discarded %v; want the listener carried", h.FDsCarried, h.StoreDiscarded)
				}
				if v := inspect.Verdict(*h); !strings.Contains(v, `listener kept (from the fd store) as "listener"`) {
					t.Errorf("stored-listener: verdict %q does not say the listener came through the store", v)
				}
			}
		}
	})
}

// TestWatchStopStart: stopping the handoff service discards its store
// (252; 254 with the default FileDescriptorStorePreserve=restart), and the
// stop+start is reported as one handoff that says so.
func TestWatchStopStart(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		e := newEnv(t, sb, 300*time.Millisecond)
		e.traffic(t, demo.Handoff, 3)
		w := e.watch(t)
		w.waitConns(t, demo.Handoff.Service(), 3)
		ctx := context.Background()
		if _, err := sb.Systemctl(ctx, "stop", demo.Handoff.Service()); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Systemctl(ctx, "start", demo.Handoff.Service()); err != nil {
			t.Fatal(err)
		}
		h := w.waitHandoffs(t, demo.Handoff.Service(), 1)[0].Handoff
		t.Logf("%s", inspect.Verdict(*h))
		defer func() {
			if t.Failed() {
				t.Logf("timeline:\n%s", w.text())
			}
		}()
		if h.HandoffJob != "stop+start" || !h.StoreDiscarded || h.FDsCarried != 0 {
			t.Errorf("handoff = %+v, want stop+start with the store discarded", h)
		}
		if v := inspect.Verdict(*h); !strings.Contains(v, "fd store discarded") {
			t.Errorf("verdict %q does not say the store was discarded", v)
		}
		if h.ConnectionsPreserved != 0 || h.ConnectionsDropped != 3 {
			t.Errorf("preserved %d dropped %d, want 0/3", h.ConnectionsPreserved, h.ConnectionsDropped)
		}
	})
}

// TestWatchStoredStopStart: a stop and start of demo-stored.service. On
// 254 (FileDescriptorStorePreserve=yes, the unit kept loaded) the listener
// waits in the store and the verdict says it was kept from there; on 252
// the stop discards the store and the new process binds anew: listener
// replaced, store discarded.
func TestWatchStoredStopStart(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		e := newEnv(t, sb, 300*time.Millisecond)
		svc := demo.StoredListener.Service()
		e.traffic(t, demo.StoredListener, 3)
		w := e.watch(t)
		w.waitConns(t, svc, 3)
		ctx := context.Background()
		for _, verb := range []string{"stop", "start"} {
			if _, err := sb.Systemctl(ctx, verb, svc); err != nil {
				t.Fatal(err)
			}
		}
		h := w.waitHandoffs(t, svc, 1)[0].Handoff
		v := inspect.Verdict(*h)
		t.Logf("%s", v)
		defer func() {
			if t.Failed() {
				t.Logf("timeline:\n%s", w.text())
			}
		}()
		if h.HandoffJob != "stop+start" {
			t.Errorf("job %q, want stop+start", h.HandoffJob)
		}
		if e.cfg.PreserveStore {
			if h.ListenersKept != 1 || strings.Join(h.ListenersFromStore, ",") != "listener" || h.StoreDiscarded || h.FDsCarried != 1 {
				t.Errorf("handoff %+v, want the listener kept from the store, carried, not discarded", h)
			}
			if !strings.Contains(v, `listener kept (from the fd store) as "listener"`) {
				t.Errorf("verdict %q does not say the listener came through the store", v)
			}
		} else {
			if h.ListenersReplaced != 1 || len(h.ListenersFromStore) != 0 || !h.StoreDiscarded {
				t.Errorf("handoff %+v, want the listener replaced and the store discarded", h)
			}
			if !strings.Contains(v, "listener replaced") || !strings.Contains(v, "fd store discarded") {
				t.Errorf("verdict %q does not say the listener was replaced and the store discarded", v)
			}
		}
	})
}

// TestSnapshotOwnUnits: a socket unit with one listener of every kind
// (TCP v4 and v6, UDP, unix path, abstract, FIFO, sequential packet) is
// joined listener by listener, each held by the manager and by the service
// on fd 3, 4, ... in unit-file order; an Accept=yes socket shows its live
// per-connection instance with the peer address.
func TestSnapshotOwnUnits(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		e := newEnv(t, sb, 100*time.Millisecond)
		e.b.Patterns = []string{"own*", "echo*"}
		ports, err := demo.FreePorts(4)
		if err != nil {
			t.Fatal(err)
		}
		abstract := fmt.Sprintf("fdtop-own-%d", ports[0])
		listen := []struct{ directive, typ, addr string }{
			{"ListenStream", "Stream", fmt.Sprintf("127.0.0.1:%d", ports[0])},
			{"ListenStream", "Stream", fmt.Sprintf("[::1]:%d", ports[1])},
			{"ListenDatagram", "Datagram", fmt.Sprintf("127.0.0.1:%d", ports[2])},
			{"ListenStream", "Stream", sb.RuntimeDir + "/own.sock"},
			{"ListenStream", "Stream", "@" + abstract},
			{"ListenFIFO", "FIFO", sb.RuntimeDir + "/own.fifo"},
			{"ListenSequentialPacket", "SequentialPacket", sb.RuntimeDir + "/own.seq"},
		}
		var unit strings.Builder
		unit.WriteString("[Socket]\n")
		for _, l := range listen {
			fmt.Fprintf(&unit, "%s=%s\n", l.directive, l.addr)
		}
		ctx := context.Background()
		// The service holds what it was passed: sleep keeps fds 3..9.
		write := map[string]string{
			"own.socket":    unit.String(),
			"own.service":   "[Service]\nExecStart=/bin/sleep 300\n",
			"echo.socket":   fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\nAccept=yes\n", ports[3]),
			"echo@.service": "[Service]\nExecStart=/bin/cat\nStandardInput=socket\n",
		}
		for name, content := range write {
			if err := sb.WriteUnit(name, content); err != nil {
				t.Fatal(err)
			}
		}
		for _, args := range [][]string{{"daemon-reload"}, {"start", "own.socket", "echo.socket"}, {"start", "own.service"}} {
			if _, err := sb.Systemctl(ctx, args...); err != nil {
				t.Fatal(err)
			}
		}
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[3]))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()

		var s *inspect.Snapshot
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			s = e.snapshot(t)
			if su := findSocket(t, s, "echo.socket"); len(su.Instances) == 1 && su.Instances[0].MainPID != 0 && su.Instances[0].Remote != "" {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		own := findSocket(t, s, "own.socket")
		svc := findService(t, s, "own.service")
		if len(own.Listeners) != len(listen) {
			t.Fatalf("own.socket listeners = %+v, want %d", own.Listeners, len(listen))
		}
		for i, l := range listen {
			got := own.Listeners[i]
			if got.Type != l.typ || got.Address != l.addr || got.Inode == 0 {
				t.Errorf("listener %d = %+v, want %s %s with an inode", i, got, l.typ, l.addr)
				continue
			}
			var manager, service bool
			for _, h := range got.Holders {
				if h.Manager && h.PID == sb.PID {
					manager = true
				}
				if h.PID == svc.MainPID && h.FD == 3+i && !h.Outside {
					service = true
				}
			}
			if !manager || !service {
				t.Errorf("listener %s holders = %+v, want the manager and own.service's pid %d on fd %d", l.addr, got.Holders, svc.MainPID, 3+i)
			}
		}
		echo := findSocket(t, s, "echo.socket")
		if !echo.Accept || len(echo.Instances) != 1 {
			t.Fatalf("echo.socket accept=%v instances=%+v, want one live instance", echo.Accept, echo.Instances)
		}
		in := echo.Instances[0]
		if in.Remote != conn.LocalAddr().String() || in.Local != fmt.Sprintf("127.0.0.1:%d", ports[3]) {
			t.Errorf("instance %+v, want the connection from %s", in, conn.LocalAddr())
		}
	})
}

// TestWatchSurvivesReloadAndReexec: a unit added by daemon-reload shows up
// on the timeline; daemon-reexec drops the connection, the watcher says so,
// reconnects, and the next restart is still summarised.
func TestWatchSurvivesReloadAndReexec(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		e := newEnv(t, sb, 100*time.Millisecond)
		w := e.watch(t)
		ctx := context.Background()
		ports, err := demo.FreePorts(1)
		if err != nil {
			t.Fatal(err)
		}
		if err := sb.WriteUnit("demo-extra.socket", fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\n", ports[0])); err != nil {
			t.Fatal(err)
		}
		if err := sb.WriteUnit("demo-extra.service", "[Service]\nExecStart=/bin/sleep 300\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Systemctl(ctx, "daemon-reload"); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Systemctl(ctx, "start", "demo-extra.socket"); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Systemctl(ctx, "daemon-reexec"); err != nil {
			t.Fatal(err)
		}
		waitFor := func(what string, ok func(inspect.Event) bool) {
			t.Helper()
			deadline := time.Now().Add(15 * time.Second)
			for time.Now().Before(deadline) {
				w.mu.Lock()
				for _, ev := range w.events {
					if ok(ev) {
						w.mu.Unlock()
						return
					}
				}
				w.mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
			t.Fatalf("no %s on the timeline:\n%s", what, w.text())
		}
		waitFor("state of the unit the reload added", func(ev inspect.Event) bool {
			return ev.Type == inspect.EventState && ev.Unit == "demo-extra.socket" && ev.ActiveState == "active"
		})
		waitFor("disconnected event", func(ev inspect.Event) bool { return ev.Type == inspect.EventDisconnected })
		waitFor("reconnected event", func(ev inspect.Event) bool { return ev.Type == inspect.EventReconnected })
		if _, err := sb.Systemctl(ctx, "restart", demo.Handoff.Service()); err != nil {
			t.Fatal(err)
		}
		waitFor("handoff after the reexec", func(ev inspect.Event) bool {
			return ev.Type == inspect.EventHandoff && ev.Unit == demo.Handoff.Service()
		})
		w.mu.Lock()
		defer w.mu.Unlock()
		var reloads int
		for _, ev := range w.events {
			if ev.Type == inspect.EventUnitNew && strings.HasPrefix(ev.Unit, "gpg") {
				t.Errorf("unit churn of the reload leaked onto the timeline: %+v", ev)
			}
			if ev.Type == inspect.EventReloading {
				reloads++
			}
		}
		if reloads < 2 {
			t.Errorf("%d reloading events, want the reload's start and end", reloads)
		}
	})
}
