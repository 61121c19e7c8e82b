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
	Act(ctx context.Context, action Action, unit string, probe bool) (inspect.ActionResult, error)
}

// Update is one picture of the live model.
type Update struct {
	// Snapshot is the whole picture; nil with Err, or when a rescan saw
	// the picture unchanged (the last one stays, seen at At).
	Snapshot *inspect.Snapshot
	// Err says the model could not make a picture (the last one stays).
	Err error
	// At is when the picture was made, or last seen unchanged.
	At time.Time
	// Hosts is the picture of a fleet (a FleetSource): every host in the
	// order given, with its state and its last picture; Snapshot is then
	// nil. A host whose picture did not change keeps the same pointer.
	Hosts []HostPicture
}

// HostPicture is one host of a fleet as its source sees it.
type HostPicture struct {
	// Host is the host as given (-H); the events of the host carry it in
	// their Target, and ActOn is given it back escaped for the terminal
	// as the dashboard shows it.
	Host string
	// State is where its connection is.
	State HostState
	// Message is why the host is lost, reconnecting, unreachable or
	// failed: ssh's own words (or what the remote lacks).
	Message string
	// Retry is when the next try starts (reconnecting, unreachable).
	Retry time.Time
	// Snapshot is the host's last picture: nil before the first, kept
	// (no longer live) while the host is lost.
	Snapshot *inspect.Snapshot
}

// HostState is where a fleet host's connection is.
type HostState string

// The states of a fleet host.
const (
	// HostConnecting: reached, its first picture not in yet.
	HostConnecting HostState = "connecting"
	// HostOK: its live model is followed.
	HostOK HostState = "ok"
	// HostLost: its connection ended; a reconnection follows.
	HostLost HostState = "lost"
	// HostReconnecting: waiting to try again (backoff) or trying.
	HostReconnecting HostState = "reconnecting"
	// HostUnreachable: not reached since fdtop started; waiting to try
	// again (the same backoff) or trying. Its units are unknown.
	HostUnreachable HostState = "unreachable"
	// HostFailed: it could not be reached, and no retry would change why
	// (ssh's message says why, and why it is not retried).
	HostFailed HostState = "failed"
)

// FleetSource is a Source over several hosts: its Updates carry Hosts,
// its events name their host in Target, and actions name their host.
// Act (without a host) is refused by a fleet.
type FleetSource interface {
	Source
	// ActOn runs action on unit on host (as HostPicture.Host, escaped for
	// the terminal) and returns when the job finishes.
	ActOn(ctx context.Context, host string, action Action, unit string, probe bool) (inspect.ActionResult, error)
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
	// Tour shows the demo tour's panel (fdtop demo --tour): one step per
	// demo mode, each unlocked by the previous restart's verdict; x ends it.
	Tour bool
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
