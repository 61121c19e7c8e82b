package ui

import (
	"context"
	"slices"
	"strings"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/fdtop/fdtop/internal/termsafe"
	"github.com/fdtop/fdtop/internal/unitlog"
)

// LogSource is implemented by a source that can follow units' logs: the
// journal, or where there is none (the demo) the manager's log and the
// services' own files.
type LogSource interface {
	// FollowLog sends the units' last lines, then new ones, until ctx
	// ends (the channel is closed then). ok is false when no log was
	// found for them: the log is unknown, not empty.
	FollowLog(ctx context.Context, units []string) (lines <-chan unitlog.Line, ok bool, err error)
}

// Log sizes: the ring buffer of the followed units and the lines the
// detail pane shows.
const (
	logKeep        = 1000
	logDetailLines = 8
)

// logLine is a log line made safe for the terminal once, when it arrives.
type logLine struct {
	time     string // "15:04:05", "" when the source has no time
	priority int    // syslog priority, -1 unknown
	source   string
	text     string
}

// logState is the log of the selected group's units, followed while they
// are on screen.
type logState struct {
	units   []string
	gen     uint64
	cancel  context.CancelFunc
	lines   []logLine // the last logKeep lines
	started bool      // the follower answered
	unknown bool      // no log found for the units
	err     string
}

// logStartedMsg says a follower is running (or why not).
type logStartedMsg struct {
	gen uint64
	ch  <-chan unitlog.Line
	ok  bool
	err error
}

// logLinesMsg carries a burst of new lines of the follower gen.
type logLinesMsg struct {
	gen    uint64
	ch     <-chan unitlog.Line
	lines  []unitlog.Line
	closed bool
}

// syncLog follows the selected group's units: a new follower when they
// change, the old one stopped (it left the screen).
func (m *Model) syncLog() tea.Cmd {
	ls, ok := m.src.(LogSource)
	if !ok {
		return nil
	}
	var units []string
	if g := m.list.SelectedGroup(); g != nil {
		units = g.units()
	}
	if slices.Equal(units, m.log.units) {
		return nil
	}
	if m.log.cancel != nil {
		m.log.cancel()
	}
	m.log = logState{units: units, gen: m.log.gen + 1}
	if len(units) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(m.ctx)
	m.log.cancel = cancel
	gen := m.log.gen
	return func() tea.Msg {
		ch, ok, err := ls.FollowLog(ctx, units)
		return logStartedMsg{gen: gen, ch: ch, ok: ok, err: err}
	}
}

// waitForLog waits for the follower's next lines and drains what else is
// queued, so a burst costs one redraw.
func waitForLog(gen uint64, ch <-chan unitlog.Line) tea.Cmd {
	return func() tea.Msg {
		l, ok := <-ch
		if !ok {
			return logLinesMsg{gen: gen, ch: ch, closed: true}
		}
		lines := []unitlog.Line{l}
		for len(lines) < 256 {
			select {
			case l, ok := <-ch:
				if !ok {
					return logLinesMsg{gen: gen, ch: ch, lines: lines, closed: true}
				}
				lines = append(lines, l)
			default:
				return logLinesMsg{gen: gen, ch: ch, lines: lines}
			}
		}
		return logLinesMsg{gen: gen, ch: ch, lines: lines}
	}
}

func (m *Model) applyLogStarted(msg logStartedMsg) tea.Cmd {
	if msg.gen != m.log.gen {
		return nil // a unit no longer on screen
	}
	m.log.started = true
	switch {
	case msg.err != nil:
		m.log.err = msg.err.Error()
	case !msg.ok:
		m.log.unknown = true
	default:
		m.updateDetail()
		return waitForLog(msg.gen, msg.ch)
	}
	m.updateDetail()
	return nil
}

func (m *Model) applyLogLines(msg logLinesMsg) tea.Cmd {
	if msg.gen != m.log.gen {
		return nil
	}
	for _, l := range msg.lines {
		ll := logLine{priority: l.Priority, source: termsafe.String(l.Source), text: termsafe.String(l.Message)}
		if !l.Time.IsZero() {
			ll.time = l.Time.Format("15:04:05")
		}
		m.log.lines = append(m.log.lines, ll)
	}
	if over := len(m.log.lines) - logKeep; over > 0 {
		m.log.lines = append(m.log.lines[:0:0], m.log.lines[over:]...)
	}
	m.updateDetail()
	if m.showLog {
		m.logView.setLines(m.log.lines)
	}
	if msg.closed {
		return nil
	}
	return waitForLog(msg.gen, msg.ch)
}

// logData is what the detail pane shows of the log.
type logData struct {
	Lines   []logLine
	Started bool
	Unknown bool
	Err     string
	Key     string // the key that opens the full log view
}

func (m *Model) logDetail() logData {
	if _, ok := m.src.(LogSource); !ok {
		return logData{}
	}
	n := len(m.log.lines)
	return logData{Lines: m.log.lines[max(n-logDetailLines, 0):], Started: m.log.started, Unknown: m.log.unknown, Err: m.log.err, Key: m.keys.Log.Help().Key}
}

// logSection writes the Log section of the detail pane.
func (b *detailBuilder) logSection(d logData) {
	if !d.Started && !d.Unknown && d.Err == "" && len(d.Lines) == 0 {
		return
	}
	title := "Log"
	if d.Key != "" {
		title += " (" + d.Key + ": full view)"
	}
	b.section(title, "The units' last log lines, following: the journal's, or where there is none (the demo) the manager's own log and the service's output file.")
	switch {
	case d.Err != "":
		b.add("    " + b.st.Detail.Warning.Render("log: "+termsafe.String(d.Err)))
	case d.Unknown:
		b.muted("    unknown: no journal and no log file found")
	case len(d.Lines) == 0:
		b.muted("    nothing logged yet")
	}
	for _, l := range d.Lines {
		b.add("    " + b.logLineView(l, max(b.width-4, 10)))
	}
}

// logLineView renders one line: time, then the text coloured by priority.
func (b *detailBuilder) logLineView(l logLine, w int) string {
	return renderLogLine(b.st, l, w)
}

func renderLogLine(st Styles, l logLine, w int) string {
	text := l.text
	if l.time != "" {
		text = l.time + " " + text
	}
	text = cut(text, w)
	switch {
	case l.priority >= 0 && l.priority <= 3:
		return st.Timeline.Bad.Render(text)
	case l.priority == 4:
		return st.Detail.Warning.Render(text)
	case l.priority >= 7:
		return st.Detail.Muted.Render(text)
	}
	return text
}

// matches reports whether a log line contains the search text (case
// insensitive).
func (l logLine) matches(q string) bool {
	return q == "" || strings.Contains(strings.ToLower(l.text+" "+l.source), strings.ToLower(q))
}
