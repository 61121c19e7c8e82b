package ui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/fdtop/fdtop/inspect"
)

// tourStep is one step of the demo tour (fdtop demo --tour): what the
// learner is shown and asked to press, and the service whose restart
// verdict unlocks the next step.
type tourStep struct {
	// Mode is the demo mode's name on the scoreboard.
	Mode string
	// Service is the unit to restart.
	Service string
	// Text says what the mode does, in the protocol's words.
	Text string
}

// tourSteps are the demo modes in the scoreboard's order.
var tourSteps = []tourStep{
	{"plain", "demo-plain.service",
		"binds its own listener after start-up, no socket unit: while it restarts nobody listens."},
	{"activated", "demo-activated.service",
		"gets its listener from demo-activated.socket (sd_listen_fds: fd 3); systemd keeps it open across the restart."},
	{"handoff", "demo-handoff.service",
		"activated, and on stop it stores each client connection (sd_notify FDSTORE=1, FDNAME=conn-N) for the next process."},
	{"stored", "demo-stored.service",
		"no socket unit: its first start bound the listener and stored it (FDSTORE=1, FDNAME=listener); each later start gets it back (sd_listen_fds_with_names)."},
}

// TourKeyMap are the keys of the tour panel.
type TourKeyMap struct {
	// End closes the tour; every other key works as without it.
	End key.Binding
}

// DefaultTourKeyMap returns the tour's keys.
func DefaultTourKeyMap() TourKeyMap {
	return TourKeyMap{End: key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "end tour"))}
}

// ShortHelp implements help.KeyMap.
func (k TourKeyMap) ShortHelp() []key.Binding { return []key.Binding{k.End} }

// FullHelp implements help.KeyMap.
func (k TourKeyMap) FullHelp() [][]key.Binding { return [][]key.Binding{{k.End}} }

// tourHeight is the tour panel's height: a title and four lines.
const tourHeight = 5

// tourModel is the guided sequence of `fdtop demo --tour`: a panel under
// the panes with the current step's text and what to press. A step is done
// when a restart verdict of its service arrives, in any order: someone who
// knows the keys is never held back, and the tour never takes a key but
// its own (x).
type tourModel struct {
	st      Styles
	keys    TourKeyMap
	active  bool
	width   int
	verdict map[string]string // by service: the summary of its restart
}

func newTourModel(st Styles, active bool) tourModel {
	return tourModel{st: st, keys: DefaultTourKeyMap(), active: active, verdict: map[string]string{}}
}

// SetWidth sets the panel's width.
func (t *tourModel) SetWidth(w int) { t.width = w }

// Height is the panel's height, 0 when the tour is off.
func (t tourModel) Height() int {
	if !t.active {
		return 0
	}
	return tourHeight
}

// Active reports whether the panel is shown.
func (t tourModel) Active() bool { return t.active }

// Key handles the tour's own key; it reports whether it took k.
func (t *tourModel) Key(k tea.KeyMsg) bool {
	if t.active && key.Matches(k, t.keys.End) {
		t.active = false
		return true
	}
	return false
}

// Event notes a restart verdict (a handoff event) of a tour step's service.
func (t *tourModel) Event(ev inspect.Event) {
	if ev.Type != inspect.EventHandoff || ev.Handoff == nil || ev.Target != "" {
		return
	}
	for _, s := range tourSteps {
		if s.Service == ev.Unit {
			t.verdict[s.Service] = inspect.Summary(*ev.Handoff)
		}
	}
}

// current is the index of the first step without a verdict, len(tourSteps)
// when all are in.
func (t tourModel) current() int {
	for i, s := range tourSteps {
		if _, ok := t.verdict[s.Service]; !ok {
			return i
		}
	}
	return len(tourSteps)
}

// lastDone is the step whose verdict came in last in the tour's order
// before the current one, -1 for none.
func (t tourModel) lastDone(cur int) int {
	for i := cur - 1; i >= 0; i-- {
		if _, ok := t.verdict[tourSteps[i].Service]; ok {
			return i
		}
	}
	return -1
}

// View draws the panel: its title, the last verdict, the step's text and
// what to press.
func (t tourModel) View() string {
	if !t.active {
		return ""
	}
	// The text is indented under the title (and so drawn from an
	// unstyled cell on each line, which a captured screen keeps).
	w := max(t.width, 20) - 2
	cur := t.current()
	var title string
	var lines []string
	if prev := t.lastDone(cur); prev >= 0 {
		s := tourSteps[prev]
		lines = append(lines, fit(s.Mode+": "+t.verdict[s.Service], w))
	}
	if cur == len(tourSteps) {
		title = "Tour · done · x closes this panel"
		lines = append(lines, wrap("All four verdicts are in: the scoreboard (top of the detail pane) has them side by side. e explains each mode, its calls and what it costs the clients; s then S (stop, start) on demo-stored.service shows the fd store across a stop.", w)...)
	} else {
		s := tourSteps[cur]
		title = fmt.Sprintf("Tour · step %d/%d · %s · x ends the tour", cur+1, len(tourSteps), s.Mode)
		text := fmt.Sprintf("%s %s Select %s (↑↓), press r, then y.", s.Service, s.Text, s.Service)
		lines = append(lines, wrap(text, w)...)
	}
	for len(lines) < tourHeight-1 {
		lines = append(lines, "")
	}
	lines = lines[:tourHeight-1]
	for i, l := range lines {
		lines[i] = "  " + t.st.Detail.Explain.Render(fit(l, w))
	}
	head := t.st.Pane.FocusedTitle.Render(fit("» "+title, w+2))
	return head + "\n" + strings.Join(lines, "\n")
}
