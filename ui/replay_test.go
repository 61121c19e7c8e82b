package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/teatest"
)

const recording = `{"time":"2025-03-14T09:26:53Z","unit":"demo-handoff.service","type":"job_started","job":"restart"}
{"time":"2025-03-14T09:26:53.01Z","unit":"demo-handoff.service","type":"state","active_state":"deactivating","sub_state":"stop-sigterm"}

{"time":"2025-03-14T09:26:53.5Z","unit":"demo-handoff.service","type":"main_pid","pid":303}
{"time":"2025-03-14T09:26:53.53Z","unit":"demo-handoff.service","type":"handoff","handoff_job":"restart","old_pid":202,"new_pid":303,"listeners_kept":1,"connections_preserved":4,"fds_carried":5,"no_main_pid_ms":480}
{"time":"2025-03-14T09:26:53.54Z","unit":"demo-handoff.service","type":"job_finished","job":"restart","result":"done"}
`

func TestParseRecording(t *testing.T) {
	evs, err := ParseRecording(strings.NewReader(recording))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 5 || evs[3].Handoff == nil || evs[3].Handoff.FDsCarried != 5 {
		t.Fatalf("parsed %d events, handoff %+v", len(evs), evs[3].Handoff)
	}
}

func TestParseRecordingErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"truncated", `{"time":"2025-03-14T09:26:53Z","type":"state"}` + "\n" + `{"time":"2025-03-14T09:26`, "line 2: not an fdtop event"},
		{"not json", "\n\nhello\n", "line 3: not an fdtop event"},
		{"no type", `{"time":"2025-03-14T09:26:53Z"}`, `line 1: event has no "type"`},
		{"two values", `{"type":"state"} {"type":"state"}`, "line 1: more than one JSON value"},
		{"bad time", `{"type":"state","time":"yesterday"}`, "line 1: not an fdtop event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRecording(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestReplayStepped(t *testing.T) {
	evs, err := ParseRecording(strings.NewReader(recording))
	if err != nil {
		t.Fatal(err)
	}
	m := NewReplayModel(evs, ReplayOptions{Stepped: true})
	step := func(m ReplayModel, msgs ...any) ReplayModel {
		for _, msg := range msgs {
			nm, _ := m.Update(msg)
			m = nm.(ReplayModel)
		}
		return m
	}
	m = step(m, replayTickMsg{gen: 0})
	if m.Shown() != 1 {
		t.Fatalf("stepped start shows %d events, want 1", m.Shown())
	}
	m = step(m, replayTickMsg{gen: 0}) // a stray tick does not advance a stepped replay
	if m.Shown() != 1 {
		t.Fatalf("tick advanced a stepped replay")
	}
	m = step(m, keyMsg("n"), keyMsg(" "), keyMsg("n"))
	if m.Shown() != 4 {
		t.Fatalf("after 3 steps: %d events, want 4", m.Shown())
	}
	v := m.View()
	checkFrame(t, v, 80, 24)
	requireGolden(t, v)
}

func TestReplayPlays(t *testing.T) {
	evs, err := ParseRecording(strings.NewReader(recording))
	if err != nil {
		t.Fatal(err)
	}
	tm := teatest.NewTestModel(t, NewReplayModel(evs, ReplayOptions{Speed: 8}), teatest.WithInitialTermSize(100, 20))
	waitFor(t, tm, "end of recording")
	if err := tm.Quit(); err != nil {
		t.Fatal(err)
	}
	fm := tm.FinalModel(t, teatest.WithFinalTimeout(20*time.Second)).(ReplayModel)
	if fm.Shown() != len(evs) {
		t.Errorf("shown %d of %d", fm.Shown(), len(evs))
	}
	if !strings.Contains(fm.View(), "✓ listener kept") {
		t.Error("verdict missing from the replay")
	}
}
