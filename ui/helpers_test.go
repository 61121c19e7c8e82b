package ui

import (
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/fdtop/fdtop/inspect"
)

// newTestModel returns a dashboard on src with a fixed clock, sized w×h.
func newTestModel(src Source, opts Options, w, h int) Model {
	m := NewModel(src, opts)
	m.now = func() time.Time { return t0.Add(1500 * time.Millisecond) }
	return send(m, tea.WindowSizeMsg{Width: w, Height: h})
}

// send runs msgs through Update, dropping the commands.
func send(m Model, msgs ...tea.Msg) Model {
	for _, msg := range msgs {
		nm, _ := m.Update(msg)
		m = nm.(Model)
	}
	return m
}

// withSnapshot applies snap as a host scan reply.
func withSnapshot(m Model, snap *inspect.Snapshot) Model {
	return send(m, snapshotMsg{snap: snap, at: t0})
}

// keyMsg builds a key press from its name ("enter", "esc", "tab", "down",
// "up", "ctrl+c") or its runes.
func keyMsg(s string) tea.KeyMsg {
	switch s {
	case "enter":
		return tea.KeyMsg{Type: tea.KeyEnter}
	case "esc":
		return tea.KeyMsg{Type: tea.KeyEsc}
	case "tab":
		return tea.KeyMsg{Type: tea.KeyTab}
	case "down":
		return tea.KeyMsg{Type: tea.KeyDown}
	case "up":
		return tea.KeyMsg{Type: tea.KeyUp}
	case "ctrl+c":
		return tea.KeyMsg{Type: tea.KeyCtrlC}
	case "backspace":
		return tea.KeyMsg{Type: tea.KeyBackspace}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)}
}

func keys(ss ...string) []tea.Msg {
	msgs := make([]tea.Msg, len(ss))
	for i, s := range ss {
		msgs[i] = keyMsg(s)
	}
	return msgs
}

// selectUnit moves the list cursor to unit.
func selectUnit(t testing.TB, m Model, unit string) Model {
	t.Helper()
	m = send(m, keyMsg("g"))
	for i := 0; i < len(m.list.rows); i++ {
		if m.list.Selected() == unit {
			return m
		}
		m = send(m, keyMsg("down"))
	}
	if m.list.Selected() != unit {
		t.Fatalf("unit %s not in the list", unit)
	}
	return m
}
