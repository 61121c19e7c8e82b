package ui

import (
	"context"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/fdtop/fdtop/inspect"
)

// snapshotTimeout bounds one doctor run.
const snapshotTimeout = 30 * time.Second

// maxEventBatch bounds how many queued events one message carries.
const maxEventBatch = 256

// snapshotMsg is a picture of the live model to show.
type snapshotMsg struct {
	snap  *inspect.Snapshot
	hosts []HostPicture // a fleet's picture (snap nil)
	demo  map[string]DemoCounters
	err   error
	at    time.Time
}

// updateMsg is a picture read off Source.Updates (closed when the channel
// ended); the drain is re-armed after it.
type updateMsg struct {
	snapshotMsg
	closed bool
}

// eventsMsg carries a burst of timeline events; closed is set when the
// source's channel was closed.
type eventsMsg struct {
	evs    []inspect.Event
	closed bool
	at     time.Time
}

// demoTickMsg asks for the demo's traffic counters (read in memory).
type demoTickMsg struct{}

// doctorTickMsg asks for the doctor's checks when they are due.
type doctorTickMsg struct{}

// actionDoneMsg is the end of a job started from the UI.
type actionDoneMsg struct {
	action  Action
	unit    string
	host    string // the fleet host ("" for the one manager)
	res     inspect.ActionResult
	err     error
	elapsed time.Duration
}

// waitForUpdate waits for the model's next picture.
func waitForUpdate(ch <-chan Update) tea.Cmd {
	if ch == nil {
		return nil
	}
	return func() tea.Msg {
		u, ok := <-ch
		if !ok {
			return updateMsg{closed: true}
		}
		at := u.At
		if at.IsZero() {
			at = time.Now()
		}
		return updateMsg{snapshotMsg: snapshotMsg{snap: u.Snapshot, hosts: u.Hosts, err: u.Err, at: at}}
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

func demoTick(d time.Duration) tea.Cmd {
	return tea.Tick(d, func(time.Time) tea.Msg { return demoTickMsg{} })
}

func doctorTick() tea.Cmd {
	return tea.Tick(doctorEvery, func(time.Time) tea.Msg { return doctorTickMsg{} })
}

// actCmd runs action on unit (on its host, in a fleet) and reports how it
// ended.
func actCmd(ctx context.Context, src Source, action Action, ref unitRef, probe bool) tea.Cmd {
	return func() tea.Msg {
		start := time.Now()
		var (
			res inspect.ActionResult
			err error
		)
		if fs, ok := src.(FleetSource); ok && ref.Host != "" {
			res, err = fs.ActOn(ctx, ref.Host, action, ref.Unit, probe)
		} else {
			res, err = src.Act(ctx, action, ref.Unit, probe)
		}
		return actionDoneMsg{action: action, unit: ref.Unit, host: ref.Host, res: res, err: err, elapsed: time.Since(start)}
	}
}
