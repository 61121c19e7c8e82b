package ui

import (
	"context"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/fdtop/fdtop/inspect"
)

// doctorFake is a fake source that also runs the doctor.
type doctorFake struct {
	*fakeSource
	findings []inspect.Finding
}

func (d doctorFake) Findings(ctx context.Context) ([]inspect.Finding, error) { return d.findings, nil }

// runCmd runs cmd (and the commands of a batch) and returns the messages
// of the given type T.
func collectMsgs(cmd tea.Cmd) []tea.Msg {
	if cmd == nil {
		return nil
	}
	msg := cmd()
	if b, ok := msg.(tea.BatchMsg); ok {
		var out []tea.Msg
		for _, c := range b {
			out = append(out, collectMsgs(c)...)
		}
		return out
	}
	return []tea.Msg{msg}
}

func TestDashboardDoctor(t *testing.T) {
	trig := inspect.Finding{Unit: "demo-activated.socket", Code: "trigger-limit-hit",
		Problem:  "socket stopped after triggering its service too often",
		Evidence: []string{"ActiveState=failed SubState=failed Result=trigger-limit-hit", "log (journal): demo-activated.socket: Trigger limit hit, refusing further activation.\x1b[2J"},
		Fix:      "systemctl --user reset-failed demo-activated.socket && systemctl --user start demo-activated.socket"}
	for _, ro := range []bool{false, true} {
		name := "actions"
		if ro {
			name = "read-only"
		}
		t.Run(name, func(t *testing.T) {
			src := doctorFake{newFakeSource(demoSnapshot()), []inspect.Finding{trig}}
			m := newTestModel(src, Options{ReadOnly: ro}, 120, 50)
			m = withSnapshot(m, demoSnapshot())
			cmd := m.runDoctor(false)
			if cmd == nil {
				t.Fatal("no doctor run")
			}
			if again := m.runDoctor(false); again != nil {
				t.Error("a second doctor run while one is busy")
			}
			m = send(m, cmd())
			if again := m.runDoctor(false); again != nil {
				t.Error("a doctor run right after the last one (want one per 10 s)")
			}
			m = selectUnit(t, m, "demo-activated.service") // the socket's group
			v := ansi.Strip(m.View())
			for _, want := range []string{"Doctor", "! demo-activated.socket: trigger-limit-hit", "Trigger limit hit", "· ActiveState=failed", "fix: systemctl --user reset-failed"} {
				if !strings.Contains(v, want) {
					t.Errorf("detail lacks %q:\n%s", want, v)
				}
			}
			if strings.Contains(m.View(), "\x1b[2J") {
				t.Error("an escape sequence from a log line reached the screen")
			}
			if got := strings.Contains(v, "(F runs it)"); got == ro {
				t.Errorf("read-only %v: 'F runs it' shown %v", ro, got)
			}

			nm, _ := m.Update(keyMsg("F"))
			m = nm.(Model)
			if ro {
				if m.confirming {
					t.Fatal("read-only: F opened a confirmation")
				}
				return
			}
			if !m.confirming || !strings.Contains(ansi.Strip(m.View()), "reset-failed and start demo-activated.socket?") {
				t.Fatalf("F: no confirmation for the socket:\n%s", ansi.Strip(m.View()))
			}
			nm, cmd = m.Update(keyMsg("y"))
			m = nm.(Model)
			var acted bool
			for _, msg := range collectMsgs(cmd) {
				nm, cmd2 := m.Update(msg)
				m = nm.(Model)
				for _, msg2 := range collectMsgs(cmd2) {
					if _, ok := msg2.(actionDoneMsg); ok {
						acted = true
					}
				}
			}
			src.mu.Lock()
			acts := src.acts
			src.mu.Unlock()
			if !acted || len(acts) != 1 || acts[0].action != ActionFix || acts[0].unit != "demo-activated.socket" || acts[0].probe {
				t.Errorf("acts %+v (done %v), want one fix of demo-activated.socket without the gap meter", acts, acted)
			}
		})
	}

	t.Run("nothing to fix", func(t *testing.T) {
		src := doctorFake{newFakeSource(demoSnapshot()), nil}
		m := newTestModel(src, Options{}, 120, 50)
		m = withSnapshot(m, demoSnapshot())
		m = send(m, m.runDoctor(false)())
		m = selectUnit(t, m, "demo-handoff.service")
		m = send(m, keyMsg("F"))
		if m.confirming || !strings.Contains(ansi.Strip(m.View()), "nothing to fix here") {
			t.Errorf("F without a finding:\n%s", ansi.Strip(m.View()))
		}
		if strings.Contains(ansi.Strip(m.View()), "Doctor") {
			t.Error("a Doctor section without findings")
		}
	})
}
