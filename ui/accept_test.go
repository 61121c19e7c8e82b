package ui

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"

	"github.com/fdtop/fdtop/inspect"
)

// TestAcceptVerdictShown: a restart of an Accept=yes socket unit, as the
// tracker makes it from a sequence recorded on a real 254 manager
// (inspect's testdata, TestRecordTraces "accept"), is drawn in the
// timeline and in the socket's detail pane with the tracker's own words,
// and the detail's second line says what an Accept=yes socket has
// instead of PIDs and a store.
func TestAcceptVerdictShown(t *testing.T) {
	f, err := os.Open("../inspect/testdata/traces/systemd254/accept.jsonl.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := inspect.NewTracker()
	var (
		evs  []inspect.Event
		snap *inspect.Snapshot
	)
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var s inspect.Step
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		if s.View != nil && s.View.Units == nil && snap == nil {
			snap = s.View.Snapshot
		}
		evs = append(evs, tr.Step(s)...)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	var last *inspect.Event
	for i := range evs {
		if evs[i].Type == inspect.EventHandoff && evs[i].Unit == "fdt-acc.socket" {
			last = &evs[i]
		}
	}
	if snap == nil || last == nil || last.Accept == nil {
		t.Fatalf("the recording has no full view or no Accept=yes verdict of fdt-acc.socket (%v)", last)
	}
	m := withSnapshot(newTestModel(newFakeSource(snap), Options{}, 200, 60), snap)
	m = send(m, eventsMsg{evs: evs})
	m = selectUnit(t, m, "fdt-acc.socket")
	view := ansi.Strip(m.View())
	h := *last.Handoff
	for _, want := range []string{
		inspect.Summary(h), // the detail pane and the timeline
		fmt.Sprintf("Accept=yes · instances before %d, stopped %d · job %s took %d ms", h.Accept.Instances, h.Accept.InstancesStopped, h.HandoffJob, h.DurationMs),
	} {
		if !strings.Contains(view, want) {
			t.Errorf("the view lacks %q:\n%s", want, view)
		}
	}
	if strings.Contains(view, "pid 0 → 0") {
		t.Errorf("the view shows PIDs of a socket unit:\n%s", view)
	}
}
