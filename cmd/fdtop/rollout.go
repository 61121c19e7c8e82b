package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/clierr"
	"github.com/fdtop/fdtop/internal/live"
	"github.com/fdtop/fdtop/internal/termsafe"
	"github.com/spf13/cobra"
)

// budget is what a handoff may lose and still pass.
type budget struct {
	maxRefused int
	maxDropped int
}

// check judges a restart: its job result and its handoff against the
// budget. why says what broke it, in words.
func (b budget) check(result string, h inspect.Handoff) (ok bool, why string) {
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
	case h.ListenersReplaced > 0 && b.maxRefused == 0:
		bad = append(bad, fmt.Sprintf("%d listener(s) replaced", h.ListenersReplaced))
	case h.ListenersReplaced > 0 && h.Probe == nil:
		bad = append(bad, "listener replaced and refusals not measured (use --probe)")
	}
	if refused > b.maxRefused {
		bad = append(bad, fmt.Sprintf("%d refused (budget %d)", refused, b.maxRefused))
	}
	if h.ConnectionsDropped > b.maxDropped {
		bad = append(bad, fmt.Sprintf("%d connection(s) dropped (budget %d)", h.ConnectionsDropped, b.maxDropped))
	}
	return len(bad) == 0, strings.Join(bad, ", ")
}

// rolloutLine is one line of `rollout --json`: a host's outcome.
type rolloutLine struct {
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

// rolloutHost is one host a rollout reaches: its agent and how it is named.
type rolloutHost struct {
	name   string // as given (JSON) / for the terminal
	client *inspect.AgentClient
	why    func() string // why its channel ended
	err    error         // could not be reached
	// events is the host's timeline when someone else reads the agent's
	// (the dashboard: a copy of every event); nil: the agent's own.
	events <-chan inspect.Event
}

// timeline is where the host's events arrive.
func (h *rolloutHost) timeline() <-chan inspect.Event {
	if h.events != nil {
		return h.events
	}
	return h.client.Events()
}

// rolloutOptions are `fdtop rollout`'s flags and unit.
type rolloutOptions struct {
	IO         *ioStreams
	Manager    managerFlags
	Fleet      fleetFlags
	Unit       string
	Probe      bool
	MaxRefused int
	MaxDropped int
	Pause      time.Duration
	JSON       bool
	Timeout    time.Duration
}

// NewCmdRollout is `fdtop rollout`.
func NewCmdRollout(ios *ioStreams, runF func(*rolloutOptions) int) *cobra.Command {
	opts := &rolloutOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "rollout UNIT [-H HOSTS | --hosts-file FILE] [--probe] [--max-refused N] [--max-dropped N] [--pause D] [--json]",
		Short: "restart UNIT host by host, halting at the first host whose handoff verdict breaks the budget",
		Long: `Restarts UNIT host by host (the local manager without -H); after each
restart waits for its handoff verdict and stops at the first host whose
verdict breaks the budget (default: listener kept, 0 refused, 0 dropped),
touching no further host. Every host is checked first (reachable, the unit
there): nothing is restarted unless all are.

Exit status: 0 every host passed, 1 halted (or not started), 2 usage error.
Ctrl-C stops after the current host (exit 130); a second Ctrl-C cuts it short.`,
		Example: `  fdtop rollout web.service -H web1,web2,web3 --probe
  fdtop rollout web.socket --hosts-file fleet.txt --max-dropped 2 --json`,
		Args: exactArgs(1, "UNIT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Unit = args[0]
			if runF != nil {
				return exitStatus(runF(opts))
			}
			return exitStatus(rolloutRun(opts))
		},
	}
	fs := cmd.Flags()
	opts.Manager.register(fs)
	opts.Fleet.register(fs)
	fs.BoolVar(&opts.Probe, "probe", false, "run the gap meter on the unit's loopback TCP listeners during each restart (counts refusals)")
	fs.IntVar(&opts.MaxRefused, "max-refused", 0, "refusals a host may show and pass (a replaced listener passes only with --probe and `N` > 0)")
	fs.IntVar(&opts.MaxDropped, "max-dropped", 0, "dropped connections a host may show and pass (`N`)")
	fs.DurationVar(&opts.Pause, "pause", 0, "wait `D` between hosts")
	fs.BoolVar(&opts.JSON, "json", false, "one JSON object per host (schema in docs/json.md)")
	fs.DurationVar(&opts.Timeout, "timeout", 2*time.Minute, "how long a host's restart and verdict may take (`D`)")
	return cmd
}

