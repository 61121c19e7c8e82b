package ui

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/fdtop/fdtop/inspect"
)

// fakeFleet is a FleetSource for direct Update tests: it records the
// host of every action.
type fakeFleet struct {
	mu   sync.Mutex
	acts []string // "host action unit"
}

func (f *fakeFleet) Updates() <-chan Update       { return nil }
func (f *fakeFleet) Show([]string)                {}
func (f *fakeFleet) Refresh() bool                { return false }
func (f *fakeFleet) Events() <-chan inspect.Event { return nil }
func (f *fakeFleet) Act(context.Context, Action, string, bool) (inspect.ActionResult, error) {
	panic("a fleet's action named no host")
}
func (f *fakeFleet) ActOn(_ context.Context, host string, action Action, unit string, _ bool) (inspect.ActionResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acts = append(f.acts, host+" "+string(action)+" "+unit)
	return inspect.ActionResult{Result: "done"}, nil
}

// runCmd runs cmd and the commands it batches, returning every message
// they produced.
func runCmd(cmd tea.Cmd) []tea.Msg {
	if cmd == nil {
		return nil
	}
	msg := cmd()
	if b, ok := msg.(tea.BatchMsg); ok {
		var out []tea.Msg
		for _, c := range b {
			out = append(out, runCmd(c)...)
		}
		return out
	}
	return []tea.Msg{msg}
}

// fleetSnap is one host's picture: x.socket triggering x.service.
func fleetSnap(pid int) *inspect.Snapshot {
	return &inspect.Snapshot{
		Manager: inspect.Manager{Scope: "user", Version: "254"},
		Sockets: []inspect.SocketUnit{{Unit: "x.socket", ActiveState: "active", Service: "x.service",
			Listeners: []inspect.Listener{{Type: "Stream", Address: "127.0.0.1:8080"}}}},
		Services: []inspect.Service{{Unit: "x.service", ActiveState: "active", MainPID: pid}},
	}
}

