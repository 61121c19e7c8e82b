package ui

import (
	"context"
	"fmt"
	"strings"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/termsafe"
)

// ActionRollout restarts a unit host by host across a fleet, gated by each
// host's handoff verdict (a RolloutSource).
const ActionRollout Action = "rollout"

// RolloutSource is a fleet that rolls a unit out as `fdtop rollout` does:
// every host reached and its unit found first (else nothing is
// restarted), then host by host, restart and wait for its handoff verdict,
// stopping at the first host whose verdict breaks the budget (the listener
// kept, 0 refused, 0 dropped) and touching no further host.
type RolloutSource interface {
	FleetSource
	// Rollout starts a rollout of unit on hosts (as HostPicture.Host,
	// escaped for the terminal), in that order; probe runs the gap meter
	// during each restart. Its steps arrive on the channel, closed when it
	// ended; ctx ending stops it after the current host's restart.
	Rollout(ctx context.Context, unit string, hosts []string, probe bool) <-chan RolloutStep
}

// RolloutStep is a rollout's progress on one host.
type RolloutStep struct {
	// Host is the host (as HostPicture.Host, escaped for the terminal).
	Host string
	// Status is RolloutRestarting when its restart starts, then one of
	// passed, halted, unknown or not_touched (as `rollout --json` says).
	Status string
	// Reason says why it halted, is unknown or was not touched.
	Reason string
	// Result is the restart job's result.
	Result string
	// Handoff is the restart's handoff (its verdict), when one came.
	Handoff *inspect.Handoff
}

// RolloutRestarting is the status of a host whose restart runs.
const RolloutRestarting = "restarting"

// rolloutState is the dashboard's view of the last rollout it started.
type rolloutState struct {
	unit    string
	hosts   []string
	steps   map[string]RolloutStep
	running bool
}

// rolloutStepMsg is a step read off a rollout's channel (closed when it
// ended); the read is re-armed after it.
type rolloutStepMsg struct {
	step   RolloutStep
	closed bool
	ch     <-chan RolloutStep
}

func waitForRollout(ch <-chan RolloutStep) tea.Cmd {
	return func() tea.Msg {
		s, ok := <-ch
		return rolloutStepMsg{step: s, closed: !ok, ch: ch}
	}
}

// rolloutHosts are the fleet's hosts whose picture has unit now, in the
// order given, and the others with why they are left out.
func rolloutHosts(ix *snapIndex, unit string) (in []string, out []string) {
	for _, h := range ix.Fleet {
		switch {
		case h.State != HostOK:
			out = append(out, fmt.Sprintf("%s (%s: its units are not known now)", h.Host, h.State))
		case ix.byUnit[unitRef{Host: h.Host, Unit: unit}] != nil:
			in = append(in, h.Host)
		default:
			out = append(out, fmt.Sprintf("%s (no %s there)", h.Host, unit))
		}
	}
	return in, out
}

// askRollout opens the confirmation of a rollout of the selected unit,
// listing the hosts in the order they will be restarted.
func (m *Model) askRollout() {
	sel := m.list.SelectedRef()
	if sel.Unit == "" {
		m.status = status{text: "select a unit to roll out", err: true}
		return
	}
	if m.rollout != nil && m.rollout.running {
		m.status = status{text: "a rollout of " + m.rollout.unit + " is running", err: true}
		return
	}
	unit := sel.Unit
	if g := m.ix.byUnit[sel]; g != nil && g.Service != nil && strings.HasSuffix(unit, ".socket") {
		unit = g.Service.Unit // systemd restarts the service, not its socket
	}
	hosts, left := rolloutHosts(m.ix, unit)
	if len(hosts) == 0 {
		m.status = status{text: "no host has " + unit + " now", err: true}
		return
	}
	preview := []string{"restart " + unit + " host by host, in this order:"}
	for i, h := range hosts {
		preview = append(preview, fmt.Sprintf("%d. %s", i+1, h))
	}
	preview = append(preview, "after each restart, wait for its handoff verdict; stop at the first host whose verdict breaks the budget (listener kept, 0 refused, 0 dropped) and touch no further host")
	if len(left) > 0 {
		preview = append(preview, "left out: "+strings.Join(left, ", "))
	}
	m.confirm = newConfirmModel(m.st, ActionRollout, unitRef{Unit: unit}, preview, m.probe)
	m.confirm.hosts = hosts
	m.confirming = true
	m.relayout()
}

