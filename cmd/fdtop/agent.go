package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/procfs"
	"github.com/fdtop/fdtop/ui"
)

// agentCommand is the hidden subcommand a remote fdtop runs: the agent
// protocol (inspect.ServeAgent) on stdin and stdout.
const agentCommand = "agent"

// runAgent serves one manager's live model on stdin/stdout until stdin ends.
func runAgent(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fdtop agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var mf managerFlags
	mf.register(fs)
	protocol := fs.Bool("protocol", false, "print the agent protocol version and exit")
	interval := fs.Duration("interval", 2*time.Second, "rescan of every unit when nothing happens")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *protocol {
		fmt.Fprintln(stdout, inspect.AgentProtocol)
		return exitOK
	}
	if err := mf.validate(); err != nil {
		return fail(stderr, agentCommand, err)
	}
	ctx, sig, stop := withSignals(context.Background())
	defer stop()
	client, b, err := mf.connect(ctx, fs.Args())
	if err != nil {
		return sig.exit(failUnlessSignalled(stderr, agentCommand, sig, err))
	}
	defer client.Close()
	model := newAgentModel(client, b, *interval)
	hostname, _ := os.Hostname()
	hello := inspect.AgentMessage{Version: version, Hostname: hostname, User: os.Getenv("USER")}
	if err := inspect.ServeAgent(ctx, stdin, stdout, model, hello); err != nil {
		return sig.exit(failUnlessSignalled(stderr, agentCommand, sig, err))
	}
	return sig.exit(exitOK)
}

// agentModel is the live model an agent serves, made of what the dashboard
// uses: the Builder's snapshots, a Watcher on the manager's signals and
// liveSource's actions with the gap meter.
type agentModel struct {
	src      *liveSource
	interval time.Duration
	targeted bool // scan only the units' and the manager's processes (the demo's in-process agents)
}

func newAgentModel(client *dbusclient.Client, b *inspect.Builder, interval time.Duration) *agentModel {
	src := &liveSource{client: client, builder: b, events: make(chan inspect.Event, 1024), probes: map[string]time.Time{}}
	return &agentModel{src: src, interval: interval}
}

// Snapshot implements inspect.AgentModel.
func (m *agentModel) Snapshot(ctx context.Context, full bool) (*inspect.Snapshot, error) {
	return m.src.builder.Snapshot(ctx, inspect.SnapshotOptions{FullScan: full && !m.targeted})
}

// Run implements inspect.AgentModel: the watcher's pictures and its
// timeline (handoffs with the gap meter's result attached).
func (m *agentModel) Run(ctx context.Context, onSnapshot func(*inspect.Snapshot), onEvent func(inspect.Event)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub, err := m.src.client.Subscribe(ctx)
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	defer sub.Close()
	full := 30
	if m.targeted {
		full = -1
	}
	// The watcher reads only the units that changed between its full
	// pictures: each such view is merged into the last picture sent, so
	// the remote model follows a restart's new main PID at once (not at
	// the next host-wide pass).
	var picture *inspect.Snapshot
	w := &inspect.Watcher{Snapshots: m.src.builder, Events: sub, Interval: m.interval, FullEvery: full, Probe: m.src.probeWanted, Shows: m.src.builder.Names,
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
	}
	if k, ok := m.src.builder.Kernel.(procfs.FS); ok {
		w.Alive = inspect.SocketsAlive(k.SocketsByInode)
		w.ConnEnds = k.TCPConnEnds
		w.FDCount, w.SocketInode = k.FDCount, k.SocketInode
	}
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

// Act implements inspect.AgentModel.
func (m *agentModel) Act(ctx context.Context, action, unit string, probe bool) (inspect.ActionOutcome, error) {
	res, err := m.src.Act(ctx, ui.Action(action), unit, probe)
	return inspect.ActionOutcome{Job: res.Job, Result: res.Result, Message: res.Message}, err
}
