package ui

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/fdtop/fdtop/inspect"
)

// pane names a focusable pane.
type pane int

const (
	paneList pane = iota
	paneDetail
	paneTimeline
	nPanes
)

// runningJob is a job the dashboard shows as in progress.
type runningJob struct {
	ref     unitRef
	action  string
	started time.Time
	ours    bool // started from this UI
	probe   bool
}

// status is the status line's message.
type status struct {
	text string
	err  bool
}

// Model is the live dashboard, a tea.Model. Build it with NewModel.
type Model struct {
	src     Source
	updates <-chan Update        // src.Updates(), asked once
	events  <-chan inspect.Event // src.Events(), asked once
	opts    Options
	ctx     context.Context
	now     func() time.Time

	st       Styles
	keys     GlobalKeyMap
	help     help.Model
	header   headerModel
	list     listModel
	detail   detailModel
	timeline timelineModel
	confirm  confirmModel
	tour     tourModel

	confirming bool
	showHelp   bool
	helpScroll scroller
	focus      pane
	explain    bool
	probe      bool
	width      int
	height     int
	rects      layoutRects

	snap     *inspect.Snapshot
	fleet    bool // a fleet's picture has arrived (snap stays nil)
	ix       *snapIndex
	shown    []string // the units last told to the source as on screen
	demo     map[string]DemoCounters
	handoffs map[string]*inspect.Event // by unitRef.key
	doctor   doctorState
	log      logState
	showLog  bool
	logView  logViewModel
	jobs     map[string]runningJob // by unitRef.key
	rollout  *rolloutState         // the last rollout started here
	status   status
	closed   bool

	// typeahead holds the keys that need the unit list, typed before the
	// first snapshot filled it; they are replayed when it arrives.
	typeahead []tea.KeyMsg

	dataGen uint64
	trace   *frameTrace
}

// maxTypeahead bounds Model.typeahead.
const maxTypeahead = 64

// NewModel returns the dashboard for src. It does no I/O until the
// program runs its Init command.
func NewModel(src Source, opts Options) Model {
	opts = opts.withDefaults()
	st := DefaultStyles()
	keys := DefaultGlobalKeyMap()
	if _, ok := src.(RolloutSource); ok {
		keys.Rollout.SetEnabled(true)
	}
	keys.SetReadOnly(opts.ReadOnly)
	m := Model{
		src:      src,
		updates:  src.Updates(),
		events:   src.Events(),
		opts:     opts,
		ctx:      context.Background(),
		now:      time.Now,
		st:       st,
		keys:     keys,
		help:     help.New(),
		header:   newHeaderModel(st, opts.Title, opts.ReadOnly, opts.Probe),
		list:     newListModel(st),
		detail:   newDetailModel(st),
		timeline: newTimelineModel(st),
		tour:     newTourModel(st, opts.Tour),
		probe:    opts.Probe,
		ix:       buildIndex(nil, nil),
		handoffs: map[string]*inspect.Event{},
		jobs:     map[string]runningJob{},
	}
	m.resize(80, 24)
	m.updateDetail()
	return m
}

// Init starts the drains of the model's pictures and timeline, and the
// ticks of what is not the model's (the doctor's checks, the demo's
// in-memory traffic counters). The dashboard scans nothing itself.
func (m Model) Init() tea.Cmd {
	cmds := []tea.Cmd{waitForUpdate(m.updates), waitForEvents(m.events)}
	if _, ok := m.src.(DoctorSource); ok {
		cmds = append(cmds, func() tea.Msg { return doctorTickMsg{} })
	}
	if _, ok := m.src.(DemoSource); ok {
		cmds = append(cmds, demoTick(m.opts.FastInterval))
	}
	return tea.Batch(cmds...)
}