// startRollout runs a confirmed rollout.
func (m *Model) startRollout(msg confirmedMsg) tea.Cmd {
	rs, ok := m.src.(RolloutSource)
	if !ok {
		return nil
	}
	m.rollout = &rolloutState{unit: msg.unit, hosts: msg.hosts, steps: map[string]RolloutStep{}, running: true}
	m.status = status{}
	ch := rs.Rollout(m.ctx, msg.unit, msg.hosts, m.probe)
	return waitForRollout(ch)
}

// applyRolloutStep records a step and re-arms the read.
func (m *Model) applyRolloutStep(msg rolloutStepMsg) tea.Cmd {
	r := m.rollout
	if r == nil {
		return nil
	}
	if msg.closed {
		r.running = false
		m.status = r.outcome()
		m.updateDetail()
		return nil
	}
	step := msg.step
	step.Reason, step.Result = termsafe.String(step.Reason), termsafe.String(step.Result)
	if step.Handoff != nil {
		step.Handoff = inspect.Event{Handoff: step.Handoff}.ForTerminal().Handoff
	}
	r.steps[step.Host] = step
	m.updateDetail()
	return waitForRollout(msg.ch)
}

// outcome says how an ended rollout went, for the status line.
func (r *rolloutState) outcome() status {
	var passed int
	var untouched []string
	for _, h := range r.hosts {
		s := r.steps[h]
		switch s.Status {
		case "passed":
			passed++
		case "halted", "unknown":
			text := fmt.Sprintf("rollout of %s halted at %s: %s", r.unit, h, s.Reason)
			if s.Status == "unknown" {
				text = fmt.Sprintf("rollout of %s halted, state unknown at %s: %s", r.unit, h, s.Reason)
			}
			for _, o := range r.hosts {
				if r.steps[o].Status == "not_touched" {
					untouched = append(untouched, o)
				}
			}
			if len(untouched) > 0 {
				text += "; not touched: " + strings.Join(untouched, ", ")
			}
			return status{text: text, err: true}
		}
	}
	if passed == len(r.hosts) {
		return status{text: fmt.Sprintf("rollout of %s passed on %s", r.unit, plural(passed, "host", "hosts"))}
	}
	var why []string
	for _, h := range r.hosts {
		if s := r.steps[h]; s.Reason != "" {
			why = append(why, h+": "+s.Reason)
		}
	}
	text := fmt.Sprintf("rollout of %s not started, nothing restarted", r.unit)
	if len(why) > 0 {
		text += ": " + strings.Join(why, "; ")
	}
	return status{text: text, err: true}
}

// rolloutLines draw a rollout's progress: a line per host, its verdict
// under it.
func (b *detailBuilder) rolloutLines(r *rolloutState) {
	title := "Rollout of " + r.unit
	if r.running {
		title += " · running"
	}
	b.section(title, "")
	for i, h := range r.hosts {
		s, ok := r.steps[h]
		word := "waiting"
		if ok {
			word = strings.ReplaceAll(s.Status, "_", " ")
		}
		line := fmt.Sprintf("    %d. %s  %s", i+1, h, word)
		switch {
		case !ok, s.Status == "not_touched":
			b.muted(line)
		case s.Status == RolloutRestarting:
			b.add(b.st.Status.Busy.Render(line))
		case s.Status == "passed":
			b.add(b.st.Timeline.Good.Render(line))
		default:
			b.add(b.st.Timeline.Bad.Render(line))
		}
		if ok && s.Handoff != nil {
			level, text := Verdict(s.Handoff)
			for _, l := range wrap(text, b.width-8) {
				b.add("       " + verdictStyle(b.st, level).Render(l))
			}
		}
		if ok && s.Reason != "" && s.Status != "passed" {
			for _, l := range wrap(s.Reason, b.width-8) {
				b.add("       " + l)
			}
		}
	}
	b.add("")
}
