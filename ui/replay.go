package ui

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/fdtop/fdtop/inspect"
)

// ReplayOptions configure RunReplay.
type ReplayOptions struct {
	// Stepped shows one event per key press instead of playing.
	Stepped bool
	// Speed multiplies the recorded pace (default 1).
	Speed float64
}

// maxReplayGap caps a pause between two recorded events, at speed 1.
const maxReplayGap = 5 * time.Second

// maxRecordLine bounds one line of a recording.
const maxRecordLine = 4 << 20

// ParseRecording reads a file written by `fdtop watch --record`: JSON
// lines, one inspect.Event per line (blank lines are skipped). Errors name
// the line.
func ParseRecording(r io.Reader) ([]inspect.Event, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxRecordLine)
	var evs []inspect.Event
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var ev inspect.Event
		dec := json.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&ev); err != nil {
			return nil, fmt.Errorf("line %d: not an fdtop event (%w)", line, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("line %d: more than one JSON value on the line", line)
		}
		if ev.Type == "" {
			return nil, fmt.Errorf("line %d: event has no \"type\"", line)
		}
		evs = append(evs, ev)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("line %d: longer than %d bytes", line+1, maxRecordLine)
		}
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	return evs, nil
}

// replayTickMsg shows the next event; gen drops ticks scheduled before a
// pause, a step or a speed change.
type replayTickMsg struct{ gen int }

// ReplayModel plays a recorded timeline, a tea.Model. Build it with
// NewReplayModel.
type ReplayModel struct {
	st       Styles
	keys     ReplayKeyMap
	help     help.Model
	timeline timelineModel
	events   []inspect.Event
	next     int // events shown
	paused   bool
	stepped  bool
	speed    float64
	gen      int
	showHelp bool
	width    int
	height   int
}

// NewReplayModel returns a replay of events.
func NewReplayModel(events []inspect.Event, opts ReplayOptions) ReplayModel {
	if opts.Speed <= 0 {
		opts.Speed = 1
	}
	st := DefaultStyles()
	m := ReplayModel{
		st: st, keys: DefaultReplayKeyMap(), help: help.New(), timeline: newTimelineModel(st),
		events: events, stepped: opts.Stepped, paused: opts.Stepped, speed: opts.Speed,
	}
	m.timeline.focused = true
	m.resize(80, 24)
	return m
}

// Init shows the first event and, unless stepped, schedules the next.
func (m ReplayModel) Init() tea.Cmd {
	return func() tea.Msg { return replayTickMsg{gen: 0} }
}

// Update plays, steps and scrolls.
func (m ReplayModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.resize(msg.Width, msg.Height)
	case replayTickMsg:
		if msg.gen != m.gen || (m.paused && m.next > 0) {
			return m, nil
		}
		m.show()
		return m, m.schedule()
	case tea.MouseMsg:
		if msg.Action == tea.MouseActionPress {
			switch msg.Button {
			case tea.MouseButtonWheelUp:
				m.timeline.Wheel(-3)
			case tea.MouseButtonWheelDown:
				m.timeline.Wheel(3)
			}
		}
	case tea.KeyMsg:
		var cmds []tea.Cmd
		for _, k := range splitKeys(msg) {
			var cmd tea.Cmd
			m, cmd = m.handleKey(k)
			cmds = append(cmds, cmd)
		}
		return m, tea.Batch(cmds...)
	}
	return m, nil
}

func (m ReplayModel) handleKey(msg tea.KeyMsg) (ReplayModel, tea.Cmd) {
	switch {
	case key.Matches(msg, m.keys.Quit):
		return m, tea.Quit
	case key.Matches(msg, m.keys.Help):
		m.showHelp = !m.showHelp
	case m.showHelp && msg.Type == tea.KeyEsc:
		m.showHelp = false
	case key.Matches(msg, m.keys.Step):
		m.show()
		m.gen++
		return m, m.schedule()
	case key.Matches(msg, m.keys.Pause):
		m.paused = !m.paused
		m.gen++
		return m, m.schedule()
	case key.Matches(msg, m.keys.Faster):
		m.speed = min(m.speed*2, 64)
		m.gen++
		return m, m.schedule()
	case key.Matches(msg, m.keys.Slower):
		m.speed = max(m.speed/2, 1.0/64)
		m.gen++
		return m, m.schedule()
	default:
		m.timeline, _ = m.timeline.Update(msg)
	}
	return m, nil
}