// Update routes messages to the panes and runs the refresh logic.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	var cmd tea.Cmd
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.resize(msg.Width, msg.Height)
	case tea.KeyMsg:
		cmd = m.handleKeys(msg)
	case tea.MouseMsg:
		m.handleMouse(msg)
	case doctorTickMsg:
		cmd = tea.Batch(doctorTick(), m.runDoctor(false))
	case demoTickMsg:
		if ds, ok := m.src.(DemoSource); ok {
			m.demo = ds.DemoCounters()
			m.updateDetail()
		}
		cmd = demoTick(m.opts.FastInterval)
	case findingsMsg:
		m.applyFindings(msg)
		if m.doctorBehindFilling() {
			cmd = m.runDoctor(true)
		}
	case logStartedMsg:
		cmd = m.applyLogStarted(msg)
	case logLinesMsg:
		cmd = m.applyLogLines(msg)
	case updateMsg:
		if msg.closed {
			m.closed = true
			m.status = status{text: "the source stopped: the picture is no longer live", err: true}
		} else {
			cmd = tea.Batch(m.applySnapshot(msg.snapshotMsg), waitForUpdate(m.updates))
		}
	case snapshotMsg:
		cmd = m.applySnapshot(msg)
	case eventsMsg:
		cmd = m.applyEvents(msg)
	case confirmedMsg:
		m.confirming = false
		if msg.action == ActionRollout {
			cmd = m.startRollout(msg)
		} else {
			cmd = m.startAction(msg)
		}
	case rolloutStepMsg:
		cmd = m.applyRolloutStep(msg)
	case cancelledMsg:
		m.confirming = false
		m.status = status{text: "cancelled"}
	case actionDoneMsg:
		cmd = tea.Batch(m.finishAction(msg), m.runDoctor(true))
	}
	m.header.now = m.now()
	m.header.probe = m.probe
	m.relayout()
	m.showUnits()
	if m.showLog {
		m.logView.SetSize(m.width, m.rects.bodyH)
	}
	return m, tea.Batch(cmd, m.syncLog())
}

// handleKeys handles the keys of one KeyMsg in turn (a run of typed runes
// is one key per rune), holding those that need the unit list until the
// first snapshot has filled it.
func (m *Model) handleKeys(msg tea.KeyMsg) tea.Cmd {
	var cmds []tea.Cmd
	for _, k := range splitKeys(msg) {
		if m.holdKey(k) {
			m.typeahead = append(m.typeahead, k)
			continue
		}
		cmds = append(cmds, m.handleKey(k))
	}
	return tea.Batch(cmds...)
}

// holdKey reports whether k must wait for the first snapshot: a move or an
// action in the still empty unit list, or any key typed after one (to keep
// the order). Ctrl+C and quit are never held, nor is anything once a
// snapshot or a scan error has arrived.
func (m *Model) holdKey(k tea.KeyMsg) bool {
	if m.snap != nil || m.fleet || m.header.scanErr != "" || len(m.typeahead) >= maxTypeahead {
		return false
	}
	if k.Type == tea.KeyCtrlC || (!m.list.Filtering() && key.Matches(k, m.keys.Quit)) {
		return false
	}
	if len(m.typeahead) > 0 {
		return true
	}
	if _, ok := m.keys.actionFor(k); ok && !m.list.Filtering() && !m.confirming && !m.showHelp {
		return true
	}
	if m.focus != paneList || m.list.Filtering() || m.confirming || m.showHelp {
		return false
	}
	lk := m.list.keys
	return key.Matches(k, lk.Up, lk.Down, lk.PageUp, lk.PageDown, lk.Top, lk.Bottom, lk.Open)
}

// replayTypeahead handles the keys held until the first snapshot.
func (m *Model) replayTypeahead() tea.Cmd {
	held := m.typeahead
	m.typeahead = nil
	cmds := make([]tea.Cmd, 0, len(held))
	for _, k := range held {
		cmds = append(cmds, m.handleKey(k))
	}
	return tea.Batch(cmds...)
}

