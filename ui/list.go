package ui

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/termsafe"
)

// sortMode orders the unit list.
type sortMode int

const (
	sortName sortMode = iota
	sortConnections
	sortStore
	sortProblems
	nSortModes
)

func (s sortMode) String() string {
	return [...]string{"name", "connections", "fd store", "problems"}[s]
}

// listRow is one line of the unit list, pre-formatted when the snapshot
// arrives so that View only lays out the visible rows.
type listRow struct {
	unit  string
	host  string // the fleet host ("" for the one manager)
	group *unitGroup
	child bool // an indented service row under its socket
	// hostRow is a fleet host's own row (unit ""): its state in addrs;
	// note a line of its message under it (ssh's words), in addrs.
	hostRow, note bool
	glyph         string
	gstyle        lipgloss.Style
	warn          bool
	pid           string
	conns         string
	store         string
	addrs         string
	muted         bool // addrs is a remark, not addresses
}

// listModel is the unit list pane.
type listModel struct {
	st         Styles
	keys       ListKeyMap
	filterKeys FilterKeyMap

	ix        *snapIndex
	rows      []listRow
	sortBy    sortMode
	filter    lineInput
	filtering bool
	cursor    int
	scroll    scroller
	selected  unitRef
	width     int
	height    int
	focused   bool
	nameW     int // longest name, for the name column
}

func newListModel(st Styles) listModel {
	ti := lineInput{Prompt: "/", Placeholder: "name or address", CharLimit: 128}
	return listModel{nameW: 8, st: st, keys: DefaultListKeyMap(), filterKeys: DefaultFilterKeyMap(), filter: ti, ix: buildIndex(nil, nil)}
}

// SetSize sets the pane's size, title line excluded.
func (l *listModel) SetSize(w, h int) {
	if w != l.width && l.ix.Fleet != nil {
		l.width = w
		l.rebuild() // the hosts' messages wrap to the width
	}
	l.width, l.height = w, h
	l.scroll.height = max(h-1, 0) // first line: column header or filter
	l.ensureVisible()
}

// SetIndex shows a new snapshot, keeping the selected unit.
func (l *listModel) SetIndex(ix *snapIndex) {
	l.ix = ix
	l.rebuild()
}

// Filtering reports whether the filter input has the keyboard.
func (l listModel) Filtering() bool { return l.filtering }

// Selected returns the selected row's unit ("" when the list is empty or
// a fleet host's own row is selected).
func (l listModel) Selected() string { return l.selected.Unit }

// SelectedRef returns the selected row's unit and host.
func (l listModel) SelectedRef() unitRef { return l.selected }

// ref is the row's identity.
func (r listRow) ref() unitRef { return unitRef{Host: r.host, Unit: r.unit} }

// SelectedGroup returns the group of the selected row, or nil.
func (l listModel) SelectedGroup() *unitGroup {
	if l.cursor >= 0 && l.cursor < len(l.rows) {
		return l.rows[l.cursor].group
	}
	return nil
}

// VisibleUnits returns the units of the rows on screen (and of the selected
// group), for the fast rescan.
func (l listModel) VisibleUnits() []string {
	seen := map[string]bool{}
	var units []string
	add := func(g *unitGroup) {
		if g == nil {
			return
		}
		for _, u := range g.units() {
			if !seen[u] {
				seen[u] = true
				units = append(units, u)
			}
		}
	}
	end := min(l.scroll.offset+max(l.scroll.height, 1), len(l.rows))
	for i := l.scroll.offset; i < end; i++ {
		add(l.rows[i].group)
	}
	add(l.SelectedGroup())
	return units
}

// Update handles the list's keys and the filter input.
func (l listModel) Update(msg tea.Msg) (listModel, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return l, nil
	}
	if l.filtering {
		switch {
		case key.Matches(km, l.filterKeys.Apply):
			l.filtering = false
			l.filter.Blur()
			l.selectFirstMatch()
			return l, nil
		case key.Matches(km, l.filterKeys.Cancel):
			l.filtering = false
			l.filter.Blur()
			l.filter.SetValue("")
			l.rebuild()
			return l, nil
		}
		before := l.filter.Value()
		l.filter = l.filter.Update(msg)
		if l.filter.Value() != before {
			l.rebuild()
		}
		return l, nil
	}
	switch {
	case key.Matches(km, l.keys.Up):
		l.move(-1)
	case key.Matches(km, l.keys.Down):
		l.move(1)
	case key.Matches(km, l.keys.PageUp):
		l.move(-max(l.scroll.height-1, 1))
	case key.Matches(km, l.keys.PageDown):
		l.move(max(l.scroll.height-1, 1))
	case key.Matches(km, l.keys.Top):
		l.move(-len(l.rows))
	case key.Matches(km, l.keys.Bottom):
		l.move(len(l.rows))
	case key.Matches(km, l.keys.Filter):
		l.filtering = true
		l.filter.Focus()
	case key.Matches(km, l.keys.ClearFilter):
		if l.filter.Value() != "" {
			l.filter.SetValue("")
			l.rebuild()
		}
	case key.Matches(km, l.keys.Sort):
		l.sortBy = (l.sortBy + 1) % nSortModes
		l.rebuild()
	}
	return l, nil
}

