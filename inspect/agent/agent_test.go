package agent

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/inspect"
)

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
			_, err := NewClient(context.Background(), r, io.Discard, 1)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// fakeModel is a Model for protocol tests: it emits n events at
// once when watched and answers snapshots with an empty picture.
type fakeModel struct{ n int }

func (f fakeModel) Snapshot(ctx context.Context, full bool) (*inspect.Snapshot, error) {
	return &inspect.Snapshot{Manager: inspect.Manager{Scope: "user"}}, nil
}

func (f fakeModel) Run(ctx context.Context, onSnapshot func(*inspect.Snapshot), onEvent func(inspect.Event)) error {
	onSnapshot(&inspect.Snapshot{Manager: inspect.Manager{Scope: "user"}})
	for i := 0; i < f.n; i++ {
		onEvent(inspect.Event{Unit: "a.service", Type: inspect.EventState, PID: i})
	}
	<-ctx.Done()
	return nil
}

func (f fakeModel) Act(ctx context.Context, action, unit string, probe bool) (inspect.ActionResult, error) {
	return inspect.ActionResult{Result: "done"}, nil
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
	go func() { done <- Serve(ctx, reqR, repW, fakeModel{n: n}, Message{Version: "test"}) }()
	c, err := NewClient(ctx, repR, reqW, 4)
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