// TestFleetView: hosts are the top of the unit tree with their states
// (a failed host's message escaped, under its row); the same unit on two
// hosts is two rows; an action goes to the selected row's host; an event
// belongs to its host's unit only; the rollout key is there on a fleet
// and not in read-only mode.
func TestFleetView(t *testing.T) {
	src := &fakeFleet{}
	m := newTestModel(src, Options{}, 120, 40)
	hosts := []HostPicture{
		{Host: "a", State: HostOK, Snapshot: fleetSnap(100)},
		{Host: "b", State: HostOK, Snapshot: fleetSnap(200)},
		{Host: "c", State: HostFailed, Message: "ssh: connect to host c: Connection refused \x1b]0;pwned\x07"},
		{Host: "d", State: HostConnecting},
	}
	m = send(m, snapshotMsg{hosts: hosts, at: t0})

	var got []string
	for _, r := range m.list.rows {
		switch {
		case r.hostRow:
			got = append(got, "host "+r.host+" "+r.addrs)
		case r.note:
			got = append(got, "note "+r.host+" "+r.addrs)
		default:
			got = append(got, r.host+" "+r.unit+" "+r.pid)
		}
	}
	want := []string{
		"host a ok · 1 unit group", "a x.socket ", "a x.service 100",
		"host b ok · 1 unit group", "b x.socket ", "b x.service 200",
		"host c failed (not retried)", `note c ssh: connect to host c: Connection refused \e]0;pwned\x07`,
		"host d connecting…",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if v := m.View(); strings.Contains(v, "\x1b]0;") || !strings.Contains(v, "4 hosts (2 ok, 1 connecting, 1 failed)") {
		t.Errorf("view: raw escape or no host count:\n%s", v)
	}

	// x.service on b: the confirmation names the host, the action goes there.
	m = send(m, keyMsg("g"))
	for i := 0; m.list.SelectedRef() != (unitRef{Host: "b", Unit: "x.service"}); i++ {
		if i > len(m.list.rows) {
			t.Fatal("x.service on b not in the list")
		}
		m = send(m, keyMsg("down"))
	}
	m = send(m, keyMsg("r"))
	if !m.confirming || !strings.Contains(m.confirm.View(), "restart x.service on b?") {
		t.Fatalf("no confirmation naming the host:\n%s", m.confirm.View())
	}
	nm, cmd := m.Update(keyMsg("y"))
	m = nm.(Model)
	for _, msg := range runCmd(cmd) {
		nm, cmd := m.Update(msg)
		m = nm.(Model)
		for _, msg := range runCmd(cmd) {
			if done, ok := msg.(actionDoneMsg); ok {
				m = send(m, done)
			}
		}
	}
	if strings.Join(src.acts, ";") != "b restart x.service" {
		t.Errorf("actions %q, want one restart of x.service on b", src.acts)
	}
	if !strings.Contains(m.status.text, "restart x.service on b: done") {
		t.Errorf("status %q", m.status.text)
	}

	// A handoff on b is b's x.service's, not a's.
	h := &inspect.Handoff{HandoffJob: "restart", OldPID: 200, NewPID: 201, ListenersKept: 1}
	m = send(m, eventsMsg{evs: []inspect.Event{{Time: t0, Target: "b", Unit: "x.service", Type: inspect.EventHandoff, Handoff: h}}})
	if m.handoffs[unitRef{Host: "b", Unit: "x.service"}.key()] == nil || m.handoffs["x.service"] != nil || m.handoffs[unitRef{Host: "a", Unit: "x.service"}.key()] != nil {
		t.Errorf("handoffs keyed %v, want b's x.service only", m.handoffs)
	}

	// The filter matches across hosts, host names included; every host
	// stays listed.
	m = send(m, keys("/", "b", "enter")...)
	var units []string
	hostRows := 0
	for _, r := range m.list.rows {
		if r.hostRow {
			hostRows++
		} else if r.unit != "" {
			units = append(units, r.host+" "+r.unit)
		}
	}
	if strings.Join(units, ",") != "b x.socket,b x.service" || hostRows != 4 {
		t.Errorf("filter b: units %q and %d host rows, want b's two units and 4 host rows", units, hostRows)
	}

	for _, tt := range []struct {
		name     string
		readOnly bool
		want     bool
	}{{"fleet", false, true}, {"fleet read-only", true, false}} {
		t.Run(tt.name, func(t *testing.T) {
			m := NewModel(&fakeRollout{}, Options{ReadOnly: tt.readOnly})
			if got := m.keys.Rollout.Enabled(); got != tt.want {
				t.Errorf("rollout key enabled %v, want %v", got, tt.want)
			}
		})
	}
}

// fakeRollout is a fleet that can roll out: it reports the steps given.
type fakeRollout struct {
	fakeFleet
	steps []RolloutStep
	asked []string
}

func (f *fakeRollout) Rollout(_ context.Context, unit string, hosts []string, _ bool) <-chan RolloutStep {
	f.asked = append([]string{unit}, hosts...)
	ch := make(chan RolloutStep, len(f.steps))
	for _, s := range f.steps {
		ch <- s
	}
	close(ch)
	return ch
}

// TestFleetRollout: O asks with the hosts that have the unit in order and
// those left out; the steps show per host and the outcome names where it
// halted and what was not touched.
func TestFleetRollout(t *testing.T) {
	src := &fakeRollout{steps: []RolloutStep{
		{Host: "a", Status: RolloutRestarting},
		{Host: "a", Status: "passed", Handoff: &inspect.Handoff{HandoffJob: "restart", ListenersKept: 1}},
		{Host: "b", Status: RolloutRestarting},
		{Host: "b", Status: "halted", Reason: "2 connection(s) dropped (budget 0)"},
		{Host: "e", Status: "not_touched"},
	}}
	m := newTestModel(src, Options{}, 120, 40)
	m = send(m, snapshotMsg{hosts: []HostPicture{
		{Host: "a", State: HostOK, Snapshot: fleetSnap(100)},
		{Host: "c", State: HostFailed, Message: "refused"},
		{Host: "b", State: HostOK, Snapshot: fleetSnap(200)},
		{Host: "e", State: HostOK, Snapshot: fleetSnap(300)},
	}, at: t0})
	m = send(m, keyMsg("g"), keyMsg("down")) // x.socket on a: its service rolls out
	m = send(m, keyMsg("O"))
	v := m.confirm.View()
	for _, want := range []string{"rollout x.service?", "1. a", "2. b", "3. e", "left out: c (failed"} {
		if !strings.Contains(v, want) {
			t.Errorf("confirmation lacks %q:\n%s", want, v)
		}
	}
	nm, cmd := m.Update(keyMsg("y"))
	m = nm.(Model)
	for msgs := runCmd(cmd); len(msgs) > 0; {
		var next []tea.Msg
		for _, msg := range msgs {
			nm, cmd := m.Update(msg)
			m = nm.(Model)
			next = append(next, runCmd(cmd)...)
		}
		msgs = nil
		for _, msg := range next {
			if _, ok := msg.(rolloutStepMsg); ok {
				msgs = append(msgs, msg)
			} else if _, ok := msg.(confirmedMsg); ok {
				msgs = append(msgs, msg)
			}
		}
	}
	if strings.Join(src.asked, " ") != "x.service a b e" {
		t.Errorf("rolled out %q, want x.service on a b e", src.asked)
	}
	if want := "rollout of x.service halted at b: 2 connection(s) dropped (budget 0); not touched: e"; m.status.text != want || !m.status.err {
		t.Errorf("status %q, want %q", m.status.text, want)
	}
	d := strings.Join(m.detail.lines, "\n")
	for _, want := range []string{"1. a  passed", "2. b  halted", "3. e  not touched"} {
		if !strings.Contains(d, want) {
			t.Errorf("detail lacks %q:\n%s", want, d)
		}
	}
}

// TestFleetUnreachableHost: a host not reached since the start is
// unreachable and retried: its row says so with the next try, ssh's reason
// under it and no unit rows (its units are unknown, not none); the header
// counts it; its detail says it is retried and when; a rollout leaves it
// out saying why; once it is reached, its units are listed.
func TestFleetUnreachableHost(t *testing.T) {
	m := newTestModel(&fakeRollout{}, Options{}, 120, 40)
	next := t0.Add(30 * time.Second)
	hosts := []HostPicture{
		{Host: "a", State: HostOK, Snapshot: fleetSnap(100)},
		{Host: "b", State: HostUnreachable, Message: "ssh: connect to host b port 22: Connection refused", Retry: next},
	}
	m = send(m, snapshotMsg{hosts: hosts, at: t0})
	var got []string
	for _, r := range m.list.rows {
		switch {
		case r.hostRow:
			got = append(got, "host "+r.host+" "+r.addrs)
		case r.note:
			got = append(got, "note "+r.host+" "+r.addrs)
		default:
			got = append(got, r.host+" "+r.unit)
		}
	}
	want := []string{
		"host a ok · 1 unit group", "a x.socket", "a x.service",
		"host b unreachable · retrying, next try " + next.Format("15:04:05"), "note b ssh: connect to host b port 22: Connection refused",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if v := m.View(); !strings.Contains(v, "2 hosts (1 ok, 1 unreachable)") {
		t.Errorf("no host count with the unreachable host:\n%s", v)
	}
	if _, out := rolloutHosts(m.ix, "x.service"); strings.Join(out, ";") != "b (unreachable: its units are not known now)" {
		t.Errorf("rollout leaves out %q", out)
	}
	m = send(m, keyMsg("G"))
	if m.list.SelectedRef() != (unitRef{Host: "b"}) || m.list.rows[m.list.cursor].note {
		t.Fatalf("selected %+v (a note: %v), want host b's row", m.list.SelectedRef(), m.list.rows[m.list.cursor].note)
	}
	d := strings.Join(m.detail.lines, "\n")
	for _, want := range []string{"unreachable: not reached since fdtop started", "retried (1 s, doubling up to 30 s", "Connection refused"} {
		if !strings.Contains(strings.Join(strings.Fields(d), " "), want) {
			t.Errorf("detail lacks %q:\n%s", want, d)
		}
	}

	// Reached: its units are listed under it.
	hosts[1] = HostPicture{Host: "b", State: HostOK, Snapshot: fleetSnap(200)}
	m = send(m, snapshotMsg{hosts: hosts, at: t0.Add(time.Minute)})
	var units []string
	for _, r := range m.list.rows {
		if !r.hostRow && !r.note {
			units = append(units, r.host+" "+r.unit)
		}
	}
	if strings.Join(units, ",") != "a x.socket,a x.service,b x.socket,b x.service" {
		t.Errorf("units %q after b was reached", units)
	}
}

// TestFleetCursorPastUnreachable: j from an unreachable host in the middle
// of the fleet goes past its message to the next host, and stays there
// when the next picture comes (a selected note went back to its host:
// CI run 27's TestFleetDashboardE2E could not get past it).
func TestFleetCursorPastUnreachable(t *testing.T) {
	m := newTestModel(&fakeRollout{}, Options{}, 120, 40)
	hosts := []HostPicture{
		{Host: "a", State: HostOK, Snapshot: fleetSnap(100)},
		{Host: "b", State: HostUnreachable, Message: "ssh: connect to host b port 22: Connection refused", Retry: t0.Add(30 * time.Second)},
		{Host: "c", State: HostOK, Snapshot: fleetSnap(300)},
	}
	m = send(m, snapshotMsg{hosts: hosts, at: t0})
	for m.list.SelectedRef() != (unitRef{Host: "b"}) {
		before := m.list.cursor
		m = send(m, keyMsg("j"))
		if m.list.cursor == before {
			t.Fatalf("stuck at row %d before host b", before)
		}
	}
	for _, step := range []struct {
		key  string
		want unitRef
	}{
		{"j", unitRef{Host: "c"}},
		{"k", unitRef{Host: "b"}},
		{"j", unitRef{Host: "c"}},
		{"j", unitRef{Host: "c", Unit: "x.socket"}},
		// G (the bottom) and j past the last row never land on a note.
		{"G", unitRef{Host: "c", Unit: "x.service"}},
	} {
		m = send(m, keyMsg(step.key))
		if got := m.list.SelectedRef(); got != step.want || m.list.rows[m.list.cursor].note {
			t.Fatalf("after %s: selected %+v (a note: %v), want %+v", step.key, got, m.list.rows[m.list.cursor].note, step.want)
		}
		// The next picture keeps the selection where it is.
		m = send(m, snapshotMsg{hosts: hosts, at: t0.Add(time.Second)})
		if got := m.list.SelectedRef(); got != step.want {
			t.Fatalf("after %s and a new picture: selected %+v, want %+v", step.key, got, step.want)
		}
	}
}
