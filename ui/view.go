package ui

import (
	"fmt"
	"sort"
	"strings"

	"github.com/charmbracelet/bubbles/key"

	"github.com/fdtop/fdtop/internal/termsafe"
)

// Minimum terminal size; below it the dashboard says so instead of
// drawing.
const (
	minWidth  = 40
	minHeight = 10
	// Below these the compact layout shows one pane at a time.
	compactWidth = 60
	compactBody  = 14
	wideWidth    = 120
	footerHeight = 2
	// The tour panel is drawn when this much body is left under it.
	tourMinBody   = 8
	minPaneHeight = 3
)

// layoutMode says how the panes are arranged.
type layoutMode int

const (
	layoutTooSmall layoutMode = iota
	layoutCompact             // one pane at a time, Tab switches
	layoutStacked             // list over detail over timeline
	layoutWide                // list beside detail, timeline below
)

// rect is a pane's content area (its title line is just above).
type rect struct{ x, y, w, h int }

func (r rect) contains(x, y int) bool {
	return r.h > 0 && x >= r.x && x < r.x+r.w && y >= r.y-1 && y < r.y+r.h
}

// layoutRects are where the panes are drawn.
type layoutRects struct {
	mode                   layoutMode
	headerH, bodyY, bodyH  int
	tourH                  int // the tour panel's, under the body
	list, detail, timeline rect
}

// at returns the pane at screen cell x, y, or -1.
func (r layoutRects) at(x, y int) pane {
	switch {
	case r.list.contains(x, y):
		return paneList
	case r.detail.contains(x, y):
		return paneDetail
	case r.timeline.contains(x, y):
		return paneTimeline
	}
	return -1
}

func (m *Model) resize(w, h int) {
	m.width, m.height = w, h
	m.help.Width = w
	m.relayout()
}

// relayout computes the pane rectangles and hands the panes their sizes.
func (m *Model) relayout() {
	w, h := m.width, m.height
	m.header.SetSize(w)
	var r layoutRects
	if w < minWidth || h < minHeight {
		r.mode = layoutTooSmall
		m.rects = r
		return
	}
	r.headerH = min(m.header.Height(), max(1, h/6))
	r.bodyY = r.headerH
	m.tour.SetWidth(w)
	if m.tour.Height() > 0 && h-r.headerH-footerHeight-m.tour.Height() >= tourMinBody {
		r.tourH = m.tour.Height()
	}
	r.bodyH = h - r.headerH - footerHeight - r.tourH
	switch {
	case w < compactWidth || r.bodyH < compactBody:
		r.mode = layoutCompact
		full := rect{0, r.bodyY + 1, w, r.bodyH - 1}
		switch m.focus {
		case paneList:
			r.list = full
		case paneDetail:
			r.detail = full
		case paneTimeline:
			r.timeline = full
		}
	case w < wideWidth:
		r.mode = layoutStacked
		tl := min(max(r.bodyH/5, minPaneHeight), max(12, r.bodyH/4))
		rest := r.bodyH - tl - 3
		// The list takes what its rows need, up to half; the detail the rest.
		lh := max(min(rest/2, len(m.list.rows)+2), minPaneHeight)
		dh := rest - lh
		r.list = rect{0, r.bodyY + 1, w, lh}
		r.detail = rect{0, r.list.y + lh + 1, w, dh}
		r.timeline = rect{0, r.detail.y + dh + 1, w, tl}
	default:
		r.mode = layoutWide
		// A quarter of the body, up to 12 rows, or a third on a tall
		// terminal: the timeline is where a handoff plays out.
		tl := min(max(r.bodyH/4, minPaneHeight), max(12, r.bodyH/3))
		top := r.bodyH - tl - 2
		lw := max(w*55/100, 60)
		r.list = rect{0, r.bodyY + 1, lw, top}
		r.detail = rect{lw + 1, r.bodyY + 1, w - lw - 1, top}
		r.timeline = rect{0, r.bodyY + top + 2, w, tl}
	}
	m.rects = r
	// Hidden panes keep a usable size so that scrolling and the fast
	// rescan still see a window.
	lr, dr, tr := r.list, r.detail, r.timeline
	if r.mode == layoutCompact {
		lr, dr, tr = rect{w: w, h: r.bodyH - 1}, rect{w: w, h: r.bodyH - 1}, rect{w: w, h: r.bodyH - 1}
	}
	m.list.SetSize(lr.w, lr.h)
	m.detail.SetSize(dr.w, dr.h)
	m.timeline.SetSize(tr.w, tr.h)
	m.confirm.SetSize(w, r.bodyH)
	m.helpScroll.height = r.bodyH - 1
}

