package live

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/ui"
)

// actions run jobs on one manager for an owner of a live model (the
// dashboard's Source, the agent's AgentModel): before each job they ask
// the model for a fresh view of the unit, and with the gap meter asked
// for they tell its Watcher (probeWanted) which service's job to probe.
type actions struct {
	client  *dbusclient.Client
	builder *inspect.Builder
	current func() *inspect.Snapshot // the model's picture, where probe targets are found (nil: read the unit)
	fresh   chan inspect.FreshRequest
	whole   <-chan struct{} // closed once the first picture not still filling is in (nil: no units-first picture)

	mu     sync.Mutex
	probes map[string]time.Time // service -> when a probed action on it was asked for
}

// newActions makes the actions of a live model on client's manager, as b
// reads it; current, if set, is the model's picture.
func newActions(client *dbusclient.Client, b *inspect.Builder, current func() *inspect.Snapshot) *actions {
	return &actions{client: client, builder: b, current: current, fresh: make(chan inspect.FreshRequest), probes: map[string]time.Time{}}
}

// freshWait bounds how long an action waits for the view it asks for
// before its job: a live model busy elsewhere (or gone) delays the action
// by at most this, and the handoff is then measured from an older view.
const freshWait = 2 * time.Second

// readFresh has the live model read unit (and its socket units or
// service) now, before an action starts a job on it, waiting at most
// freshWait.
func (a *actions) readFresh(ctx context.Context, unit string) {
	if a.fresh == nil {
		return // no live model behind these actions
	}
	done := make(chan struct{})
	t := time.NewTimer(freshWait)
	defer t.Stop()
	select {
	case a.fresh <- inspect.FreshRequest{Units: []string{unit}, Done: done}:
	case <-t.C:
		return
	case <-ctx.Done():
		return
	}
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
}

// probeAsk bounds how long a probe asked for with an action waits for its
// job to start.
const probeAsk = time.Minute

// probeWanted tells the watcher whether a restart from the dashboard asked
// for the gap meter on service (once per ask).
func (a *actions) probeWanted(service string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.probes[service]
	delete(a.probes, service)
	return ok && time.Since(at) < probeAsk
}

// Act runs an action on unit (ui.Source.Act, agent.Model.Act): it runs the job; with probe, the watcher runs
// the gap meter on the unit's loopback TCP listeners while the job runs,
// and the handoff's verdict says what it saw.
func (a *actions) Act(ctx context.Context, action ui.Action, unit string, probe bool) (inspect.ActionResult, error) {
	if probe {
		if targets, svc := a.probeTargets(ctx, unit); len(targets) > 0 {
			// Asked before the job starts: the watcher sees it at JobNew.
			a.mu.Lock()
			a.probes[svc] = time.Now()
			a.mu.Unlock()
		}
	}
	if err := a.waitWhole(ctx); err != nil {
		return inspect.ActionResult{Job: string(action)}, err
	}
	a.readFresh(ctx, unit)
	var (
		res dbusclient.JobResult
		err error
	)
	switch action {
	case ui.ActionRestart:
		res, err = a.client.Restart(ctx, unit)
	case ui.ActionStop:
		res, err = a.client.Stop(ctx, unit)
	case ui.ActionStart:
		res, err = a.client.Start(ctx, unit)
	case ui.ActionReload:
		res, err = a.client.Reload(ctx, unit)
	case ui.ActionTryRestart:
		res, err = a.client.TryRestart(ctx, unit)
	case ui.ActionFix:
		if err = a.client.ResetFailed(ctx, unit); err == nil {
			res, err = a.client.Start(ctx, unit)
		}
	default:
		err = fmt.Errorf("unknown action %q", action)
	}
	out := inspect.ActionResult{Job: string(action), Result: string(res)}
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
func (a *actions) probeTargets(ctx context.Context, unit string) (targets []string, service string) {
	service = unit
	var snap *inspect.Snapshot
	if a.current != nil {
		snap = a.current()
	}
	if snap == nil {
		var err error
		if snap, err = a.builder.Snapshot(ctx, inspect.SnapshotOptions{Units: []string{unit}}); err != nil {
			return nil, service
		}
	}
	var lists [][]inspect.Listener
	for _, su := range snap.Sockets {
		if su.Unit == unit || su.Service == unit {
			lists = append(lists, su.Listeners)
			if su.Unit == unit && su.Service != "" && !su.Accept {
				// An Accept=yes socket unit's handoff is its own (its
				// Service is the instances' template).
				service = su.Service
			}
		}
	}
	for _, svc := range snap.Services {
		if svc.Unit == unit {
			lists = append(lists, svc.OwnListeners)
		}
	}
	return inspect.ProbeTargets(lists...), service
}

// waitWhole waits, while the picture is still filling, for the first
// host-wide pass to be in: an action asked for on the units-first picture
// starts its job only then, so the tracker's first view (the "before" of
// the job's handoff) is taken before the job, not during it.
func (a *actions) waitWhole(ctx context.Context) error {
	if a.whole == nil {
		return nil // no units-first picture behind these actions
	}
	select {
	case <-a.whole:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the host-wide pass before the job: %w", ctx.Err())
	}
}
