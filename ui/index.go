package ui

import (
	"strings"

	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/termsafe"
	"github.com/fdtop/fdtop/internal/unitpattern"
)

// unitGroup is a service with the socket units that trigger it (either
// side may be missing): the unit list shows a group as a socket row per
// socket followed by an indented service row.
type unitGroup struct {
	// Host is the fleet host the group is on ("" for the one manager),
	// escaped for the terminal.
	Host    string
	Sockets []*inspect.SocketUnit
	Service *inspect.Service
	// Name is the group's sort name: the service, else the first socket.
	Name string
	// search is what the filter matches: names and addresses, lower case.
	search string
	// Warnings are the warnings about any unit of the group.
	Warnings []inspect.Warning
}

// unitRef names a unit on one host: in a fleet two hosts' units of the
// same name are distinct. Host is "" for the one manager; both are
// escaped for the terminal, as shown.
type unitRef struct {
	Host, Unit string
}

// String says which unit: "web.service", or "web.service on HOST" in a
// fleet.
func (r unitRef) String() string {
	if r.Host == "" {
		return r.Unit
	}
	return r.Unit + " on " + r.Host
}

// key is the ref as a map key: the unit's name for the one manager (so a
// single manager's maps read as they always did), host NUL unit in a
// fleet (an escaped name holds no NUL).
func (r unitRef) key() string {
	if r.Host == "" {
		return r.Unit
	}
	return r.Host + "\x00" + r.Unit
}

// ref names a unit of the group.
func (g *unitGroup) ref(unit string) unitRef { return unitRef{Host: g.Host, Unit: unit} }

// units returns the unit names of the group, sockets first.
func (g *unitGroup) units() []string {
	var u []string
	for _, s := range g.Sockets {
		u = append(u, s.Unit)
	}
	if g.Service != nil {
		u = append(u, g.Service.Unit)
	}
	return u
}

func (g *unitGroup) connections() int {
	n := 0
	if g.Service != nil {
		n = len(g.Service.Connections)
	}
	for _, s := range g.Sockets {
		n += len(s.Instances)
	}
	return n
}

func (g *unitGroup) storeCount() int {
	if g.Service == nil {
		return 0
	}
	return int(g.Service.FDStoreCount)
}

// snapIndex is a snapshot joined for display, built once per snapshot so
// that View never walks the whole snapshot.
type snapIndex struct {
	// Snap is the snapshot shown, escaped for the terminal (ForTerminal).
	Snap   *inspect.Snapshot
	Groups []*unitGroup
	// byUnit maps every unit to its group.
	byUnit map[unitRef]*unitGroup
	// Fleet is every host of a fleet, in the order given, escaped for the
	// terminal (nil for the one manager; Snap is then nil).
	Fleet []HostPicture
	// Totals for the header.
	NSockets, NServices, NStoreFDs, NConns int
	// ConnsPartial: some service's processes were not readable, so NConns
	// counts only what was seen.
	ConnsPartial bool

	// hostSnaps and hostIx are each fleet host's picture as received and
	// its index, reused while the picture stays the same.
	hostSnaps map[string]*inspect.Snapshot
	hostIx    map[string]*snapIndex
}

// matchPatterns reports whether unit matches one of the command line's
// unit patterns (internal/unitpattern); every unit matches when there are
// none. This is not the "/" filter, which searches the rows' text.
func matchPatterns(patterns []string, unit string) bool {
	return len(patterns) == 0 || unitpattern.MatchAny(patterns, unit)
}

