package ui

import (
	"fmt"
	"slices"
	"strings"

	"github.com/fdtop/fdtop/inspect"
)

// impactPreview says what action on unit will do, from what the snapshot
// knows: socket units, the fd store and its preserve mode, connections,
// Accept=.
func impactPreview(ix *snapIndex, action Action, ref unitRef) []string {
	mgr := ix.manager(ref)
	var out []string
	switch so, svc := ix.socket(ref), ix.service(ref); {
	case so != nil:
		out = socketImpact(ix, ref.Host, so, action)
	case svc != nil:
		out = serviceImpact(ix, ref.Host, mgr, svc, action)
	default:
		return []string{fmt.Sprintf("fdtop knows nothing about %s yet: no preview", ref.Unit)}
	}
	if ref.Host == "" && ix.Snap != nil && ix.Snap.Host.Filling {
		// The live model's units-first picture (live.Source.Act waits).
		out = append(out, "the picture is still filling: holders and connections outside the units are not read yet; the job starts once the host-wide pass is in")
	}
	return out
}

func addresses(so *inspect.SocketUnit) string {
	a := make([]string, 0, len(so.Listeners))
	for _, l := range so.Listeners {
		a = append(a, l.Address)
	}
	if len(a) == 0 {
		return "no listeners"
	}
	return strings.Join(a, ", ")
}

func socketImpact(ix *snapIndex, host string, so *inspect.SocketUnit, action Action) []string {
	svc := orDash(so.Service)
	active := so.ActiveState == "active"
	switch action {
	case ActionStop:
		out := []string{fmt.Sprintf("stop closes %s's listeners (%s): new clients will be refused", so.Unit, addresses(so))}
		if g := ix.byUnit[unitRef{host, so.Unit}]; g != nil && g.Service != nil && g.Service.ActiveState == "active" {
			out = append(out, fmt.Sprintf("%s keeps running with its own copies of the listeners", svc))
		}
		return out
	case ActionRestart, ActionTryRestart:
		if action == ActionTryRestart && !active {
			return []string{fmt.Sprintf("%s is %s: try-restart does nothing", so.Unit, so.ActiveState)}
		}
		out := []string{
			fmt.Sprintf("restart closes and reopens %s's listeners (%s): clients are refused during the gap and connections queued in the backlog are lost", so.Unit, addresses(so)),
		}
		if so.Accept {
			out = append(out, fmt.Sprintf("Accept=yes: the %s running per-connection instances are not touched", fmt.Sprint(len(so.Instances))))
		} else {
			out = append(out, fmt.Sprintf("a running %s keeps the old sockets: restart it too so it gets the new ones", svc))
		}
		return out
	case ActionStart:
		if active {
			return []string{fmt.Sprintf("%s is already active: start does nothing", so.Unit)}
		}
		return []string{fmt.Sprintf("start opens %s and activates %s on the first connection", addresses(so), svc)}
	case ActionReload:
		return []string{"socket units cannot be reloaded: systemd will refuse the job"}
	}
	return nil
}

