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

// drive runs msg through Update and then, each in its own goroutine, the
// commands it returns and those the log's messages return in turn, feeding
// the log's messages back (a small event loop), until done holds; it fails
// the test after 10 s. Other messages (ticks, scans) are dropped; a command
// that blocks (the log's wait with nothing queued) is left waiting. It
// waits on the model's state, never on a timer: a command that answers at
// once may still be slow to run on a busy machine.
func drive(t *testing.T, m Model, msg tea.Msg, what string, done func(Model) bool) Model {
	t.Helper()
	msgs := make(chan tea.Msg)
	stop := make(chan struct{})
	defer close(stop)
	var run func(tea.Cmd)
	run = func(cmd tea.Cmd) {
		if cmd == nil {
			return
		}
		go func() {
			msg := cmd()
			if batch, ok := msg.(tea.BatchMsg); ok {
				for _, c := range batch {
					run(c)
				}
				return
			}
			switch msg.(type) {
			case logStartedMsg, logLinesMsg:
				select {
				case msgs <- msg:
				case <-stop:
				}
			}
		}()
	}
	nm, cmd := m.Update(msg)
	m = nm.(Model)
	run(cmd)
	deadline := time.After(10 * time.Second)
	for !done(m) {
		select {
		case msg := <-msgs:
			nm, cmd := m.Update(msg)
			m = nm.(Model)
			run(cmd)
		case <-deadline:
			t.Fatalf("no %s in 10 s; log state: %+v", what, m.log)
		}
	}
	return m
}

// followSelected starts following the selected group as the program would
// (the test helpers drop the command that did it when the selection moved)
// and waits until done holds.
func followSelected(t *testing.T, m Model, what string, done func(Model) bool) Model {
	t.Helper()
	m.log.units = nil
	return drive(t, m, tea.WindowSizeMsg{Width: m.width, Height: m.height}, what, done)
}

func TestDashboardLog(t *testing.T) {
	src := &logFake{fakeSource: newFakeSource(demoSnapshot()), history: []unitlog.Line{
		{Time: time.Date(2026, 11, 25, 9, 0, 1, 0, time.UTC), Priority: 6, Source: "journal", Message: "ready pid=303"},
		{Priority: 3, Source: "journal", Message: "evil \x1b]0;owned\x07\x1b[2J line"},
	}}
	m := newTestModel(src, Options{}, 120, 50)
	m = withSnapshot(m, demoSnapshot())
	m = selectUnit(t, m, "demo-handoff.service")
	m = followSelected(t, m, "follower with its 2 lines of history", func(m Model) bool { return len(m.log.lines) == 2 })
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
	m = send(m, keyMsg("l"))
	if !m.showLog || !strings.Contains(ansi.Strip(m.View()), "Log · demo-handoff.socket, demo-handoff.service · 2 lines") {
		t.Fatalf("l: no full log view:\n%s", ansi.Strip(m.View()))
	}
	for _, k := range []string{"/", "r", "e", "a", "d", "y", "enter"} {
		m = send(m, keyMsg(k))
	}
	lv := ansi.Strip(m.View())
	if !strings.Contains(lv, `1 matching "ready"`) || strings.Contains(lv, "evil") {
		t.Errorf("search: want only the matching line:\n%s", lv)
	}
	m = send(m, keyMsg("esc")) // clears the search
	m = send(m, keyMsg("esc")) // closes
	if m.showLog {
		t.Error("esc did not close the log view")
	}

	// The selection moves: the old follower is stopped, in Update.
	m.setFocus(paneList)
	m = send(m, keyMsg("j"))
	select {
	case <-f.ctx.Done():
	default:
		t.Error("the follower of the group that left the screen was not stopped")
	}
}

func TestDashboardLogBounded(t *testing.T) {
	src := &logFake{fakeSource: newFakeSource(demoSnapshot())}
	m := newTestModel(src, Options{}, 120, 50)
	m = withSnapshot(m, demoSnapshot())
	m = selectUnit(t, m, "demo-handoff.service")
	m = followSelected(t, m, "follower", func(m Model) bool { return m.log.started })
	gen := m.log.gen
	for i := 0; i < 3; i++ {
		lines := make([]unitlog.Line, 600)
		for j := range lines {
			lines[j] = unitlog.Line{Priority: -1, Message: "line"}
		}
		m = send(m, logLinesMsg{gen: gen, lines: lines})
	}
	if len(m.log.lines) != logKeep {
		t.Errorf("%d lines kept, want the ring buffer's %d", len(m.log.lines), logKeep)
	}
	// A stale follower's lines are dropped.
	m = send(m, logLinesMsg{gen: gen - 1, lines: []unitlog.Line{{Message: "stale"}}})
	if l := m.log.lines[len(m.log.lines)-1]; l.text == "stale" {
		t.Error("a line from a stopped follower was kept")
	}

	src2 := &logFake{fakeSource: newFakeSource(demoSnapshot()), unknown: true}
	m = newTestModel(src2, Options{}, 120, 50)
	m = withSnapshot(m, demoSnapshot())
	m = selectUnit(t, m, "demo-handoff.service")
	m = followSelected(t, m, "answer of a source with no log", func(m Model) bool { return m.log.started })
	if v := ansi.Strip(m.View()); !strings.Contains(v, "unknown: no journal and no log file found") {
		t.Errorf("no log source: want 'unknown':\n%s", v)
	}
}