// buildIndex groups snap's units, keeping only groups with a unit that
// matches patterns. The index holds snap's ForTerminal copy: every string
// the panes draw from it is already escaped for the terminal.
func buildIndex(snap *inspect.Snapshot, patterns []string) *snapIndex {
	snap = snap.ForTerminal()
	ix := &snapIndex{Snap: snap, byUnit: map[unitRef]*unitGroup{}}
	if snap == nil {
		return ix
	}
	services := make(map[string]*inspect.Service, len(snap.Services))
	for i := range snap.Services {
		services[snap.Services[i].Unit] = &snap.Services[i]
	}
	groupOf := map[string]*unitGroup{} // by service name
	var groups []*unitGroup
	for i := range snap.Sockets {
		so := &snap.Sockets[i]
		svc := services[so.Service]
		if svc != nil {
			if g := groupOf[svc.Unit]; g != nil {
				g.Sockets = append(g.Sockets, so)
				continue
			}
		}
		g := &unitGroup{Sockets: []*inspect.SocketUnit{so}, Service: svc, Name: so.Unit}
		if svc != nil {
			g.Name = svc.Unit
			groupOf[svc.Unit] = g
		}
		groups = append(groups, g)
	}
	for i := range snap.Services {
		svc := &snap.Services[i]
		if groupOf[svc.Unit] == nil {
			g := &unitGroup{Service: svc, Name: svc.Unit}
			groupOf[svc.Unit] = g
			groups = append(groups, g)
		}
	}
	warnings := map[string][]inspect.Warning{}
	for _, w := range snap.Warnings {
		warnings[w.Unit] = append(warnings[w.Unit], w)
	}
	for _, g := range groups {
		keep := false
		var sb strings.Builder
		for _, u := range g.units() {
			keep = keep || matchPatterns(patterns, u)
			sb.WriteString(strings.ToLower(u))
			sb.WriteByte(' ')
			g.Warnings = append(g.Warnings, warnings[u]...)
		}
		if !keep {
			continue
		}
		for _, so := range g.Sockets {
			for _, l := range so.Listeners {
				sb.WriteString(strings.ToLower(l.Address))
				sb.WriteByte(' ')
			}
		}
		g.search = sb.String()
		for _, u := range g.units() {
			ix.byUnit[g.ref(u)] = g
		}
		ix.Groups = append(ix.Groups, g)
		ix.NSockets += len(g.Sockets)
		if g.Service != nil {
			ix.NServices++
			ix.NStoreFDs += int(g.Service.FDStoreCount)
		}
		ix.NConns += g.connections()
		if g.Service != nil && g.Service.ConnectionsUnknown {
			ix.ConnsPartial = true
		}
	}
	return ix
}

// buildFleetIndex joins the hosts' pictures for display: each host's
// groups, tagged with the host, in the order the hosts were given. A host
// that kept the same picture reuses its groups from prev (nil: none).
func buildFleetIndex(hosts []HostPicture, patterns []string, prev *snapIndex) *snapIndex {
	ix := &snapIndex{byUnit: map[unitRef]*unitGroup{}, Fleet: make([]HostPicture, len(hosts)), hostSnaps: map[string]*inspect.Snapshot{}, hostIx: map[string]*snapIndex{}}
	for i, h := range hosts {
		h.Host = termsafe.String(h.Host)
		h.Message = termsafe.String(h.Message)
		raw := h.Snapshot
		h.Snapshot = nil
		ix.Fleet[i] = h
		if raw == nil {
			continue
		}
		hix := (*snapIndex)(nil)
		if prev != nil && prev.hostSnaps[h.Host] == raw {
			hix = prev.hostIx[h.Host]
		}
		if hix == nil {
			hix = buildIndex(raw, patterns)
			host := strings.ToLower(h.Host) + " "
			for _, g := range hix.Groups {
				g.Host = h.Host
				g.search = host + g.search
			}
			hix.byUnit = nil // keyed without the host: rebuilt below
		}
		ix.hostSnaps[h.Host], ix.hostIx[h.Host] = raw, hix
		ix.Fleet[i].Snapshot = hix.Snap
		for _, g := range hix.Groups {
			for _, u := range g.units() {
				ix.byUnit[g.ref(u)] = g
			}
			ix.Groups = append(ix.Groups, g)
		}
		ix.NSockets += hix.NSockets
		ix.NServices += hix.NServices
		ix.NStoreFDs += hix.NStoreFDs
		ix.NConns += hix.NConns
		ix.ConnsPartial = ix.ConnsPartial || hix.ConnsPartial
	}
	return ix
}

// fleetHost returns the host of a fleet named host, or nil.
func (ix *snapIndex) fleetHost(host string) *HostPicture {
	for i := range ix.Fleet {
		if ix.Fleet[i].Host == host {
			return &ix.Fleet[i]
		}
	}
	return nil
}

// manager is the manager the unit ref is on (zero when not known).
func (ix *snapIndex) manager(ref unitRef) inspect.Manager {
	if ix.Snap != nil {
		return ix.Snap.Manager
	}
	if h := ix.fleetHost(ref.Host); h != nil && h.Snapshot != nil {
		return h.Snapshot.Manager
	}
	return inspect.Manager{}
}

// socket returns the socket unit ref names, or nil.
func (ix *snapIndex) socket(ref unitRef) *inspect.SocketUnit {
	if g := ix.byUnit[ref]; g != nil {
		for _, s := range g.Sockets {
			if s.Unit == ref.Unit {
				return s
			}
		}
	}
	return nil
}

// service returns the service ref names, or nil.
func (ix *snapIndex) service(ref unitRef) *inspect.Service {
	if g := ix.byUnit[ref]; g != nil && g.Service != nil && g.Service.Unit == ref.Unit {
		return g.Service
	}
	return nil
}
