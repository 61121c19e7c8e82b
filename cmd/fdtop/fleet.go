package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/clierr"
	"github.com/fdtop/fdtop/internal/termsafe"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

// hostList is the value of -H/--host: hosts separated by commas, the flag
// repeatable.
type hostList []string

func (h *hostList) String() string { return strings.Join(*h, ",") }

// Type implements pflag.Value.
func (h *hostList) Type() string { return "hosts" }

// Set implements pflag.Value: hosts separated by commas, added to those
// given before.
func (h *hostList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*h = append(*h, s)
		}
	}
	return nil
}

// fleetFlags are the flags of the commands that reach remote hosts.
type fleetFlags struct {
	hosts     hostList
	hostsFile string
	ssh       string
	push      bool
	sudo      bool
}

func (f *fleetFlags) register(fs *pflag.FlagSet) {
	fs.VarP(&f.hosts, "host", "H", "remote `HOSTS` over ssh: [user@]host[:port][,...] (repeatable)")
	fs.StringVar(&f.hostsFile, "hosts-file", "", "read hosts from `FILE`, one per line (# comments)")
	fs.StringVar(&f.ssh, "ssh", "ssh", "the ssh `COMMAND` to reach hosts with, e.g. 'ssh -F ./fleet.conf'")
	fs.BoolVar(&f.push, "push", false, "copy this fdtop to ~/.cache/fdtop/ on hosts that have none speaking its protocol")
	fs.BoolVar(&f.sudo, "sudo", false, "run the remote agent under 'sudo -n' (never prompts: sudo must allow it without a password)")
}

// remote reports whether any host was named.
func (f *fleetFlags) remote() bool { return len(f.hosts) > 0 || f.hostsFile != "" }