// rolloutRun is `fdtop rollout`.
func rolloutRun(opts *rolloutOptions) int {
	stdout, stderr := opts.IO.Out, opts.IO.Err
	mf, ff := opts.Manager, opts.Fleet
	if err := mf.validate(); err != nil {
		return fail(stderr, "rollout", err)
	}
	if opts.MaxRefused < 0 || opts.MaxDropped < 0 || opts.Pause < 0 || opts.Timeout <= 0 {
		return fail(stderr, "rollout", clierr.Usage("--max-refused, --max-dropped and --pause must not be negative, --timeout must be positive"))
	}
	unit := opts.Unit
	if !strings.Contains(unit, ".") {
		unit += ".service"
	}
	if strings.ContainsAny(unit, "*?[") {
		return fail(stderr, "rollout", clierr.Usage("UNIT must name one unit, not a pattern"))
	}

	// The first Ctrl-C (or SIGTERM, SIGHUP) stops after the current host
	// (before any restart, at once); a second one cuts the current host
	// short. Either way the exit status is 128+N, as for every command.
	// preCtx (reaching the hosts, finding the unit, waiting between
	// hosts) ends at the first signal; ctx, the current host's work, at
	// the second.
	preCtx, sig, stopSignals := withSignals(context.Background())
	defer stopSignals()
	stopAfter := preCtx.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-sig.second():
			cancel()
		case <-ctx.Done():
		}
	}()

	var hosts []*rolloutHost
	if ff.remote() {
		targets, err := ff.targets()
		if err != nil {
			return fail(stderr, "rollout", err)
		}
		f, err := openFleet(preCtx, &ff, targets, agentOptions{args: agentArgs(&mf, 0, []string{unit}), sudo: ff.sudo, push: ff.push})
		if err != nil {
			return sig.exit(failUnlessSignalled(stderr, "rollout", sig, err))
		}
		defer f.Close()
		for _, h := range f.hosts {
			rh := &rolloutHost{name: h.target.Spec, err: h.err}
			if h.agent != nil {
				rh.client = h.agent.AgentClient
				agent, ssh := h.agent, h.ssh
				rh.why = func() string { return agent.Why(ssh) }
			}
			hosts = append(hosts, rh)
		}
	} else {
		client, b, err := mf.connect(preCtx, []string{unit})
		if err != nil {
			return sig.exit(failUnlessSignalled(stderr, "rollout", sig, err))
		}
		defer client.Close()
		local, closeLocal, err := localAgent(ctx, live.NewAgentModel(client, b, 2*time.Second))
		if err != nil {
			return fail(stderr, "rollout", err)
		}
		defer closeLocal()
		host, _ := os.Hostname()
		hosts = []*rolloutHost{{name: host, client: local, why: func() string { return "local agent stopped" }}}
	}
	r := &rollout{unit: unit, probe: opts.Probe, budget: budget{opts.MaxRefused, opts.MaxDropped}, pause: opts.Pause, timeout: opts.Timeout,
		asJSON: opts.JSON, stdout: stdout, stderr: stderr, stopAfter: stopAfter}
	return sig.exit(r.run(ctx, preCtx, hosts))
}

// localAgent serves model in this process over pipes: the local rollout
// goes through the same protocol as a remote one.
func localAgent(ctx context.Context, model inspect.AgentModel) (*inspect.AgentClient, func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	reqR, reqW := io.Pipe()
	repR, repW := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = inspect.ServeAgent(ctx, reqR, repW, model, inspect.AgentMessage{Version: version})
		repW.Close()
	}()
	c, err := inspect.NewAgentClient(ctx, repR, reqW, 4096)
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

// rollout is one run of `fdtop rollout`.
type rollout struct {
	unit      string
	probe     bool
	budget    budget
	pause     time.Duration
	timeout   time.Duration
	asJSON    bool
	stdout    io.Writer
	stderr    io.Writer
	stopAfter <-chan struct{}
	// onRestart, when set, is told before each host's restart; onLine
	// gets each host's outcome (the dashboard's progress).
	onRestart func(h *rolloutHost)
	onLine    func(l rolloutLine)
}

// emit prints a host's line.
func (r *rollout) emit(l rolloutLine) {
	if r.onLine != nil {
		r.onLine(l)
	}
	if r.asJSON {
		b, _ := json.Marshal(l)
		r.stdout.Write(append(b, '\n'))
		return
	}
	text := strings.ReplaceAll(l.Status, "_", " ")
	if l.Message != "" {
		text += "  " + l.Message
	}
	if l.Reason != "" && l.Status != "passed" {
		text += " — " + l.Reason
	}
	fmt.Fprintf(r.stdout, "%s  %s  %s\n", termsafe.String(l.Target), termsafe.String(l.Unit), termsafe.String(text))
}

