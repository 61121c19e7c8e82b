package ui

import (
	"sort"

	"github.com/fdtop/fdtop/inspect"
)

// mergeSnapshot folds a fast snapshot limited to units into the last full
// one: the listed units are taken from fast, everything else (and the
// host-wide figures) from base. Neither input is modified.
func mergeSnapshot(base, fast *inspect.Snapshot, units []string) *inspect.Snapshot {
	if base == nil {
		return fast
	}
	if fast == nil {
		return base
	}
	req := make(map[string]bool, len(units))
	for _, u := range units {
		req[u] = true
	}
	out := *base
	out.Time = fast.Time
	out.Manager = fast.Manager

	fastSockets := make(map[string]*inspect.SocketUnit, len(fast.Sockets))
	for i := range fast.Sockets {
		fastSockets[fast.Sockets[i].Unit] = &fast.Sockets[i]
	}
	out.Sockets = make([]inspect.SocketUnit, 0, len(base.Sockets))
	seen := map[string]bool{}
	for _, s := range base.Sockets {
		seen[s.Unit] = true
		if f := fastSockets[s.Unit]; req[s.Unit] && f != nil {
			s = *f
		}
		out.Sockets = append(out.Sockets, s)
	}
	added := false
	for _, s := range fast.Sockets {
		if req[s.Unit] && !seen[s.Unit] {
			out.Sockets = append(out.Sockets, s)
			added = true
		}
	}
	if added {
		sort.Slice(out.Sockets, func(i, j int) bool { return out.Sockets[i].Unit < out.Sockets[j].Unit })
	}

	fastServices := make(map[string]*inspect.Service, len(fast.Services))
	for i := range fast.Services {
		fastServices[fast.Services[i].Unit] = &fast.Services[i]
	}
	out.Services = make([]inspect.Service, 0, len(base.Services))
	seen = map[string]bool{}
	for _, s := range base.Services {
		seen[s.Unit] = true
		if f := fastServices[s.Unit]; req[s.Unit] && f != nil {
			s = *f
		}
		out.Services = append(out.Services, s)
	}
	added = false
	for _, s := range fast.Services {
		if req[s.Unit] && !seen[s.Unit] {
			out.Services = append(out.Services, s)
			added = true
		}
	}
	if added {
		sort.Slice(out.Services, func(i, j int) bool { return out.Services[i].Unit < out.Services[j].Unit })
	}

	out.Warnings = nil
	for _, w := range base.Warnings {
		if !req[w.Unit] {
			out.Warnings = append(out.Warnings, w)
		}
	}
	for _, w := range fast.Warnings {
		if req[w.Unit] {
			out.Warnings = append(out.Warnings, w)
		}
	}
	return &out
}

// applyEvents updates unit states and main PIDs in snap from events, so
// the list follows signals before the next scan. snap is copied, not
// modified; it is returned as is when no event applies.
func applyEvents(snap *inspect.Snapshot, evs []inspect.Event) *inspect.Snapshot {
	if snap == nil {
		return nil
	}
	var out *inspect.Snapshot
	for _, ev := range evs {
		if ev.Type != inspect.EventState && ev.Type != inspect.EventMainPID {
			continue
		}
		for i := range snap.Sockets {
			if snap.Sockets[i].Unit != ev.Unit || ev.Type != inspect.EventState {
				continue
			}
			if out == nil {
				out = copySnapshot(snap)
			}
			out.Sockets[i].ActiveState, out.Sockets[i].SubState = ev.ActiveState, ev.SubState
		}
		for i := range snap.Services {
			if snap.Services[i].Unit != ev.Unit {
				continue
			}
			if out == nil {
				out = copySnapshot(snap)
			}
			if ev.Type == inspect.EventState {
				out.Services[i].ActiveState, out.Services[i].SubState = ev.ActiveState, ev.SubState
			} else {
				out.Services[i].MainPID = ev.PID
			}
		}
	}
	if out == nil {
		return snap
	}
	return out
}

// copySnapshot copies the unit slices of snap (not what they point to).
func copySnapshot(snap *inspect.Snapshot) *inspect.Snapshot {
	out := *snap
	out.Sockets = append([]inspect.SocketUnit(nil), snap.Sockets...)
	out.Services = append([]inspect.Service(nil), snap.Services...)
	return &out
}
