package inspect

import (
	"slices"
	"sort"

	"github.com/fdtop/fdtop/dbusclient"
)

// MergeUnits folds a snapshot limited to units (fresh) into the last whole
// picture (base): the listed units are taken from fresh, everything else
// (and the host-wide figures) from base. Neither input is modified. The
// live model uses it to keep its picture current between whole rescans.
func MergeUnits(base, fresh *Snapshot, units []string) *Snapshot {
	if base == nil {
		return fresh
	}
	if fresh == nil {
		return base
	}
	req := make(map[string]bool, len(units))
	for _, u := range units {
		req[u] = true
	}
	out := *base
	out.Time = fresh.Time
	out.Manager = fresh.Manager
	out.Sockets = mergeByUnit(base.Sockets, fresh.Sockets, req, func(s SocketUnit) string { return s.Unit })
	out.Services = mergeByUnit(base.Services, fresh.Services, req, func(s Service) string { return s.Unit })
	out.Warnings = nil
	for _, w := range base.Warnings {
		if !req[w.Unit] {
			out.Warnings = append(out.Warnings, w)
		}
	}
	for _, w := range fresh.Warnings {
		if req[w.Unit] {
			out.Warnings = append(out.Warnings, w)
		}
	}
	return &out
}

// mergeByUnit takes the requested units from fresh and the others from
// base, sorted by unit as the Builder sorts them.
func mergeByUnit[T any](base, fresh []T, req map[string]bool, unit func(T) string) []T {
	byUnit := make(map[string]T, len(fresh))
	for _, f := range fresh {
		byUnit[unit(f)] = f
	}
	out := make([]T, 0, len(base))
	seen := map[string]bool{}
	for _, b := range base {
		u := unit(b)
		seen[u] = true
		if f, ok := byUnit[u]; ok && req[u] {
			b = f
		}
		out = append(out, b)
	}
	added := false
	for _, f := range fresh {
		if u := unit(f); req[u] && !seen[u] {
			out = append(out, f)
			added = true
		}
	}
	if added {
		sort.Slice(out, func(i, j int) bool { return unit(out[i]) < unit(out[j]) })
	}
	return out
}

// ApplySignal puts what a manager signal says about a unit (states, main
// PID, result, status, the counters) into the picture, so the picture
// follows the manager between rescans. snap is copied, not modified; it is
// returned as is when the signal changes nothing in it.
func ApplySignal(snap *Snapshot, ev dbusclient.Event) *Snapshot {
	if snap == nil {
		return nil
	}
	var (
		unit string
		ch   dbusclient.UnitChanges
	)
	switch e := ev.(type) {
	case dbusclient.UnitChanged:
		unit, ch = e.Unit, e.Changes
	case dbusclient.CountersChanged:
		c := e.Counters
		unit = e.Unit
		ch.NConnections, ch.NAccepted, ch.NRefused = &c.NConnections, &c.NAccepted, &c.NRefused
		ch.NFileDescriptorStore = &c.NFileDescriptorStore
	default:
		return snap
	}
	var out *Snapshot
	own := func() *Snapshot {
		if out == nil {
			c := *snap
			c.Sockets = append([]SocketUnit(nil), snap.Sockets...)
			c.Services = append([]Service(nil), snap.Services...)
			out = &c
		}
		return out
	}
	for i := range snap.Sockets {
		if snap.Sockets[i].Unit != unit {
			continue
		}
		s := snap.Sockets[i]
		set(&s.ActiveState, ch.ActiveState)
		set(&s.SubState, ch.SubState)
		set(&s.NConnections, ch.NConnections)
		set(&s.NAccepted, ch.NAccepted)
		set(&s.NRefused, ch.NRefused)
		if !sameSocketHead(s, snap.Sockets[i]) {
			own().Sockets[i] = s
		}
	}
	for i := range snap.Services {
		if snap.Services[i].Unit != unit {
			continue
		}
		s := snap.Services[i]
		set(&s.ActiveState, ch.ActiveState)
		set(&s.SubState, ch.SubState)
		set(&s.Result, ch.Result)
		set(&s.StatusText, ch.StatusText)
		set(&s.NRestarts, ch.NRestarts)
		set(&s.FDStoreCount, ch.NFileDescriptorStore)
		if ch.MainPID != nil {
			s.MainPID = int(*ch.MainPID)
		}
		if !sameServiceHead(s, snap.Services[i]) {
			own().Services[i] = s
		}
	}
	if out == nil {
		return snap
	}
	return out
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// sameSocketHead compares what ApplySignal changes in a socket unit.
func sameSocketHead(a, b SocketUnit) bool {
	return a.ActiveState == b.ActiveState && a.SubState == b.SubState &&
		a.NConnections == b.NConnections && a.NAccepted == b.NAccepted && a.NRefused == b.NRefused
}

// sameServiceHead compares what ApplySignal changes in a service.
func sameServiceHead(a, b Service) bool {
	return a.ActiveState == b.ActiveState && a.SubState == b.SubState && a.Result == b.Result &&
		a.StatusText == b.StatusText && a.NRestarts == b.NRestarts && a.FDStoreCount == b.FDStoreCount && a.MainPID == b.MainPID
}

// CountersMove keeps the units whose never-signalling counters can move:
// socket units with Accept=yes (systemd counts connections, accepted and
// refused ones only where it accepts them itself) and services with an fd
// store (FileDescriptorStoreMax > 0). A unit snap does not hold is kept:
// what it is is unknown. Polling the others would only ever read the same
// values.
func CountersMove(snap *Snapshot, units []string) []string {
	if snap == nil {
		return units
	}
	out := make([]string, 0, len(units))
	for _, u := range units {
		keep := true
		if i := slices.IndexFunc(snap.Sockets, func(su SocketUnit) bool { return su.Unit == u }); i >= 0 {
			keep = snap.Sockets[i].Accept
		} else if i := slices.IndexFunc(snap.Services, func(s Service) bool { return s.Unit == u }); i >= 0 {
			keep = snap.Services[i].FDStoreMax > 0
		}
		if keep {
			out = append(out, u)
		}
	}
	return out
}