// handleKey routes a key: modal states first, then global keys, then the
// focused pane.
func (m *Model) handleKey(msg tea.KeyMsg) tea.Cmd {
	if msg.Type == tea.KeyCtrlC {
		return tea.Quit
	}
	if m.list.Filtering() {
		var cmd tea.Cmd
		m.list, cmd = m.list.Update(msg)
		m.updateDetail()
		return cmd
	}
	if m.confirming {
		if key.Matches(msg, m.keys.Probe) {
			m.toggleProbe()
			m.confirm.probe = m.probe
			return nil
		}
		var cmd tea.Cmd
		m.confirm, cmd = m.confirm.Update(msg)
		return cmd
	}
	if m.showLog {
		var done bool
		m.logView, done = m.logView.Update(msg)
		m.showLog = !done
		return nil
	}
	if m.showHelp {
		switch {
		case key.Matches(msg, m.keys.Help), msg.Type == tea.KeyEsc:
			m.showHelp = false
		case key.Matches(msg, m.keys.Quit):
			return tea.Quit
		case key.Matches(msg, m.list.keys.Down):
			m.helpScroll.scroll(1, len(m.helpLines()))
		case key.Matches(msg, m.list.keys.Up):
			m.helpScroll.scroll(-1, len(m.helpLines()))
		}
		return nil
	}
	if m.tour.Key(msg) {
		m.relayout()
		return nil
	}
	switch {
	case key.Matches(msg, m.keys.Quit):
		return tea.Quit
	case key.Matches(msg, m.keys.Help):
		m.showHelp = true
		m.helpScroll.offset = 0
		return nil
	case key.Matches(msg, m.keys.NextPane):
		m.setFocus((m.focus + 1) % nPanes)
		return nil
	case key.Matches(msg, m.keys.PrevPane):
		m.setFocus((m.focus + nPanes - 1) % nPanes)
		return nil
	case key.Matches(msg, m.keys.Explain):
		m.explain = !m.explain
		m.detail.SetExplain(m.explain)
		return nil
	case key.Matches(msg, m.keys.Probe):
		m.toggleProbe()
		return nil
	case key.Matches(msg, m.keys.Log):
		if _, ok := m.src.(LogSource); ok && len(m.log.units) > 0 {
			m.showLog = true
			m.logView = newLogViewModel(m.st, logTitle(m.log.units), m.log.lines)
			m.logView.SetSize(m.width, m.rects.bodyH)
		}
		return nil
	case key.Matches(msg, m.keys.Refresh):
		m.status = status{text: "rescanning the host…"}
		if !m.src.Refresh() {
			m.status = status{text: "the host's live model rescans on its own"}
		}
		return nil
	}
	if key.Matches(msg, m.keys.Rollout) {
		m.askRollout()
		return nil
	}
	if action, ok := m.keys.actionFor(msg); ok && action == ActionFix {
		m.askFix()
		return nil
	} else if ok {
		m.askAction(action)
		return nil
	}
	var cmd tea.Cmd
	switch m.focus {
	case paneList:
		if key.Matches(msg, m.list.keys.Open) {
			m.setFocus(paneDetail)
			return nil
		}
		m.list, cmd = m.list.Update(msg)
		m.updateDetail()
	case paneDetail:
		if key.Matches(msg, m.detail.keys.Back) {
			m.setFocus(paneList)
			return nil
		}
		m.detail, cmd = m.detail.Update(msg)
	case paneTimeline:
		if key.Matches(msg, m.timeline.keys.Back) {
			m.setFocus(paneList)
			return nil
		}
		m.timeline, cmd = m.timeline.Update(msg)
	}
	return cmd
}

func (m *Model) setFocus(p pane) {
	m.focus = p
	m.list.focused = p == paneList
	m.detail.focused = p == paneDetail
	m.timeline.focused = p == paneTimeline
}

func (m *Model) toggleProbe() {
	m.probe = !m.probe
	if m.probe {
		m.status = status{text: "gap meter on: restarts started here probe the unit's TCP listeners"}
	} else {
		m.status = status{text: "gap meter off"}
	}
}

// handleMouse scrolls the pane under the pointer with the wheel.
func (m *Model) handleMouse(msg tea.MouseMsg) {
	if msg.Action != tea.MouseActionPress {
		return
	}
	delta := 0
	switch msg.Button {
	case tea.MouseButtonWheelUp:
		delta = -1
	case tea.MouseButtonWheelDown:
		delta = 1
	default:
		return
	}
	if m.showHelp {
		m.helpScroll.scroll(delta*3, len(m.helpLines()))
		return
	}
	if m.confirming {
		return
	}
	switch m.rects.at(msg.X, msg.Y) {
	case paneList:
		m.list.Wheel(delta)
		m.updateDetail()
	case paneDetail:
		m.detail.Wheel(delta * 3)
	case paneTimeline:
		m.timeline.Wheel(delta * 3)
	}
}

