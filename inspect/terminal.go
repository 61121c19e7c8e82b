package inspect

import "github.com/fdtop/fdtop/internal/termsafe"

// Snapshots and events carry exact values: unit names, STATUS= texts,
// process names and command lines, socket paths and abstract names as the
// manager and the kernel gave them (JSON prints them so). Anything that
// draws them on a terminal (the dashboard, `fdtop snapshot`'s tree,
// `fdtop watch`'s lines) takes ForTerminal's copy instead, where every
// string went through termsafe.String once. TestForTerminalCoversEveryString
// fails when a string field is added here without being sanitized.

// ForTerminal returns a copy of s in which every string is safe to print
// on a terminal (termsafe.String): control characters and escape sequences
// are shown escaped. s is not modified; nil gives nil.
func (s *Snapshot) ForTerminal() *Snapshot {
	if s == nil {
		return nil
	}
	out := *s
	out.Manager.Scope = termsafe.String(s.Manager.Scope)
	out.Manager.Version = termsafe.String(s.Manager.Version)
	out.Manager.Address = termsafe.String(s.Manager.Address)
	out.Manager.Limits = strs(s.Manager.Limits)
	out.Host.Hostname = termsafe.String(s.Host.Hostname)
	out.Sockets = mapSlice(s.Sockets, func(su SocketUnit) SocketUnit {
		su.Unit = termsafe.String(su.Unit)
		su.ActiveState = termsafe.String(su.ActiveState)
		su.SubState = termsafe.String(su.SubState)
		su.Service = termsafe.String(su.Service)
		su.FileDescriptorName = termsafe.String(su.FileDescriptorName)
		su.Listeners = mapSlice(su.Listeners, safeListener)
		su.Instances = mapSlice(su.Instances, func(in Instance) Instance {
			in.Unit = termsafe.String(in.Unit)
			in.ActiveState = termsafe.String(in.ActiveState)
			in.SubState = termsafe.String(in.SubState)
			in.Local = termsafe.String(in.Local)
			in.Remote = termsafe.String(in.Remote)
			return in
		})
		return su
	})
	out.Services = mapSlice(s.Services, func(svc Service) Service {
		svc.Unit = termsafe.String(svc.Unit)
		svc.ActiveState = termsafe.String(svc.ActiveState)
		svc.SubState = termsafe.String(svc.SubState)
		svc.Type = termsafe.String(svc.Type)
		svc.Result = termsafe.String(svc.Result)
		svc.StatusText = termsafe.String(svc.StatusText)
		svc.Sockets = strs(svc.Sockets)
		svc.FDStorePreserve = termsafe.String(svc.FDStorePreserve)
		svc.FDStore = mapSlice(svc.FDStore, func(e StoreEntry) StoreEntry {
			e.Name = termsafe.String(e.Name)
			e.Kind = termsafe.String(e.Kind)
			e.Detail = termsafe.String(e.Detail)
			return e
		})
		svc.Passed = mapSlice(svc.Passed, func(p PassedFD) PassedFD {
			p.Name = termsafe.String(p.Name)
			p.Kind = termsafe.String(p.Kind)
			p.Detail = termsafe.String(p.Detail)
			return p
		})
		svc.Connections = mapSlice(svc.Connections, func(c Connection) Connection {
			c.Local = termsafe.String(c.Local)
			c.Remote = termsafe.String(c.Remote)
			c.State = termsafe.String(c.State)
			return c
		})
		svc.OwnListeners = mapSlice(svc.OwnListeners, safeListener)
		svc.Processes = mapSlice(svc.Processes, func(p Process) Process {
			p.Comm = termsafe.String(p.Comm)
			p.Cmdline = termsafe.String(p.Cmdline)
			return p
		})
		return svc
	})
	out.Warnings = mapSlice(s.Warnings, func(w Warning) Warning {
		w.Unit = termsafe.String(w.Unit)
		w.Code = termsafe.String(w.Code)
		w.Message = termsafe.String(w.Message)
		return w
	})
	return &out
}

// ForTerminal returns a copy of e in which every string is safe to print
// on a terminal (termsafe.String). e is not modified.
func (e Event) ForTerminal() Event {
	e.Unit = termsafe.String(e.Unit)
	e.Type = EventType(termsafe.String(string(e.Type)))
	e.Message = termsafe.String(e.Message)
	e.Job = termsafe.String(e.Job)
	e.Result = termsafe.String(e.Result)
	e.ActiveState = termsafe.String(e.ActiveState)
	e.SubState = termsafe.String(e.SubState)
	e.Name = termsafe.String(e.Name)
	e.Detail = termsafe.String(e.Detail)
	if e.Handoff != nil {
		h := *e.Handoff
		h.HandoffJob = termsafe.String(h.HandoffJob)
		e.Handoff = &h
	}
	return e
}

func safeListener(l Listener) Listener {
	l.Type = termsafe.String(l.Type)
	l.Address = termsafe.String(l.Address)
	l.State = termsafe.String(l.State)
	l.Holders = mapSlice(l.Holders, func(h Holder) Holder {
		h.Comm = termsafe.String(h.Comm)
		h.Unit = termsafe.String(h.Unit)
		return h
	})
	return l
}

// mapSlice returns f applied to each element of in, in a new slice (nil
// stays nil, empty stays empty: JSON-shaped callers see no difference).
func mapSlice[T any](in []T, f func(T) T) []T {
	if in == nil {
		return nil
	}
	out := make([]T, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

// strs is termsafe.Strings keeping nil as nil.
func strs(ss []string) []string {
	if ss == nil {
		return nil
	}
	return termsafe.Strings(ss)
}
