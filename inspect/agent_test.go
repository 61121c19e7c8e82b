package inspect

import (
	"context"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestDiffApply: an update carries only what changed, and applied to the
// old picture gives the new one.
func TestDiffApply(t *testing.T) {
	t0 := time.Unix(1000, 0).UTC()
	base := &Snapshot{
		Time:     t0,
		Manager:  Manager{Scope: "user", Version: "254"},
		Host:     HostInfo{Hostname: "h", ScanDuration: time.Millisecond},
		Sockets:  []SocketUnit{{Unit: "a.socket", Service: "a.service"}, {Unit: "b.socket"}},
		Services: []Service{{Unit: "a.service", MainPID: 10}, {Unit: "b.service", MainPID: 20}},
		Warnings: []Warning{},
	}
	clone := func(f func(s *Snapshot)) *Snapshot {
		b, _ := json.Marshal(base)
		var s Snapshot
		_ = json.Unmarshal(b, &s)
		s.Time = t0.Add(time.Second)
		f(&s)
		return &s
	}
	tests := []struct {
		name     string
		cur      *Snapshot
		changed  bool
		services []string
		removed  []string
		host     bool
	}{
		{"nothing but the scan time", clone(func(s *Snapshot) { s.Host.ScanDuration = 5 * time.Millisecond }), false, nil, nil, false},
		{"a main PID", clone(func(s *Snapshot) { s.Services[1].MainPID = 21 }), true, []string{"b.service"}, nil, false},
		{"a service gone", clone(func(s *Snapshot) { s.Services = s.Services[:1] }), true, nil, []string{"b.service"}, false},
		{"host unreadable count", clone(func(s *Snapshot) { s.Host.Unreadable = 3 }), true, nil, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, changed := Diff(base, tc.cur)
			if changed != tc.changed {
				t.Fatalf("changed = %v, want %v: %+v", changed, tc.changed, u)
			}
			var svcs []string
			for _, s := range u.Services {
				svcs = append(svcs, s.Unit)
			}
			if !reflect.DeepEqual(svcs, tc.services) || !reflect.DeepEqual(u.RemovedServices, tc.removed) || (u.Host != nil) != tc.host {
				t.Fatalf("update services %v removed %v host %v; want %v %v %v", svcs, u.RemovedServices, u.Host != nil, tc.services, tc.removed, tc.host)
			}
			if len(u.Sockets) != 0 {
				t.Errorf("unchanged sockets sent: %+v", u.Sockets)
			}
			got := u.Apply(base)
			want := *tc.cur
			if !tc.host {
				want.Host = base.Host // the scan time alone is not sent
			}
			if a, b := mustJSON(t, got), mustJSON(t, &want); a != b {
				t.Fatalf("applied:\n%s\nwant:\n%s", a, b)
			}
		})
	}
	// From nothing, the update is the whole picture.
	u, changed := Diff(nil, base)
	if !changed {
		t.Fatal("first update not a change")
	}
	if a, b := mustJSON(t, u.Apply(nil)), mustJSON(t, base); a != b {
		t.Fatalf("first update applied:\n%s\nwant:\n%s", a, b)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAgentHello: a client refuses an agent that speaks another protocol
// or is not an agent at all, and says so.
func TestAgentHello(t *testing.T) {
	tests := []struct {
		name  string
		first string
		want  string
	}{
		{"other protocol", `{"type":"hello","protocol":99,"version":"9.9"}`, "speaks protocol 99"},
		{"not an agent", "Welcome to my shell", "not an fdtop agent"},
		{"no hello", `{"type":"event"}`, "want hello"},
		{"nothing", "", "connection to the agent lost"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := strings.NewReader(tc.first)
			if tc.first != "" {
				r = strings.NewReader(tc.first + "\n")
			}
			_, err := NewAgentClient(context.Background(), r, io.Discard, 1)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// fakeModel is an AgentModel for protocol tests: it emits n events at
// once when watched and answers snapshots with an empty picture.
type fakeModel struct{ n int }

func (f fakeModel) Snapshot(ctx context.Context, full bool) (*Snapshot, error) {
	return &Snapshot{Manager: Manager{Scope: "user"}}, nil
}

func (f fakeModel) Run(ctx context.Context, onSnapshot func(*Snapshot), onEvent func(Event)) error {
	onSnapshot(&Snapshot{Manager: Manager{Scope: "user"}})
	for i := 0; i < f.n; i++ {
		onEvent(Event{Unit: "a.service", Type: EventState, PID: i})
	}
	<-ctx.Done()
	return nil
}

func (f fakeModel) Act(ctx context.Context, action, unit string, probe bool) (ActionOutcome, error) {
	return ActionOutcome{Result: "done"}, nil
}

// TestAgentUnreadEvents: a timeline nobody reads never holds up replies
// (the rollout waits on one host while others stream), and the events are
// all there, in order, when read.
func TestAgentUnreadEvents(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reqR, reqW := io.Pipe()
	repR, repW := io.Pipe()
	done := make(chan error, 1)
	const n = 5000
	go func() { done <- ServeAgent(ctx, reqR, repW, fakeModel{n: n}, AgentMessage{Version: "test"}) }()
	c, err := NewAgentClient(ctx, repR, reqW, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	<-c.Ready()
	if out, err := c.Act(ctx, "restart", "a.service", false); err != nil || out.Result != "done" {
		t.Fatalf("act with %d events unread: %+v, %v", n, out, err)
	}
	for i := 0; i < n; i++ {
		select {
		case e := <-c.Events():
			if e.PID != i {
				t.Fatalf("event %d has pid %d: out of order", i, e.PID)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d events arrived", i, n)
		}
	}
	reqW.Close()
	if err := <-done; err != nil {
		t.Fatalf("agent: %v", err)
	}
}