// showUnits tells the source which units are on screen when that changed
// (it keeps their counters fresh).
func (m *Model) showUnits() {
	if m.snap == nil && !m.fleet {
		return
	}
	units := m.list.VisibleUnits()
	if slices.Equal(units, m.shown) {
		return
	}
	m.shown = units
	m.src.Show(units)
}

func (m *Model) applySnapshot(msg snapshotMsg) tea.Cmd {
	if msg.err != nil {
		if m.ctx.Err() == nil {
			m.header.scanErr = msg.err.Error()
		}
		return m.replayTypeahead()
	}
	if msg.hosts != nil {
		m.fleet = true
		m.ix = buildFleetIndex(msg.hosts, m.opts.Patterns, m.ix)
		m.list.SetIndex(m.ix)
		m.header.SetIndex(m.ix, msg.at)
		m.updateDetail()
		m.dataGen++
		m.trace.received(m.dataGen, "snapshot", 0, time.Time{})
		return m.replayTypeahead()
	}
	if msg.snap == nil {
		if m.snap != nil && !msg.at.IsZero() {
			// A rescan saw the picture unchanged: the header's scan age is
			// that rescan's, not the last change's.
			m.header.scanErr = ""
			m.header.lastScan = msg.at
		}
		return nil
	}
	m.header.scanErr = ""
	m.header.reloading = false
	if msg.demo != nil {
		m.demo = msg.demo
	}
	m.setSnapshot(msg.snap, msg.at)
	m.dataGen++
	m.trace.received(m.dataGen, "snapshot", 0, time.Time{})
	if m.doctorBehindFilling() {
		return tea.Batch(m.replayTypeahead(), m.runDoctor(true))
	}
	return m.replayTypeahead()
}

func (m *Model) setSnapshot(snap *inspect.Snapshot, at time.Time) {
	m.snap = snap
	m.ix = buildIndex(snap, m.opts.Patterns)
	m.list.SetIndex(m.ix)
	if at.IsZero() {
		at = m.header.lastScan
	}
	m.header.SetIndex(m.ix, at)
	m.updateDetail()
}

func (m *Model) applyEvents(msg eventsMsg) tea.Cmd {
	var cmds []tea.Cmd
	if msg.closed {
		m.closed = true
		m.status = status{text: "the source stopped: the timeline is no longer live", err: true}
	} else {
		cmds = append(cmds, waitForEvents(m.events))
	}
	if len(msg.evs) == 0 {
		return tea.Batch(cmds...)
	}
	msg.evs = eventsForTerminal(msg.evs)
	m.timeline.Append(msg.evs...)
	for i := range msg.evs {
		ev := &msg.evs[i]
		ref := unitRef{Host: ev.Target, Unit: ev.Unit}.key()
		switch ev.Type {
		case inspect.EventHandoff:
			m.handoffs[ref] = ev
			m.tour.Event(*ev)
		case inspect.EventJobStarted:
			if j, ok := m.jobs[ref]; !ok || !j.ours {
				m.jobs[ref] = runningJob{ref: unitRef{Host: ev.Target, Unit: ev.Unit}, action: ev.Job, started: ev.Time}
			}
		case inspect.EventJobFinished:
			if j, ok := m.jobs[ref]; ok && !j.ours {
				delete(m.jobs, ref)
			}
		case inspect.EventDisconnected, inspect.EventReconnected:
			if ev.Target == "" {
				// A fleet host's connection is in its host row instead.
				m.header.disconnected = ev.Type == inspect.EventDisconnected
			}
			// A job seen on the manager ends with a signal that a lost
			// connection (or a re-executed manager) never delivers: forget
			// it rather than count it forever. Ours end with their call.
			for u, j := range m.jobs {
				if !j.ours && j.ref.Host == ev.Target {
					delete(m.jobs, u)
				}
			}
		case inspect.EventReloading:
			m.header.reloading = true
		}
	}
	m.updateDetail()
	m.dataGen++
	last := msg.evs[len(msg.evs)-1]
	m.trace.received(m.dataGen, "event-"+string(last.Type), len(msg.evs), last.Time)
	return tea.Batch(cmds...)
}

