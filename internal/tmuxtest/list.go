package tmuxtest

import (
	"strings"
	"testing"
	"unicode"
)

// ListRows reads the unit list of a dashboard's screen: the name on each
// of its rows (a unit, or a host in a fleet) from the top, and the index of
// the selected row (marked ›), -1 when no row is selected or the screen
// shows no list. The list is the lines under its UNIT header that are
// rows: the cursor column (› or a space), then a state glyph, or four
// spaces and a host's note; an empty line or the next pane's title ends
// it. A pane drawn beside the list (after │) is left out.
func ListRows(screen string) (names []string, selected int) {
	selected = -1
	inList := false
	for _, l := range strings.Split(screen, "\n") {
		if i := strings.Index(l, "│"); i >= 0 {
			l = l[:i]
		}
		if !inList {
			f := strings.Fields(l)
			inList = len(f) >= 3 && f[0] == "UNIT" && f[1] == "PID" && f[2] == "CONNS"
			continue
		}
		rest, sel := strings.CutPrefix(l, "›")
		if !sel {
			rest, _ = strings.CutPrefix(l, " ")
		}
		if len(rest) == len(l) || strings.TrimSpace(rest) == "" ||
			(strings.HasPrefix(rest, " ") && !strings.HasPrefix(rest, "    ")) {
			break
		}
		if sel {
			selected = len(names)
		}
		names = append(names, rowName(rest))
	}
	return names, selected
}

// rowName is the first word of a row with a letter or digit in it: the
// state glyph, the warning mark and the tree's └ come before the name.
func rowName(row string) string {
	for _, w := range strings.Fields(row) {
		if strings.IndexFunc(w, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) >= 0 {
			return w
		}
	}
	return ""
}

// nameIs reports whether a row's name is name, or name cut short (…) to
// fit its column.
func nameIs(row, name string) bool {
	if row == name {
		return true
	}
	short, cut := strings.CutSuffix(row, "…")
	return cut && short != "" && strings.HasPrefix(name, short)
}

// SelectRow moves a dashboard's list selection to the first row named name
// (from the top) with j and k: SelectRowWith the first such row.
func SelectRow(t testing.TB, name string, send func(key string), waitFor func(what string, ok func(screen string) bool) string) {
	t.Helper()
	SelectRowWith(t, name, func(names []string) int {
		for i, n := range names {
			if nameIs(n, name) {
				return i
			}
		}
		return -1
	}, send, waitFor)
}

// SelectRowWith moves a dashboard's list selection to the row that pick
// chooses among the names of the list's rows (-1: not on screen yet, move
// down), one key (j or k) at a time: after each key it waits until the
// screen shows the selection moved, so a dashboard slow to redraw never
// gets a second key for one step. send types one key; waitFor waits for a
// screen that ok accepts and returns it, failing the test when none comes.
// what names the row in messages.
func SelectRowWith(t testing.TB, what string, pick func(names []string) int, send func(key string), waitFor func(what string, ok func(screen string) bool) string) {
	t.Helper()
	for range 60 {
		var names []string
		sel := -1
		waitFor("the unit list with a selected row", func(s string) bool {
			names, sel = ListRows(s)
			return sel >= 0
		})
		target := pick(names)
		if target == sel {
			return
		}
		key := "j"
		if target >= 0 && target < sel {
			key = "k"
		}
		from := names[sel]
		send(key)
		waitFor("the selection to move from "+from+" towards "+what, func(s string) bool {
			n, i := ListRows(s)
			return i >= 0 && (i != sel || n[i] != from)
		})
	}
	t.Fatalf("could not select %s in 60 moves", what)
}

// NameIs reports whether a row's name (from ListRows) is name, or name cut
// short (…) to fit its column.
func NameIs(row, name string) bool { return nameIs(row, name) }
