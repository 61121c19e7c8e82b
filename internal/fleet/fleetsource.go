package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/clierr"
	"github.com/fdtop/fdtop/internal/termsafe"
	"github.com/fdtop/fdtop/ui"
)

// FleetSource is the dashboard's Source on several hosts (a ui.FleetSource):
// one RemoteSource per host, each followed and reconnected on its own, and
// one picture of the fleet published whenever a host's state or picture
// changes. It alone keeps each host's state; the dashboard draws it.
type FleetSource struct {
	hosts   []*fleetMember
	events  chan inspect.Event
	updates chan ui.Update
	changed chan struct{} // a token when a host changed

	mu sync.Mutex // guards the members' state, message, retry, snap, src
}

// fleetMember is one host of the fleet view.
type fleetMember struct {
	host    *fleetHost
	shown   string // the host as the dashboard shows it (escaped)
	state   ui.HostState
	message string
	retry   time.Time
	snap    *inspect.Snapshot
	src     *RemoteSource // nil until its agent watches
	// tap gets a copy of each of the host's events while a rollout waits
	// for its verdict (nil otherwise).
	tap chan inspect.Event
}

// FleetSource starts following every host of f until ctx ends (one
// that failed to open is unreachable and retried, or failed when no retry
// could change why: fleetMember.tried); wait returns once every goroutine
// it started has.
func (f *Fleet) FleetSource(ctx context.Context) (src *FleetSource, wait func()) {
	o := f.o
	s := &FleetSource{events: make(chan inspect.Event, 1024), updates: make(chan ui.Update, 1), changed: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	for _, h := range f.hosts {
		m := &fleetMember{host: h, shown: termsafe.String(h.target.Spec)}
		m.tried(h.err, time.Now().Add(reconnectFirst))
		s.hosts = append(s.hosts, m)
	}
	s.kick()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.publish(ctx)
	}()
	for _, m := range s.hosts {
		if m.state == ui.HostFailed {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(ctx, f.tr, m, o)
		}()
	}
	return s, wg.Wait
}

// tried records a try to reach a host not reached since fdtop started:
// err nil, reached (connecting, its first picture to come); a failure a
// retry could change (judgeStart), unreachable until the next try at next,
// with why; one no retry could change, failed.
func (m *fleetMember) tried(err error, next time.Time) {
	if err == nil {
		m.state, m.message, m.retry = ui.HostConnecting, "", time.Time{}
		return
	}
	msg, retry := judgeStart(err)
	if retry {
		m.state, m.message, m.retry = ui.HostUnreachable, msg, next
	} else {
		m.state, m.message, m.retry = ui.HostFailed, msg, time.Time{}
	}
}

// set changes a host's state under the lock and tells the publisher.
func (s *FleetSource) set(m *fleetMember, f func(m *fleetMember)) {
	s.mu.Lock()
	f(m)
	s.mu.Unlock()
	s.kick()
}

func (s *FleetSource) kick() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// run follows one host: its live model's pictures set its picture and
// state, its timeline goes to the fleet's tagged with the host, and a lost
// connection is retried (follow) with the state saying so. A host not
// reached at start (or whose agent's watch failed) is retried first
// (reachLate), unreachable until it is reached.
func (s *FleetSource) run(ctx context.Context, tr *sshTransport, m *fleetMember, o AgentOptions) {
	h := m.host
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tagged := make(chan HostEvent, 256)
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.forward(ctx, m, tagged)
	}()
	first := h.err
	if first == nil {
		if err := h.agent.Watch(ctx); err != nil {
			if h.agent.Err() != nil {
				err = fmt.Errorf("connection lost: %s", h.agent.Why(h.ssh))
			}
			h.agent.Close()
			h.ssh.stop()
			h.agent, first = nil, err
			s.set(m, func(m *fleetMember) { m.tried(first, time.Now().Add(reconnectFirst)) })
		}
	}
	if first != nil {
		err := reachLate(ctx, tr, h, o, first, tagged, func(next time.Time, err error) {
			s.set(m, func(m *fleetMember) { m.tried(err, next) })
		})
		if err != nil {
			if ctx.Err() == nil {
				s.set(m, func(m *fleetMember) { m.tried(err, time.Time{}) })
			}
			return
		}
		s.set(m, func(m *fleetMember) { m.tried(nil, time.Time{}) })
	}
	rs := &RemoteSource{agent: h.agent, ssh: h.ssh, events: make(chan inspect.Event, 1), updates: make(chan ui.Update, 1), swapped: make(chan struct{}, 1)}
	s.set(m, func(m *fleetMember) { m.src = rs })
	wg.Add(2)
	go func() {
		defer wg.Done()
		rs.publish(ctx)
	}()
	go func() {
		defer wg.Done()
		follow(ctx, tr, h, o, tagged, followHooks{
			onAgent: func(a *remoteAgent, ssh *sshHost) {
				rs.mu.Lock()
				rs.agent, rs.ssh = a, ssh
				rs.mu.Unlock()
				select {
				case rs.swapped <- struct{}{}:
				default:
				}
			},
			onRetry: func(next time.Time, err error) {
				s.set(m, func(m *fleetMember) {
					m.state, m.retry = ui.HostReconnecting, next
					if err != nil {
						m.message = clierr.OneLine(err)
					}
				})
			},
		})
	}()
	for {
		select {
		case u := <-rs.updates:
			s.set(m, func(m *fleetMember) {
				if u.Snapshot != nil {
					m.snap, m.state, m.message, m.retry = u.Snapshot, ui.HostOK, "", time.Time{}
				} else if u.Err != nil {
					m.message = strings.TrimPrefix(clierr.OneLine(u.Err), "connection lost: ")
					if m.state != ui.HostReconnecting { // follow may have said so first
						m.state = ui.HostLost
					}
				}
			})
		case <-ctx.Done():
			return
		}
	}
}

