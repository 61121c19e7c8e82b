package ui

import (
	"context"
	"fmt"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/termsafe"
)

// ActionFix is fdtop doctor's fix for a socket unit that hit its trigger
// limit: reset its failed state and start it again.
const ActionFix Action = "reset-failed and start"

// DoctorSource is implemented by a source that runs fdtop doctor's checks
// (the same findings `fdtop doctor` prints).
type DoctorSource interface {
	// Findings runs the checks on the units the dashboard shows.
	Findings(ctx context.Context) ([]inspect.Finding, error)
}

// doctorEvery is how often at most the dashboard runs the doctor's checks
// (on the model's picture: they read the units' results and the logs),
// and only when the picture changed since the last run.
const doctorEvery = 10 * time.Second

// findingsMsg is a doctor run's reply.
type findingsMsg struct {
	findings []inspect.Finding
	err      error
	at       time.Time
}

// doctorState is what the root keeps of the doctor's last run.
type doctorState struct {
	busy     bool
	at       time.Time
	snap     *inspect.Snapshot // the picture shown when it last ran
	err      string
	findings map[string][]inspect.Finding // by unit
}

// runDoctor starts a doctor run unless one is running or the last is
// recent (force skips the wait: after an action).
func (m *Model) runDoctor(force bool) tea.Cmd {
	ds, ok := m.src.(DoctorSource)
	if !ok || m.doctor.busy {
		return nil
	}
	if !force && !m.doctor.at.IsZero() && (m.now().Sub(m.doctor.at) < doctorEvery || m.snap == m.doctor.snap) {
		return nil // ran lately, or nothing changed since
	}
	m.doctor.busy = true
	m.doctor.snap = m.snap
	ctx := m.ctx
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
		defer cancel()
		fs, err := ds.Findings(ctx)
		return findingsMsg{findings: fs, err: err, at: time.Now()}
	}
}

// doctorBehindFilling reports that the doctor last looked at a picture
// still filling and the picture shown is whole: what it could not check
// then is checkable now, without waiting for doctorEvery.
func (m *Model) doctorBehindFilling() bool {
	return m.doctor.snap != nil && m.doctor.snap.Host.Filling && m.snap != nil && !m.snap.Host.Filling
}

// applyFindings keeps a doctor run's findings (an error keeps the last
// ones and says so in the detail pane).
func (m *Model) applyFindings(msg findingsMsg) {
	m.doctor.busy = false
	m.doctor.at = msg.at
	if msg.err != nil {
		m.doctor.err = msg.err.Error()
	} else {
		m.doctor.err = ""
		m.doctor.findings = map[string][]inspect.Finding{}
		for _, f := range msg.findings {
			m.doctor.findings[f.Unit] = append(m.doctor.findings[f.Unit], f)
		}
	}
	m.updateDetail()
}

// groupFindings returns the findings about the group's units.
func (m *Model) groupFindings(g *unitGroup) []inspect.Finding {
	if g == nil {
		return nil
	}
	var out []inspect.Finding
	for _, u := range g.units() {
		out = append(out, m.doctor.findings[u]...)
	}
	return out
}

// askFix opens the confirmation for the trigger-limit fix of the selected
// group's socket, or says why there is none.
func (m *Model) askFix() {
	var target *inspect.Finding
	for _, f := range m.groupFindings(m.list.SelectedGroup()) {
		if f.Code == "trigger-limit-hit" {
			target = &f
			break
		}
	}
	if target == nil {
		m.status = status{text: "nothing to fix here: no socket of this unit hit its trigger limit", err: true}
		return
	}
	if j, ok := m.jobs[target.Unit]; ok {
		m.status = status{text: fmt.Sprintf("%s is already running a %s job", target.Unit, j.action), err: true}
		return
	}
	preview := []string{
		"the doctor found: " + termsafe.String(target.Problem),
		"runs: " + termsafe.String(target.Fix),
		"the socket listens again; if the service still does not take its connections, it will hit the limit again",
	}
	m.confirm = newConfirmModel(m.st, ActionFix, unitRef{Unit: target.Unit}, preview, false)
	m.confirming = true
	m.relayout()
}

// findings writes the doctor's findings about the group.
func (b *detailBuilder) findings(fs []inspect.Finding, errText string, fixKey string, filling bool) {
	if len(fs) == 0 && errText == "" && !filling {
		return
	}
	b.section("Doctor", "What fdtop doctor finds wrong with these units, the evidence and the fix; the same as `fdtop doctor` prints.")
	if errText != "" {
		b.add("    " + b.st.Detail.Warning.Render("doctor: "+termsafe.String(errText)))
	}
	if filling {
		for _, l := range wrap(inspect.FillingNote, max(b.width-6, 20)) {
			b.muted("    " + l)
		}
	}
	for _, f := range fs {
		b.add("    " + b.st.Detail.Warning.Render("! "+termsafe.String(f.Unit)+": "+f.Code))
		for _, l := range wrap(termsafe.String(f.Problem), max(b.width-8, 20)) {
			b.add("      " + l)
		}
		for _, e := range f.Evidence {
			for i, l := range wrap(termsafe.String(e), max(b.width-10, 20)) {
				indent := "      · "
				if i > 0 {
					indent = "        "
				}
				b.add(indent + b.st.Detail.Muted.Render(l))
			}
		}
		fix := "fix: " + termsafe.String(f.Fix)
		if f.Code == "trigger-limit-hit" && fixKey != "" {
			fix += " (" + fixKey + " runs it)"
		}
		for _, l := range wrap(fix, max(b.width-8, 20)) {
			b.add("      " + b.st.Detail.Explain.Render(l))
		}
	}
}
