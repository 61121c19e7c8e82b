package ui

import (
	"strings"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/lipgloss"
)

// helpSection is one titled group of bindings on the help screen.
type helpSection struct {
	title    string
	bindings []key.Binding
}

// helpSections lists every key of the dashboard, taken from the key maps
// that handle them so the help never drifts. Disabled keys (read-only
// mode) are left out by bubbles/help.
func (m Model) helpSections() []helpSection {
	g, l, d, t := m.keys, m.list.keys, m.detail.keys, m.timeline.keys
	c, f := DefaultConfirmKeyMap(), m.list.filterKeys
	return []helpSection{
		{"Actions on the selected unit", []key.Binding{g.Restart, g.Stop, g.Start, g.Reload, g.TryRestart, g.Rollout}},
		{"Everywhere", []key.Binding{g.Probe, g.Explain, g.Refresh, g.NextPane, g.PrevPane, g.Help, g.Quit}},
		{"Confirmation", []key.Binding{c.Yes, c.No}},
		{"Move", []key.Binding{l.Up, l.Down, l.PageUp, l.PageDown, l.Top, l.Bottom}},
		{"Unit list", []key.Binding{l.Open, l.Filter, l.ClearFilter, l.Sort}},
		{"Filter input", []key.Binding{f.Apply, f.Cancel}},
		{"Detail · timeline", []key.Binding{d.Back, t.Bottom}},
	}
}

// renderHelp lays the sections out in as many columns as fit in width and
// returns the screen's lines.
func renderHelp(st Styles, h help.Model, sections []helpSection, notes []string, width int) []string {
	var blocks []string
	for _, s := range sections {
		body := h.FullHelpView([][]key.Binding{s.bindings})
		if body == "" {
			continue
		}
		blocks = append(blocks, st.Help.Title.Render(s.title)+"\n"+body)
	}
	var rows []string
	var row []string
	rowW := 0
	for _, b := range blocks {
		bw := lipgloss.Width(b) + 4
		if len(row) > 0 && rowW+bw > width {
			rows = append(rows, lipgloss.JoinHorizontal(lipgloss.Top, row...))
			row, rowW = nil, 0
		}
		row = append(row, lipgloss.JoinHorizontal(lipgloss.Top, b, "    "))
		rowW += bw
	}
	if len(row) > 0 {
		rows = append(rows, lipgloss.JoinHorizontal(lipgloss.Top, row...))
	}
	var lines []string
	for i, r := range rows {
		if i > 0 {
			lines = append(lines, "")
		}
		lines = append(lines, strings.Split(r, "\n")...)
	}
	for _, n := range notes {
		lines = append(lines, "")
		for _, l := range wrap(n, width) {
			lines = append(lines, st.Help.Note.Render(l))
		}
	}
	return lines
}
