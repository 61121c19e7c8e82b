package ui

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"

	"github.com/fdtop/fdtop/inspect"
)

func requireGolden(t *testing.T, view string) {
	t.Helper()
	golden.RequireEqual(t, []byte(ansi.Strip(view)))
}

func TestViewGolden(t *testing.T) {
	// A real restart of demo-handoff on systemd 254 (the recording): up to
	// the old main process's exit while it runs, then the rest to the
	// verdict, and then plain's verdict.
	rec := restartOf(t, "254", "demo-handoff.service")
	restartEvents := append([]inspect.Event(nil), rec.started...)
	verdictEvents := []inspect.Event(nil)
	for i, e := range rec.rest {
		if e.Type == inspect.EventMainPID && e.PID == 0 {
			restartEvents = append(restartEvents, rec.rest[:i+1]...)
			verdictEvents = append(verdictEvents, rec.rest[i+1:]...)
			break
		}
	}
	if verdictEvents == nil {
		t.Fatal("the recorded restart has no exit of the old main process")
	}
	verdictEvents = append(verdictEvents, restartOf(t, "254", "demo-plain.service").handoff)
	// What the live model publishes as those events' signals arrive (the
	// snapshot is hand-written: a recording holds events, not snapshots).
	handoffAt := func(state, sub string, pid int) *inspect.Snapshot {
		snap := demoSnapshot()
		svc := &snap.Services[1]
		if svc.Unit != "demo-handoff.service" {
			t.Fatalf("fixture order changed: %s", svc.Unit)
		}
		svc.ActiveState, svc.SubState, svc.MainPID = state, sub, pid
		return snap
	}
	restarting := snapshotMsg{snap: handoffAt("deactivating", "stop-sigterm", 0), at: t0}
	restarted := snapshotMsg{snap: handoffAt("active", "running", rec.handoff.Handoff.NewPID), at: t0}
	degraded := demoSnapshot()
	degraded.Host.Unreadable = 12
	degraded.Host.Partial = true
	degraded.Warnings = []inspect.Warning{{Unit: "demo-handoff.service", Code: "fdstore-pinned", Message: "4 connections are held only by the fd store"}}

	tests := []struct {
		name string
		w, h int
		opts Options
		snap *inspect.Snapshot
		prep func(t *testing.T, m Model) Model
	}{
		{name: "empty", w: 80, h: 24},
		{name: "empty_host", w: 80, h: 24, snap: &inspect.Snapshot{Time: t0, Manager: inspect.Manager{Scope: "system", Version: "252"}}},
		{name: "dashboard", w: 80, h: 24, opts: Options{Title: "demo", Probe: true}, snap: demoSnapshot()},
		{name: "dashboard_wide", w: 140, h: 40, opts: Options{Title: "demo"}, snap: demoSnapshot(), prep: func(t *testing.T, m Model) Model {
			return selectUnit(t, m, "demo-handoff.service")
		}},
		{name: "degraded", w: 100, h: 30, snap: degraded, prep: func(t *testing.T, m Model) Model {
			m = send(m, eventsMsg{evs: []inspect.Event{{Time: t0, Type: inspect.EventDisconnected}}})
			return selectUnit(t, m, "demo-handoff.service")
		}},
		{name: "handoff_in_progress", w: 100, h: 30, opts: Options{Probe: true}, snap: demoSnapshot(), prep: func(t *testing.T, m Model) Model {
			m = selectUnit(t, m, "demo-handoff.service")
			m = send(m, keyMsg("r"), keyMsg("y"))
			m = send(m, confirmedMsg{action: ActionRestart, unit: "demo-handoff.service", probe: true})
			return send(m, eventsMsg{evs: restartEvents}, restarting)
		}},
		{name: "verdict", w: 120, h: 36, opts: Options{Probe: true}, snap: demoSnapshot(), prep: func(t *testing.T, m Model) Model {
			m = selectUnit(t, m, "demo-handoff.service")
			m = send(m, eventsMsg{evs: restartEvents}, restarting, eventsMsg{evs: verdictEvents}, restarted)
			return send(m, actionDoneMsg{action: ActionRestart, unit: "demo-handoff.service", res: inspect.ActionResult{Job: "42", Result: "done"}, elapsed: 612 * time.Millisecond})
		}},
		{name: "confirm_stop", w: 80, h: 24, snap: demoSnapshot(), prep: func(t *testing.T, m Model) Model {
			return send(selectUnit(t, m, "demo-handoff.service"), keyMsg("s"))
		}},
		{name: "confirm_restart_plain", w: 80, h: 24, opts: Options{Probe: true}, snap: demoSnapshot(), prep: func(t *testing.T, m Model) Model {
			return send(selectUnit(t, m, "demo-plain.service"), keyMsg("r"))
		}},
		{name: "access_denied", w: 80, h: 24, snap: demoSnapshot(), prep: func(t *testing.T, m Model) Model {
			return send(m, actionDoneMsg{action: ActionStop, unit: "demo-plain.service", err: errors.New("access denied: run as root or check polkit")})
		}},
		{name: "help", w: 80, h: 24, snap: demoSnapshot(), prep: func(t *testing.T, m Model) Model { return send(m, keyMsg("?")) }},
		{name: "help_read_only", w: 80, h: 24, opts: Options{ReadOnly: true}, snap: demoSnapshot(), prep: func(t *testing.T, m Model) Model { return send(m, keyMsg("?")) }},
		{name: "explain", w: 100, h: 50, snap: demoSnapshot(), prep: func(t *testing.T, m Model) Model {
			return send(selectUnit(t, m, "demo-handoff.service"), keyMsg("e"))
		}},
		{name: "filter", w: 80, h: 24, snap: demoSnapshot(), prep: func(t *testing.T, m Model) Model {
			return send(m, keys("/", "7", "1", "0", "2")...)
		}},
		{name: "compact", w: 60, h: 16, snap: demoSnapshot()},
		{name: "compact_detail", w: 50, h: 14, snap: demoSnapshot(), prep: func(t *testing.T, m Model) Model {
			return send(selectUnit(t, m, "demo-plain.service"), keyMsg("enter"))
		}},
		{name: "tiny", w: 30, h: 8, snap: demoSnapshot()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestModel(newFakeSource(tt.snap), tt.opts, tt.w, tt.h)
			if tt.snap != nil {
				m = withSnapshot(m, tt.snap)
			}
			if tt.prep != nil {
				m = tt.prep(t, m)
			}
			v := m.View()
			checkFrame(t, v, tt.w, tt.h)
			requireGolden(t, v)
		})
	}
}

