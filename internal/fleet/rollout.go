package fleet

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/inspect/agent"
	"github.com/fdtop/fdtop/internal/clierr"
	"github.com/fdtop/fdtop/internal/termsafe"
)

// Budget is what a handoff may lose and still pass.
type Budget struct {
	MaxRefused int
	MaxDropped int
}

// check judges a restart: its job result and its handoff against the
// budget. why says what broke it, in words.
func (b Budget) check(result string, h inspect.Handoff) (ok bool, why string) {
	var bad []string
	if result != "" && result != "done" {
		bad = append(bad, "job "+result)
	}
	refused := h.RefusedDelta
	if h.Probe != nil {
		refused += h.Probe.Refused
	}
	switch {
	case h.ListenersKept == 0 && h.ListenersReplaced == 0:
		bad = append(bad, "no listener seen (nothing kept)")
	case h.ListenersReplaced > 0 && b.MaxRefused == 0:
		bad = append(bad, fmt.Sprintf("%d listener(s) replaced", h.ListenersReplaced))
	case h.ListenersReplaced > 0 && h.Probe == nil:
		bad = append(bad, "listener replaced and refusals not measured (use --probe)")
	}
	if refused > b.MaxRefused {
		bad = append(bad, fmt.Sprintf("%d refused (budget %d)", refused, b.MaxRefused))
	}
	if h.ConnectionsDropped > b.MaxDropped {
		bad = append(bad, fmt.Sprintf("%d connection(s) dropped (budget %d)", h.ConnectionsDropped, b.MaxDropped))
	}
	return len(bad) == 0, strings.Join(bad, ", ")
}

// RolloutLine is one line of `rollout --json`: a host's outcome.
type RolloutLine struct {
	Target string `json:"target"`
	Unit   string `json:"unit"`
	// Status is passed, halted (over budget or the restart failed),
	// unknown (the connection or the verdict was lost: its state is not
	// known) or not_touched.
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	Result  string `json:"result,omitempty"`
	// ElapsedMs is from asking for the restart to its verdict.
	ElapsedMs int64 `json:"elapsed_ms,omitempty"`
	*inspect.Handoff
}

// RolloutHost is one host a rollout reaches: its agent and how it is named.
type RolloutHost struct {
	name   string // as given (JSON) / for the terminal
	client *agent.Client
	why    func() string // why its channel ended
	err    error         // could not be reached
	// events is the host's timeline when someone else reads the agent's
	// (the dashboard: a copy of every event); nil: the agent's own.
	events <-chan inspect.Event
}

// timeline is where the host's events arrive.
func (h *RolloutHost) timeline() <-chan inspect.Event {
	if h.events != nil {
		return h.events
	}
	return h.client.Events()
}

// Hosts are the fleet's hosts for a rollout, in the order given.
func (f *Fleet) RolloutHosts() []*RolloutHost {
	var hosts []*RolloutHost
	for _, h := range f.hosts {
		rh := &RolloutHost{name: h.target.Spec, err: h.err}
		if h.agent != nil {
			rh.client = h.agent.Client
			agent, ssh := h.agent, h.ssh
			rh.why = func() string { return agent.Why(ssh) }
		}
		hosts = append(hosts, rh)
	}
	return hosts
}

// LocalHost is this host for a rollout: model served in this process over
// pipes, so a local rollout goes through the same protocol as a remote
// one. stop ends it.
func LocalHost(ctx context.Context, name string, model agent.Model, version string) (h *RolloutHost, stop func(), err error) {
	c, stop, err := localAgent(ctx, model, version)
	if err != nil {
		return nil, nil, err
	}
	return &RolloutHost{name: name, client: c, why: func() string { return "local agent stopped" }}, stop, nil
}

// localAgent serves model in this process over pipes: the local rollout
// goes through the same protocol as a remote one.
func localAgent(ctx context.Context, model agent.Model, version string) (*agent.Client, func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	reqR, reqW := io.Pipe()
	repR, repW := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = agent.Serve(ctx, reqR, repW, model, agent.Message{Version: version})
		repW.Close()
	}()
	c, err := agent.NewClient(ctx, repR, reqW, 4096)
	stop := func() {
		cancel()
		reqW.Close()
		repR.Close()
		<-done
	}
	if err != nil {
		stop()
		return nil, nil, err
	}
	return c, stop, nil
}

// Rollout is one rollout: UNIT restarted host by host, each restart
// judged by its handoff verdict against the Budget.
type Rollout struct {
	Unit    string
	Probe   bool
	Budget  Budget
	Pause   time.Duration
	Timeout time.Duration
	// StopAfter, when it closes, stops the rollout after the current host
	// (before any restart: at once).
	StopAfter <-chan struct{}
	// OnRestart, when set, is told before each host's restart; OnLine gets
	// each host's outcome as it is known.
	OnRestart func(host string)
	OnLine    func(l RolloutLine)
}

// Outcome is how a rollout ended: Passed on every host, or why not
// (Message, for "fdtop rollout: ...").
type Outcome struct {
	Passed  bool
	Hosts   int
	Message string
}

func (r *Rollout) emit(l RolloutLine) {
	if r.OnLine != nil {
		r.OnLine(l)
	}
}

