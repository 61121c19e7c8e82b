package ui

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/teatest"
)

const flowTimeout = 20 * time.Second

// waitFor waits until all of want have been drawn since the last wait
// (output read by one wait is not seen by the next).
func waitFor(t *testing.T, tm *teatest.TestModel, want ...string) {
	t.Helper()
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		for _, w := range want {
			if !bytes.Contains(b, []byte(w)) {
				return false
			}
		}
		return true
	}, teatest.WithDuration(flowTimeout), teatest.WithCheckInterval(10*time.Millisecond))
}

func typeKeys(tm *teatest.TestModel, ks ...string) {
	for _, k := range ks {
		tm.Send(keyMsg(k))
	}
}

func finalModel(t *testing.T, tm *teatest.TestModel) Model {
	t.Helper()
	if err := tm.Quit(); err != nil {
		t.Fatal(err)
	}
	return tm.FinalModel(t, teatest.WithFinalTimeout(flowTimeout)).(Model)
}

func TestFlowRestartShowsVerdict(t *testing.T) {
	src := newFakeSource(demoSnapshot())
	src.release = make(chan struct{})
	m := NewModel(src, Options{Title: "demo", Probe: true, FastInterval: 20 * time.Millisecond})
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(120, 40))

	waitFor(t, tm, "demo-plain.service")
	typeKeys(tm, "/", "h", "a", "n", "d", "enter", "down")
	typeKeys(tm, "r")
	waitFor(t, tm, "restart demo-handoff.service?")
	typeKeys(tm, "y")
	waitFor(t, tm, "◐ restart demo-handoff.service")
	// The UI stays live while the job runs.
	typeKeys(tm, "e")
	waitFor(t, tm, "explain on")
	close(src.release)
	waitFor(t, tm, "✓ listener kept", "restart demo-handoff.service: done")

	fm := finalModel(t, tm)
	want := []actCall{{ActionRestart, "demo-handoff.service", true}}
	if got := src.calls(); len(got) != 1 || got[0] != want[0] {
		t.Errorf("Act calls = %+v, want %+v", got, want)
	}
	if len(fm.jobs) != 0 {
		t.Errorf("jobs still running after the verdict: %v", fm.jobs)
	}
	if fm.handoffs["demo-handoff.service"] == nil {
		t.Error("handoff event not recorded for the detail pane")
	}
}

func TestFlowCancelAction(t *testing.T) {
	src := newFakeSource(demoSnapshot())
	tm := teatest.NewTestModel(t, NewModel(src, Options{}), teatest.WithInitialTermSize(80, 24))
	waitFor(t, tm, "demo-plain.service")
	typeKeys(tm, "s")
	waitFor(t, tm, "n/esc cancel")
	typeKeys(tm, "esc")
	waitFor(t, tm, "cancelled")
	fm := finalModel(t, tm)
	if fm.confirming || len(src.calls()) != 0 {
		t.Errorf("confirming=%v calls=%v after cancel", fm.confirming, src.calls())
	}
}

func TestFlowReadOnlyHasNoActionKeys(t *testing.T) {
	src := newFakeSource(demoSnapshot())
	tm := teatest.NewTestModel(t, NewModel(src, Options{ReadOnly: true}), teatest.WithInitialTermSize(100, 30))
	waitFor(t, tm, "demo-plain.service")
	typeKeys(tm, "r", "s", "S", "R", "t", "?")
	waitFor(t, tm, "action keys are disabled")
	fm := finalModel(t, tm)
	out, _ := io.ReadAll(tm.FinalOutput(t))
	if fm.confirming || len(src.calls()) != 0 {
		t.Errorf("read-only: confirming=%v calls=%v", fm.confirming, src.calls())
	}
	for _, word := range []string{"restart", "try-restart", "reload"} {
		if bytes.Contains(out, []byte(word)) {
			t.Errorf("read-only output mentions %q", word)
		}
	}
	if !strings.Contains(fm.View(), "read-only") {
		t.Error("header does not say read-only")
	}
}

func TestFlowFilter(t *testing.T) {
	src := newFakeSource(demoSnapshot())
	tm := teatest.NewTestModel(t, NewModel(src, Options{}), teatest.WithInitialTermSize(100, 30))
	waitFor(t, tm, "demo-plain.service")
	typeKeys(tm, "/", "7", "1", "0", "1", "enter")
	waitFor(t, tm, "/7101")
	fm := finalModel(t, tm)
	var units []string
	for _, r := range fm.list.rows {
		units = append(units, r.unit)
	}
	if got, want := strings.Join(units, " "), "demo-activated.socket demo-activated.service"; got != want {
		t.Errorf("filtered rows = %q, want %q", got, want)
	}
}

func TestFlowQuit(t *testing.T) {
	src := newFakeSource(demoSnapshot())
	tm := teatest.NewTestModel(t, NewModel(src, Options{}), teatest.WithInitialTermSize(80, 24))
	waitFor(t, tm, "demo-plain.service")
	tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("q")})
	tm.WaitFinished(t, teatest.WithFinalTimeout(flowTimeout))
}
