package ui

import (
	"fmt"
	"strings"

	"compress/gzip"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/charmbracelet/x/ansi"

	"github.com/fdtop/fdtop/inspect"
)

// The ui tests feed the dashboard what inspect really emits: recordings
// of `fdtop watch --probe --record` on the demo under real systemd 252 and
// 254 managers (testdata/recordings/systemdNNN.jsonl.gz: a daemon-reload,
// then one restart each of demo-handoff, demo-plain and demo-activated
// with 4 clients on each). They are made by TestRecordUIFixtures in
// cmd/fdtop:
//
//	FDTOP_RECORD_FIXTURES=1 FDTOP_SYSTEMD_254=$(demo/scripts/fetch-systemd-254.sh | tail -1) \
//	    go test -count=1 -run TestRecordUIFixtures ./cmd/fdtop/
//
// The tests check what does not change between two recordings (the
// verdicts' words, grades and counts, the order of events); golden views
// drawn from a recording show its PIDs and times, so remaking the
// recordings means `go test ./ui/ -run TestViewGolden -update` and
// looking at the diff. Events are hand-written only where a recording
// cannot hold the case; each such place says why.

// recordingVersions are the systemd versions recorded.
var recordingVersions = []string{"252", "254"}

var (
	recordingsOnce sync.Once
	recordings     map[string][]inspect.Event
	recordingsErr  error
)

// recorded returns a copy of the events recorded on systemd version (a
// replay reuses the slice it is given).
func recorded(t testing.TB, version string) []inspect.Event {
	t.Helper()
	evs, err := loadRecording(version)
	if err != nil {
		t.Fatal(err)
	}
	return append([]inspect.Event(nil), evs...)
}

func loadRecording(version string) ([]inspect.Event, error) {
	recordingsOnce.Do(func() {
		recordings = map[string][]inspect.Event{}
		for _, v := range recordingVersions {
			f, err := os.Open(filepath.Join("testdata", "recordings", "systemd"+v+".jsonl.gz"))
			if err != nil {
				recordingsErr = err
				return
			}
			zr, err := gzip.NewReader(f)
			if err != nil {
				f.Close()
				recordingsErr = err
				return
			}
			evs, err := ParseRecording(zr)
			f.Close()
			if err != nil {
				recordingsErr = err
				return
			}
			recordings[v] = evs
		}
	})
	return recordings[version], recordingsErr
}

// recordedRestart is the recorded restart of unit on version: its events
// from the job's start to its verdict and the job's end, split where the
// job starts running (the first event after job_started), and the handoff
// event itself.
type recordedRestart struct {
	started []inspect.Event // job_started and what came with it
	rest    []inspect.Event // up to and including the handoff and job_finished
	handoff inspect.Event
	jobID   uint32
}

// restartOf finds unit's restart in the recording of version.
func restartOf(t testing.TB, version, unit string) recordedRestart {
	t.Helper()
	evs := recorded(t, version)
	r, ok := findRestart(evs, unit)
	if !ok {
		t.Fatalf("the systemd %s recording has no whole restart of %s", version, unit)
	}
	return r
}

func findRestart(evs []inspect.Event, unit string) (recordedRestart, bool) {
	var r recordedRestart
	start := -1
	for i, e := range evs {
		if e.Unit == unit && e.Type == inspect.EventJobStarted {
			start, r.jobID = i, e.JobID
			break
		}
	}
	if start < 0 {
		return r, false
	}
	r.started = evs[start : start+1]
	var handoff, finished bool
	for _, e := range evs[start+1:] {
		if e.Unit != unit {
			continue
		}
		r.rest = append(r.rest, e)
		switch {
		case e.Type == inspect.EventHandoff:
			handoff, r.handoff = true, e
		case e.Type == inspect.EventJobFinished && e.JobID == r.jobID:
			finished = true
		}
		if handoff && finished {
			return r, true
		}
	}
	return r, false
}

// TestRecordingOnDashboard plays each whole recording into the dashboard
// as the live model delivers events (in batches): every event is in the
// timeline in the recorded order, with its time never going backwards and
// the words fdtop watch recorded for it; each restart's verdict reaches
// the detail pane of its unit (the last handoff, old and new PID).
func TestRecordingOnDashboard(t *testing.T) {
	for _, v := range recordingVersions {
		t.Run("systemd"+v, func(t *testing.T) {
			evs := recorded(t, v)
			m := newTestModel(newFakeSource(demoSnapshot()), Options{Title: "demo"}, 160, 60)
			m = withSnapshot(m, demoSnapshot())
			for i := 0; i < len(evs); i += 7 { // bursts of a few, as signals come
				m = send(m, eventsMsg{evs: evs[i:min(i+7, len(evs))]})
			}
			if got := m.timeline.Len(); got != len(evs) {
				t.Fatalf("timeline holds %d events, the recording %d", got, len(evs))
			}
			var last string
			for i, e := range m.timeline.entries {
				ev := evs[i]
				if e.time < last {
					t.Errorf("entry %d at %s after %s: times go backwards", i, e.time, last)
				}
				last = e.time
				if ev.Type != inspect.EventHandoff && ev.Message != "" && e.text != ev.Message {
					t.Errorf("entry %d (%s): the timeline says %q, fdtop watch recorded %q", i, ev.Type, e.text, ev.Message)
				}
			}
			for _, u := range []string{"demo-handoff.service", "demo-plain.service", "demo-activated.service"} {
				h := restartOf(t, v, u).handoff
				if got := m.handoffs[u]; got == nil || got.Handoff.NewPID != h.Handoff.NewPID {
					t.Errorf("%s: the dashboard's last handoff is %+v, want the recorded one (pid %d → %d)", u, got, h.Handoff.OldPID, h.Handoff.NewPID)
					continue
				}
				view := ansi.Strip(selectUnit(t, m, u).View())
				_, verdict := Verdict(h.Handoff)
				pids := fmt.Sprintf("pid %d → %d", h.Handoff.OldPID, h.Handoff.NewPID)
				if !strings.Contains(view, "Last handoff") || !strings.Contains(view, pids) || !strings.Contains(view, verdict[:20]) {
					t.Errorf("%s: the detail does not show the last handoff (%s, %q):\n%s", u, pids, verdict, view)
				}
			}
		})
	}
}