// View draws the dashboard.
func (m Model) View() string {
	m.trace.frame(m.dataGen)
	r := m.rects
	if r.mode == layoutTooSmall {
		if m.width <= 0 || m.height <= 0 {
			return ""
		}
		msg := fmt.Sprintf("fdtop: terminal too small (%d×%d), need %d×%d", m.width, m.height, minWidth, minHeight)
		return block(wrap(msg, m.width), m.width, m.height)
	}
	var b strings.Builder
	hdr := strings.Split(m.header.View(), "\n")
	b.WriteString(strings.Join(hdr[:min(len(hdr), r.headerH)], "\n"))
	b.WriteByte('\n')
	switch {
	case m.showHelp:
		b.WriteString(m.paneTitle("Help · ↑/↓ scroll · ?/esc close", true, m.width))
		b.WriteByte('\n')
		lines := m.helpLines()
		end := min(m.helpScroll.offset+m.helpScroll.height, len(lines))
		b.WriteString(block(lines[min(m.helpScroll.offset, end):end], m.width, r.bodyH-1))
	case m.confirming:
		b.WriteString(m.confirm.View())
	case m.showLog:
		b.WriteString(m.logView.View())
	default:
		b.WriteString(m.bodyView())
	}
	if r.tourH > 0 {
		b.WriteByte('\n')
		b.WriteString(m.tour.View())
	}
	b.WriteByte('\n')
	b.WriteString(m.statusView())
	b.WriteByte('\n')
	b.WriteString(fit(m.help.ShortHelpView(m.shortHelp()), m.width))
	return b.String()
}

func (m Model) bodyView() string {
	r := m.rects
	var parts []string
	switch r.mode {
	case layoutCompact:
		switch m.focus {
		case paneList:
			parts = append(parts, m.listTitle(r.list.w), m.list.View())
		case paneDetail:
			parts = append(parts, m.detailTitle(r.detail.w), m.detail.View())
		case paneTimeline:
			parts = append(parts, m.timelineTitle(r.timeline.w), m.timeline.View())
		}
	case layoutStacked:
		parts = append(parts,
			m.listTitle(r.list.w), m.list.View(),
			m.detailTitle(r.detail.w), m.detail.View(),
			m.timelineTitle(r.timeline.w), m.timeline.View())
	case layoutWide:
		left := append([]string{m.listTitle(r.list.w)}, strings.Split(m.list.View(), "\n")...)
		right := append([]string{m.detailTitle(r.detail.w)}, strings.Split(m.detail.View(), "\n")...)
		sep := m.st.Pane.Title.Render("│")
		rows := make([]string, len(left))
		for i := range left {
			rr := ""
			if i < len(right) {
				rr = right[i]
			}
			rows[i] = left[i] + sep + rr
		}
		parts = append(parts, strings.Join(rows, "\n"), m.timelineTitle(r.timeline.w), m.timeline.View())
	}
	return strings.Join(parts, "\n")
}

func (m Model) paneTitle(title string, focused bool, w int) string {
	if focused {
		return m.st.Pane.FocusedTitle.Render(fit("▸ "+title, w))
	}
	return m.st.Pane.Title.Render(fit("  "+title, w))
}

