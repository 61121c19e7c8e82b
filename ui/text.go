package ui

import (
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
)

// fit cuts s (plain or styled) to w cells with an ellipsis and pads it
// with spaces to exactly w cells.
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	n := ansi.StringWidth(s)
	if n > w {
		s = ansi.Truncate(s, w, "…")
		n = ansi.StringWidth(s)
	}
	if n < w {
		s += strings.Repeat(" ", w-n)
	}
	return s
}

// cut cuts s to at most w cells with an ellipsis, without padding.
func cut(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if ansi.StringWidth(s) > w {
		return ansi.Truncate(s, w, "…")
	}
	return s
}

// padLeft right-aligns plain s in w cells.
func padLeft(s string, w int) string {
	n := ansi.StringWidth(s)
	if n >= w {
		return cut(s, w)
	}
	return strings.Repeat(" ", w-n) + s
}

// block joins lines and pads the result with blank lines to exactly h
// lines of w cells.
func block(lines []string, w, h int) string {
	if h <= 0 {
		return ""
	}
	if len(lines) > h {
		lines = lines[:h]
	}
	var b strings.Builder
	for i := 0; i < h; i++ {
		if i > 0 {
			b.WriteByte('\n')
		}
		if i < len(lines) {
			b.WriteString(fit(lines[i], w))
		} else {
			b.WriteString(strings.Repeat(" ", w))
		}
	}
	return b.String()
}

// stateGlyph returns a glyph and style for a unit's active state.
func stateGlyph(st Styles, active string) (string, lipgloss.Style) {
	switch active {
	case "active":
		return "●", st.State.Active
	case "reloading", "activating", "deactivating", "refreshing":
		return "◐", st.State.Transition
	case "failed":
		return "✗", st.State.Failed
	case "inactive", "":
		return "○", st.State.Inactive
	}
	return "·", st.State.Inactive
}

// hostGlyph returns the glyph and style of a fleet host's state.
func hostGlyph(st Styles, state HostState) (string, lipgloss.Style) {
	switch state {
	case HostOK:
		return "●", st.State.Active
	case HostConnecting, HostLost, HostReconnecting, HostUnreachable:
		return "◐", st.State.Transition
	case HostFailed:
		return "✗", st.State.Failed
	}
	return "·", st.State.Inactive
}

// scroller keeps a window of height lines over n lines.
type scroller struct {
	offset, height int
}

func (s *scroller) clamp(n int) {
	if max := n - s.height; s.offset > max {
		s.offset = max
	}
	if s.offset < 0 {
		s.offset = 0
	}
}

func (s *scroller) scroll(delta, n int) {
	s.offset += delta
	s.clamp(n)
}

func (s *scroller) atBottom(n int) bool { return s.offset >= n-s.height }

func (s *scroller) toBottom(n int) { s.offset = n - s.height; s.clamp(n) }

// handleKey moves by a line, a page (height lines) or to an end when km is
// one of keys, over n lines.
func (s *scroller) handleKey(km tea.KeyMsg, keys ScrollKeyMap, n, height int) {
	switch {
	case key.Matches(km, keys.Up):
		s.scroll(-1, n)
	case key.Matches(km, keys.Down):
		s.scroll(1, n)
	case key.Matches(km, keys.PageUp):
		s.scroll(-max(height-1, 1), n)
	case key.Matches(km, keys.PageDown):
		s.scroll(max(height-1, 1), n)
	case key.Matches(km, keys.Top):
		s.offset = 0
	case key.Matches(km, keys.Bottom):
		s.toBottom(n)
	}
}

// wrap breaks plain text into lines of at most w cells at spaces.
func wrap(s string, w int) []string {
	if w < 8 {
		w = 8
	}
	var lines []string
	var cur strings.Builder
	curW := 0
	for _, word := range strings.Fields(s) {
		ww := ansi.StringWidth(word)
		if curW > 0 && curW+1+ww > w {
			lines = append(lines, cur.String())
			cur.Reset()
			curW = 0
		}
		if curW > 0 {
			cur.WriteByte(' ')
			curW++
		}
		cur.WriteString(word)
		curW += ww
	}
	if curW > 0 {
		lines = append(lines, cur.String())
	}
	return lines
}

// fitLeftRight puts left and right on one line of w cells, cutting left
// first, then right.
func fitLeftRight(left, right string, w int) string {
	lw, rw := ansi.StringWidth(left), ansi.StringWidth(right)
	if rw+1 > w {
		return fit(left, w)
	}
	if lw+1+rw > w {
		left = cut(left, w-1-rw)
		lw = ansi.StringWidth(left)
	}
	return left + strings.Repeat(" ", max(w-lw-rw, 1)) + right
}
