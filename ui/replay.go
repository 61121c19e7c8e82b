package ui

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
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

// maxRecordLine bounds one line of a recording; a longer line is skipped.
const maxRecordLine = 4 << 20

// maxLeadingBad is how many unreadable lines may come before the first
// event before a file is refused as not a recording at all.
const maxLeadingBad = 8

// recordReader reads a recording line by line, in bounded memory: events,
// and the lines that are not one (a line cut off by a crash, a malformed
// or overlong line) counted with the first one's description.
type recordReader struct {
	r        *bufio.Reader
	buf      []byte
	read     int64 // bytes read
	line     int
	skipped  int
	firstBad string
}

func newRecordReader(r io.Reader) *recordReader {
	return &recordReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// readLine returns the next line without its newline; tooLong says it
// was over maxRecordLine (its bytes were dropped). io.EOF after the last.
func (rr *recordReader) readLine() (line []byte, tooLong bool, err error) {
	rr.buf = rr.buf[:0]
	n := 0
	for {
		chunk, err := rr.r.ReadSlice('\n')
		n += len(chunk)
		rr.read += int64(len(chunk))
		if !tooLong {
			if len(rr.buf)+len(chunk) > maxRecordLine+1 {
				tooLong, rr.buf = true, rr.buf[:0]
			} else {
				rr.buf = append(rr.buf, chunk...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if n == 0 {
				return nil, false, io.EOF
			}
		case err != nil:
			return nil, false, err
		}
		rr.line++
		return bytes.TrimSuffix(rr.buf, []byte("\n")), tooLong, nil
	}
}

// badLine is a line that is not an event, with the reason.
type badLine struct {
	line   int
	reason string
}

func (b *badLine) Error() string { return fmt.Sprintf("line %d: %s", b.line, b.reason) }

// next returns the next event, or the next unreadable line as a *badLine
// error (counted); io.EOF at the end, any other error is a read error.
func (rr *recordReader) next() (inspect.Event, error) {
	for {
		b, tooLong, err := rr.readLine()
		if err != nil {
			return inspect.Event{}, err
		}
		var reason string
		if tooLong {
			reason = fmt.Sprintf("longer than %d MiB", maxRecordLine>>20)
		} else {
			b = bytes.TrimSpace(b)
			if len(b) == 0 {
				continue
			}
			ev, err := decodeEvent(b)
			if err == nil {
				return ev, nil
			}
			reason = err.Error()
		}
		bad := &badLine{line: rr.line, reason: reason}
		rr.skipped++
		if rr.firstBad == "" {
			rr.firstBad = bad.Error()
		}
		return inspect.Event{}, bad
	}
}

// decodeEvent decodes one line of a recording.
func decodeEvent(b []byte) (inspect.Event, error) {
	var ev inspect.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) && se.Offset >= int64(len(b)) {
			return ev, fmt.Errorf("cut off (%w)", err)
		}
		if errors.As(err, &se) && strings.Contains(se.Error(), "after top-level value") {
			return ev, errors.New("more than one JSON value on the line")
		}
		return ev, fmt.Errorf("not an fdtop event (%w)", err)
	}
	if ev.Type == "" {
		return ev, errors.New(`event has no "type"`)
	}
	return ev, nil
}

// maxLeadingBytes bounds how far into a file first looks for an event.
const maxLeadingBytes = 16 << 20

// first reads up to the first event, refusing a file that does not start
// like a recording: nothing but blank lines, or more than maxLeadingBad
// unreadable lines (or maxLeadingBytes) before any event. It gives up
// when ctx ends.
func (rr *recordReader) first(ctx context.Context) (inspect.Event, error) {
	var firstErr error
	for {
		if err := ctx.Err(); err != nil {
			return inspect.Event{}, err
		}
		ev, err := rr.next()
		var bad *badLine
		switch {
		case err == nil:
			return ev, nil
		case errors.As(err, &bad):
			if firstErr == nil {
				firstErr = bad
			}
			if rr.skipped > maxLeadingBad || rr.read > maxLeadingBytes {
				return ev, fmt.Errorf("not an fdtop recording: %w", firstErr)
			}
		case errors.Is(err, io.EOF):
			if firstErr != nil {
				return ev, fmt.Errorf("not an fdtop recording: %w", firstErr)
			}
			return ev, errors.New("the recording has no events")
		default:
			return ev, err
		}
	}
}

// ParseRecording reads a whole file written by `fdtop watch --record`
// strictly: JSON lines, one inspect.Event per line (blank lines are
// skipped), an error naming the first line that is not one. For checking
// a file; replay itself streams it and skips such lines.
func ParseRecording(r io.Reader) ([]inspect.Event, error) {
	rr := newRecordReader(r)
	var evs []inspect.Event
	for {
		ev, err := rr.next()
		if errors.Is(err, io.EOF) {
			return evs, nil
		}
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
}

// replayBatch is a run of events read ahead by the feed, with the lines
// skipped on the way.
type replayBatch struct {
	events   []inspect.Event
	skipped  int    // lines skipped since the previous batch
	firstBad string // the first skipped line of the file, once known
	eof      bool
	err      error // a read error: the end of the replay
}

// replayBatchMsg delivers a batch to the model.
type replayBatchMsg replayBatch

// replayCountMsg is the count of a whole recording file, made alongside
// the replay.
type replayCountMsg struct {
	events, skipped int
	firstBad        string
}

// Read-ahead bounds: the feed reads replayBatchSize events at a time and
// holds at most two batches; the model asks for more below replayLow.
const (
	replayBatchSize = 256
	replayLow       = 64
)

// startFeed reads the rest of a recording in a goroutine, a batch at a
// time, until EOF, a read error or ctx; fetch returns the next batch.
func startFeed(ctx context.Context, rr *recordReader) (fetch func() tea.Msg) {
	ch := make(chan replayBatch, 2)
	go func() {
		defer close(ch)
		for {
			var b replayBatch
			skippedBefore := rr.skipped
			for len(b.events) < replayBatchSize {
				ev, err := rr.next()
				var bad *badLine
				if errors.As(err, &bad) {
					continue
				}
				if errors.Is(err, io.EOF) {
					b.eof = true
					break
				}
				if err != nil {
					b.err, b.eof = err, true
					break
				}
				b.events = append(b.events, ev)
			}
			b.skipped, b.firstBad = rr.skipped-skippedBefore, rr.firstBad
			select {
			case ch <- b:
			case <-ctx.Done():
				return
			}
			if b.eof {
				return
			}
		}
	}()
	return func() tea.Msg {
		select {
		case b, ok := <-ch:
			if !ok {
				return replayBatchMsg{eof: true}
			}
			return replayBatchMsg(b)
		case <-ctx.Done():
			return nil
		}
	}
}

// countRecording counts a recording's events and unreadable lines (the
// header's total) without keeping them.
func countRecording(ctx context.Context, r io.Reader) tea.Cmd {
	return func() tea.Msg {
		rr := newRecordReader(r)
		n := 0
		for ctx.Err() == nil {
			_, err := rr.next()
			var bad *badLine
			switch {
			case err == nil:
				n++
			case errors.As(err, &bad):
			default:
				if errors.Is(err, io.EOF) {
					return replayCountMsg{events: n, skipped: rr.skipped, firstBad: rr.firstBad}
				}
				return nil // a read error: the total stays unknown
			}
		}
		return nil
	}
}

// replayTickMsg shows the next event; gen drops ticks scheduled before a
// pause, a step or a speed change.
type replayTickMsg struct{ gen int }

// ReplayModel plays a recorded timeline, a tea.Model. Build it with
// NewReplayModel (events in memory) or let RunReplay stream a file: then
// it holds only the events read ahead (a few hundred) and the timeline's
// last maxTimeline, whatever the file's size.
type ReplayModel struct {
	st       Styles
	keys     ReplayKeyMap
	help     help.Model
	timeline timelineModel
	queue    []inspect.Event // read ahead, not shown yet
	last     *inspect.Event  // the last event shown
	shown    int             // events shown
	paused   bool
	stepped  bool
	speed    float64
	gen      int
	showHelp bool
	width    int
	height   int

	// Streaming (RunReplay); fetch is nil when every event is in queue.
	fetch    func() tea.Msg
	fetching bool
	eof      bool  // nothing more will arrive
	readErr  error // why the stream ended early
	count    tea.Cmd
	counted  *replayCountMsg // the whole file's count, once made
	skipped  int             // unreadable lines passed so far
	firstBad string
	stepOwed bool // a step asked for while nothing was read ahead
}

// NewReplayModel returns a replay of events.
func NewReplayModel(events []inspect.Event, opts ReplayOptions) ReplayModel {
	if opts.Speed <= 0 {
		opts.Speed = 1
	}
	st := DefaultStyles()
	m := ReplayModel{
		st: st, keys: DefaultReplayKeyMap(), help: help.New(), timeline: newTimelineModel(st),
		queue: events, eof: true, stepped: opts.Stepped, paused: opts.Stepped, speed: opts.Speed,
	}
	m.timeline.focused = true
	m.resize(80, 24)
	return m
}

// newStreamingReplay returns a replay that starts with first, the lines
// rr skipped before it counted, and reads the rest from rr in a goroutine
// until ctx ends; count, if not nil, counts the whole file.
func newStreamingReplay(ctx context.Context, first inspect.Event, rr *recordReader, count tea.Cmd, opts ReplayOptions) ReplayModel {
	m := NewReplayModel([]inspect.Event{first}, opts)
	m.skipped, m.firstBad = rr.skipped, rr.firstBad // before the feed reads on
	m.fetch, m.count, m.eof = startFeed(ctx, rr), count, false
	return m
}

// Init shows the first event and, unless stepped, schedules the next; a
// streaming replay starts reading ahead and counting.
func (m ReplayModel) Init() tea.Cmd {
	tick := func() tea.Msg { return replayTickMsg{gen: 0} }
	if m.fetch == nil {
		return tick
	}
	return tea.Batch(tick, m.fetch, m.count)
}

// refill asks the feed for more events when few are left.
func (m *ReplayModel) refill() tea.Cmd {
	if m.fetch == nil || m.fetching || m.eof || len(m.queue) >= replayLow {
		return nil
	}
	m.fetching = true
	return m.fetch
}

// Update plays, steps and scrolls.
func (m ReplayModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.resize(msg.Width, msg.Height)
	case replayTickMsg:
		if msg.gen != m.gen || (m.paused && m.shown > 0) {
			return m, nil
		}
		cmd := m.show()
		return m, tea.Batch(cmd, m.schedule())
	case replayBatchMsg:
		starved := len(m.queue) == 0
		m.fetching = false
		m.queue = append(m.queue, msg.events...)
		m.skipped += msg.skipped
		if msg.firstBad != "" && m.firstBad == "" {
			m.firstBad = msg.firstBad
		}
		if msg.err != nil {
			m.readErr = msg.err
		}
		m.eof = m.eof || msg.eof
		var cmds []tea.Cmd
		if m.stepOwed && len(m.queue) > 0 {
			m.stepOwed = false
			cmds = append(cmds, m.show())
		}
		if starved && !m.paused && m.shown > 0 {
			m.gen++
			cmds = append(cmds, m.schedule())
		}
		cmds = append(cmds, m.refill())
		return m, tea.Batch(cmds...)
	case replayCountMsg:
		m.counted = &msg
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
		if len(m.queue) == 0 && !m.eof {
			m.stepOwed = true
			return m, m.refill()
		}
		cmd := m.show()
		m.gen++
		return m, tea.Batch(cmd, m.schedule())
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
func (m *ReplayModel) show() tea.Cmd {
	if len(m.queue) == 0 {
		return nil
	}
	ev := m.queue[0]
	m.queue[0] = inspect.Event{}
	m.queue = m.queue[1:]
	m.timeline.Append(ev)
	m.last = &ev
	m.shown++
	return m.refill()
}

// schedule arms the tick for the next event at the recorded pace.
func (m ReplayModel) schedule() tea.Cmd {
	if m.paused || len(m.queue) == 0 || m.last == nil {
		return nil
	}
	gap := m.queue[0].Time.Sub(m.last.Time)
	gap = min(max(gap, 0), maxReplayGap)
	gen := m.gen
	return tea.Tick(time.Duration(float64(gap)/m.speed), func(time.Time) tea.Msg { return replayTickMsg{gen: gen} })
}

// Shown returns how many events are on screen.
func (m ReplayModel) Shown() int { return m.shown }

// total returns the number of events in the recording, when known.
func (m ReplayModel) total() (int, bool) {
	if m.eof {
		return m.shown + len(m.queue), true
	}
	if m.counted != nil {
		return max(m.counted.events, m.shown+len(m.queue)), true
	}
	return 0, false
}

// note says what of the file could not be played: unreadable lines
// skipped, a read error.
func (m ReplayModel) note() string {
	var parts []string
	skipped, firstBad, where := m.skipped, m.firstBad, "so far"
	if m.counted != nil && (m.counted.skipped > skipped || m.eof) {
		skipped, where = max(m.counted.skipped, skipped), "in the file"
		if firstBad == "" {
			firstBad = m.counted.firstBad
		}
	} else if m.eof {
		where = "in the file"
	}
	if skipped > 0 {
		parts = append(parts, fmt.Sprintf("%s skipped %s (first: %s)", plural(skipped, "unreadable line", "unreadable lines"), where, firstBad))
	}
	if m.readErr != nil {
		parts = append(parts, "stopped reading: "+m.readErr.Error())
	}
	return strings.Join(parts, " · ")
}

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
	case m.eof && len(m.queue) == 0:
		state = "end of recording"
	case m.stepped && m.paused:
		state = "stepped (n/space: next)"
	case m.paused:
		state = "paused (p resumes)"
	}
	at := ""
	if m.last != nil {
		at = m.last.Time.Format("2006-01-02 15:04:05.000") + " · "
	}
	total := "…"
	if n, ok := m.total(); ok {
		total = strconv.Itoa(n)
	}
	head := m.st.Header.Title.Render("fdtop replay") + m.st.Header.Muted.Render(" · ") +
		fmt.Sprintf("%s%d/%s events · %s", at, m.shown, total, state)
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
		note := ""
		if n := m.note(); n != "" {
			note = m.st.Header.Muted.Render("! " + n)
		}
		lines = append(lines, m.st.Pane.FocusedTitle.Render(fit("▸ "+t, m.width)), m.timeline.View(), fit(note, m.width))
	}
	lines = append(lines, fit(m.help.ShortHelpView(m.keys.ShortHelp()), m.width))
	return strings.Join(lines, "\n")
}

// RunReplay plays a recording from r on the terminal until the operator
// quits or ctx is done. It streams: the first frame comes as soon as the
// first event is read, memory stays bounded whatever the file's size, and
// lines that are not events (cut off, malformed, overlong) are skipped and
// counted on screen. A file that does not start like a recording is
// refused. When r is a regular file, a second reader counts its events
// for the header's total.
func RunReplay(ctx context.Context, r io.Reader, opts ReplayOptions) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rr := newRecordReader(r)
	first, err := rr.first(ctx)
	if err != nil {
		return err
	}
	var count tea.Cmd
	if f, ok := r.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			count = countRecording(ctx, io.NewSectionReader(f, 0, st.Size()))
		}
	}
	return runProgram(ctx, newStreamingReplay(ctx, first, rr, count, opts))
}
