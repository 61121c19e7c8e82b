package ui

import (
	"context"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/fdtop/fdtop/inspect"
)

// snapshotTimeout bounds one scan.
const snapshotTimeout = 30 * time.Second

// maxEventBatch bounds how many queued events one message carries.
const maxEventBatch = 256

// snapshotMsg is a scan's reply. id orders replies: one older than the
// last applied is stale and dropped.
type snapshotMsg struct {
	id    uint64
	full  bool
	units []string
	snap  *inspect.Snapshot
	demo  map[string]DemoCounters
	err   error
	at    time.Time
}

// eventsMsg carries a burst of timeline events; closed is set when the
// source's channel was closed.
type eventsMsg struct {
	evs    []inspect.Event
	closed bool
	at     time.Time
}

// fastTickMsg asks for a rescan of the units on screen.
type fastTickMsg struct{}

// fullTickMsg asks for a rescan of the host.
type fullTickMsg struct{}

// actionDoneMsg is the end of a job started from the UI.
type actionDoneMsg struct {
	action  Action
	unit    string
	res     ActionResult
	err     error
	elapsed time.Duration
}

// snapshotCmd scans in the background; everything it uses is captured by
// value.
func snapshotCmd(ctx context.Context, src Source, id uint64, full bool, units []string) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
		defer cancel()
		var scope []string
		if !full {
			scope = units
		}
		snap, err := src.Snapshot(ctx, scope)
		msg := snapshotMsg{id: id, full: full, units: units, snap: snap, err: err, at: time.Now()}
		if ds, ok := src.(DemoSource); ok {
			msg.demo = ds.DemoCounters()
		}
		return msg
	}
}

// waitForEvents waits for the next event and drains what else is queued
// (up to maxEventBatch) so a burst costs one redraw. It is re-armed after
// every eventsMsg.
func waitForEvents(ch <-chan inspect.Event) tea.Cmd {
	if ch == nil {
		return nil
	}
	return func() tea.Msg {
		ev, ok := <-ch
		if !ok {
			return eventsMsg{closed: true, at: time.Now()}
		}
		evs := []inspect.Event{ev}
		for len(evs) < maxEventBatch {
			select {
			case ev, ok := <-ch:
				if !ok {
					return eventsMsg{evs: evs, closed: true, at: time.Now()}
				}
				evs = append(evs, ev)
			default:
				return eventsMsg{evs: evs, at: time.Now()}
			}
		}
		return eventsMsg{evs: evs, at: time.Now()}
	}
}

func fastTick(d time.Duration) tea.Cmd {
	return tea.Tick(d, func(time.Time) tea.Msg { return fastTickMsg{} })
}

func fullTick(d time.Duration) tea.Cmd {
	return tea.Tick(d, func(time.Time) tea.Msg { return fullTickMsg{} })
}

// actCmd runs action on unit and reports how it ended.
func actCmd(ctx context.Context, src Source, action Action, unit string, probe bool) tea.Cmd {
	return func() tea.Msg {
		start := time.Now()
		res, err := src.Act(ctx, action, unit, probe)
		return actionDoneMsg{action: action, unit: unit, res: res, err: err, elapsed: time.Since(start)}
	}
}
