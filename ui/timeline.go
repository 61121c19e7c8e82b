package ui

import (
	"fmt"
	"strings"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/fdtop/fdtop/inspect"
)

// maxTimeline is how many events the timeline keeps.
const maxTimeline = 2000

// timelineEntry is an event with its text, formatted once on arrival.
type timelineEntry struct {
	time    string
	host    string // the fleet host it happened on ("" for the one manager)
	unit    string
	text    string
	verdict bool
	level   VerdictLevel
}

// timelineModel is the live timeline pane: newest last, following the
// tail unless scrolled up. Entries are rendered to lines once, on arrival
// or on a width change; verdicts wrap instead of being cut.
type timelineModel struct {
	st      Styles
	keys    TimelineKeyMap
	entries []timelineEntry
	nlines  []int // lines of each entry
	lines   []string
	scroll  scroller
	follow  bool
	width   int
	height  int
	focused bool
	unitW   int
	hostW   int // the host column, 0 until an event names a host
}

func newTimelineModel(st Styles) timelineModel {
	return timelineModel{st: st, keys: DefaultTimelineKeyMap(), follow: true, unitW: 22}
}

// SetSize sets the pane's content size.
func (t *timelineModel) SetSize(w, h int) {
	if w != t.width {
		t.width = w
		t.unitW = min(max(w/4, 10), 24)
		t.relines()
	}
	t.height = h
	t.scroll.height = h
	if t.follow {
		t.scroll.toBottom(len(t.lines))
	}
	t.scroll.clamp(len(t.lines))
}

// Len returns the number of events shown.
func (t timelineModel) Len() int { return len(t.entries) }

// Append adds events at the bottom, escaped for the terminal (the live
// dashboard and a replayed file alike).
func (t *timelineModel) Append(evs ...inspect.Event) {
	for _, ev := range evs {
		e := formatEvent(ev.ForTerminal())
		if w := min(lipgloss.Width(e.host), 24); w > t.hostW {
			t.hostW = w // a wider host column: every entry is laid out anew
			t.relines()
		}
		ls := t.render(e)
		t.entries = append(t.entries, e)
		t.nlines = append(t.nlines, len(ls))
		t.lines = append(t.lines, ls...)
	}
	if over := len(t.entries) - maxTimeline; over > 0 {
		drop := 0
		for _, n := range t.nlines[:over] {
			drop += n
		}
		t.entries = append(t.entries[:0:0], t.entries[over:]...)
		t.nlines = append(t.nlines[:0:0], t.nlines[over:]...)
		t.lines = append(t.lines[:0:0], t.lines[drop:]...)
		if !t.follow {
			t.scroll.offset -= drop
		}
	}
	if t.follow {
		t.scroll.toBottom(len(t.lines))
	}
	t.scroll.clamp(len(t.lines))
}

func (t *timelineModel) relines() {
	t.lines = t.lines[:0]
	for i, e := range t.entries {
		ls := t.render(e)
		t.nlines[i] = len(ls)
		t.lines = append(t.lines, ls...)
	}
}

// Update scrolls; scrolling to the bottom resumes following.
func (t timelineModel) Update(msg tea.Msg) (timelineModel, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return t, nil
	}
	n := len(t.lines)
	t.scroll.handleKey(km, t.keys.ScrollKeyMap, n, t.height)
	t.follow = t.scroll.atBottom(n)
	return t, nil
}

// Wheel scrolls by delta lines.
func (t *timelineModel) Wheel(delta int) {
	t.scroll.scroll(delta, len(t.lines))
	t.follow = t.scroll.atBottom(len(t.lines))
}

// Following reports whether the pane follows new events.
func (t timelineModel) Following() bool { return t.follow }

// View renders the visible events.
func (t timelineModel) View() string {
	if t.height <= 0 {
		return ""
	}
	if len(t.entries) == 0 {
		return block([]string{t.st.Timeline.Time.Render("  waiting for events…")}, t.width, t.height)
	}
	end := min(t.scroll.offset+t.height, len(t.lines))
	return block(t.lines[min(t.scroll.offset, end):end], t.width, t.height)
}

