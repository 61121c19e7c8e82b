package fleet

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/ui"
)

// RemoteSource is the dashboard's Source on one remote host: the picture
// is the live model the agent's updates build (no scan round trip per
// refresh), the timeline is the agent's, actions run there. A lost host
// is reconnected (see follow).
type RemoteSource struct {
	mu      sync.Mutex
	agent   *remoteAgent
	ssh     *sshHost
	swapped chan struct{} // a token when agent was replaced
	events  chan inspect.Event
	updates chan ui.Update
}

// current is the agent in use.
func (s *RemoteSource) current() (*remoteAgent, *sshHost) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.agent, s.ssh
}

// publish sends the dashboard the host's picture as the agent's updates
// change it (or why there is none), until ctx ends.
func (s *RemoteSource) publish(ctx context.Context) {
	send := func(u ui.Update) bool {
		select {
		case <-s.updates: // an unread older picture
		default:
		}
		select {
		case s.updates <- u:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		a, h := s.current()
		select {
		case <-a.Changed():
			if m := a.Model(); m != nil && !send(ui.Update{Snapshot: m, At: time.Now()}) {
				return
			}
		case <-a.Done():
			if !send(ui.Update{Err: fmt.Errorf("connection lost: %s", a.Why(h)), At: time.Now()}) {
				return
			}
			select {
			case <-s.swapped:
			case <-ctx.Done():
				return
			}
		case <-s.swapped:
		case <-ctx.Done():
			return
		}
	}
}

// Updates implements ui.Source.
func (s *RemoteSource) Updates() <-chan ui.Update { return s.updates }

// Show implements ui.Source: the agent's model rescans on its own.
func (s *RemoteSource) Show([]string) {}

// Refresh implements ui.Source: the agent's model rescans on its own.
func (s *RemoteSource) Refresh() bool { return false }

// Events implements ui.Source.
func (s *RemoteSource) Events() <-chan inspect.Event { return s.events }

// Act implements ui.Source: the action runs on the host.
func (s *RemoteSource) Act(ctx context.Context, action ui.Action, unit string, probe bool) (inspect.ActionResult, error) {
	a, _ := s.current()
	return a.Act(ctx, string(action), unit, probe)
}

// RemoteSource starts following the fleet's first host as the dashboard's
// Source (its ControlMaster opened by Open, before the dashboard takes the
// terminal, so ssh could prompt); it runs until ctx ends, and wait returns
// once every goroutine it started has.
func (f *Fleet) RemoteSource(ctx context.Context) (src *RemoteSource, wait func(), err error) {
	h := f.hosts[0]
	if h.err == nil {
		h.err = h.agent.Watch(ctx)
	}
	if h.err != nil {
		return nil, nil, fmt.Errorf("%s: %w", h.name(), h.err)
	}
	o := f.o
	var wg sync.WaitGroup
	src = &RemoteSource{agent: h.agent, ssh: h.ssh, events: make(chan inspect.Event, 1024),
		updates: make(chan ui.Update, 1), swapped: make(chan struct{}, 1)}
	tagged := make(chan HostEvent, 1024)
	wg.Add(3)
	go func() {
		defer wg.Done()
		src.publish(ctx)
	}()
	go func() {
		defer wg.Done()
		follow(ctx, f.tr, h, o, tagged, followHooks{onAgent: func(a *remoteAgent, s *sshHost) {
			src.mu.Lock()
			src.agent, src.ssh = a, s
			src.mu.Unlock()
			select {
			case src.swapped <- struct{}{}:
			default:
			}
		}})
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case e := <-tagged:
				select {
				case src.events <- e.Event:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return src, wg.Wait, nil
}