// show appends the next event to the timeline.
func (m *ReplayModel) show() {
	if m.next < len(m.events) {
		m.timeline.Append(m.events[m.next])
		m.next++
	}
}

// schedule arms the tick for the next event at the recorded pace.
func (m ReplayModel) schedule() tea.Cmd {
	if m.paused || m.next >= len(m.events) || m.next == 0 {
		return nil
	}
	gap := m.events[m.next].Time.Sub(m.events[m.next-1].Time)
	gap = min(max(gap, 0), maxReplayGap)
	gen := m.gen
	return tea.Tick(time.Duration(float64(gap)/m.speed), func(time.Time) tea.Msg { return replayTickMsg{gen: gen} })
}

// Shown returns how many events are on screen.
func (m ReplayModel) Shown() int { return m.next }

func (m *ReplayModel) resize(w, h int) {
	m.width, m.height = w, h
	m.help.Width = w
	m.timeline.SetSize(w, max(h-4, 0))
}

// View draws the replay: a header, the timeline and the key help.
func (m ReplayModel) View() string {
	if m.width < minWidth || m.height < 6 {
		return block([]string{fmt.Sprintf("fdtop: terminal too small (%d×%d)", m.width, m.height)}, max(m.width, 0), max(m.height, 0))
	}
	state := fmt.Sprintf("playing ×%g", m.speed)
	switch {
	case m.next >= len(m.events):
		state = "end of recording"
	case m.stepped && m.paused:
		state = "stepped (n/space: next)"
	case m.paused:
		state = "paused (p resumes)"
	}
	at := ""
	if m.next > 0 {
		at = m.events[m.next-1].Time.Format("2006-01-02 15:04:05.000") + " · "
	}
	head := m.st.Header.Title.Render("fdtop replay") + m.st.Header.Muted.Render(" · ") +
		fmt.Sprintf("%s%d/%d events · %s", at, m.next, len(m.events), state)
	lines := []string{fit(head, m.width)}
	if m.showHelp {
		body := renderHelp(m.st, m.help, []helpSection{
			{"Replay", []key.Binding{m.keys.Step, m.keys.Pause, m.keys.Faster, m.keys.Slower}},
			{"Move", []key.Binding{m.keys.Up, m.keys.Down, m.keys.PageUp, m.keys.PageDown, m.keys.Top, m.keys.Bottom}},
			{"Everywhere", []key.Binding{m.keys.Help, m.keys.Quit}},
		}, []string{fmt.Sprintf("Pauses longer than %s in the recording are shortened.", maxReplayGap)}, m.width)
		lines = append(lines, block(body, m.width, m.height-2))
	} else {
		t := "Timeline · " + plural(m.timeline.Len(), "event", "events")
		if !m.timeline.Following() {
			t += " · scrolled (G follows)"
		}
		lines = append(lines, m.st.Pane.FocusedTitle.Render(fit("▸ "+t, m.width)), m.timeline.View(), fit("", m.width))
	}
	lines = append(lines, fit(m.help.ShortHelpView(m.keys.ShortHelp()), m.width))
	return strings.Join(lines, "\n")
}

// RunReplay plays a recording from r on the terminal until the operator
// quits or ctx is done.
func RunReplay(ctx context.Context, r io.Reader, opts ReplayOptions) error {
	evs, err := ParseRecording(r)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if len(evs) == 0 {
		return errors.New("replay: the recording has no events")
	}
	return runProgram(ctx, NewReplayModel(evs, opts))
}