// Wheel scrolls the selection by delta rows.
func (l *listModel) Wheel(delta int) { l.move(delta) }

// move moves the cursor by delta rows. A note (a line of an unreachable
// host's message) is part of its host's row, never selected: the cursor
// goes past it in delta's direction, or back to the nearest row that is
// not one. (A note has its host's ref: selected, it went back to the host
// at the next picture, and j on an unreachable host could not get past
// it; CI run 27.)
func (l *listModel) move(delta int) {
	if len(l.rows) == 0 {
		return
	}
	c := min(max(l.cursor+delta, 0), len(l.rows)-1)
	step := 1
	if delta < 0 {
		step = -1
	}
	for i := c; i >= 0 && i < len(l.rows); i += step {
		if !l.rows[i].note {
			c = i
			break
		}
		if i+step < 0 || i+step >= len(l.rows) {
			// Only notes that way: the nearest row the other way.
			for j := i; j >= 0 && j < len(l.rows); j -= step {
				if !l.rows[j].note {
					c = j
					break
				}
			}
		}
	}
	l.cursor = c
	l.selected = l.rows[l.cursor].ref()
	l.ensureVisible()
}

func (l *listModel) ensureVisible() {
	if l.cursor < l.scroll.offset {
		l.scroll.offset = l.cursor
	}
	if l.scroll.height > 0 && l.cursor >= l.scroll.offset+l.scroll.height {
		l.scroll.offset = l.cursor - l.scroll.height + 1
	}
	l.scroll.clamp(len(l.rows))
}

// selectFirstMatch puts the cursor on the first row that itself matches
// the filter: a group matches as a whole, and its other rows (a socket
// shown for its service's sake) are context, never what the filter
// selects.
func (l *listModel) selectFirstMatch() {
	q := strings.ToLower(strings.TrimSpace(l.filter.Value()))
	if q == "" {
		return
	}
	for i, r := range l.rows {
		if r.hostRow {
			continue // the host's units follow: the match is among them
		}
		if strings.Contains(strings.ToLower(r.unit), q) || (!r.muted && strings.Contains(strings.ToLower(r.addrs), q)) {
			l.cursor, l.selected = i, r.ref()
			l.ensureVisible()
			return
		}
	}
}

// rebuild recomputes the rows from the index, the filter and the sort.
func (l *listModel) rebuild() {
	groups := make([]*unitGroup, 0, len(l.ix.Groups))
	q := strings.ToLower(strings.TrimSpace(l.filter.Value()))
	for _, g := range l.ix.Groups {
		if q == "" || strings.Contains(g.search, q) {
			groups = append(groups, g)
		}
	}
	sortGroups(groups, l.sortBy)
	rows := l.rows[:0]
	addGroup := func(g *unitGroup) {
		for _, so := range g.Sockets {
			rows = append(rows, l.socketRow(g, so))
		}
		if g.Service != nil {
			rows = append(rows, l.serviceRow(g, len(g.Sockets) > 0))
		}
	}
	if l.ix.Fleet != nil {
		// Hosts at the top of the tree, in the order given, each with its
		// units under it; every host stays listed whatever the filter.
		byHost := map[string][]*unitGroup{}
		for _, g := range groups {
			byHost[g.Host] = append(byHost[g.Host], g)
		}
		for _, h := range l.ix.Fleet {
			rows = append(rows, l.hostRows(h, len(byHost[h.Host]))...)
			for _, g := range byHost[h.Host] {
				addGroup(g)
			}
		}
	} else {
		for _, g := range groups {
			addGroup(g)
		}
	}
	l.rows = rows
	l.nameW = 8
	for _, r := range rows {
		n := lipgloss.Width(r.name())
		l.nameW = max(l.nameW, min(n+1, 48))
	}
	l.cursor = 0
	for i, r := range rows {
		if r.ref() == l.selected {
			l.cursor = i
			break
		}
	}
	if len(rows) > 0 {
		l.cursor = min(l.cursor, len(rows)-1)
		l.selected = rows[l.cursor].ref()
	} else {
		l.selected = unitRef{}
	}
	l.ensureVisible()
}

