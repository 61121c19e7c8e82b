package ui

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/fdtop/fdtop/inspect"
)

func TestMain(m *testing.M) {
	flag.Parse()
	lipgloss.SetColorProfile(termenv.Ascii)
	lipgloss.SetHasDarkBackground(true)
	time.Local = time.UTC
	os.Exit(m.Run())
}

// t0 is the fixtures' clock.
var t0 = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

func listener(addr string, inode uint64, pid int, comm, unit string) inspect.Listener {
	return inspect.Listener{
		Type: "Stream", Address: addr, Inode: inode, State: "LISTEN",
		Holders: []inspect.Holder{
			{PID: 1, FD: 40 + int(inode%10), Comm: "systemd", Manager: true},
			{PID: pid, FD: 3, Comm: comm, Unit: unit},
		},
	}
}

func conns(pid, n, port int) []inspect.Connection {
	c := make([]inspect.Connection, n)
	for i := range c {
		c[i] = inspect.Connection{PID: pid, FD: 10 + i, Inode: uint64(9000 + i), Local: fmt.Sprintf("127.0.0.1:%d", port), Remote: fmt.Sprintf("127.0.0.1:%d", 50000+i), State: "ESTABLISHED"}
	}
	return c
}

// demoSnapshot is what fdtop demo looks like: plain (no socket),
// activated (socket, no store) and handoff (socket and fd store).
func demoSnapshot() *inspect.Snapshot {
	return &inspect.Snapshot{
		Time:    t0,
		Manager: inspect.Manager{Scope: "user", Version: "254.26-1~bpo12+1", FDStoreListing: true, FDStorePreserve: true},
		Host:    inspect.HostInfo{Hostname: "testhost", ScanDuration: 12 * time.Millisecond},
		Sockets: []inspect.SocketUnit{
			{Unit: "demo-activated.socket", ActiveState: "active", SubState: "running", Service: "demo-activated.service", NAccepted: 0, NConnections: 0,
				Listeners: []inspect.Listener{listener("127.0.0.1:7101", 2101, 201, "fdtop", "demo-activated.service")}},
			{Unit: "demo-handoff.socket", ActiveState: "active", SubState: "running", Service: "demo-handoff.service",
				Listeners: []inspect.Listener{listener("127.0.0.1:7102", 2102, 202, "fdtop", "demo-handoff.service")}},
		},
		Services: []inspect.Service{
			{Unit: "demo-activated.service", ActiveState: "active", SubState: "running", Type: "notify", Sockets: []string{"demo-activated.socket"}, MainPID: 201,
				Passed:      []inspect.PassedFD{{FD: 3, Name: "demo-activated.socket", Kind: "tcp-listen", Inode: 2101, Detail: "127.0.0.1:7101"}},
				Connections: conns(201, 4, 7101),
				Processes:   []inspect.Process{{PID: 201, Comm: "fdtop", Cmdline: "fdtop demo-server --mode activated"}}},
			{Unit: "demo-handoff.service", ActiveState: "active", SubState: "running", Type: "notify", Sockets: []string{"demo-handoff.socket"}, MainPID: 202,
				FDStoreMax: 1024, FDStoreCount: 5, FDStorePreserve: "restart",
				FDStore: []inspect.StoreEntry{
					{Name: "conn", Kind: "tcp", Inode: 9100, Detail: "127.0.0.1:7102 ↔ 127.0.0.1:51000"},
					{Name: "conn", Kind: "tcp", Inode: 9101, Detail: "127.0.0.1:7102 ↔ 127.0.0.1:51001"},
					{Name: "conn", Kind: "tcp", Inode: 9102, Detail: "127.0.0.1:7102 ↔ 127.0.0.1:51002"},
					{Name: "conn", Kind: "tcp", Inode: 9103, Detail: "127.0.0.1:7102 ↔ 127.0.0.1:51003"},
					{Name: "state", Kind: "memfd", Inode: 9104, Detail: "memfd:demo-state", Inferred: true},
				},
				Passed: []inspect.PassedFD{
					{FD: 3, Name: "demo-handoff.socket", Kind: "tcp-listen", Inode: 2102, Detail: "127.0.0.1:7102"},
					{FD: 4, Name: "state", Kind: "memfd", Inode: 9104, Detail: "memfd:demo-state"},
				},
				Connections: conns(202, 4, 7102),
				Processes:   []inspect.Process{{PID: 202, Comm: "fdtop", Cmdline: "fdtop demo-server --mode handoff"}}},
			{Unit: "demo-plain.service", ActiveState: "active", SubState: "running", Type: "simple", MainPID: 200,
				Connections: conns(200, 4, 7100),
				Processes:   []inspect.Process{{PID: 200, Comm: "fdtop", Cmdline: "fdtop demo-server --mode plain"}}},
		},
	}
}