func TestViewDemoCounters(t *testing.T) {
	src := newFakeSource(demoSnapshot())
	m := newTestModel(demoCountersSource{src}, Options{Title: "demo"}, 100, 40)
	m = send(m, snapshotMsg{snap: demoSnapshot(), at: t0, demo: map[string]DemoCounters{
		"demo-plain.service": {Conns: 4, Connected: 3, Sent: 1200, Replies: 1190, Refused: 37, Dropped: 4, CounterResets: 4, LastPID: 301, MaxLatency: 512 * time.Millisecond},
	}})
	m = selectUnit(t, m, "demo-plain.service")
	m = send(m, keyMsg("tab"))
	v := m.View()
	checkFrame(t, v, 100, 40)
	requireGolden(t, v)
}

// checkFrame asserts the frame is exactly h lines of at most w cells.
func checkFrame(t *testing.T, v string, w, h int) {
	t.Helper()
	lines := strings.Split(v, "\n")
	if h > 0 && len(lines) != h {
		t.Errorf("frame has %d lines, want %d", len(lines), h)
	}
	for i, l := range lines {
		if n := ansi.StringWidth(l); n > w {
			t.Errorf("line %d is %d cells wide, want <= %d: %q", i, n, w, ansi.Strip(l))
		}
	}
}

func TestViewAnySize(t *testing.T) {
	snap := demoSnapshot()
	for w := 0; w <= 150; w += 7 {
		for h := 0; h <= 50; h += 3 {
			m := newTestModel(newFakeSource(snap), Options{}, w, h)
			m = withSnapshot(m, snap)
			for _, k := range []string{"", "e", "tab", "?", "?", "s"} {
				if k != "" {
					m = send(m, keyMsg(k))
				}
				v := m.View()
				if w > 0 && h > 0 {
					checkFrame(t, v, w, h)
				}
			}
		}
	}
}