func serviceImpact(ix *snapIndex, host string, mgr inspect.Manager, svc *inspect.Service, action Action) []string {
	var sockets []*inspect.SocketUnit
	if g := ix.byUnit[unitRef{host, svc.Unit}]; g != nil {
		sockets = g.Sockets
	}
	active := svc.ActiveState == "active" || svc.ActiveState == "reloading"
	store := int(svc.FDStoreCount)
	// Connections held outside the service (a login session's sshd in
	// session-N.scope) are not the unit's processes: a stop or restart
	// of the unit leaves them be.
	conns := 0
	var outsideUnits []string
	outside := 0
	for _, c := range svc.Connections {
		if !c.Outside {
			conns++
			continue
		}
		outside++
		if u := orDash(c.Unit); !slices.Contains(outsideUnits, u) {
			outsideUnits = append(outsideUnits, u)
		}
	}
	outsideLine := func(verb string) string {
		where := strings.Join(outsideUnits[:min(len(outsideUnits), 3)], ", ")
		if len(outsideUnits) > 3 {
			where += ", …"
		}
		them := "them"
		if outside == 1 {
			them = "it"
		}
		return fmt.Sprintf("%s held outside %s (in %s): %s does not touch %s", plural(outside, "live connection", "live connections"), svc.Unit, where, verb, them)
	}
	var out []string

	storeLine := func() string {
		if store == 0 {
			return ""
		}
		what := plural(store, "fd", "fds") + " in " + svc.Unit + "'s store"
		switch svc.FDStorePreserve {
		case "yes":
			return fmt.Sprintf("stop keeps the %s (FileDescriptorStorePreserve=yes): the unit stays dead-resources-pinned", what)
		case "":
			why := "systemd < 254 has no FileDescriptorStorePreserve="
			if mgr.FDStorePreserve {
				why = "FileDescriptorStorePreserve unknown"
			}
			return fmt.Sprintf("stop will discard the %s (%s); restart keeps them", what, why)
		}
		return fmt.Sprintf("stop will discard the %s (FileDescriptorStorePreserve=%s); restart keeps them", what, svc.FDStorePreserve)
	}
	socketNames := func() string {
		n := make([]string, len(sockets))
		for i, s := range sockets {
			n[i] = s.Unit
		}
		return strings.Join(n, ", ")
	}
	flush := false
	for _, so := range sockets {
		flush = flush || so.FlushPending
	}

	switch action {
	case ActionStop:
		if !active {
			return []string{fmt.Sprintf("%s is %s: stop does nothing", svc.Unit, svc.ActiveState)}
		}
		if l := storeLine(); l != "" {
			out = append(out, l)
		}
		if conns > 0 {
			out = append(out, fmt.Sprintf("%s held by its processes will be closed", plural(conns, "live connection", "live connections")))
		}
		if svc.ConnectionsUnknown {
			out = append(out, "live connections: unknown (its processes are not readable, not root); those it holds will be closed")
		}
		if outside > 0 {
			out = append(out, outsideLine("stop"))
		}
		if len(sockets) > 0 {
			out = append(out, fmt.Sprintf("%s stays listening: the next client starts %s again", socketNames(), svc.Unit))
		} else {
			out = append(out, fmt.Sprintf("%s has no socket unit: clients will be refused until it is started again", svc.Unit))
		}
	case ActionRestart, ActionTryRestart:
		if action == ActionTryRestart && !active {
			return []string{fmt.Sprintf("%s is %s: try-restart does nothing", svc.Unit, svc.ActiveState)}
		}
		if len(sockets) > 0 {
			out = append(out, fmt.Sprintf("the listeners of %s stay open in the manager: clients queue in the backlog, none are refused", socketNames()))
		} else {
			out = append(out, fmt.Sprintf("%s has no socket unit: clients will be refused until it listens again", svc.Unit))
		}
		if store > 0 {
			out = append(out, fmt.Sprintf("the %s in its store are kept and passed to the new process", plural(store, "fd", "fds")))
		} else if svc.FDStoreMax == 0 {
			out = append(out, "no fd store (FileDescriptorStoreMax=0): state held in the process is lost")
		}
		if svc.ConnectionsUnknown {
			out = append(out, "live connections: unknown (its processes are not readable, not root); those it holds are dropped unless stored")
		}
		if conns > 0 {
			if svc.FDStoreMax > 0 {
				out = append(out, fmt.Sprintf("%s survive only if the service stores them before exiting", plural(conns, "live connection", "live connections")))
			} else {
				out = append(out, fmt.Sprintf("%s will be dropped", plural(conns, "live connection", "live connections")))
			}
		}
		if outside > 0 {
			out = append(out, outsideLine("restart"))
		}
		if flush {
			out = append(out, "FlushPending=yes: connections queued while it is down are dropped")
		}
	case ActionStart:
		if active {
			return []string{fmt.Sprintf("%s is already %s: start does nothing", svc.Unit, svc.ActiveState)}
		}
		n := 0
		for _, so := range sockets {
			n += len(so.Listeners)
		}
		out = append(out, fmt.Sprintf("start passes %s from its socket units and %s from its store", plural(n, "listener", "listeners"), plural(store, "fd", "fds")))
	case ActionReload:
		if !active {
			return []string{fmt.Sprintf("%s is %s: reload fails", svc.Unit, svc.ActiveState)}
		}
		out = append(out, "reload runs ExecReload= (or fails if there is none): same process, listeners, store and connections untouched")
	}
	return out
}