// forward passes a host's events to the fleet's timeline, each one's
// Target its host (and a copy to a rollout's tap), until ctx ends.
func (s *FleetSource) forward(ctx context.Context, m *fleetMember, tagged <-chan HostEvent) {
	for {
		select {
		case e := <-tagged:
			e.Event.Target = e.Target
			s.mu.Lock()
			tap := m.tap
			s.mu.Unlock()
			if tap != nil {
				select {
				case tap <- e.Event:
				default: // a rollout that stopped reading
				}
			}
			select {
			case s.events <- e.Event:
			case <-ctx.Done():
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// picture is the fleet as the dashboard draws it.
func (s *FleetSource) picture() []ui.HostPicture {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ui.HostPicture, len(s.hosts))
	for i, m := range s.hosts {
		out[i] = ui.HostPicture{Host: m.host.target.Spec, State: m.state, Message: m.message, Retry: m.retry, Snapshot: m.snap}
	}
	return out
}

// publish sends the fleet's picture each time a host changed (a picture
// not yet read is replaced), until ctx ends.
func (s *FleetSource) publish(ctx context.Context) {
	for {
		select {
		case <-s.changed:
		case <-ctx.Done():
			return
		}
		u := ui.Update{Hosts: s.picture(), At: time.Now()}
		select {
		case <-s.updates:
		default:
		}
		select {
		case s.updates <- u:
		case <-ctx.Done():
			return
		}
	}
}

// Updates implements ui.Source.
func (s *FleetSource) Updates() <-chan ui.Update { return s.updates }

// Show implements ui.Source: each agent's model rescans on its own.
func (s *FleetSource) Show([]string) {}

// Refresh implements ui.Source: each agent's model rescans on its own.
func (s *FleetSource) Refresh() bool { return false }

// Events implements ui.Source: every host's timeline, each event's Target
// its host.
func (s *FleetSource) Events() <-chan inspect.Event { return s.events }

// Act implements ui.Source: a fleet's actions name their host (ActOn).
func (s *FleetSource) Act(context.Context, ui.Action, string, bool) (inspect.ActionResult, error) {
	return inspect.ActionResult{}, errors.New("several hosts: the action names no host")
}

// member finds a host by the name the dashboard shows.
func (s *FleetSource) member(host string) (*fleetMember, *RemoteSource, ui.HostState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.hosts {
		if m.shown == host {
			return m, m.src, m.state
		}
	}
	return nil, nil, ""
}

// ActOn implements ui.FleetSource: the action runs on that host only.
func (s *FleetSource) ActOn(ctx context.Context, host string, action ui.Action, unit string, probe bool) (inspect.ActionResult, error) {
	m, rs, state := s.member(host)
	switch {
	case m == nil:
		return inspect.ActionResult{}, fmt.Errorf("no host %s in this fleet", host)
	case rs == nil || state != ui.HostOK:
		return inspect.ActionResult{}, fmt.Errorf("host %s is %s: nothing was asked of it", host, state)
	}
	return rs.Act(ctx, action, unit, probe)
}

// Rollout implements ui.RolloutSource with fdtop rollout's own code: every
// host prepared first (nothing restarted unless all have the unit), then
// host by host, stopping at the first verdict over the default budget.
func (s *FleetSource) Rollout(ctx context.Context, unit string, hosts []string, probe bool) <-chan ui.RolloutStep {
	ch := make(chan ui.RolloutStep, 2*len(hosts)) // a host's restart and its outcome: never blocks
	go func() {
		defer close(ch)
		var rhs []*RolloutHost
		for _, name := range hosts {
			rh := &RolloutHost{name: name}
			rhs = append(rhs, rh)
			m, rs, state := s.member(name)
			switch {
			case m == nil:
				rh.err = fmt.Errorf("no host %s in this fleet", name)
				continue
			case rs == nil || state != ui.HostOK:
				rh.err = fmt.Errorf("host is %s", state)
				continue
			}
			a, ssh := rs.current()
			rh.client, rh.why = a.Client, func() string { return a.Why(ssh) }
			tap := make(chan inspect.Event, 1024)
			rh.events = tap
			s.mu.Lock()
			m.tap = tap
			s.mu.Unlock()
			defer func() {
				s.mu.Lock()
				m.tap = nil
				s.mu.Unlock()
			}()
		}
		r := &Rollout{Unit: unit, Probe: probe, Timeout: 2 * time.Minute,
			OnRestart: func(host string) { ch <- ui.RolloutStep{Host: host, Status: ui.RolloutRestarting} },
			OnLine: func(l RolloutLine) {
				ch <- ui.RolloutStep{Host: l.Target, Status: l.Status, Reason: l.Reason, Result: l.Result, Handoff: l.Handoff}
			}}
		r.Run(ctx, ctx, rhs)
	}()
	return ch
}
