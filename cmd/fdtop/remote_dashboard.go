package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/ui"
)

// remoteSource is the dashboard's Source on one remote host: the picture
// is the live model the agent's updates build (no scan round trip per
// refresh), the timeline is the agent's, actions run there. A lost host
// is reconnected (see follow).
type remoteSource struct {
	mu      sync.Mutex
	agent   *remoteAgent
	ssh     *sshHost
	swapped chan struct{} // a token when agent was replaced
	events  chan inspect.Event
	updates chan ui.Update
}

// current is the agent in use.
func (s *remoteSource) current() (*remoteAgent, *sshHost) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.agent, s.ssh
}

// publish sends the dashboard the host's picture as the agent's updates
// change it (or why there is none), until ctx ends.
func (s *remoteSource) publish(ctx context.Context) {
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
func (s *remoteSource) Updates() <-chan ui.Update { return s.updates }

// Show implements ui.Source: the agent's model rescans on its own.
func (s *remoteSource) Show([]string) {}

// Refresh implements ui.Source: the agent's model rescans on its own.
func (s *remoteSource) Refresh() bool { return false }

// Events implements ui.Source.
func (s *remoteSource) Events() <-chan inspect.Event { return s.events }

// Act implements ui.Source: the action runs on the host.
func (s *remoteSource) Act(ctx context.Context, action ui.Action, unit string, probe bool) (ui.ActionResult, error) {
	a, _ := s.current()
	out, err := a.Act(ctx, string(action), unit, probe)
	return ui.ActionResult{Job: out.Job, Result: out.Result, Message: out.Message}, err
}

// remoteDashboard runs the dashboard on one remote host. Its
// ControlMaster opens before the dashboard takes the terminal, so ssh can
// ask for a password or a host key on it.
func remoteDashboard(ctx context.Context, sig *caught, opts *dashboardOptions) int {
	ff, mf, df, patterns, stderrW := &opts.Fleet, opts.Manager, opts.View, opts.Patterns, opts.IO.Err
	var interval time.Duration
	if opts.IntervalSet {
		interval = df.interval
	}
	targets, err := ff.targets()
	if err != nil {
		return fail(stderrW, "", err)
	}
	if len(targets) > 1 {
		code, err := fleetDashboard(ctx, ff, targets, agentArgs(&mf, interval, patterns), df, patterns)
		if err != nil {
			return failUnlessSignalled(stderrW, "", sig, err)
		}
		return code
	}
	o := agentOptions{args: agentArgs(&mf, interval, patterns), sudo: ff.sudo, push: ff.push}
	f, err := openFleet(ctx, ff, targets, o)
	if err != nil {
		return failUnlessSignalled(stderrW, "", sig, err)
	}
	defer f.Close()
	h := f.hosts[0]
	if h.err == nil {
		h.err = h.agent.Watch(ctx)
	}
	if h.err != nil {
		return failUnlessSignalled(stderrW, "", sig, fmt.Errorf("%s: %w", h.name(), h.err))
	}
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel below
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	src := &remoteSource{agent: h.agent, ssh: h.ssh, events: make(chan inspect.Event, 1024),
		updates: make(chan ui.Update, 1), swapped: make(chan struct{}, 1)}
	tagged := make(chan hostEvent, 1024)
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
	uiOpts := ui.Options{ReadOnly: df.readOnly, Probe: df.probe, Interval: df.interval, Patterns: patterns}
	if err := ui.Run(ctx, src, uiOpts); err != nil {
		return failUnlessSignalled(stderrW, "", sig, err)
	}
	return exitOK
}