// render returns the lines of one entry at the current width.
func (t timelineModel) render(e timelineEntry) []string {
	prefixW := 13 + t.unitW + 1
	prefix := t.st.Timeline.Time.Render(e.time) + " "
	if t.hostW > 0 {
		prefixW += t.hostW + 1
		prefix += t.st.Timeline.Host.Render(fit(e.host, t.hostW)) + " "
	}
	prefix += t.st.Timeline.Unit.Render(fit(e.unit, t.unitW)) + " "
	textW := max(t.width-prefixW, 0)
	if !e.verdict {
		return []string{fit(prefix+t.st.Timeline.Text.Render(cut(e.text, textW)), t.width)}
	}
	style := verdictStyle(t.st, e.level)
	parts := wrap(e.text, textW)
	out := make([]string, len(parts))
	for i, p := range parts {
		if i == 0 {
			out[i] = fit(prefix+style.Render(cut(p, textW)), t.width)
		} else {
			out[i] = fit(strings.Repeat(" ", prefixW+2)+style.Render(cut(p, textW-2)), t.width)
		}
	}
	return out
}

// verdictStyle returns the style of a verdict of level.
func verdictStyle(st Styles, level VerdictLevel) lipgloss.Style {
	switch level {
	case VerdictGood:
		return st.Timeline.Good
	case VerdictBad:
		return st.Timeline.Bad
	}
	return st.Timeline.Caution
}

func formatEvent(ev inspect.Event) timelineEntry {
	e := timelineEntry{time: ev.Time.Format("15:04:05.000"), host: ev.Target, unit: ev.Unit}
	if e.unit == "" {
		e.unit = "manager"
	}
	if ev.Type == inspect.EventHandoff && ev.Handoff != nil {
		e.verdict = true
		e.level, e.text = Verdict(ev.Handoff)
		return e
	}
	e.text = describeEvent(ev)
	return e
}

// describeEvent says an event in words: inspect.Describe's, else (an
// event without the data for them) a few words from its type.
func describeEvent(ev inspect.Event) string {
	if s := inspect.Describe(ev); s != "" {
		return s
	}
	detail := ""
	if ev.Detail != "" {
		detail = " (" + ev.Detail + ")"
	}
	switch ev.Type {
	case inspect.EventJobStarted:
		return fmt.Sprintf("job %s started", orDash(ev.Job))
	case inspect.EventJobFinished:
		return fmt.Sprintf("job %s finished: %s", orDash(ev.Job), orDash(ev.Result))
	case inspect.EventState:
		if ev.SubState != "" {
			return ev.ActiveState + " (" + ev.SubState + ")"
		}
		return ev.ActiveState
	case inspect.EventMainPID:
		if ev.PID == 0 {
			return "no main PID"
		}
		return fmt.Sprintf("main PID %d", ev.PID)
	case inspect.EventFDPassed:
		return fmt.Sprintf("fd %d %s passed%s", ev.FD, quoteName(ev.Name), detail)
	case inspect.EventFDStored:
		return fmt.Sprintf("fd store + %s%s", inspect.StoreName(ev.Name, ev.NameUnknown), detail)
	case inspect.EventFDRemoved:
		return fmt.Sprintf("fd store − %s%s", inspect.StoreName(ev.Name, ev.NameUnknown), detail)
	case inspect.EventListenerKept:
		return "listener kept" + detail
	case inspect.EventListenerReplaced:
		return "listener replaced" + detail
	case inspect.EventConnectionPreserved:
		return "connection preserved" + detail
	case inspect.EventConnectionDropped:
		return "connection dropped" + detail
	case inspect.EventConnectionClosed:
		return "connection closed by its client" + detail
	case inspect.EventHandoff:
		return "handoff"
	case inspect.EventUnitNew:
		return "unit loaded"
	case inspect.EventUnitRemoved:
		return "unit unloaded"
	case inspect.EventReloading:
		return "manager reloading"
	case inspect.EventDisconnected:
		return "lost the manager connection; reconnecting"
	case inspect.EventReconnected:
		return "reconnected to the manager"
	}
	return string(ev.Type) + detail
}

// eventsForTerminal returns evs escaped for the terminal (ForTerminal), in
// a new slice.
func eventsForTerminal(evs []inspect.Event) []inspect.Event {
	out := make([]inspect.Event, len(evs))
	for i, ev := range evs {
		out[i] = ev.ForTerminal()
	}
	return out
}