func sortGroups(groups []*unitGroup, by sortMode) {
	less := func(a, b *unitGroup) bool { return a.Name < b.Name }
	sort.SliceStable(groups, func(i, j int) bool {
		a, b := groups[i], groups[j]
		switch by {
		case sortConnections:
			if x, y := a.connections(), b.connections(); x != y {
				return x > y
			}
		case sortStore:
			if x, y := a.storeCount(), b.storeCount(); x != y {
				return x > y
			}
		case sortProblems:
			if x, y := groupProblems(a), groupProblems(b); x != y {
				return x > y
			}
		}
		return less(a, b)
	})
}

func groupProblems(g *unitGroup) int {
	n := len(g.Warnings)
	if g.Service != nil && g.Service.ActiveState == "failed" {
		n += 10
	}
	for _, s := range g.Sockets {
		if s.ActiveState == "failed" {
			n += 10
		}
	}
	return n
}

func hasWarning(g *unitGroup, unit string) bool {
	for _, w := range g.Warnings {
		if w.Unit == unit {
			return true
		}
	}
	return false
}

func (l *listModel) socketRow(g *unitGroup, s *inspect.SocketUnit) listRow {
	glyph, gs := stateGlyph(l.st, s.ActiveState)
	addrs := make([]string, 0, len(s.Listeners))
	for _, li := range s.Listeners {
		addrs = append(addrs, li.Address)
	}
	r := listRow{unit: s.Unit, host: g.Host, group: g, glyph: glyph, gstyle: gs, warn: hasWarning(g, s.Unit), addrs: strings.Join(addrs, " ")}
	if s.Accept {
		r.conns = strconv.Itoa(len(s.Instances))
		if r.addrs == "" {
			r.addrs = "Accept=yes"
		} else {
			r.addrs += " (Accept=yes)"
		}
	}
	if s.SubState == "deferred" {
		// A client waits for a service start held back (DeferTrigger=,
		// v258): between states, as a job would be.
		r.glyph, r.gstyle = "◐", l.st.State.Transition
		r.addrs = strings.TrimSpace(r.addrs + " (deferred)")
	}
	return r
}

func (l *listModel) serviceRow(g *unitGroup, child bool) listRow {
	s := g.Service
	glyph, gs := stateGlyph(l.st, s.ActiveState)
	r := listRow{unit: s.Unit, host: g.Host, group: g, child: child, glyph: glyph, gstyle: gs, warn: hasWarning(g, s.Unit)}
	if s.MainPID > 0 {
		r.pid = strconv.Itoa(s.MainPID)
	}
	r.conns = strconv.Itoa(len(s.Connections))
	if s.ConnectionsUnknown {
		r.conns = "≥" + r.conns // not root: unreadable processes not counted
	}
	if s.FDStoreMax > 0 || s.FDStoreCount > 0 {
		r.store = fmt.Sprintf("%d/%d", s.FDStoreCount, s.FDStoreMax)
	}
	if !child {
		r.muted = true
		var own []string
		for _, l := range s.OwnListeners {
			own = append(own, l.Address)
		}
		switch {
		case len(own) > 0:
			r.addrs = strings.Join(own, " ") + " (own, no socket unit)"
		case s.FDStoreMax > 0:
			r.addrs = "no socket unit · fd store"
		default:
			r.addrs = "no socket unit"
		}
	}
	return r
}

// hostRows are a fleet host's row (its name, its state in the address
// column; n is how many of its groups are listed) and, when it is lost or
// failed, its message on the lines under it, whole.
func (l *listModel) hostRows(h HostPicture, n int) []listRow {
	glyph, gs := hostGlyph(l.st, h.State)
	r := listRow{host: h.Host, hostRow: true, glyph: glyph, gstyle: gs, addrs: hostStateWord(h, n)}
	r.warn = h.State != HostOK && h.State != HostConnecting
	rows := []listRow{r}
	if h.Message == "" || h.State == HostOK || h.State == HostConnecting {
		return rows
	}
	parts := wrap(h.Message, max(l.width-8, 20))
	if len(parts) > 3 {
		parts = append(parts[:2], "… (the detail pane has it whole)")
	}
	if h.Snapshot != nil && n > 0 {
		parts = append(parts, "its units below: as last seen, not live")
	}
	for _, p := range parts {
		rows = append(rows, listRow{host: h.Host, note: true, addrs: p, muted: true})
	}
	return rows
}

