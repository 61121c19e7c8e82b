package ui

import (
	tea "github.com/charmbracelet/bubbletea"

	"github.com/fdtop/fdtop/internal/termsafe"
)

// lineInput is a minimal one-line text input for the filter (bubbles'
// textinput pulls in a clipboard module fdtop does not otherwise need).
type lineInput struct {
	Prompt      string
	Placeholder string
	CharLimit   int
	value       []rune
	focused     bool
}

// Focus gives the input the keyboard.
func (in *lineInput) Focus() { in.focused = true }

// Blur takes the keyboard away.
func (in *lineInput) Blur() { in.focused = false }

// Value returns the text.
func (in lineInput) Value() string { return string(in.value) }

// SetValue replaces the text.
func (in *lineInput) SetValue(s string) { in.value = []rune(s) }

// Update edits the text: printable runes, backspace, ctrl+u and ctrl+w.
func (in lineInput) Update(msg tea.Msg) lineInput {
	km, ok := msg.(tea.KeyMsg)
	if !ok || !in.focused {
		return in
	}
	switch km.Type {
	case tea.KeyRunes, tea.KeySpace:
		r := km.Runes
		if km.Type == tea.KeySpace {
			r = []rune{' '}
		}
		if in.CharLimit > 0 && len(in.value)+len(r) > in.CharLimit {
			return in
		}
		in.value = append(in.value, r...)
	case tea.KeyBackspace:
		if n := len(in.value); n > 0 {
			in.value = in.value[:n-1]
		}
	case tea.KeyCtrlU:
		in.value = nil
	case tea.KeyCtrlW:
		i := len(in.value)
		for i > 0 && in.value[i-1] == ' ' {
			i--
		}
		for i > 0 && in.value[i-1] != ' ' {
			i--
		}
		in.value = in.value[:i]
	}
	return in
}

// View renders the prompt, the text (a paste may hold control
// characters: shown escaped) and a block cursor when focused.
func (in lineInput) View() string {
	s := in.Prompt + termsafe.String(string(in.value))
	if in.focused {
		s += "█"
	}
	if len(in.value) == 0 && in.Placeholder != "" {
		s += " " + in.Placeholder
	}
	return s
}
