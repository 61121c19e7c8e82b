package dbusclient

import (
	"context"
	"fmt"
	"strings"
)

// UnitFacts are what fdtop doctor reads about a unit beyond a snapshot:
// why it failed, how its main process ended, where its unit file is, and
// whether a job is queued for it.
type UnitFacts struct {
	UnitState
	// Result is the unit's Result property (success, exit-code,
	// trigger-limit-hit, start-limit-hit, resources, ...).
	Result string
	// ExecMainCode and ExecMainStatus say how a service's main process
	// ended (a CLD_* code: 1 exited, 2 killed, 3 dumped; the exit status or
	// signal number); both 0 when it never ended.
	ExecMainCode, ExecMainStatus int32
	// NotifyAccess is a service's NotifyAccess= (none, main, exec, all).
	NotifyAccess string
	// FragmentPath and DropInPaths are the unit's files.
	FragmentPath string
	DropInPaths  []string
}

// Facts reads UnitFacts of the named units that are loaded, plus every
// failed socket or service unit matching patterns (all of them without
// patterns). Units that are not loaded are left out.
func (c *Client) Facts(ctx context.Context, names, patterns []string) (map[string]UnitFacts, error) {
	if len(patterns) == 0 {
		patterns = []string{"*.socket", "*.service"}
	}
	lists := []*call{listCall([]string{"failed"}, patterns)}
	if len(names) > 0 { // no pattern at all would list every unit
		lists = append(lists, listCall(nil, names))
	}
	if err := c.run(ctx, lists); err != nil {
		return nil, err
	}
	var units []unitStatus
	for _, l := range lists {
		us, err := l.units()
		if err != nil {
			return nil, err
		}
		units = append(units, us...)
	}
	out := map[string]UnitFacts{}
	vals := map[string]*UnitFacts{}
	var reads []*unitRead
	for _, u := range units {
		if u.LoadState != "loaded" || vals[u.Name] != nil {
			continue
		}
		f := &UnitFacts{UnitState: u.state()}
		props := []prop{
			{iface: ifaceUnit, name: "FragmentPath", dest: &f.FragmentPath},
			{iface: ifaceUnit, name: "DropInPaths", dest: &f.DropInPaths},
		}
		switch {
		case strings.HasSuffix(u.Name, ".socket"):
			props = append(props, prop{iface: ifaceSocket, name: "Result", dest: &f.Result})
		case strings.HasSuffix(u.Name, ".service"):
			props = append(props,
				prop{iface: ifaceService, name: "Result", dest: &f.Result},
				prop{iface: ifaceService, name: "NotifyAccess", dest: &f.NotifyAccess},
				prop{iface: ifaceService, name: "ExecMainCode", dest: &f.ExecMainCode},
				prop{iface: ifaceService, name: "ExecMainStatus", dest: &f.ExecMainStatus})
		default:
			continue
		}
		vals[u.Name] = f
		reads = append(reads, newUnitRead(u.Name, u.Path, props))
	}
	if err := c.run(ctx, collect(reads)); err != nil {
		return nil, err
	}
	for _, r := range reads {
		gone, err := r.decode(c)
		if err != nil {
			return nil, err
		}
		if gone {
			continue
		}
		out[r.name] = *vals[r.name]
	}
	return out, nil
}

// UnitFileExists reports whether the manager finds a unit file by that
// name (GetUnitFileState), e.g. the template "echo@.service" of an
// Accept=yes socket. known is false when the manager's answer did not say.
func (c *Client) UnitFileExists(ctx context.Context, name string) (exists, known bool, err error) {
	cl := &call{path: managerPath, method: ifaceManager + ".GetUnitFileState", args: []any{name}}
	if err := c.run(ctx, []*call{cl}); err != nil {
		return false, false, err
	}
	if cl.err == nil {
		return true, true, nil
	}
	switch dbusErrorName(cl.err) {
	case errNameNoSuchUnit, "org.freedesktop.DBus.Error.FileNotFound":
		return false, true, nil
	}
	return false, false, fmt.Errorf("unit file state of %s: %w", name, cl.err)
}

// ResetFailed resets a unit's failed state (and its start and trigger
// rate limits): ResetFailedUnit. It is not a job.
func (c *Client) ResetFailed(ctx context.Context, unit string) error {
	cl := &call{path: managerPath, method: ifaceManager + ".ResetFailedUnit", args: []any{unit}}
	if err := c.run(ctx, []*call{cl}); err != nil {
		return &UnitError{Op: "reset-failed", Unit: unit, Err: err}
	}
	if cl.err != nil {
		return unitErr("reset-failed", unit, cl.err)
	}
	return nil
}
