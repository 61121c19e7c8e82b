package inspect

import (
	"slices"

	"github.com/fdtop/fdtop/internal/termsafe"
)

// Snapshots and events carry exact values: unit names, STATUS= texts,
// process names and command lines, socket paths and abstract names as the
// manager and the kernel gave them (JSON prints them so). Anything that
// draws them on a terminal (the dashboard, `fdtop snapshot`'s tree,
// `fdtop watch`'s lines) takes ForTerminal's copy instead, where every
// string went through termsafe.String once. TestForTerminalCoversEveryString
// fails when a string field is added here without being sanitized.

// ForTerminal returns a copy of s in which every string is safe to print
// on a terminal (termsafe.String): control characters and escape sequences
// are shown escaped. s is not modified; the copy shares the slices that
// needed no escaping (the common case costs no copy), so treat both as
// read-only. nil gives nil.
func (s *Snapshot) ForTerminal() *Snapshot {
	if s == nil {
		return nil
	}
	out := *s
	safe(&out.Manager.Scope)
	safe(&out.Manager.Version)
	safe(&out.Manager.Address)
	out.Manager.Limits, _ = mapSlice(out.Manager.Limits, safe)
	safe(&out.Host.Hostname)
	out.Host.UnreadableProcesses, _ = mapSlice(out.Host.UnreadableProcesses, func(p *UnreadableProcess) bool { return safe(&p.Comm) })
	safe(&out.Host.HoldersSource)
	safe(&out.Host.HoldersNote)
	out.Unmatched, _ = mapSlice(out.Unmatched, safe)
	out.Sockets, _ = mapSlice(out.Sockets, safeSocket)
	out.Services, _ = mapSlice(out.Services, safeService)
	out.Warnings, _ = mapSlice(out.Warnings, func(w *Warning) bool {
		return anyOf(safe(&w.Unit), safe(&w.Code), safe(&w.Message))
	})
	return &out
}

// ForTerminal returns a copy of e in which every string is safe to print
// on a terminal (termsafe.String). e is not modified.
func (e Event) ForTerminal() Event {
	typ := string(e.Type)
	safe(&typ)
	e.Type = EventType(typ)
	safe(&e.Unit)
	safe(&e.Target)
	safe(&e.Message)
	safe(&e.Job)
	safe(&e.Result)
	safe(&e.ActiveState)
	safe(&e.SubState)
	safe(&e.Name)
	safe(&e.Detail)
	safe(&e.Kind)
	safe(&e.Via)
	safe(&e.Phase)
	safe(&e.Version)
	safe(&e.Error)
	if e.Handoff != nil {
		h := *e.Handoff
		h.ListenersFromStore = slices.Clone(h.ListenersFromStore)
		h.SocketsFailed = slices.Clone(h.SocketsFailed)
		changed := anyOf(safe(&h.HandoffJob), safe(&h.ServiceState), safe(&h.ServiceResult))
		for i := range h.ListenersFromStore {
			changed = safe(&h.ListenersFromStore[i]) || changed
		}
		for i := range h.SocketsFailed {
			changed = safe(&h.SocketsFailed[i]) || changed
		}
		if changed {
			e.Handoff = &h
		}
	}
	return e
}

func safeSocket(su *SocketUnit) bool {
	c := anyOf(safe(&su.Unit), safe(&su.ActiveState), safe(&su.SubState), safe(&su.Service), safe(&su.FileDescriptorName), safe(&su.DeferTrigger))
	var c1, c2 bool
	su.Listeners, c1 = mapSlice(su.Listeners, safeListener)
	su.Instances, c2 = mapSlice(su.Instances, func(in *Instance) bool {
		var ch bool
		in.Holders, ch = mapSlice(in.Holders, safeHolder)
		return anyOf(safe(&in.Unit), safe(&in.ActiveState), safe(&in.SubState), safe(&in.Local), safe(&in.Remote), ch)
	})
	return c || c1 || c2
}

func safeService(svc *Service) bool {
	c := anyOf(safe(&svc.Unit), safe(&svc.ActiveState), safe(&svc.SubState), safe(&svc.Type), safe(&svc.Result),
		safe(&svc.StatusText), safe(&svc.FDStorePreserve))
	var cs [6]bool
	svc.Sockets, cs[0] = mapSlice(svc.Sockets, safe)
	svc.FDStore, cs[1] = mapSlice(svc.FDStore, func(e *StoreEntry) bool {
		return anyOf(safe(&e.Name), safe(&e.Kind), safe(&e.Detail))
	})
	svc.Passed, cs[2] = mapSlice(svc.Passed, func(p *PassedFD) bool {
		return anyOf(safe(&p.Name), safe(&p.Kind), safe(&p.Detail))
	})
	svc.Connections, cs[3] = mapSlice(svc.Connections, func(cn *Connection) bool {
		return anyOf(safe(&cn.Local), safe(&cn.Remote), safe(&cn.State), safe(&cn.Comm), safe(&cn.Unit))
	})
	svc.OwnListeners, cs[4] = mapSlice(svc.OwnListeners, safeListener)
	svc.Processes, cs[5] = mapSlice(svc.Processes, func(p *Process) bool {
		return anyOf(safe(&p.Comm), safe(&p.Cmdline))
	})
	return c || anyOf(cs[:]...)
}

func safeListener(l *Listener) bool {
	c := anyOf(safe(&l.Type), safe(&l.Address), safe(&l.State), safe(&l.PassedBy))
	var ch bool
	l.Holders, ch = mapSlice(l.Holders, safeHolder)
	return c || ch
}

func safeHolder(h *Holder) bool { return anyOf(safe(&h.Comm), safe(&h.Unit)) }

// safe escapes *s for the terminal and reports whether that changed it.
func safe(s *string) bool {
	t := termsafe.String(*s)
	if t == *s {
		return false
	}
	*s = t
	return true
}

// anyOf reports whether one of cs is set (every argument is evaluated).
func anyOf(cs ...bool) bool {
	for _, c := range cs {
		if c {
			return true
		}
	}
	return false
}

// mapSlice applies f to a copy of each element of in and returns in itself
// when f changed none, else a new slice with the changed elements, and
// whether it changed.
func mapSlice[T any](in []T, f func(*T) bool) ([]T, bool) {
	var out []T
	for i := range in {
		v := in[i]
		if !f(&v) {
			continue
		}
		if out == nil {
			out = append([]T(nil), in...)
		}
		out[i] = v
	}
	if out == nil {
		return in, false
	}
	return out, true
}