// Run checks every host first (reachable, the unit there), then restarts
// host by host, halting at the first that breaks the budget.
func (r *Rollout) Run(ctx, preCtx context.Context, hosts []*RolloutHost) Outcome {
	// Preflight: touch nothing unless every host is reachable and has the
	// unit; the live model starts on each so its state before the restart
	// is known.
	services := make([]string, len(hosts))
	var bad []string
	for i, h := range hosts {
		if h.err == nil {
			services[i], h.err = r.prepare(preCtx, h)
		}
		if h.err != nil {
			bad = append(bad, fmt.Sprintf("%s: %s", termsafe.String(h.name), termsafe.String(clierr.OneLine(h.err))))
		}
	}
	select {
	case <-r.StopAfter:
		r.notTouched(hosts)
		return Outcome{Hosts: len(hosts), Message: "interrupted before the first restart: nothing restarted"}
	default:
	}
	if len(bad) > 0 {
		for _, h := range hosts {
			l := RolloutLine{Target: h.name, Unit: r.Unit, Status: "not_touched"}
			if h.err != nil {
				l.Reason = h.err.Error()
			}
			r.emit(l)
		}
		return Outcome{Hosts: len(hosts), Message: fmt.Sprintf("not started, nothing restarted: %s", strings.Join(bad, "; "))}
	}
	for i, h := range hosts {
		if r.OnRestart != nil {
			r.OnRestart(h.name)
		}
		line := r.restart(ctx, h, services[i])
		r.emit(line)
		if line.Status != "passed" {
			r.notTouched(hosts[i+1:])
			what := "halted at"
			if line.Status == "unknown" {
				what = "halted: state unknown at"
			}
			return Outcome{Hosts: len(hosts), Message: fmt.Sprintf("%s %s: %s%s", what, termsafe.String(h.name), termsafe.String(line.Reason), r.untouched(hosts[i+1:]))}
		}
		if i == len(hosts)-1 {
			break
		}
		select {
		case <-r.StopAfter:
			r.notTouched(hosts[i+1:])
			return Outcome{Hosts: len(hosts), Message: fmt.Sprintf("interrupted: stopped after %s (passed)%s", termsafe.String(h.name), r.untouched(hosts[i+1:]))}
		case <-time.After(r.Pause):
		}
	}
	return Outcome{Passed: true, Hosts: len(hosts)}
}

func (r *Rollout) notTouched(hosts []*RolloutHost) {
	for _, h := range hosts {
		r.emit(RolloutLine{Target: h.name, Unit: r.Unit, Status: "not_touched"})
	}
}

func (r *Rollout) untouched(hosts []*RolloutHost) string {
	if len(hosts) == 0 {
		return ""
	}
	names := make([]string, len(hosts))
	for i, h := range hosts {
		names[i] = termsafe.String(h.name)
	}
	return "; not touched: " + strings.Join(names, ", ")
}

// prepare starts the host's live model and finds the service whose
// handoff judges the restart (the socket's service for a .socket).
func (r *Rollout) prepare(ctx context.Context, h *RolloutHost) (string, error) {
	pctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	if err := h.client.Watch(pctx); err != nil {
		return "", err
	}
	select {
	case <-h.client.Ready():
	case <-h.client.Done():
		return "", fmt.Errorf("connection lost: %s", h.why())
	case <-pctx.Done():
		return "", fmt.Errorf("no picture of the units within %s", r.Timeout)
	}
	snap := h.client.Model()
	if strings.HasSuffix(r.Unit, ".socket") {
		for _, s := range snap.Sockets {
			if s.Unit == r.Unit && s.Service != "" && !s.Accept {
				return s.Service, nil
			}
		}
		return "", fmt.Errorf("no socket unit %s with one service (an Accept=yes socket has no restart to judge)", r.Unit)
	}
	for _, s := range snap.Services {
		if s.Unit == r.Unit {
			return s.Unit, nil
		}
	}
	return "", fmt.Errorf("no unit %s there", r.Unit)
}

// restart restarts the unit on one host and waits for its verdict.
func (r *Rollout) restart(ctx context.Context, h *RolloutHost, service string) RolloutLine {
	// A .socket names its service: that is what restarts (systemd refuses
	// to restart a socket whose service runs, and it would close the listener).
	line := RolloutLine{Target: h.name, Unit: service}
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	for drained := false; !drained; { // events from before this restart are not its verdict
		select {
		case <-h.timeline():
		default:
			drained = true
		}
	}
	start := time.Now()
	out, err := h.client.Act(ctx, "restart", service, r.Probe)
	line.Result = out.Result
	if err != nil {
		if h.client.Err() != nil {
			line.Status, line.Reason = "unknown", "connection lost during the restart: "+h.why()
			return line
		}
		if ctx.Err() != nil {
			line.Status, line.Reason = "unknown", fmt.Sprintf("the restart did not finish within %s", r.Timeout)
			return line
		}
		line.Status, line.Reason = "halted", "restart failed: "+err.Error()
		return line
	}
	for {
		select {
		case e := <-h.timeline():
			if e.Type != inspect.EventHandoff || e.Handoff == nil || e.Unit != service {
				continue
			}
			hd := *e.Handoff
			line.Handoff = &hd
			line.ElapsedMs = time.Since(start).Milliseconds()
			line.Message = inspect.Verdict(hd)
			ok, why := r.Budget.check(out.Result, hd)
			if ok {
				line.Status = "passed"
			} else {
				line.Status, line.Reason = "halted", why
			}
			return line
		case <-h.client.Done():
			line.Status, line.Reason = "unknown", "connection lost before the verdict: "+h.why()
			return line
		case <-ctx.Done():
			line.Status, line.Reason = "unknown", fmt.Sprintf("no verdict within %s after the restart (job %s)", r.Timeout, out.Result)
			return line
		}
	}
}
