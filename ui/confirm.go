package ui

import (
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
)

// confirmedMsg is sent when the operator confirms an action.
type confirmedMsg struct {
	action Action
	unit   string
	host   string // the fleet host ("" for the one manager)
	probe  bool
	hosts  []string // a rollout's hosts, in order
}

// cancelledMsg is sent when the operator cancels an action.
type cancelledMsg struct{}

// confirmModel asks before running an action, with an impact preview.
type confirmModel struct {
	st      Styles
	keys    ConfirmKeyMap
	action  Action
	unit    string
	host    string   // the fleet host ("" for the one manager)
	hosts   []string // a rollout's hosts, in order
	preview []string
	probe   bool
	width   int
	height  int
}

func newConfirmModel(st Styles, action Action, ref unitRef, preview []string, probe bool) confirmModel {
	return confirmModel{st: st, keys: DefaultConfirmKeyMap(), action: action, unit: ref.Unit, host: ref.Host, preview: preview, probe: probe}
}

// SetSize sets the area the dialog is centred in.
func (c *confirmModel) SetSize(w, h int) { c.width, c.height = w, h }

// Update answers y/Enter and n/Esc with a confirmedMsg or cancelledMsg.
func (c confirmModel) Update(msg tea.Msg) (confirmModel, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return c, nil
	}
	switch {
	case key.Matches(km, c.keys.Yes):
		m := confirmedMsg{action: c.action, unit: c.unit, host: c.host, probe: c.probe, hosts: c.hosts}
		return c, func() tea.Msg { return m }
	case key.Matches(km, c.keys.No):
		return c, func() tea.Msg { return cancelledMsg{} }
	}
	return c, nil
}

// probes reports whether the gap meter applies to the dialog's action.
func (c confirmModel) probes() bool {
	return c.action == ActionRestart || c.action == ActionTryRestart || c.action == ActionRollout
}

// View renders the dialog centred in its area.
func (c confirmModel) View() string {
	inner := min(max(c.width-4, 10), 76)
	lines := []string{c.st.Confirm.Title.Render(cut(string(c.action)+" "+unitRef{Host: c.host, Unit: c.unit}.String()+"?", inner)), ""}
	for _, p := range c.preview {
		for i, l := range wrap(p, inner-2) {
			prefix := "• "
			if i > 0 {
				prefix = "  "
			}
			lines = append(lines, c.st.Confirm.Text.Render(prefix+l))
		}
	}
	if c.probes() {
		state := "off (p toggles)"
		if c.probe {
			state = "on: connect every 10 ms on loopback while the job runs"
		}
		lines = append(lines, "", c.st.Confirm.Keys.Render(cut("gap meter "+state, inner)))
	}
	lines = append(lines, "", c.st.Confirm.Keys.Render(cut("y/enter confirm · n/esc cancel", inner)))
	box := c.st.Confirm.Box.Render(strings.Join(lines, "\n"))
	if lipgloss.Width(box) > c.width || lipgloss.Height(box) > c.height {
		// Too small for a box: plain lines.
		return block(lines, c.width, c.height)
	}
	return lipgloss.Place(c.width, c.height, lipgloss.Center, lipgloss.Center, box)
}
