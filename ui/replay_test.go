package ui

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest"
)

// recording is a hand-written recording for what a real one does not
// hold: a blank line (skipped), and a short run whose stepped view is a
// golden file. TestReplayPlays plays the real recordings.
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
		{"truncated", `{"time":"2025-03-14T09:26:53Z","type":"state"}` + "\n" + `{"time":"2025-03-14T09:26`, "line 2: cut off (unexpected end of JSON input)"},
		{"not json", "\n\nhello\n", "line 3: not an fdtop event"},
		{"no type", `{"time":"2025-03-14T09:26:53Z"}`, `line 1: event has no "type"`},
		{"two values", `{"type":"state"} {"type":"state"}`, "line 1: more than one JSON value"},
		{"bad time", `{"type":"state","time":"yesterday"}`, "line 1: not an fdtop event"},
		{"overlong", `{"type":"state","message":"` + strings.Repeat("x", maxRecordLine) + `"}`, "line 1: longer than 4 MiB"},
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

// TestReplayPlays plays the real recordings (see recording_test.go) at 8×
// to their end, the last verdict (activated's) on screen.
func TestReplayPlays(t *testing.T) {
	for _, v := range recordingVersions {
		t.Run("systemd"+v, func(t *testing.T) {
			evs := recorded(t, v)
			tm := teatest.NewTestModel(t, NewReplayModel(evs, ReplayOptions{Speed: 8}), teatest.WithInitialTermSize(140, 20))
			waitFor(t, tm, "end of recording")
			if err := tm.Quit(); err != nil {
				t.Fatal(err)
			}
			fm := tm.FinalModel(t, teatest.WithFinalTimeout(20*time.Second)).(ReplayModel)
			if fm.Shown() != len(evs) {
				t.Errorf("shown %d of %d", fm.Shown(), len(evs))
			}
			if !strings.Contains(ansi.Strip(fm.View()), "✗ listener kept · 0/4 connections preserved") {
				t.Errorf("activated's verdict missing from the end of the replay:\n%s", ansi.Strip(fm.View()))
			}
		})
	}
}

// TestRecordReaderSkips: a recording with damaged lines (cut off by a
// crash, malformed, overlong, blank) plays every good event and counts the
// rest, naming the first.
func TestRecordReaderSkips(t *testing.T) {
	good := `{"time":"2025-03-14T09:26:53Z","unit":"a.service","type":"state"}`
	long := `{"type":"state","message":"` + strings.Repeat("x", maxRecordLine+10) + `"}`
	tests := []struct {
		name        string
		in          string
		events, bad int
		firstBad    string
	}{
		{"clean", good + "\n" + good + "\n", 2, 0, ""},
		{"cut last line", good + "\n" + good + "\n" + good[:30], 2, 1, "line 3: cut off"},
		{"malformed middle", good + "\nhello\n" + good + "\n", 2, 1, "line 2: not an fdtop event"},
		{"no type", good + "\n{}\n" + good, 2, 1, `line 2: event has no "type"`},
		{"overlong", good + "\n" + long + "\n" + good + "\n", 2, 1, "line 2: longer than 4 MiB"},
		{"overlong last, no newline", good + "\n" + long, 1, 1, "line 2: longer than 4 MiB"},
		{"blank lines and CRLF", "\n\n" + good + "\r\n\n" + good + "\n\n", 2, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := newRecordReader(strings.NewReader(tt.in))
			n := 0
			for {
				_, err := rr.next()
				var bad *badLine
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil && !errors.As(err, &bad) {
					t.Fatalf("read error: %v", err)
				}
				if err == nil {
					n++
				}
			}
			if n != tt.events || rr.skipped != tt.bad || !strings.HasPrefix(rr.firstBad, tt.firstBad) {
				t.Errorf("events %d skipped %d first %q; want %d, %d, %q", n, rr.skipped, rr.firstBad, tt.events, tt.bad, tt.firstBad)
			}
		})
	}
}

// TestRunReplayRefuses: a file that is not a recording, or holds no
// event, is refused before the terminal is taken, in one line.
func TestRunReplayRefuses(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", "the recording has no events"},
		{"blank", "\n\n", "the recording has no events"},
		{"text", strings.Repeat("this is not a recording\n", 20), "not an fdtop recording: line 1: not an fdtop event"},
		{"binary", "\x7fELF\x00\x01\x02" + strings.Repeat("\x00", 100), "not an fdtop recording: line 1:"},
		{"json of something else", `{"name":"x"}` + "\n", `not an fdtop recording: line 1: event has no "type"`},
		{"one huge line", strings.Repeat("x", 20<<20), "not an fdtop recording: line 1: longer than 4 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "rec.jsonl")
			if err := os.WriteFile(path, []byte(tt.in), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			err = RunReplay(context.Background(), f, ReplayOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error = %v, want one line containing %q", err, tt.want)
			}
		})
	}
}

// TestReplayStreamsDamaged plays a streamed recording with a malformed
// line and a cut last line to its end: every good event shown, the skipped
// lines in a visible note, the total from the count.
func TestReplayStreamsDamaged(t *testing.T) {
	in := strings.Replace(recording, "\n\n", "\nnot json\n", 1) + `{"time":"2025-03-14T09:26:54Z","type":"st`
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rr := newRecordReader(strings.NewReader(in))
	first, err := rr.first(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := newStreamingReplay(ctx, first, rr, countRecording(ctx, strings.NewReader(in)), ReplayOptions{Speed: 8})
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(160, 20))
	waitFor(t, tm, "end of recording")
	if err := tm.Quit(); err != nil {
		t.Fatal(err)
	}
	fm := tm.FinalModel(t, teatest.WithFinalTimeout(20*time.Second)).(ReplayModel)
	if fm.Shown() != 5 {
		t.Errorf("shown %d events, want 5", fm.Shown())
	}
	v := fm.View()
	if !strings.Contains(v, "5/5 events · end of recording") {
		t.Errorf("header lacks 5/5 and the end:\n%s", v)
	}
	if !strings.Contains(v, "! 2 unreadable lines skipped in the file (first: line 3: not an fdtop event") {
		t.Errorf("no note of the skipped lines:\n%s", v)
	}
}
