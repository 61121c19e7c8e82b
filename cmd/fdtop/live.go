package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/demo/traffic"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/procfs"
	"github.com/fdtop/fdtop/ui"
)

// liveSource is the dashboard's Source: snapshots from the Builder, the
// timeline from a Watcher on the manager's signals (which runs the gap
// meter where a restart from the dashboard asked for it), and actions
// through dbusclient.
type liveSource struct {
	client  *dbusclient.Client
	builder *inspect.Builder
	events  chan inspect.Event

	// targetedOnly limits every scan to the units' and the manager's
	// processes (the demo: nothing outside the sandbox matters there).
	targetedOnly bool

	mu      sync.Mutex
	probes  map[string]time.Time          // service -> when a probed action on it was asked for
	traffic map[string]*traffic.Generator // demo: service -> generator
	conns   map[string]int
}

// probeAsk bounds how long a probe asked for with an action waits for its
// job to start.
const probeAsk = time.Minute

// newLiveSource starts the watcher; it runs until ctx ends.
func newLiveSource(ctx context.Context, client *dbusclient.Client, b *inspect.Builder, interval time.Duration) (*liveSource, error) {
	sub, err := client.Subscribe(ctx)
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	src := &liveSource{client: client, builder: b, events: make(chan inspect.Event, 1024), probes: map[string]time.Time{}}
	w := &inspect.Watcher{Snapshots: b, Events: sub, Interval: interval, FullEvery: -1, Probe: src.probeWanted}
	if k, ok := b.Kernel.(procfs.FS); ok {
		w.Alive = inspect.SocketsAlive(k.SocketsByInode)
	}
	go func() {
		defer sub.Close()
		if err := w.Run(ctx, src.events); err != nil {
			src.events <- inspect.Event{Time: time.Now(), Type: inspect.EventDisconnected, Phase: "stopped", Error: err.Error()}
		}
	}()
	return src, nil
}

// probeWanted tells the watcher whether a restart from the dashboard asked
// for the gap meter on service (once per ask).
func (s *liveSource) probeWanted(service string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.probes[service]
	delete(s.probes, service)
	return ok && time.Since(at) < probeAsk
}

// Snapshot implements ui.Source.
func (s *liveSource) Snapshot(ctx context.Context, units []string) (*inspect.Snapshot, error) {
	return s.builder.Snapshot(ctx, inspect.SnapshotOptions{Units: units, FullScan: len(units) == 0 && !s.targetedOnly})
}

// Events implements ui.Source.
func (s *liveSource) Events() <-chan inspect.Event { return s.events }

// Act implements ui.Source: it runs the job; with probe, the watcher runs
// the gap meter on the unit's loopback TCP listeners while the job runs,
// and the handoff's verdict says what it saw.
func (s *liveSource) Act(ctx context.Context, action ui.Action, unit string, probe bool) (ui.ActionResult, error) {
	if probe {
		if targets, svc := s.probeTargets(ctx, unit); len(targets) > 0 {
			// Asked before the job starts: the watcher sees it at JobNew.
			s.mu.Lock()
			s.probes[svc] = time.Now()
			s.mu.Unlock()
		}
	}
	var (
		res dbusclient.JobResult
		err error
	)
	switch action {
	case ui.ActionRestart:
		res, err = s.client.Restart(ctx, unit)
	case ui.ActionStop:
		res, err = s.client.Stop(ctx, unit)
	case ui.ActionStart:
		res, err = s.client.Start(ctx, unit)
	case ui.ActionReload:
		res, err = s.client.Reload(ctx, unit)
	case ui.ActionTryRestart:
		res, err = s.client.TryRestart(ctx, unit)
	case ui.ActionFix:
		if err = s.client.ResetFailed(ctx, unit); err == nil {
			res, err = s.client.Start(ctx, unit)
		}
	default:
		err = fmt.Errorf("unknown action %q", action)
	}
	out := ui.ActionResult{Job: string(action), Result: string(res)}
	if err != nil {
		// The UI says "ACTION UNIT: " before these: they must not repeat it.
		var denied *dbusclient.AccessDeniedError
		var failed *dbusclient.JobFailedError
		var unitErr *dbusclient.UnitError
		switch {
		case errors.As(err, &denied):
			return out, fmt.Errorf("access denied: run fdtop as root or check polkit (org.freedesktop.systemd1.manage-units): %s", denied.Message)
		case errors.As(err, &failed):
			out.Result = string(failed.Result)
			if failed.UnitResult != "" && failed.UnitResult != "success" {
				out.Message = "unit result: " + failed.UnitResult
			}
			return out, nil // the UI reports the job's result and the message
		case errors.Is(err, dbusclient.ErrNoSuchUnit):
			return out, errors.New("no such unit")
		case errors.As(err, &unitErr):
			return out, unitErr.Err
		}
		return out, err
	}
	return out, nil
}

// probeTargets lists the loopback TCP addresses of a unit's listeners and
// names the service whose handoff the probe belongs to.
func (s *liveSource) probeTargets(ctx context.Context, unit string) (targets []string, service string) {
	service = unit
	snap, err := s.builder.Snapshot(ctx, inspect.SnapshotOptions{Units: []string{unit}})
	if err != nil {
		return nil, service
	}
	var out []string
	add := func(ls []inspect.Listener) {
		for _, l := range ls {
			if l.Type != "Stream" {
				continue
			}
			if t, err := inspect.ProbeTarget(l.Address); err == nil {
				out = append(out, t)
			}
		}
	}
	for _, su := range snap.Sockets {
		if su.Unit == unit || su.Service == unit {
			add(su.Listeners)
			if su.Unit == unit && su.Service != "" {
				service = su.Service
			}
		}
	}
	for _, svc := range snap.Services {
		if svc.Unit == unit {
			add(svc.OwnListeners)
		}
	}
	return out, service
}

// DemoCounters implements ui.DemoSource for `fdtop demo`.
func (s *liveSource) DemoCounters() map[string]ui.DemoCounters {
	out := map[string]ui.DemoCounters{}
	for svc, g := range s.traffic {
		st := g.Stats()
		out[svc] = ui.DemoCounters{
			Conns: s.conns[svc], Connected: st.Connected, Sent: st.Sent, Replies: st.Replies,
			Refused: st.Refused, Dropped: st.Dropped, CounterResets: st.CounterResets,
			LastPID: st.LastPID, MaxLatency: st.MaxLatency,
		}
	}
	return out
}

// demoSource adds the demo's traffic generators to a liveSource.
func (s *liveSource) withDemo(env *demoEnv) {
	s.targetedOnly = true
	s.traffic = map[string]*traffic.Generator{}
	s.conns = map[string]int{}
	for m, g := range env.traffic {
		s.traffic[m.Service()] = g
		s.conns[m.Service()] = demoConns
	}
}
