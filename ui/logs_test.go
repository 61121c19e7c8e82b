package ui

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/fdtop/fdtop/internal/unitlog"
)

// logFake is a fake source that follows logs from channels the test fills.
type logFake struct {
	*fakeSource
	mu      sync.Mutex
	follows []logFollow
	unknown bool
	history []unitlog.Line // what a new follower sends first
}

type logFollow struct {
	units []string
	ctx   context.Context
	ch    chan unitlog.Line
}

func (f *logFake) FollowLog(ctx context.Context, units []string) (<-chan unitlog.Line, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unknown {
		return nil, false, nil
	}
	ch := make(chan unitlog.Line, 16)
	for _, l := range f.history {
		ch <- l
	}
	f.follows = append(f.follows, logFollow{units: units, ctx: ctx, ch: ch})
	return ch, true, nil
}

// step runs msg through Update and then the commands it returns, up to
// depth levels, feeding their messages back (a bounded event loop; the
// log's re-armed wait is left pending when nothing is queued).
func step(m Model, msg tea.Msg, depth int) Model {
	nm, cmd := m.Update(msg)
	m = nm.(Model)
	if depth == 0 || cmd == nil {
		return m
	}
	return runCmds(m, cmd, depth)
}

// runCmds runs cmd (a batch's commands each) and feeds the log messages
// they return back into the model.
func runCmds(m Model, cmd tea.Cmd, depth int) Model {
	if cmd == nil || depth < 0 {
		return m
	}
	done := make(chan tea.Msg, 1)
	go func() { done <- cmd() }()
	select {
	case msg := <-done:
		switch msg := msg.(type) {
		case tea.BatchMsg:
			for _, c := range msg {
				m = runCmds(m, c, depth)
			}
		case logStartedMsg, logLinesMsg:
			m = step(m, msg, depth-1)
		}
	case <-time.After(100 * time.Millisecond): // a wait with nothing queued (a tick, the log's next line)
	}
	return m
}

// followSelected starts following the selected group as the program would
// (the test helpers drop the command that did it when the selection moved).
func followSelected(m Model) Model {
	m.log.units = nil
	return step(m, tea.WindowSizeMsg{Width: m.width, Height: m.height}, 3)
}

func TestDashboardLog(t *testing.T) {
	src := &logFake{fakeSource: newFakeSource(demoSnapshot()), history: []unitlog.Line{
		{Time: time.Date(2026, 11, 25, 9, 0, 1, 0, time.UTC), Priority: 6, Source: "journal", Message: "ready pid=303"},
		{Priority: 3, Source: "journal", Message: "evil \x1b]0;owned\x07\x1b[2J line"},
	}}
	m := newTestModel(src, Options{}, 120, 50)
	m = withSnapshot(m, demoSnapshot())
	m = selectUnit(t, m, "demo-handoff.service")
	m = followSelected(m)
	src.mu.Lock()
	if len(src.follows) == 0 {
		src.mu.Unlock()
		t.Fatal("no follower for the selected group")
	}
	f := src.follows[len(src.follows)-1]
	src.mu.Unlock()
	if strings.Join(f.units, " ") != "demo-handoff.socket demo-handoff.service" {
		t.Errorf("follows %q, want the group's socket and service", f.units)
	}

	v := m.View()
	if strings.Contains(v, "\x1b]0;") || strings.Contains(v, "\x1b[2J") || strings.Contains(v, "\x07") {
		t.Errorf("an escape sequence from the log reached the screen: %q", v)
	}
	plain := ansi.Strip(v)
	for _, want := range []string{"Log (l: full view)", "ready pid=303", `evil \e]0;owned\x07\e[2J line`} {
		if !strings.Contains(plain, want) {
			t.Errorf("detail lacks %q:\n%s", want, plain)
		}
	}

	// l: the full view; / search keeps the matching lines.
	m = step(m, keyMsg("l"), 0)
	if !m.showLog || !strings.Contains(ansi.Strip(m.View()), "Log · demo-handoff.socket, demo-handoff.service · 2 lines") {
		t.Fatalf("l: no full log view:\n%s", ansi.Strip(m.View()))
	}
	for _, k := range []string{"/", "r", "e", "a", "d", "y", "enter"} {
		m = step(m, keyMsg(k), 0)
	}
	lv := ansi.Strip(m.View())
	if !strings.Contains(lv, `1 matching "ready"`) || strings.Contains(lv, "evil") {
		t.Errorf("search: want only the matching line:\n%s", lv)
	}
	m = step(m, keyMsg("esc"), 0) // clears the search
	m = step(m, keyMsg("esc"), 0) // closes
	if m.showLog {
		t.Error("esc did not close the log view")
	}

	// The selection moves: the old follower is stopped.
	m.setFocus(paneList)
	m = step(m, keyMsg("j"), 1)
	select {
	case <-f.ctx.Done():
	case <-time.After(time.Second):
		t.Error("the follower of the group that left the screen was not stopped")
	}
}

func TestDashboardLogBounded(t *testing.T) {
	src := &logFake{fakeSource: newFakeSource(demoSnapshot())}
	m := newTestModel(src, Options{}, 120, 50)
	m = withSnapshot(m, demoSnapshot())
	m = selectUnit(t, m, "demo-handoff.service")
	m = followSelected(m)
	gen := m.log.gen
	m = step(m, logStartedMsg{gen: gen, ok: true, ch: make(chan unitlog.Line)}, 0)
	for i := 0; i < 3; i++ {
		lines := make([]unitlog.Line, 600)
		for j := range lines {
			lines[j] = unitlog.Line{Priority: -1, Message: "line"}
		}
		m = step(m, logLinesMsg{gen: gen, lines: lines}, 0)
	}
	if len(m.log.lines) != logKeep {
		t.Errorf("%d lines kept, want the ring buffer's %d", len(m.log.lines), logKeep)
	}
	// A stale follower's lines are dropped.
	m = step(m, logLinesMsg{gen: gen - 1, lines: []unitlog.Line{{Message: "stale"}}}, 0)
	if l := m.log.lines[len(m.log.lines)-1]; l.text == "stale" {
		t.Error("a line from a stopped follower was kept")
	}

	src2 := &logFake{fakeSource: newFakeSource(demoSnapshot()), unknown: true}
	m = newTestModel(src2, Options{}, 120, 50)
	m = withSnapshot(m, demoSnapshot())
	m = selectUnit(t, m, "demo-handoff.service")
	m = followSelected(m)
	if v := ansi.Strip(m.View()); !strings.Contains(v, "unknown: no journal and no log file found") {
		t.Errorf("no log source: want 'unknown':\n%s", v)
	}
}
