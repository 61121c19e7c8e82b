package ui

import (
	"errors"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/fdtop/fdtop/inspect"
)

// evil is what a service sets as STATUS= (sd_notify) or as its comm
// (prctl PR_SET_NAME): a title change, a screen wipe, colour, a C1 CSI.
const evil = "\x1b]0;pwned-title\a\x1b[2J\x1b[31mRED\u009b1m"

// hostileSnapshot is the demo with escape sequences wherever a service or
// a socket name can put them.
func hostileSnapshot() *inspect.Snapshot {
	s := demoSnapshot()
	svc := &s.Services[1] // demo-handoff.service
	svc.StatusText = evil + " STATUS\nsecond line"
	svc.Processes[0].Comm = "\x1b[31mEVIL\a"
	svc.Processes[0].Cmdline = "srv --name " + evil
	svc.FDStore[4].Detail = "memfd:" + evil
	svc.Passed[1].Name = evil
	svc.Connections[0].Remote = "@abstract\x00" + evil
	so := &s.Sockets[1] // demo-handoff.socket
	so.Listeners[0].Holders[1].Comm = "\x1b[31mEVIL\a"
	so.Listeners = append(so.Listeners, inspect.Listener{Type: "Stream", Address: `@bell\a\033[31m`, Holders: []inspect.Holder{}})
	s.Warnings = []inspect.Warning{{Unit: "demo-handoff.service", Code: "leaked-listener", Message: "held by " + evil}}
	return s
}

// controlChars returns the control characters in a View other than the
// line breaks of the layout (the test colour profile draws no styles).
func controlChars(view string) []rune {
	var bad []rune
	for _, r := range view {
		if r != '\n' && (r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f) {
			bad = append(bad, r)
		}
	}
	return bad
}

// TestViewEscapesOutsideStrings: escape sequences from a STATUS= text, a
// comm, a command line, socket names, timeline messages, errors and a
// pasted filter never reach the terminal raw; they are shown escaped.
// The events are hand-written: hostile strings are not in the demo's
// recordings.
func TestViewEscapesOutsideStrings(t *testing.T) {
	tests := []struct {
		name string
		prep func(t *testing.T, m Model) Model
		want []string // visible, escaped
	}{
		{"detail of the service", func(t *testing.T, m Model) Model {
			return selectUnit(t, m, "demo-handoff.service")
		}, []string{`status: \e]0;pwned-title\x07\e[2J\e[31mRED\u009b1m STATUS\nsecond`, `\e[31mEVIL\x07`, `memfd:\e]0;pwned-title`}},
		{"detail of the socket", func(t *testing.T, m Model) Model {
			return selectUnit(t, m, "demo-handoff.socket")
		}, []string{`held by \e[31mEVIL\x07 pid 202`, `@bell\a\033[31m`}},
		{"timeline", func(t *testing.T, m Model) Model {
			return send(m, eventsMsg{evs: []inspect.Event{
				{Time: t0, Unit: "demo-handoff.service", Type: inspect.EventConnectionDropped, Message: "connection from @a\x00" + evil + " dropped"},
				{Time: t0, Unit: "demo-handoff.service", Type: inspect.EventFDStored, Name: evil, Detail: evil},
				{Time: t0, Unit: "demo-handoff.service", Type: inspect.EventHandoff, Handoff: &inspect.Handoff{HandoffJob: evil, ListenersKept: 1}},
			}})
		}, []string{`@a\x00\e]0;pwned-title`}},
		{"action error in the status line", func(t *testing.T, m Model) Model {
			return send(m, actionDoneMsg{action: ActionRestart, unit: "demo-handoff.service", err: errors.New("Unit " + evil + " failed")})
		}, []string{`✗ restart demo-handoff.service: Unit \e]0;pwned-title`}},
		{"scan error banner", func(t *testing.T, m Model) Model {
			return send(m, snapshotMsg{err: errors.New("read /proc/1/comm: " + evil)})
		}, []string{`scan failed: read /proc/1/comm: \e]0;pwned-title`}},
		{"pasted filter", func(t *testing.T, m Model) Model {
			m = send(m, keyMsg("/"), tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("x\x1b[2J"), Paste: true})
			return m
		}, []string{`/x\e[2J`}},
		{"confirmation", func(t *testing.T, m Model) Model {
			return send(selectUnit(t, m, "demo-handoff.socket"), keyMsg("r"))
		}, []string{`@bell\a\033[31m`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := withSnapshot(newTestModel(newFakeSource(hostileSnapshot()), Options{}, 160, 60), hostileSnapshot())
			m = tt.prep(t, m)
			view := m.View()
			if bad := controlChars(view); len(bad) > 0 {
				t.Errorf("View has raw control characters %q:\n%s", bad, strings.ReplaceAll(view, "\x1b", `<ESC>`))
			}
			for _, w := range tt.want {
				if !strings.Contains(view, w) {
					t.Errorf("View lacks %q:\n%s", w, view)
				}
			}
		})
	}
}

// TestReplayEscapesOutsideStrings: a recording is a file from anywhere;
// its events are shown escaped.
func TestReplayEscapesOutsideStrings(t *testing.T) {
	evs := []inspect.Event{{Time: t0, Unit: "x" + evil, Type: inspect.EventState, Message: evil}}
	nm, _ := NewReplayModel(evs, ReplayOptions{Stepped: true}).Update(tea.WindowSizeMsg{Width: 120, Height: 20})
	nm, _ = nm.Update(replayTickMsg{})
	view := nm.View()
	if bad := controlChars(view); len(bad) > 0 {
		t.Errorf("replay View has raw control characters %q:\n%s", bad, view)
	}
	if !strings.Contains(view, `\e]0;pwned-title\x07`) {
		t.Errorf("replay View lacks the escaped message:\n%s", view)
	}
}