// targets reads -H and --hosts-file, in that order.
func (f *fleetFlags) targets() ([]target, error) {
	specs := append([]string(nil), f.hosts...)
	if f.hostsFile != "" {
		file, err := os.Open(f.hostsFile)
		if err != nil {
			return nil, clierr.Usage(fmt.Sprintf("--hosts-file: %v", err))
		}
		defer file.Close()
		sc := bufio.NewScanner(file)
		for sc.Scan() {
			line, _, _ := strings.Cut(sc.Text(), "#")
			if line = strings.TrimSpace(line); line != "" {
				specs = append(specs, line)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("--hosts-file: %w", err)
		}
	}
	if len(specs) == 0 {
		return nil, clierr.Usage("no hosts: --hosts-file names none")
	}
	seen := map[string]bool{}
	var out []target
	for _, s := range specs {
		if seen[s] {
			return nil, clierr.Usage(fmt.Sprintf("host %q named twice", s))
		}
		seen[s] = true
		t, err := parseTarget(s)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// agentArgs are the agent's flags: the manager flags and patterns apply on
// each remote as they would here, and interval (0: the agent's default) is
// its rescan interval.
func agentArgs(mf *managerFlags, interval time.Duration, patterns []string) []string {
	var a []string
	if interval > 0 {
		a = append(a, "--interval="+interval.String())
	}
	if mf.user {
		a = append(a, "--user")
	}
	if mf.system {
		a = append(a, "--system")
	}
	if mf.all {
		a = append(a, "--all")
	}
	if mf.address != "" {
		a = append(a, "--address="+mf.address)
	}
	a = append(a, "--")
	return append(a, patterns...)
}

// fleetHost is one remote host: its ControlMaster and its agent, or why
// it could not be reached.
type fleetHost struct {
	target target
	ssh    *sshHost
	agent  *remoteAgent
	err    error
}

// name is the host as given, safe for the terminal.
func (h *fleetHost) name() string { return termsafe.String(h.target.Spec) }

// fleet is every host of one command.
type fleet struct {
	tr    *sshTransport
	hosts []*fleetHost
}

// stdinIsTerminal reports whether ssh may prompt (passwords, host keys).
func stdinIsTerminal() bool {
	_, err := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS)
	return err == nil
}

// openFleet opens a ControlMaster per host, then starts the agents. The
// masters open one after another when ssh may prompt on the terminal (so
// prompts do not interleave), all at once otherwise. A host that fails
// has its err set; the others go on.
func openFleet(ctx context.Context, ff *fleetFlags, targets []target, o agentOptions) (*fleet, error) {
	tr, err := newSSHTransport(ff.ssh)
	if err != nil {
		return nil, err
	}
	f := &fleet{tr: tr}
	for _, t := range targets {
		f.hosts = append(f.hosts, &fleetHost{target: t})
	}
	interactive := stdinIsTerminal()
	open := func(h *fleetHost) {
		h.ssh, h.err = tr.Open(ctx, h.target, interactive)
	}
	if interactive {
		for _, h := range f.hosts {
			open(h)
		}
	} else {
		f.each(open)
	}
	f.each(func(h *fleetHost) {
		if h.err == nil {
			h.agent, h.err = h.ssh.StartAgent(ctx, o)
		}
	})
	return f, nil
}

// each runs fn on every host at once and waits.
func (f *fleet) each(fn func(h *fleetHost)) {
	var wg sync.WaitGroup
	for _, h := range f.hosts {
		wg.Add(1)
		go func() { defer wg.Done(); fn(h) }()
	}
	wg.Wait()
}

// Close ends the agents and the masters.
func (f *fleet) Close() {
	f.each(func(h *fleetHost) {
		if h.agent != nil {
			h.agent.Close()
		}
	})
	f.tr.Close()
}

// hostSnapshot is one line of `snapshot --json -H`: the snapshot with the
// host as given, or the error that host met.
type hostSnapshot struct {
	Target string `json:"target"`
	Error  string `json:"error,omitempty"`
	*inspect.Snapshot
}

// hostEvent is one line of `watch --json -H`.
type hostEvent struct {
	Target string `json:"target"`
	inspect.Event
}

// runRemoteSnapshot prints each host's snapshot: JSON lines carrying
// "target", or a tree per host. Exit 1 when any host failed.
func runRemoteSnapshot(ctx context.Context, ff *fleetFlags, mf *managerFlags, patterns []string, asJSON, full bool, stdout, stderr io.Writer) int {
	targets, err := ff.targets()
	if err != nil {
		return fail(stderr, "snapshot", err)
	}
	f, err := openFleet(ctx, ff, targets, agentOptions{args: agentArgs(mf, 0, patterns), sudo: ff.sudo, push: ff.push})
	if err != nil {
		return fail(stderr, "snapshot", err)
	}
	defer f.Close()
	snaps := make([]*inspect.Snapshot, len(f.hosts))
	f.each(func(h *fleetHost) {
		if h.err != nil {
			return
		}
		s, err := h.agent.Snapshot(ctx, full)
		if err != nil {
			if h.agent.Err() != nil {
				err = fmt.Errorf("connection lost: %s", h.agent.Why(h.ssh))
			}
			h.err = err
			return
		}
		for i := range f.hosts {
			if f.hosts[i] == h {
				snaps[i] = s
			}
		}
	})
	if ctx.Err() != nil {
		return exitRuntime // interrupted: the signal's exit status, nothing half-said
	}
	code := exitOK
	enc := json.NewEncoder(stdout)
	for i, h := range f.hosts {
		if h.err != nil {
			code = exitRuntime
			fmt.Fprintf(stderr, "fdtop snapshot: %s: %s\n", h.name(), termsafe.String(clierr.OneLine(h.err)))
		}
		if asJSON {
			line := hostSnapshot{Target: h.target.Spec, Snapshot: snaps[i]}
			if h.err != nil {
				line.Error = h.err.Error()
			}
			if err := enc.Encode(line); err != nil {
				return exitRuntime
			}
			continue
		}
		fmt.Fprintf(stdout, "== %s ==\n", h.name())
		if h.err != nil {
			fmt.Fprintf(stdout, "unreachable: %s\n\n", termsafe.String(clierr.OneLine(h.err)))
			continue
		}
		if err := inspect.WriteTree(stdout, snaps[i]); err != nil {
			return exitRuntime
		}
		fmt.Fprintln(stdout)
	}
	return code
}

// runRemoteWatch prints every host's timeline as it happens, each line
// tagged with its host. A host lost is said once; the others go on. A host
// not reached at start is said at once and retried (reachLate) unless no
// retry could change why; exit 1 at once when that is every host.
func runRemoteWatch(ctx context.Context, opts *watchOptions) int {
	ff, stdout, stderr, asJSON, record := &opts.Fleet, opts.IO.Out, opts.IO.Err, opts.JSON, opts.Record
	targets, err := ff.targets()
	if err != nil {
		return fail(stderr, "watch", err)
	}
	var interval time.Duration
	if opts.IntervalSet {
		interval = opts.Interval
	}
	o := agentOptions{args: agentArgs(&opts.Manager, interval, opts.Patterns), sudo: ff.sudo, push: ff.push}
	f, err := openFleet(ctx, ff, targets, o)
	if err != nil {
		return fail(stderr, "watch", err)
	}
	defer f.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rec := &recorder{path: record}
	defer rec.close()
	out := make(chan hostEvent, 1024)
	live := 0
	for _, h := range f.hosts {
		if h.err == nil {
			if err := h.agent.Watch(ctx); err != nil {
				if h.agent.Err() != nil {
					err = fmt.Errorf("connection lost: %s", h.agent.Why(h.ssh))
				}
				h.agent.Close()
				h.ssh.stop()
				h.agent, h.err = nil, err
			}
		}
		first := h.err
		if first != nil {
			msg, retry := judgeStart(first)
			if !retry {
				fmt.Fprintf(stderr, "fdtop watch: %s: %s\n", h.name(), termsafe.String(msg))
				continue
			}
			fmt.Fprintf(stderr, "fdtop watch: %s: %s; retrying (1 s, doubling up to 30 s)\n", h.name(), termsafe.String(msg))
		}
		live++
		wg.Add(1)
		go func() {
			defer wg.Done()
			if first != nil && reachLate(ctx, f.tr, h, o, first, out, nil) != nil {
				return
			}
			follow(ctx, f.tr, h, o, out, followHooks{})
		}()
	}
	if live == 0 {
		return exitRuntime // every host failed in a way no retry changes
	}
	for {
		select {
		case <-ctx.Done():
			return exitOK
		case e := <-out:
			line, err := json.Marshal(e)
			if err != nil {
				return fail(stderr, "watch", err)
			}
			line = append(line, '\n')
			if err := rec.write(line); err != nil {
				return fail(stderr, "watch", err)
			}
			if asJSON {
				_, err = stdout.Write(line)
			} else {
				_, err = fmt.Fprintf(stdout, "%s  %s\n", termsafe.String(e.Target), termsafe.String(inspect.FormatEvent(e.Event)))
			}
			if err != nil {
				return exitRuntime
			}
		}
	}
}

// Reconnection backoff of a host lost during a watch, and of one that
// could not be reached at start.
const (
	reconnectFirst = time.Second
	reconnectMax   = 30 * time.Second
)

// followHooks let a caller of follow see a host's reconnection: onAgent
// gets each new agent, onRetry when the next try starts (and why the last
// one failed, nil before the first). Either may be nil.
type followHooks struct {
	onAgent func(*remoteAgent, *sshHost)
	onRetry func(next time.Time, err error)
}

// reachOnce opens a new ControlMaster to tg (BatchMode: it never prompts)
// and starts an agent watching there; on failure nothing of it is left.
func reachOnce(ctx context.Context, tr *sshTransport, tg target, o agentOptions) (*remoteAgent, *sshHost, error) {
	ns, err := tr.Open(ctx, tg, false)
	if err != nil {
		return nil, nil, err
	}
	na, err := ns.StartAgent(ctx, o)
	if err == nil {
		if err = na.Watch(ctx); err != nil {
			na.Close()
		}
	}
	if err != nil {
		ns.stop()
		return nil, nil, err
	}
	return na, ns, nil
}

// retryReach tries reachOnce after each wait of the backoff (reconnectFirst,
// doubling up to reconnectMax) until a try succeeds, ctx ends (its error)
// or final says a try's failure ends the retries (that failure; final nil:
// none does). onRetry (nil: none) is told as each wait starts: the next
// try's time and why the last try failed (last, before the first).
func retryReach(ctx context.Context, tr *sshTransport, tg target, o agentOptions, last error, onRetry func(next time.Time, err error), final func(error) bool) (*remoteAgent, *sshHost, error) {
	for delay := reconnectFirst; ; delay = min(2*delay, reconnectMax) {
		if onRetry != nil {
			onRetry(time.Now().Add(delay), last)
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(delay):
		}
		a, s, err := reachOnce(ctx, tr, tg, o)
		switch {
		case err == nil:
			return a, s, nil
		case ctx.Err() != nil:
			return nil, nil, ctx.Err()
		case final != nil && final(err):
			return nil, nil, err
		}
		last = err
	}
}

// judgeStart says why a host could not be reached at start, for the user,
// and whether trying again could change it. Not retried: ssh's
// authentication refused (a retry cannot prompt for a password or a key's
// passphrase, and a refusal repeated every 30 s is what fail2ban and
// sshd's MaxAuthTries lock an address out for), sudo -n refused (the same
// refusal, logged as an incident each time) and a binary --push cannot
// run there. Everything else is retried: nothing listening yet, no route,
// a timeout, a name not resolving yet, the remote's fdtop missing (a
// deploy may install it), its manager not answering, and a host key
// known_hosts does not hold or that changed (a retry never accepts a key:
// it connects once known_hosts has the right one, which the message says).
func judgeStart(err error) (msg string, retry bool) {
	msg = clierr.OneLine(err)
	var lasting *lastingError
	switch {
	case strings.Contains(msg, "Permission denied ("):
		return msg + " — not retried: a retry could not prompt, and repeated refusals can lock this address out (fail2ban, MaxAuthTries); fix the login and start fdtop again", false
	case errors.As(err, &lasting):
		return msg + " — not retried: " + lasting.why, false
	case strings.Contains(msg, "Host key verification failed"):
		return msg + " (retried: fdtop never accepts a host key itself; once known_hosts has this host's key, e.g. after `ssh HOST` once, it connects)", true
	}
	return msg, true
}

// lastingError is a failure to start on a host that trying again would
// not change (judgeStart): why says so.
type lastingError struct {
	err error
	why string
}

func (e *lastingError) Error() string { return e.err.Error() }
func (e *lastingError) Unwrap() error { return e.err }

// startFinal reports whether a failure to reach a host not yet reached
// ends its retries.
func startFinal(err error) bool {
	_, retry := judgeStart(err)
	return !retry
}

// reachLate reaches h, which could not be reached at start (first says
// why, h.err as openFleet left it or its agent's failed watch): one
// disconnected event on out says so, then it is tried again with follow's
// backoff until a try succeeds (h.agent and h.ssh then watch, h.err is nil,
// and a reconnected event says so), a failure judgeStart calls final (a
// disconnected event says it is not retried) or ctx ends. onRetry (nil:
// none) is told as each wait starts. It returns the error that ended the
// retries, nil once the host is reached.
func reachLate(ctx context.Context, tr *sshTransport, h *fleetHost, o agentOptions, first error, out chan<- hostEvent, onRetry func(next time.Time, err error)) error {
	send := func(e inspect.Event) {
		select {
		case out <- hostEvent{Target: h.target.Spec, Event: e}:
		case <-ctx.Done():
		}
	}
	msg, retry := judgeStart(first)
	if !retry {
		send(inspect.Event{Time: time.Now(), Type: inspect.EventDisconnected, Message: "not reached: " + msg})
		return first
	}
	send(inspect.Event{Time: time.Now(), Type: inspect.EventDisconnected, Message: "not reached: " + msg + "; retrying"})
	a, s, err := retryReach(ctx, tr, h.target, o, first, onRetry, startFinal)
	if err != nil {
		if ctx.Err() == nil {
			msg, _ := judgeStart(err)
			send(inspect.Event{Time: time.Now(), Type: inspect.EventDisconnected, Message: "not reached: " + msg})
		}
		return err
	}
	h.agent, h.ssh, h.err = a, s, nil
	send(inspect.Event{Time: time.Now(), Type: inspect.EventReconnected, Message: "reached"})
	return nil
}

// follow forwards one host's timeline to out until ctx ends. When the
// host is lost it says so once, then reconnects (a new ControlMaster in
// BatchMode, never prompting; 1 s, doubling up to 30 s between tries)
// and says so when it is back.
func follow(ctx context.Context, tr *sshTransport, h *fleetHost, o agentOptions, out chan<- hostEvent, hooks followHooks) {
	agent, ssh := h.agent, h.ssh
	defer func() { agent.Close() }()
	send := func(e inspect.Event) bool {
		select {
		case out <- hostEvent{Target: h.target.Spec, Event: e}:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		for lost := false; !lost; {
			select {
			case e := <-agent.Events():
				if !send(e) {
					return
				}
			case <-agent.Done():
				lost = true
			case <-ctx.Done():
				return
			}
		}
		why := agent.Why(ssh)
		agent.Close()
		ssh.stop()
		if !send(inspect.Event{Time: time.Now(), Type: inspect.EventDisconnected,
			Message: fmt.Sprintf("connection lost: %s; reconnecting", why)}) {
			return
		}
		na, ns, err := retryReach(ctx, tr, h.target, o, nil, hooks.onRetry, nil)
		if err != nil {
			return // ctx ended: nothing else ends the retries of a lost host
		}
		agent, ssh = na, ns
		if hooks.onAgent != nil {
			hooks.onAgent(na, ns)
		}
		if !send(inspect.Event{Time: time.Now(), Type: inspect.EventReconnected, Message: "reconnected"}) {
			return
		}
	}
}
