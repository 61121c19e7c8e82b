package ui

import (
	"strings"

	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/unitpattern"
)

// unitGroup is a service with the socket units that trigger it (either
// side may be missing): the unit list shows a group as a socket row per
// socket followed by an indented service row.
type unitGroup struct {
	Sockets []*inspect.SocketUnit
	Service *inspect.Service
	// Name is the group's sort name: the service, else the first socket.
	Name string
	// search is what the filter matches: names and addresses, lower case.
	search string
	// Warnings are the warnings about any unit of the group.
	Warnings []inspect.Warning
}

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
	// byUnit maps every unit name to its group.
	byUnit map[string]*unitGroup
	// Totals for the header.
	NSockets, NServices, NStoreFDs, NConns int
	// ConnsPartial: some service's processes were not readable, so NConns
	// counts only what was seen.
	ConnsPartial bool
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
	ix := &snapIndex{Snap: snap, byUnit: map[string]*unitGroup{}}
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
			ix.byUnit[u] = g
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

// socket returns the socket unit named unit, or nil.
func (ix *snapIndex) socket(unit string) *inspect.SocketUnit {
	if g := ix.byUnit[unit]; g != nil {
		for _, s := range g.Sockets {
			if s.Unit == unit {
				return s
			}
		}
	}
	return nil
}

// service returns the service named unit, or nil.
func (ix *snapIndex) service(unit string) *inspect.Service {
	if g := ix.byUnit[unit]; g != nil && g.Service != nil && g.Service.Unit == unit {
		return g.Service
	}
	return nil
}
