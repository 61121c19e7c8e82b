package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/fdtop/fdtop/inspect"
)

// TestTour walks the demo tour: each step names its service and what to
// press, the next unlocks when that service's restart verdict is in (in
// any order), the last points at the scoreboard, and x ends the tour
// without taking any other key. Every frame keeps the terminal's size.
func TestTour(t *testing.T) {
	src := newFakeSource(demoSnapshot())
	m := newTestModel(demoCountersSource{src}, Options{Title: "demo", Tour: true}, 120, 40)
	m = send(m, snapshotMsg{snap: demoSnapshot(), at: t0, demo: map[string]DemoCounters{"demo-plain.service": {Conns: 4}}})
	view := func() string {
		t.Helper()
		v := m.View()
		checkFrame(t, v, 120, 40)
		return strings.Join(strings.Fields(ansi.Strip(v)), " ") // wrapped lines joined
	}
	verdict := func(unit string, h inspect.Handoff) {
		m = send(m, eventsMsg{evs: []inspect.Event{{Time: t0.Add(time.Second), Unit: unit, Type: inspect.EventHandoff, Handoff: &h}}})
	}
	if v := view(); !strings.Contains(v, "Tour · step 1/4 · plain") || !strings.Contains(v, "Select demo-plain.service (↑↓), press r, then y.") || !strings.Contains(v, "x end tour") {
		t.Fatalf("first step not shown:\n%s", v)
	}
	// A verdict of another service does not skip the current step.
	verdict("demo-handoff.service", inspect.Handoff{ListenersKept: 1, ConnectionsPreserved: 4})
	if v := view(); !strings.Contains(v, "Tour · step 1/4 · plain") {
		t.Fatalf("the tour left step 1 without its verdict:\n%s", v)
	}
	verdict("demo-plain.service", inspect.Handoff{ListenersReplaced: 1, ConnectionsDropped: 4})
	v := view()
	if !strings.Contains(v, "Tour · step 2/4 · activated") || !strings.Contains(v, "plain: ✗ listener replaced") {
		t.Fatalf("step 2 with plain's verdict not shown:\n%s", v)
	}
	verdict("demo-activated.service", inspect.Handoff{ListenersKept: 1, ConnectionsDropped: 4})
	// handoff's verdict came earlier: the next step is stored.
	if v := view(); !strings.Contains(v, "Tour · step 4/4 · stored") || !strings.Contains(v, "sd_listen_fds_with_names") {
		t.Fatalf("step 4 not shown:\n%s", v)
	}
	verdict("demo-stored.service", inspect.Handoff{ListenersKept: 1, ListenersFromStore: []string{"listener"}, ConnectionsDropped: 4})
	if v := view(); !strings.Contains(v, "Tour · done") || !strings.Contains(v, "scoreboard") {
		t.Fatalf("the end of the tour not shown:\n%s", v)
	}
	// x ends it; the panel's rows go back to the panes.
	m = send(m, keyMsg("x"))
	if v := view(); strings.Contains(v, "Tour ·") || strings.Contains(v, "x end tour") {
		t.Fatalf("x did not end the tour:\n%s", v)
	}
}

// TestTourOff: without --tour there is no panel and x does nothing.
func TestTourOff(t *testing.T) {
	src := newFakeSource(demoSnapshot())
	m := newTestModel(demoCountersSource{src}, Options{Title: "demo"}, 120, 40)
	m = send(m, snapshotMsg{snap: demoSnapshot(), at: t0}, keyMsg("x"))
	if v := ansi.Strip(m.View()); strings.Contains(v, "Tour ·") {
		t.Fatalf("a tour panel without --tour:\n%s", v)
	}
}
