package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/fdtop/fdtop/inspect"
)

// Protocol is the version of the protocol `fdtop agent` speaks on its
// stdin and stdout. A client refuses an agent with another version.
const Protocol = 1

// The agent's capabilities, announced in its hello.
const (
	CapSnapshot = "snapshot" // one snapshot on request
	CapWatch    = "watch"    // the live model: updates and timeline events
	CapActions  = "actions"  // restart, stop, start, reload, try-restart
	CapProbe    = "probe"    // the gap meter alongside an action
)

// Message types of the agent protocol. Every message is one JSON object on
// one line with a "type"; requests carry an "id" that their reply repeats.
const (
	MsgHello    = "hello"    // agent → client, first: protocol, version, capabilities
	MsgSnapshot = "snapshot" // client → agent (request), agent → client (reply with "snapshot")
	MsgWatch    = "watch"    // client → agent: start the live model; reply "watching"
	MsgWatching = "watching" // agent → client: the live model runs
	MsgUpdate   = "update"   // agent → client: what changed in the picture (the first is all of it)
	MsgEvent    = "event"    // agent → client: one timeline event
	MsgAct      = "act"      // client → agent: run an action on a unit
	MsgResult   = "result"   // agent → client: how an action ended
	MsgError    = "error"    // agent → client: a request failed (with id) or the agent stops (without)
)

// Message is one line of the agent protocol.
type Message struct {
	Type string `json:"type"`
	ID   int    `json:"id,omitempty"`

	// Hello.
	Protocol     int      `json:"protocol,omitempty"`
	Version      string   `json:"version,omitempty"`
	Capabilities []string `json:"capabilities,omitempty"`
	Hostname     string   `json:"hostname,omitempty"`
	User         string   `json:"user,omitempty"`

	// Requests.
	Full   bool   `json:"full,omitempty"`   // snapshot: scan every process of the host
	Action string `json:"action,omitempty"` // act: restart, stop, start, reload, try-restart
	Unit   string `json:"unit,omitempty"`   // act
	Probe  bool   `json:"probe,omitempty"`  // act: run the gap meter alongside

	// Replies and stream.
	Snapshot *inspect.Snapshot       `json:"snapshot,omitempty"`
	Update   *inspect.SnapshotUpdate `json:"update,omitempty"`
	Event    *inspect.Event          `json:"event,omitempty"`
	Result   *inspect.ActionResult   `json:"result,omitempty"`
	Error    string                  `json:"error,omitempty"`
}

// Model is what an agent serves: the live model of one manager. The
// command implements it with the Builder, the Watcher and the dbusclient
// actions.
type Model interface {
	// Snapshot takes one snapshot now (every process of the host when full).
	Snapshot(ctx context.Context, full bool) (*inspect.Snapshot, error)
	// Run runs the live model until ctx ends: each new picture goes to
	// onSnapshot, each timeline event to onEvent (each called from one
	// goroutine at a time, not necessarily the same for both).
	Run(ctx context.Context, onSnapshot func(*inspect.Snapshot), onEvent func(inspect.Event)) error
	// Act runs an action on a unit, with the gap meter when probe is set.
	Act(ctx context.Context, action, unit string, probe bool) (inspect.ActionResult, error)
}

