package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest"

	"github.com/fdtop/fdtop/inspect"
)

// fedSource is a fakeSource whose pictures the test sends, one at a time.
type fedSource struct {
	*fakeSource
	updates chan Update
}

func (f *fedSource) Updates() <-chan Update { return f.updates }

// TestFlowFillingThenWhole: the live model's first picture (its units
// read from their own processes, inspect.MarkFilling) is drawn at once and
// the header says it is still filling, the connections a lower bound, and
// a listener's holders are not given as all of them; the host-wide
// picture that follows drops all of that.
func TestFlowFillingThenWhole(t *testing.T) {
	src := &fedSource{fakeSource: newFakeSource(nil), updates: make(chan Update, 1)}
	tm := teatest.NewTestModel(t, NewModel(src, Options{Title: "host"}), teatest.WithInitialTermSize(160, 40))

	src.updates <- Update{Snapshot: inspect.MarkFilling(demoSnapshot()), At: t0}
	waitFor(t, tm, "demo-plain.service", "still filling: holders and connections outside the units not read yet", "≥12 conns")

	src.updates <- Update{Snapshot: demoSnapshot(), At: t0.Add(time.Second)}
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		// Drawn afresh without the banner: the counts line again, no
		// filling.
		return strings.Contains(string(b), "12 conns") && !strings.Contains(string(b), "still filling")
	}, teatest.WithDuration(flowTimeout), teatest.WithCheckInterval(10*time.Millisecond))
	fm := finalModel(t, tm)
	if v := ansi.Strip(fm.header.View()); strings.Contains(v, "filling") || strings.Contains(v, "≥") {
		t.Errorf("header after the host-wide picture:\n%s", v)
	}
}

// TestDetailWhileFilling: a listener's holders, while the picture is
// still filling, are said to be short of the processes outside the units,
// not of unreadable ones; in the whole picture nothing is said.
func TestDetailWhileFilling(t *testing.T) {
	filling := inspect.MarkFilling(demoSnapshot())
	for _, tt := range []struct {
		name    string
		snap    *inspect.Snapshot
		want    string
		notWant []string
	}{
		{"filling", filling, "processes outside the units not read yet", []string{"processes not readable"}},
		{"whole", demoSnapshot(), "", []string{"not read yet", "processes not readable"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := withSnapshot(newTestModel(newFakeSource(tt.snap), Options{}, 160, 60), tt.snap)
			m = selectUnit(t, m, "demo-handoff.socket")
			v := ansi.Strip(m.detail.View())
			if tt.want != "" && !strings.Contains(v, tt.want) {
				t.Errorf("detail lacks %q:\n%s", tt.want, v)
			}
			for _, n := range tt.notWant {
				if strings.Contains(v, n) {
					t.Errorf("detail says %q:\n%s", n, v)
				}
			}
		})
	}
}

// TestDoctorWhileFilling: the doctor's run on a picture still filling is
// said to have left the holders outside the units unchecked; the whole
// picture has the doctor run again at once (not doctorEvery later), and
// its findings no longer carry that note.
func TestDoctorWhileFilling(t *testing.T) {
	src := doctorFake{newFakeSource(nil), nil}
	m := newTestModel(src, Options{}, 160, 60)
	m = withSnapshot(m, inspect.MarkFilling(demoSnapshot()))
	m = selectUnit(t, m, "demo-handoff.socket")
	cmd := m.runDoctor(false)
	if cmd == nil {
		t.Fatal("no doctor run on the picture still filling")
	}
	m = send(m, cmd())
	if v := ansi.Strip(m.detail.View()); !strings.Contains(v, "not checked yet") {
		t.Errorf("the doctor ran on a picture still filling and the detail does not say what it left unchecked:\n%s", v)
	}

	nm, cmd := m.Update(snapshotMsg{snap: demoSnapshot(), at: t0.Add(time.Second)})
	m = nm.(Model)
	var found bool
	for _, msg := range collectMsgs(cmd) {
		if f, ok := msg.(findingsMsg); ok {
			found = true
			m = send(m, f)
		}
	}
	if !found {
		t.Fatal("the whole picture did not have the doctor run again")
	}
	if v := ansi.Strip(m.detail.View()); strings.Contains(v, "not checked yet") {
		t.Errorf("after the doctor ran on the whole picture, the detail still says:\n%s", v)
	}
}

// TestImpactWhileFilling: the confirmation of an action on the picture
// still filling says what is not read yet and that the job waits for the
// host-wide pass; on the whole picture it does not.
func TestImpactWhileFilling(t *testing.T) {
	ref := unitRef{Unit: "demo-handoff.service"}
	for _, tt := range []struct {
		name string
		snap *inspect.Snapshot
		want bool
	}{
		{"filling", inspect.MarkFilling(demoSnapshot()), true},
		{"whole", demoSnapshot(), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(impactPreview(buildIndex(tt.snap, nil), ActionRestart, ref), "\n")
			if has := strings.Contains(got, "the job starts once the host-wide pass is in"); has != tt.want {
				t.Errorf("restart preview says the job waits for the host-wide pass: %v, want %v:\n%s", has, tt.want, got)
			}
		})
	}
}
