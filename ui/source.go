package ui

import (
	"context"
	"time"

	"github.com/fdtop/fdtop/inspect"
)

// Source is the live model the dashboard draws: it alone scans and
// follows the manager, publishes its pictures and timeline, and runs the
// actions the dashboard sends. The dashboard never scans on its own.
type Source interface {
	// Updates delivers the model's pictures as they change, each one whole
	// (only the latest matters: a source may replace one not yet read);
	// closed when the source stops.
	Updates() <-chan Update
	// Show tells the model which units are on screen: it keeps their
	// never-signalling counters (NConnections, NAccepted, NRefused,
	// NFileDescriptorStore) fresh. It must not block.
	Show(units []string)
	// Refresh asks the model for a rescan of the whole host now; false
	// means the model cannot be asked (it rescans on its own). It must not
	// block.
	Refresh() bool
	// Events is the live timeline (D-Bus signals and snapshot diffs, handoff
	// summaries included); closed when the source stops.
	Events() <-chan inspect.Event
	// Act runs action on unit and returns when the job finishes. probe asks
	// the source to run the gap meter during the job (its result lands in
	// the handoff event's Probe).
	Act(ctx context.Context, action Action, unit string, probe bool) (ActionResult, error)
}

// Update is one picture of the live model.
type Update struct {
	// Snapshot is the whole picture; nil with Err.
	Snapshot *inspect.Snapshot
	// Err says the model could not make a picture (the last one stays).
	Err error
	// At is when the picture was made.
	At time.Time
}

// Action is a job the dashboard can ask the manager to run on a unit.
type Action string

// The actions the dashboard offers.
const (
	ActionRestart    Action = "restart"
	ActionStop       Action = "stop"
	ActionStart      Action = "start"
	ActionReload     Action = "reload"
	ActionTryRestart Action = "try-restart"
)

// ActionResult is how a job started by Act ended.
type ActionResult struct {
	// Job is the job's id or object path.
	Job string
	// Result is the job result: done, failed, canceled, timeout...
	Result string
	// Message is extra text worth showing the operator.
	Message string
}

// DemoSource is implemented by a source that also runs the demo traffic
// generators (fdtop demo).
type DemoSource interface {
	// DemoCounters returns the generators' counters by service unit name.
	DemoCounters() map[string]DemoCounters
}

// DemoCounters are the live counters of one demo traffic generator.
type DemoCounters struct {
	// Conns is the number of client connections it tries to keep open;
	// Connected how many are open now.
	Conns, Connected int
	// Sent and Replies count requests and answers; Refused counts refused
	// connects, Dropped connections closed under it, CounterResets replies
	// whose per-connection counter went back to zero (state lost).
	Sent, Replies, Refused, Dropped, CounterResets uint64
	// LastPID is the server pid that answered last.
	LastPID int
	// MaxLatency is the worst request latency seen.
	MaxLatency time.Duration
}

// Options configure the dashboard.
type Options struct {
	// ReadOnly removes every action key.
	ReadOnly bool
	// Probe turns the gap meter on for restarts started from the UI (the
	// `p` key toggles it at runtime).
	Probe bool
	// Interval is the host rescan interval of the model (default 2s); the
	// dashboard itself only shows it.
	Interval time.Duration
	// FastInterval is how often a demo's traffic counters are read
	// (default 250ms; in-memory, no scan).
	FastInterval time.Duration
	// Patterns limit the unit list to units matching one of these globs
	// (a socket and its service are shown when either matches).
	Patterns []string
	// Title is shown in the header, e.g. "demo".
	Title string
}

// Default intervals.
const (
	DefaultInterval     = 2 * time.Second
	DefaultFastInterval = 250 * time.Millisecond
)

func (o Options) withDefaults() Options {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.FastInterval <= 0 {
		o.FastInterval = DefaultFastInterval
	}
	return o
}