// bigSnapshot has nUnits units (half sockets, half services) and nConns
// connections spread over the services.
func bigSnapshot(nUnits, nConns int) *inspect.Snapshot {
	s := &inspect.Snapshot{Time: t0, Manager: inspect.Manager{Scope: "system", Version: "252"}, Host: inspect.HostInfo{Hostname: "big"}}
	n := nUnits / 2
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("svc%03d", i)
		s.Sockets = append(s.Sockets, inspect.SocketUnit{Unit: name + ".socket", ActiveState: "active", SubState: "listening", Service: name + ".service",
			Listeners: []inspect.Listener{listener(fmt.Sprintf("0.0.0.0:%d", 10000+i), uint64(i+1), 1000+i, "srv", name+".service")}})
		s.Services = append(s.Services, inspect.Service{Unit: name + ".service", ActiveState: "active", SubState: "running", MainPID: 1000 + i,
			FDStoreMax: 16, FDStoreCount: 2, Connections: conns(1000+i, nConns/n, 10000+i)})
	}
	return s
}

type actCall struct {
	action Action
	unit   string
	probe  bool
}

// fakeSource serves a fixed snapshot, lets tests push events, and runs
// actions by emitting a restart's events.
type fakeSource struct {
	mu      sync.Mutex
	snap    *inspect.Snapshot
	events  chan inspect.Event
	acts    []actCall
	actErr  error
	release chan struct{} // when set, Act waits for it
	demo    map[string]DemoCounters

	shown     []string // the units last shown
	refreshes int      // Refresh calls
}

func newFakeSource(snap *inspect.Snapshot) *fakeSource {
	return &fakeSource{snap: snap, events: make(chan inspect.Event, 64)}
}

// Updates serves the fixed snapshot once.
func (f *fakeSource) Updates() <-chan Update {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan Update, 1)
	ch <- Update{Snapshot: f.snap, At: t0}
	return ch
}

func (f *fakeSource) Show(units []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shown = append([]string(nil), units...)
}

func (f *fakeSource) Refresh() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refreshes++
	return true
}

func (f *fakeSource) Events() <-chan inspect.Event { return f.events }

func (f *fakeSource) Act(ctx context.Context, action Action, unit string, probe bool) (inspect.ActionResult, error) {
	f.mu.Lock()
	f.acts = append(f.acts, actCall{action, unit, probe})
	err, release := f.actErr, f.release
	f.mu.Unlock()
	if err != nil {
		return inspect.ActionResult{}, err
	}
	// A restart of a demo service emits what the real one emitted on
	// systemd 254 (the recording); other actions and units have no
	// recording, so they emit a job's start and end only.
	evs, _ := loadRecording("254")
	r, recorded := findRestart(evs, unit)
	if !recorded || action != ActionRestart {
		r = recordedRestart{
			started: []inspect.Event{{Time: t0, Unit: unit, Type: inspect.EventJobStarted, Job: string(action), JobID: 42}},
			rest:    []inspect.Event{{Time: t0, Unit: unit, Type: inspect.EventJobFinished, Job: string(action), Result: "done", JobID: 42}},
			jobID:   42,
		}
	}
	for _, e := range r.started {
		f.events <- e
	}
	if release != nil {
		select {
		case <-release:
		case <-ctx.Done():
			return inspect.ActionResult{}, ctx.Err()
		}
	}
	for _, e := range r.rest {
		f.events <- e
	}
	return inspect.ActionResult{Job: strconv.FormatUint(uint64(r.jobID), 10), Result: "done"}, nil
}

func (f *fakeSource) calls() []actCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]actCall(nil), f.acts...)
}

func goodHandoff(probe bool) *inspect.Handoff {
	h := &inspect.Handoff{HandoffJob: "restart", OldPID: 202, NewPID: 303, ListenersKept: 1, FDStoreBefore: 5, FDStoreAfter: 5,
		ConnectionsPreserved: 4, FDsCarried: 5, NoMainPIDMs: 480, DurationMs: 612}
	if probe {
		h.Probe = &inspect.ProbeResult{Attempts: 61, WorstConnectMs: 3.2}
	}
	return h
}

func badHandoff() *inspect.Handoff {
	return &inspect.Handoff{HandoffJob: "restart", OldPID: 200, NewPID: 301, ListenersReplaced: 1,
		ConnectionsDropped: 4, NoMainPIDMs: 512, DurationMs: 530, Probe: &inspect.ProbeResult{Attempts: 52, Refused: 37, WorstConnectMs: 0.4}}
}

// demoCountersSource adds DemoSource to fakeSource.
type demoCountersSource struct{ *fakeSource }

func (d demoCountersSource) DemoCounters() map[string]DemoCounters { return d.demo }