// hostStateWord says a fleet host's state in a few words; n is how many
// of its groups are listed.
func hostStateWord(h HostPicture, n int) string {
	switch h.State {
	case HostOK:
		return "ok · " + plural(n, "unit group", "unit groups")
	case HostConnecting:
		return "connecting…"
	case HostLost:
		return "lost"
	case HostReconnecting:
		if !h.Retry.IsZero() {
			return "lost · reconnecting, next try " + h.Retry.Format("15:04:05")
		}
		return "lost · reconnecting"
	case HostUnreachable:
		if !h.Retry.IsZero() {
			return "unreachable · retrying, next try " + h.Retry.Format("15:04:05")
		}
		return "unreachable · retrying"
	case HostFailed:
		return "failed (not retried)"
	}
	return string(h.State)
}

// name is the row's name column: the unit, indented under its socket and,
// in a fleet, under its host.
func (r listRow) name() string {
	switch {
	case r.hostRow:
		return r.host
	case r.note:
		return ""
	case r.child && r.host != "":
		return "    └ " + r.unit
	case r.child:
		return "└ " + r.unit
	case r.host != "":
		return "  " + r.unit
	}
	return r.unit
}

// columns returns the name and address column widths for the pane width:
// the name column fits the longest name when it can.
func (l listModel) columns() (name, addrs int) {
	const fixed = 1 + 2 + 2 + 8 + 6 + 10 + 1 // cursor, glyph, warn, pid, conns, store, space
	name = min(l.nameW, max(l.width-fixed-8, 12))
	addrs = max(l.width-fixed-name, 0)
	return name, addrs
}

// View renders the pane's content (height lines of width cells).
func (l listModel) View() string {
	if l.height <= 0 || l.width <= 0 {
		return ""
	}
	lines := make([]string, 0, l.height)
	nameW, addrW := l.columns()
	switch {
	case l.filtering:
		lines = append(lines, l.filter.View())
	case l.filter.Value() != "":
		lines = append(lines, l.st.List.Filter.Render(fit(fmt.Sprintf("/%s  (%d rows · esc clears · sort: %s)", termsafe.String(l.filter.Value()), len(l.rows), l.sortBy), l.width)))
	default:
		hdr := "     " + fit("UNIT", nameW) + padLeft("PID", 8) + padLeft("CONNS", 6) + padLeft("STORE", 10) + " " + "LISTEN"
		lines = append(lines, l.st.List.Header.Render(fit(hdr, l.width)))
	}
	if len(l.rows) == 0 {
		msg := "no socket units or fd stores"
		if l.filter.Value() != "" {
			msg = "nothing matches the filter"
		} else if l.ix.Snap == nil {
			msg = "scanning…"
		}
		lines = append(lines, l.st.List.Muted.Render(fit("  "+msg, l.width)))
		return block(lines, l.width, l.height)
	}
	end := min(l.scroll.offset+l.scroll.height, len(l.rows))
	for i := l.scroll.offset; i < end; i++ {
		lines = append(lines, l.renderRow(l.rows[i], i == l.cursor, nameW, addrW))
	}
	return block(lines, l.width, l.height)
}

func (l listModel) renderRow(r listRow, selected bool, nameW, addrW int) string {
	cur := " "
	if selected {
		cur = "›"
	}
	warn := "  "
	if r.warn {
		warn = "! "
	}
	if r.note {
		text := l.st.List.Muted.Render(fit("    "+r.addrs, max(l.width-5, 0)))
		if selected {
			text = l.st.List.SelectedBlurred.Render(fit("    "+r.addrs, max(l.width-5, 0)))
		}
		return cur + "    " + text
	}
	name := r.name()
	if r.hostRow {
		// A host has no PID, connections or store: its state takes their
		// columns too.
		state := fit(r.addrs, 8+6+10+1+addrW)
		if selected {
			style := l.st.List.Selected
			if !l.focused {
				style = l.st.List.SelectedBlurred
			}
			return cur + r.glyph + " " + warn + style.Render(fit(name, nameW)+state)
		}
		if r.warn {
			warn = l.st.List.Warning.Render(warn)
		}
		return cur + r.gstyle.Render(r.glyph) + " " + warn + fit(name, nameW) + l.st.List.Muted.Render(state)
	}
	rest := fit(name, nameW) + padLeft(r.pid, 8) + padLeft(r.conns, 6) + padLeft(r.store, 10) + " " + fit(r.addrs, addrW)
	if selected {
		style := l.st.List.Selected
		if !l.focused {
			style = l.st.List.SelectedBlurred
		}
		return cur + r.glyph + " " + warn + style.Render(rest)
	}
	if r.muted {
		rest = fit(name, nameW) + padLeft(r.pid, 8) + padLeft(r.conns, 6) + padLeft(r.store, 10) + " " + l.st.List.Muted.Render(fit(r.addrs, addrW))
	}
	if r.warn {
		warn = l.st.List.Warning.Render(warn)
	}
	return cur + r.gstyle.Render(r.glyph) + " " + warn + rest
}