// run checks every host first (reachable, the unit there), then restarts
// host by host, halting at the first that breaks the budget.
func (r *rollout) run(ctx, preCtx context.Context, hosts []*rolloutHost) int {
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
	case <-r.stopAfter:
		r.notTouched(hosts)
		fmt.Fprintf(r.stderr, "fdtop rollout: interrupted before the first restart: nothing restarted\n")
		return exitRuntime
	default:
	}
	if len(bad) > 0 {
		for _, h := range hosts {
			l := rolloutLine{Target: h.name, Unit: r.unit, Status: "not_touched"}
			if h.err != nil {
				l.Reason = h.err.Error()
			}
			r.emit(l)
		}
		fmt.Fprintf(r.stderr, "fdtop rollout: not started, nothing restarted: %s\n", strings.Join(bad, "; "))
		return exitRuntime
	}
	for i, h := range hosts {
		if r.onRestart != nil {
			r.onRestart(h)
		}
		line := r.restart(ctx, h, services[i])
		r.emit(line)
		if line.Status != "passed" {
			r.notTouched(hosts[i+1:])
			what := "halted at"
			if line.Status == "unknown" {
				what = "halted: state unknown at"
			}
			fmt.Fprintf(r.stderr, "fdtop rollout: %s %s: %s%s\n", what, termsafe.String(h.name), termsafe.String(line.Reason), r.untouched(hosts[i+1:]))
			return exitRuntime
		}
		if i == len(hosts)-1 {
			break
		}
		select {
		case <-r.stopAfter:
			r.notTouched(hosts[i+1:])
			fmt.Fprintf(r.stderr, "fdtop rollout: interrupted: stopped after %s (passed)%s\n", termsafe.String(h.name), r.untouched(hosts[i+1:]))
			return exitRuntime
		case <-time.After(r.pause):
		}
	}
	if !r.asJSON {
		fmt.Fprintf(r.stdout, "rollout of %s passed on %d host(s)\n", termsafe.String(r.unit), len(hosts))
	}
	return exitOK
}

func (r *rollout) notTouched(hosts []*rolloutHost) {
	for _, h := range hosts {
		r.emit(rolloutLine{Target: h.name, Unit: r.unit, Status: "not_touched"})
	}
}

func (r *rollout) untouched(hosts []*rolloutHost) string {
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
func (r *rollout) prepare(ctx context.Context, h *rolloutHost) (string, error) {
	pctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := h.client.Watch(pctx); err != nil {
		return "", err
	}
	select {
	case <-h.client.Ready():
	case <-h.client.Done():
		return "", fmt.Errorf("connection lost: %s", h.why())
	case <-pctx.Done():
		return "", fmt.Errorf("no picture of the units within %s", r.timeout)
	}
	snap := h.client.Model()
	if strings.HasSuffix(r.unit, ".socket") {
		for _, s := range snap.Sockets {
			if s.Unit == r.unit && s.Service != "" && !s.Accept {
				return s.Service, nil
			}
		}
		return "", fmt.Errorf("no socket unit %s with one service (an Accept=yes socket has no restart to judge)", r.unit)
	}
	for _, s := range snap.Services {
		if s.Unit == r.unit {
			return s.Unit, nil
		}
	}
	return "", fmt.Errorf("no unit %s there", r.unit)
}

// restart restarts the unit on one host and waits for its verdict.
func (r *rollout) restart(ctx context.Context, h *rolloutHost, service string) rolloutLine {
	// A .socket names its service: that is what restarts (systemd refuses
	// to restart a socket whose service runs, and it would close the listener).
	line := rolloutLine{Target: h.name, Unit: service}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	for drained := false; !drained; { // events from before this restart are not its verdict
		select {
		case <-h.timeline():
		default:
			drained = true
		}
	}
	start := time.Now()
	out, err := h.client.Act(ctx, "restart", service, r.probe)
	line.Result = out.Result
	if err != nil {
		if h.client.Err() != nil {
			line.Status, line.Reason = "unknown", "connection lost during the restart: "+h.why()
			return line
		}
		if ctx.Err() != nil {
			line.Status, line.Reason = "unknown", fmt.Sprintf("the restart did not finish within %s", r.timeout)
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
			ok, why := r.budget.check(out.Result, hd)
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
			line.Status, line.Reason = "unknown", fmt.Sprintf("no verdict within %s after the restart (job %s)", r.timeout, out.Result)
			return line
		}
	}
}
