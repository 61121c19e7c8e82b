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
// Source's actions with the gap meter.
type AgentModel struct {
	src      *Source
	interval time.Duration
	targeted bool // scan only the units' and the manager's processes (the demo's in-process agents)
}

// NewAgentModel is the model an agent serves on client's manager, as b
// reads it, rescanning every interval when nothing happens.
func NewAgentModel(client *dbusclient.Client, b *inspect.Builder, interval time.Duration) *AgentModel {
	src := &Source{client: client, builder: b, events: make(chan inspect.Event, 1024), probes: map[string]time.Time{},
		fresh: make(chan inspect.FreshRequest)}
	return &AgentModel{src: src, interval: interval}
}

// Snapshot implements agent.Model.
func (m *AgentModel) Snapshot(ctx context.Context, full bool) (*inspect.Snapshot, error) {
	return m.src.builder.Snapshot(ctx, inspect.SnapshotOptions{FullScan: full && !m.targeted})
}

// Run implements agent.Model: the watcher's pictures and its
// timeline (handoffs with the gap meter's result attached).
func (m *AgentModel) Run(ctx context.Context, onSnapshot func(*inspect.Snapshot), onEvent func(inspect.Event)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub, err := m.src.client.Subscribe(ctx)
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	defer sub.Close()
	// The watcher reads only the units that changed between its full
	// pictures: each such view is merged into the last picture sent, so
	// the remote model follows a restart's new main PID at once (not at
	// the next host-wide pass).
	var picture *inspect.Snapshot
	w := NewWatcher(m.src.builder, sub, WatcherOptions{Interval: m.interval, Targeted: m.targeted, Probe: m.src.probeWanted, Fresh: m.src.fresh,
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
	go func() { errc <- w.Run(ctx, m.src.events) }()
	for {
		select {
		case err := <-errc:
			return err
		case e := <-m.src.events:
			onEvent(e)
		}
	}
}

// Act implements agent.Model.
func (m *AgentModel) Act(ctx context.Context, action, unit string, probe bool) (inspect.ActionResult, error) {
	return m.src.Act(ctx, ui.Action(action), unit, probe)
}