// Serve speaks the agent protocol on r and w for model until r ends
// or ctx is cancelled: the hello first, then replies to requests, and
// once a client asked to watch, updates (only what changed) and events.
func Serve(ctx context.Context, r io.Reader, w io.Writer, model Model, hello Message) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu   sync.Mutex
		werr error
	)
	bw := bufio.NewWriter(w)
	send := func(m Message) error {
		b, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("encode %s: %w", m.Type, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if werr != nil {
			return werr
		}
		bw.Write(b)
		bw.WriteByte('\n')
		if werr = bw.Flush(); werr != nil {
			cancel()
		}
		return werr
	}
	hello.Type = MsgHello
	hello.Protocol = Protocol
	if len(hello.Capabilities) == 0 {
		hello.Capabilities = []string{CapSnapshot, CapWatch, CapActions, CapProbe}
	}
	if err := send(hello); err != nil {
		return err
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	watching := false
	runErr := make(chan error, 1)

	lines := make(chan []byte)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			line := append([]byte(nil), sc.Bytes()...)
			select {
			case lines <- line:
			case <-ctx.Done():
				return
			}
		}
		readErr <- sc.Err()
	}()

	for {
		var line []byte
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			return err // the client closed the channel: nil
		case err := <-runErr:
			msg := "live model stopped"
			if err != nil {
				msg += ": " + err.Error()
			}
			_ = send(Message{Type: MsgError, Error: msg})
			return err
		case line = <-lines:
		}
		var req Message
		if err := json.Unmarshal(line, &req); err != nil {
			_ = send(Message{Type: MsgError, Error: fmt.Sprintf("bad request: %v", err)})
			continue
		}
		switch req.Type {
		case MsgSnapshot:
			wg.Add(1)
			go func() {
				defer wg.Done()
				snap, err := model.Snapshot(ctx, req.Full)
				if err != nil {
					_ = send(Message{Type: MsgError, ID: req.ID, Error: err.Error()})
					return
				}
				_ = send(Message{Type: MsgSnapshot, ID: req.ID, Snapshot: snap})
			}()
		case MsgWatch:
			if watching {
				_ = send(Message{Type: MsgWatching, ID: req.ID})
				continue
			}
			watching = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				var last *inspect.Snapshot
				onSnap := func(s *inspect.Snapshot) {
					if u, changed := inspect.Diff(last, s); changed {
						last = s
						_ = send(Message{Type: MsgUpdate, Update: &u})
					}
				}
				onEvent := func(e inspect.Event) { _ = send(Message{Type: MsgEvent, Event: &e}) }
				_ = send(Message{Type: MsgWatching, ID: req.ID})
				err := model.Run(ctx, onSnap, onEvent)
				if ctx.Err() == nil {
					runErr <- err
				}
			}()
		case MsgAct:
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := model.Act(ctx, req.Action, req.Unit, req.Probe)
				m := Message{Type: MsgResult, ID: req.ID, Result: &out}
				if err != nil {
					m.Error = err.Error()
				}
				_ = send(m)
			}()
		default:
			_ = send(Message{Type: MsgError, ID: req.ID, Error: fmt.Sprintf("unknown request %q", req.Type)})
		}
	}
}

// ProtocolError is an agent that speaks another protocol version.
type ProtocolError struct {
	// Version is the agent's fdtop version, Protocol its protocol.
	Version  string
	Protocol int
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("the agent (fdtop %s) speaks protocol %d, this fdtop %d", e.Version, e.Protocol, Protocol)
}

// ErrGone is returned for requests to an agent whose channel closed.
var ErrGone = errors.New("connection to the agent lost")

// Client talks to one agent.
type Client struct {
	// Hello is the agent's hello.
	Hello Message

	w      io.Writer
	wmu    sync.Mutex
	mu     sync.Mutex
	nextID int
	wait   map[int]chan Message
	model  *inspect.Snapshot // the picture the updates built
	ready  chan struct{}     // closed at the first update
	change chan struct{}     // a token after each update
	events chan inspect.Event
	done   chan struct{}
	err    error

	// Events wait in queue (unbounded) for the pump to deliver them, so
	// the reader never waits for a consumer: replies to requests keep
	// flowing while nobody takes the timeline.
	qmu   sync.Mutex
	queue []inspect.Event
	wake  chan struct{}
}

// helloTimeout bounds the wait for an agent's hello.
const helloTimeout = 30 * time.Second

// NewClient reads the agent's hello from r and checks its protocol
// version; requests go to w. The Events channel has room for buffer
// events; more wait in an unbounded queue, so an unread timeline never
// holds up replies.
func NewClient(ctx context.Context, r io.Reader, w io.Writer, buffer int) (*Client, error) {
	br := bufio.NewReaderSize(r, 64*1024)
	type first struct {
		m   Message
		err error
	}
	fc := make(chan first, 1)
	go func() {
		line, err := br.ReadBytes('\n')
		if err != nil {
			fc <- first{err: err}
			return
		}
		var m Message
		if err := json.Unmarshal(line, &m); err != nil {
			fc <- first{err: fmt.Errorf("not an fdtop agent (it said %q)", clip(strings.TrimSpace(string(line)), 120))}
			return
		}
		fc <- first{m: m}
	}()
	var f first
	select {
	case f = <-fc:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(helloTimeout):
		return nil, fmt.Errorf("no hello from the agent within %s", helloTimeout)
	}
	if f.err != nil {
		if errors.Is(f.err, io.EOF) {
			return nil, ErrGone
		}
		return nil, f.err
	}
	if f.m.Type != MsgHello {
		return nil, fmt.Errorf("not an fdtop agent: first message %q, want hello", f.m.Type)
	}
	if f.m.Protocol != Protocol {
		return nil, &ProtocolError{Version: f.m.Version, Protocol: f.m.Protocol}
	}
	c := &Client{Hello: f.m, w: w, wait: map[int]chan Message{}, events: make(chan inspect.Event, buffer),
		done: make(chan struct{}), ready: make(chan struct{}), change: make(chan struct{}, 1), wake: make(chan struct{}, 1)}
	go c.read(br)
	go c.pump()
	return c, nil
}