// askAction opens the confirmation dialog for action on the selected unit.
func (m *Model) askAction(action Action) {
	unit := m.list.SelectedRef()
	if unit.Unit == "" {
		text := "no unit selected"
		if unit.Host != "" {
			text = "select a unit under the host"
		}
		m.status = status{text: text, err: true}
		return
	}
	if j, ok := m.jobs[unit.key()]; ok {
		m.status = status{text: fmt.Sprintf("%s is already running a %s job", unit, j.action), err: true}
		return
	}
	m.confirm = newConfirmModel(m.st, action, unit, impactPreview(m.ix, action, unit), m.probe)
	m.confirming = true
	m.relayout()
}

func (m *Model) startAction(msg confirmedMsg) tea.Cmd {
	ref := unitRef{Host: msg.host, Unit: msg.unit}
	if _, ok := m.jobs[ref.key()]; ok {
		m.status = status{text: ref.String() + " already has a job running", err: true}
		return nil
	}
	probe := m.probe && (msg.action == ActionRestart || msg.action == ActionTryRestart)
	m.jobs[ref.key()] = runningJob{ref: ref, action: string(msg.action), started: m.now(), ours: true, probe: probe}
	m.status = status{}
	m.updateDetail()
	return actCmd(m.ctx, m.src, msg.action, ref, probe)
}

func (m *Model) finishAction(msg actionDoneMsg) tea.Cmd {
	ref := unitRef{Host: msg.host, Unit: msg.unit}
	delete(m.jobs, ref.key())
	what := string(msg.action) + " " + ref.String()
	switch {
	case msg.err != nil:
		m.status = status{text: what + ": " + msg.err.Error(), err: true}
	case msg.res.Result != "" && msg.res.Result != "done":
		text := fmt.Sprintf("%s: job %s", what, msg.res.Result)
		if msg.res.Message != "" {
			text += ": " + msg.res.Message
		}
		m.status = status{text: text, err: true}
	default:
		text := fmt.Sprintf("%s: done in %d ms", what, msg.elapsed.Milliseconds())
		if msg.res.Message != "" {
			text += " · " + msg.res.Message
		}
		m.status = status{text: text}
	}
	m.updateDetail()
	return nil
}

// updateDetail hands the detail pane the selected group and what the root
// knows about it.
func (m *Model) updateDetail() {
	g := m.list.SelectedGroup()
	sel := m.list.SelectedRef()
	data := detailData{Group: g, Selected: sel.Unit, Demo: m.demo, Now: m.now(), Rollout: m.rollout, Filling: m.snap != nil && m.snap.Host.Filling}
	if sel.Unit == "" && sel.Host != "" {
		data.Host = m.ix.fleetHost(sel.Host)
	}
	if m.demo != nil {
		data.Handoffs = m.handoffs // the demo is one manager: keyed by unit
	}
	data.Findings, data.DoctorErr = m.groupFindings(g), m.doctor.err
	data.DoctorFilling = m.doctor.snap != nil && m.doctor.snap.Host.Filling && !m.doctor.at.IsZero()
	data.Log = m.logDetail()
	if m.keys.Fix.Enabled() {
		data.FixKey = m.keys.Fix.Help().Key
	}
	data.Manager = m.ix.manager(sel)
	if g != nil {
		for _, u := range g.units() {
			if ev := m.handoffs[g.ref(u).key()]; ev != nil {
				data.Handoff = ev
			}
			if j, ok := m.jobs[g.ref(u).key()]; ok {
				data.Job = fmt.Sprintf("%s %s running", j.action, g.ref(u))
				if j.probe {
					data.Job += " · gap meter probing"
				}
			}
		}
	}
	m.detail.SetData(data)
}
