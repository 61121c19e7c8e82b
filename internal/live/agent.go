package live

import (
	"context"
	"fmt"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/ui"
)

// AgentModel is the live model an agent serves, made of what the dashboard
// uses: the Builder's snapshots, a Watcher on the manager's signals and
// the same actions, with a fresh view and the gap meter.
type AgentModel struct {
	act      *actions
	interval time.Duration
	targeted bool // scan only the units' and the manager's processes (the demo's in-process agents)
}

// NewAgentModel is the model an agent serves on client's manager, as b
// reads it, rescanning every interval when nothing happens.
func NewAgentModel(client *dbusclient.Client, b *inspect.Builder, interval time.Duration) *AgentModel {
	return &AgentModel{act: newActions(client, b, nil), interval: interval}
}

// Snapshot implements agent.Model.
func (m *AgentModel) Snapshot(ctx context.Context, full bool) (*inspect.Snapshot, error) {
	return m.act.builder.Snapshot(ctx, inspect.SnapshotOptions{FullScan: full && !m.targeted})
}

// Run implements agent.Model: the watcher's pictures and its
// timeline (handoffs with the gap meter's result attached).
func (m *AgentModel) Run(ctx context.Context, onSnapshot func(*inspect.Snapshot), onEvent func(inspect.Event)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub, err := m.act.client.Subscribe(ctx)
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	defer sub.Close()
	// The watcher reads only the units that changed between its full
	// pictures: each such view is merged into the last picture sent, so
	// the remote model follows a restart's new main PID at once (not at
	// the next host-wide pass).
	var picture *inspect.Snapshot
	w := NewWatcher(m.act.builder, sub, WatcherOptions{Interval: m.interval, Targeted: m.targeted, Probe: m.act.probeWanted, Fresh: m.act.fresh,
		OnSnapshot: func(snap *inspect.Snapshot) {
			picture = snap
			onSnapshot(snap)
		},
		OnView: func(units []string, snap *inspect.Snapshot) {
			if picture == nil {
				return
			}
			picture = inspect.MergeUnits(picture, snap, units)
			onSnapshot(picture)
		},
	})
	errc := make(chan error, 1)
	events := make(chan inspect.Event, 1024)
	go func() { errc <- w.Run(ctx, events) }()
	for {
		select {
		case err := <-errc:
			return err
		case e := <-events:
			onEvent(e)
		}
	}
}

// Act implements agent.Model.
func (m *AgentModel) Act(ctx context.Context, action, unit string, probe bool) (inspect.ActionResult, error) {
	return m.act.Act(ctx, ui.Action(action), unit, probe)
}
