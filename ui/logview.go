package ui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
)

// LogViewKeyMap are the keys of the full-height log view.
type LogViewKeyMap struct {
	ScrollKeyMap
	// Search starts typing a search, Close leaves the view.
	Search, Close key.Binding
}

// DefaultLogViewKeyMap returns the log view's keys.
func DefaultLogViewKeyMap() LogViewKeyMap {
	return LogViewKeyMap{
		ScrollKeyMap: DefaultScrollKeyMap(),
		Search:       key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "search")),
		Close:        key.NewBinding(key.WithKeys("esc", "l"), key.WithHelp("esc/l", "close")),
	}
}

// ShortHelp implements help.KeyMap.
func (k LogViewKeyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Up, k.Down, k.Search, k.Close}
}

// FullHelp implements help.KeyMap.
func (k LogViewKeyMap) FullHelp() [][]key.Binding { return [][]key.Binding{k.ShortHelp()} }

// logViewModel is the full-height view of the followed units' log, with
// scrolling and a search that keeps the matching lines. It follows the end
// while it is scrolled to the bottom.
type logViewModel struct {
	st        Styles
	keys      LogViewKeyMap
	title     string
	all       []logLine
	shown     []logLine
	query     string
	typing    bool
	input     string
	scroll    scroller
	width     int
	height    int
	following bool
}

func newLogViewModel(st Styles, title string, lines []logLine) logViewModel {
	v := logViewModel{st: st, keys: DefaultLogViewKeyMap(), title: title, following: true}
	v.setLines(lines)
	return v
}

// SetSize sets the view's size (title line included).
func (v *logViewModel) SetSize(w, h int) {
	v.width, v.height = w, h
	v.scroll.height = max(h-1, 1)
	if v.following {
		v.scroll.toBottom(len(v.shown))
	}
	v.scroll.clamp(len(v.shown))
}

// setLines shows new lines (the ring buffer after an append).
func (v *logViewModel) setLines(lines []logLine) {
	v.all = lines
	v.filter()
}

func (v *logViewModel) filter() {
	v.shown = v.shown[:0:0]
	for _, l := range v.all {
		if l.matches(v.query) {
			v.shown = append(v.shown, l)
		}
	}
	if v.following {
		v.scroll.toBottom(len(v.shown))
	}
	v.scroll.clamp(len(v.shown))
}

// Update handles the view's keys; done is true when it should close.
func (v logViewModel) Update(msg tea.KeyMsg) (logViewModel, bool) {
	if v.typing {
		switch msg.Type {
		case tea.KeyEnter:
			v.typing, v.query = false, v.input
			v.filter()
		case tea.KeyEsc:
			v.typing, v.input = false, v.query
		case tea.KeyBackspace:
			if r := []rune(v.input); len(r) > 0 {
				v.input = string(r[:len(r)-1])
			}
		case tea.KeyRunes, tea.KeySpace:
			v.input += string(msg.Runes)
			if msg.Type == tea.KeySpace {
				v.input += " "
			}
		}
		return v, false
	}
	switch {
	case key.Matches(msg, v.keys.Close):
		if msg.Type == tea.KeyEsc && v.query != "" {
			v.query, v.input = "", ""
			v.filter()
			return v, false
		}
		return v, true
	case key.Matches(msg, v.keys.Search):
		v.typing, v.input = true, ""
		return v, false
	}
	v.scroll.handleKey(msg, v.keys.ScrollKeyMap, len(v.shown), v.scroll.height)
	v.following = v.scroll.atBottom(len(v.shown))
	return v, false
}

// View renders the title line and the visible lines.
func (v logViewModel) View() string {
	head := fmt.Sprintf("Log · %s · %d lines", v.title, len(v.all))
	switch {
	case v.typing:
		head += " · search: " + v.input + "▏"
	case v.query != "":
		head += fmt.Sprintf(" · %d matching %q (esc clears)", len(v.shown), v.query)
	}
	if v.following {
		head += " · following"
	}
	lines := []string{v.st.Detail.Section.Render(cut(head, v.width))}
	end := min(v.scroll.offset+v.scroll.height, len(v.shown))
	for _, l := range v.shown[min(v.scroll.offset, end):end] {
		lines = append(lines, renderLogLine(v.st, l, v.width))
	}
	if len(v.all) == 0 {
		lines = append(lines, v.st.Detail.Muted.Render("nothing logged yet"))
	}
	return block(lines, v.width, v.height)
}

// title names the followed units.
func logTitle(units []string) string { return strings.Join(units, ", ") }
