package ui

import (
	"fmt"
	"testing"

	"github.com/fdtop/fdtop/inspect"
)

// benchModel is a dashboard with nUnits units and nConns connections, a
// full timeline, and a busy service selected. The events are hand-written:
// a benchmark needs hundreds of units and a full timeline, which the
// demo's recordings (3 services) do not have.
func benchModel(b *testing.B, nUnits, nConns int, w, h int) Model {
	snap := bigSnapshot(nUnits, nConns)
	m := newTestModel(newFakeSource(snap), Options{}, w, h)
	m = withSnapshot(m, snap)
	evs := make([]inspect.Event, maxTimeline)
	for i := range evs {
		evs[i] = inspect.Event{Time: t0, Unit: fmt.Sprintf("svc%03d.service", i%250), Type: inspect.EventState, ActiveState: "active", SubState: "running"}
		if i%10 == 0 {
			evs[i] = inspect.Event{Time: t0, Unit: "svc001.service", Type: inspect.EventHandoff, Handoff: goodHandoff(true)}
		}
	}
	m = send(m, eventsMsg{evs: evs})
	m = send(m, keys("down", "down", "down")...)
	return m
}

func BenchmarkView(b *testing.B) {
	for _, size := range []struct{ w, h int }{{80, 24}, {200, 60}} {
		b.Run(fmt.Sprintf("500units_10kconns_%dx%d", size.w, size.h), func(b *testing.B) {
			m := benchModel(b, 500, 10000, size.w, size.h)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				_ = m.View()
			}
		})
	}
}

// BenchmarkSnapshotApply measures what a host scan costs the UI: index,
// list rows, detail lines.
func BenchmarkSnapshotApply(b *testing.B) {
	m := benchModel(b, 500, 10000, 200, 60)
	snap := bigSnapshot(500, 10000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		m = send(m, snapshotMsg{snap: snap, at: t0})
	}
}

// BenchmarkEventBurst measures a burst of 256 events (the most one
// message carries).
func BenchmarkEventBurst(b *testing.B) {
	m := benchModel(b, 500, 10000, 200, 60)
	evs := make([]inspect.Event, maxEventBatch)
	for i := range evs {
		evs[i] = inspect.Event{Time: t0, Unit: fmt.Sprintf("svc%03d.service", i), Type: inspect.EventMainPID, PID: i}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		m = send(m, eventsMsg{evs: evs})
	}
}