// pump delivers queued events to the Events channel until the channel to
// the agent ends.
func (c *Client) pump() {
	for {
		c.qmu.Lock()
		if len(c.queue) == 0 {
			c.qmu.Unlock()
			select {
			case <-c.wake:
				continue
			case <-c.done:
				return
			}
		}
		e := c.queue[0]
		c.queue[0] = inspect.Event{}
		c.queue = c.queue[1:]
		c.qmu.Unlock()
		select {
		case c.events <- e:
		case <-c.done:
			return
		}
	}
}

// read dispatches the agent's messages until its channel ends.
func (c *Client) read(br *bufio.Reader) {
	var err error
	defer func() {
		c.mu.Lock()
		if err == nil || errors.Is(err, io.EOF) {
			err = ErrGone
		}
		if c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
		close(c.done)
	}()
	for {
		var line []byte
		line, err = br.ReadBytes('\n')
		if err != nil {
			return
		}
		var m Message
		if jerr := json.Unmarshal(line, &m); jerr != nil {
			err = fmt.Errorf("bad message from the agent: %w", jerr)
			return
		}
		switch {
		case m.Type == MsgUpdate && m.Update != nil:
			c.mu.Lock()
			first := c.model == nil
			c.model = m.Update.Apply(c.model)
			c.mu.Unlock()
			if first {
				close(c.ready)
			}
			select {
			case c.change <- struct{}{}:
			default:
			}
		case m.Type == MsgEvent && m.Event != nil:
			c.qmu.Lock()
			c.queue = append(c.queue, *m.Event)
			c.qmu.Unlock()
			select {
			case c.wake <- struct{}{}:
			default:
			}
		case m.Type == MsgError && m.ID == 0:
			err = fmt.Errorf("agent: %s", m.Error)
			return
		case m.ID != 0:
			c.mu.Lock()
			ch := c.wait[m.ID]
			delete(c.wait, m.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
		}
	}
}

// Err is why the channel ended (nil while it is up).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Done is closed when the agent's channel ends.
func (c *Client) Done() <-chan struct{} { return c.done }

// Ready is closed when the first update (the whole picture) has arrived
// after Watch: from then on the live model knows the units' state.
func (c *Client) Ready() <-chan struct{} { return c.ready }

// Changed receives a token when the picture (Model) changed since the
// last one was taken.
func (c *Client) Changed() <-chan struct{} { return c.change }

// Events delivers the timeline once Watch was called.
func (c *Client) Events() <-chan inspect.Event { return c.events }

// Model is the picture built from the agent's updates (nil before the
// first; the caller must not change it).
func (c *Client) Model() *inspect.Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.model
}

// call sends a request and waits for its reply.
func (c *Client) call(ctx context.Context, req Message) (Message, error) {
	ch := make(chan Message, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return Message{}, c.err
	}
	c.nextID++
	req.ID = c.nextID
	c.wait[req.ID] = ch
	c.mu.Unlock()
	b, err := json.Marshal(req)
	if err != nil {
		return Message{}, err
	}
	c.wmu.Lock()
	_, err = c.w.Write(append(b, '\n'))
	c.wmu.Unlock()
	if err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrGone, err)
	}
	select {
	case m := <-ch:
		if m.Type == MsgError {
			return m, errors.New(m.Error)
		}
		return m, nil
	case <-c.done:
		return Message{}, c.Err()
	case <-ctx.Done():
		return Message{}, ctx.Err()
	}
}

// Snapshot asks the agent for one snapshot.
func (c *Client) Snapshot(ctx context.Context, full bool) (*inspect.Snapshot, error) {
	m, err := c.call(ctx, Message{Type: MsgSnapshot, Full: full})
	if err != nil {
		return nil, err
	}
	if m.Snapshot == nil {
		return nil, errors.New("the agent replied without a snapshot")
	}
	return m.Snapshot, nil
}

// Watch starts the agent's live model: updates build Model, events arrive
// on Events. It returns once the agent said it watches.
func (c *Client) Watch(ctx context.Context) error {
	_, err := c.call(ctx, Message{Type: MsgWatch})
	return err
}

// Act runs an action on a unit on the agent's host.
func (c *Client) Act(ctx context.Context, action, unit string, probe bool) (inspect.ActionResult, error) {
	m, err := c.call(ctx, Message{Type: MsgAct, Action: action, Unit: unit, Probe: probe})
	var out inspect.ActionResult
	if m.Result != nil {
		out = *m.Result
	}
	if err == nil && m.Error != "" {
		err = errors.New(m.Error)
	}
	return out, err
}

// clip shortens s to at most n runes, an ellipsis last where it was cut.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
