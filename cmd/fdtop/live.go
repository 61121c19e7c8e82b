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
// timeline from a Watcher on the manager's signals, and actions through
// dbusclient with the gap meter alongside.
type liveSource struct {
	client  *dbusclient.Client
	builder *inspect.Builder
	events  chan inspect.Event

	// targetedOnly limits every scan to the units' and the manager's
	// processes (the demo: nothing outside the sandbox matters there).
	targetedOnly bool

	mu      sync.Mutex
	probes  map[string]*pendingProbe      // service -> gap meter run waiting for its handoff event
	traffic map[string]*traffic.Generator // demo: service -> generator
	conns   map[string]int
}

// newLiveSource starts the watcher; it runs until ctx ends.
func newLiveSource(ctx context.Context, client *dbusclient.Client, b *inspect.Builder, interval time.Duration) (*liveSource, error) {
	sub, err := client.Subscribe(ctx)
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	src := &liveSource{client: client, builder: b, events: make(chan inspect.Event, 1024), probes: map[string]*pendingProbe{}}
	raw := make(chan inspect.Event, 1024)
	w := &inspect.Watcher{Snapshots: b, Events: sub, Interval: interval, FullEvery: -1}
	if k, ok := b.Kernel.(procfs.FS); ok {
		w.Alive = inspect.SocketsAlive(k.SocketsByInode)
	}
	go func() {
		defer sub.Close()
		if err := w.Run(ctx, raw); err != nil {
			raw <- inspect.Event{Time: time.Now(), Type: inspect.EventDisconnected, Phase: "stopped", Error: err.Error()}
		}
	}()
	go src.forward(ctx, raw)
	return src, nil
}

// pendingProbe is a gap meter run started with an action.
type pendingProbe struct {
	start    time.Time
	done     chan struct{} // closed when result and finished are set
	result   inspect.ProbeResult
	finished time.Time
}

// probeWait bounds how long a handoff event waits for its gap meter (which
// runs until shortly after the job is done, so it finishes after the
// watcher has seen the job end).
const probeWait = 5 * time.Second

// forward passes events on, adding the gap meter's result to handoffs.
func (s *liveSource) forward(ctx context.Context, raw <-chan inspect.Event) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-raw:
			if e.Type == inspect.EventHandoff && e.Handoff != nil {
				s.attachProbe(ctx, &e)
			}
			select {
			case s.events <- e:
			case <-ctx.Done():
				return
			}
		}
	}
}

// attachProbe adds the gap meter run that covered a handoff to its
// summary and verdict, waiting for the run to finish.
func (s *liveSource) attachProbe(ctx context.Context, e *inspect.Event) {
	s.mu.Lock()
	p := s.probes[e.Unit]
	s.mu.Unlock()
	if p == nil || p.start.After(e.Time) {
		return
	}
	select {
	case <-p.done:
	case <-time.After(probeWait):
		return
	case <-ctx.Done():
		return
	}
	s.mu.Lock()
	if s.probes[e.Unit] == p {
		delete(s.probes, e.Unit)
	}
	s.mu.Unlock()
	if e.Time.Sub(p.finished) > probeWait {
		return // a run that ended long before this handoff: not its measure
	}
	h := *e.Handoff
	h.Probe = &p.result
	e.Handoff = &h
}

// Snapshot implements ui.Source.
func (s *liveSource) Snapshot(ctx context.Context, units []string) (*inspect.Snapshot, error) {
	return s.builder.Snapshot(ctx, inspect.SnapshotOptions{Units: units, FullScan: len(units) == 0 && !s.targetedOnly})
}

// Events implements ui.Source.
func (s *liveSource) Events() <-chan inspect.Event { return s.events }

// Act implements ui.Source: it runs the job and, if asked, the gap meter on
// the unit's loopback TCP listeners while the job runs.
func (s *liveSource) Act(ctx context.Context, action ui.Action, unit string, probe bool) (ui.ActionResult, error) {
	var targets []string
	svc := unit
	if probe {
		targets, svc = s.probeTargets(ctx, unit)
	}
	pctx, stopProbe := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var result inspect.ProbeResult
	var pending *pendingProbe
	if len(targets) > 0 {
		// Registered before the job starts: its handoff event waits for it.
		pending = &pendingProbe{start: time.Now(), done: make(chan struct{})}
		s.mu.Lock()
		s.probes[svc] = pending
		s.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			result = inspect.Probe(pctx, targets, inspect.ProbeConfig{Every: 10 * time.Millisecond, Max: 2 * time.Minute})
		}()
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
	// Let the probe see the new instance answer before it stops.
	if len(targets) > 0 {
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	stopProbe()
	wg.Wait()
	if pending != nil {
		pending.result, pending.finished = result, time.Now()
		close(pending.done)
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
	if len(targets) > 0 {
		out.Message = fmt.Sprintf("gap meter: %d attempts, %d refused, worst connect %.1f ms", result.Attempts, result.Refused, result.WorstConnectMs)
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