func (m Model) listTitle(w int) string {
	t := fmt.Sprintf("Units · %d", len(m.list.rows))
	if m.list.sortBy != sortName {
		// Here rather than after the LISTEN column, where it was cut.
		t += " · sorted by " + m.list.sortBy.String()
	}
	if len(m.opts.Patterns) > 0 {
		t += " · matching " + strings.Join(m.opts.Patterns, " ")
	}
	return m.paneTitle(t, m.focus == paneList, w)
}

func (m Model) detailTitle(w int) string {
	t := "Detail"
	if u := m.list.SelectedRef(); u.Unit != "" {
		t += " · " + u.String()
	} else if u.Host != "" {
		t += " · host " + u.Host
	}
	if m.explain {
		t += " · explain on (e)"
	}
	return m.paneTitle(t, m.focus == paneDetail, w)
}

func (m Model) timelineTitle(w int) string {
	t := "Timeline · " + plural(m.timeline.Len(), "event", "events")
	if !m.timeline.Following() {
		t += " · scrolled (G follows)"
	}
	return m.paneTitle(t, m.focus == paneTimeline, w)
}

// statusView is the line above the key help: running jobs, then the last
// message.
func (m Model) statusView() string {
	var parts []string
	units := make([]string, 0, len(m.jobs))
	for u := range m.jobs {
		units = append(units, u)
	}
	sort.Strings(units)
	now := m.now()
	for _, u := range units {
		j := m.jobs[u]
		name := u
		if j.ref.Unit != "" {
			name = j.ref.String()
		}
		s := fmt.Sprintf("◐ %s %s %.1fs", j.action, name, now.Sub(j.started).Seconds())
		if j.probe {
			s += " (gap meter)"
		}
		parts = append(parts, m.st.Status.Busy.Render(s))
	}
	if r := m.rollout; r != nil && r.running {
		done := 0
		for _, s := range r.steps {
			if s.Status != RolloutRestarting {
				done++
			}
		}
		parts = append(parts, m.st.Status.Busy.Render(fmt.Sprintf("◐ rollout %s %d/%d", r.unit, done, len(r.hosts))))
	}
	if m.status.text != "" {
		text := termsafe.String(m.status.text) // errors quote unit names and the manager's words
		if m.status.err {
			parts = append(parts, m.st.Status.Error.Render("✗ "+text))
		} else {
			parts = append(parts, m.st.Status.Text.Render(text))
		}
	}
	return fit(strings.Join(parts, "  "), m.width)
}

// shortHelp is the key help line for the current mode.
func (m Model) shortHelp() []key.Binding {
	switch {
	case m.showHelp:
		return []key.Binding{m.keys.Help, m.keys.Quit}
	case m.showLog:
		return m.logView.keys.ShortHelp()
	case m.confirming:
		c := DefaultConfirmKeyMap()
		b := c.ShortHelp()
		if m.confirm.probes() {
			b = append(b, m.keys.Probe)
		}
		return b
	case m.list.Filtering():
		return m.list.filterKeys.ShortHelp()
	}
	var b []key.Binding
	switch m.focus {
	case paneList:
		b = m.list.keys.ShortHelp()
	case paneDetail:
		b = m.detail.keys.ShortHelp()
	case paneTimeline:
		b = m.timeline.keys.ShortHelp()
	}
	if m.tour.Active() {
		// First: the one key the tour adds.
		b = append(append([]key.Binding(nil), m.tour.keys.ShortHelp()...), b...)
	}
	return append(b, m.keys.ShortHelp()...)
}

// helpLines renders the help screen.
func (m Model) helpLines() []string {
	notes := []string{"Mouse: the wheel scrolls the pane under the pointer."}
	if m.opts.ReadOnly {
		notes = append(notes, "read-only (--read-only): the action keys are disabled.")
	}
	notes = append(notes, "e (explain) annotates the detail pane with what each item means in the socket-activation protocol.")
	if m.ix.Fleet != nil {
		notes = append(notes, "Fleet: hosts head the unit tree; actions run on the selected unit's host; O (rollout) restarts the unit host by host, stopping at the first verdict over budget (listener kept, 0 refused, 0 dropped).")
	}
	return renderHelp(m.st, m.help, m.helpSections(), notes, m.width)
}
