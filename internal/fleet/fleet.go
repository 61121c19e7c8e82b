package fleet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/clierr"
	"github.com/fdtop/fdtop/internal/termsafe"
	"golang.org/x/sys/unix"
)

// Targets reads the hosts named with -H (hosts, each one or several
// separated by commas) and then those of --hosts-file (file, "" for none;
// one per line, # comments): a host named twice or none at all is a usage
// error.
func Targets(hosts []string, file string) ([]Target, error) {
	var specs []string
	for _, h := range hosts {
		for _, s := range strings.Split(h, ",") {
			if s = strings.TrimSpace(s); s != "" {
				specs = append(specs, s)
			}
		}
	}
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, clierr.Usage(fmt.Sprintf("--hosts-file: %v", err))
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
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
	var out []Target
	for _, s := range specs {
		if seen[s] {
			return nil, clierr.Usage(fmt.Sprintf("host %q named twice", s))
		}
		seen[s] = true
		t, err := ParseTarget(s)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// fleetHost is one remote host: its ControlMaster and its agent, or why
// it could not be reached.
type fleetHost struct {
	target Target
	ssh    *sshHost
	agent  *remoteAgent
	err    error
}

// name is the host as given, safe for the terminal.
func (h *fleetHost) name() string { return termsafe.String(h.target.Spec) }

// Fleet is every host of one command: a ControlMaster and an agent on
// each, or why that host could not be reached.
type Fleet struct {
	tr    *sshTransport
	hosts []*fleetHost
	o     AgentOptions
}

// stdinIsTerminal reports whether ssh may prompt (passwords, host keys).
func stdinIsTerminal() bool {
	_, err := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS)
	return err == nil
}

// Open opens a ControlMaster per host (ssh is the --ssh command line), then starts the agents. The
// masters open one after another when ssh may prompt on the terminal (so
// prompts do not interleave), all at once otherwise. A host that fails
// has its err set; the others go on.
func Open(ctx context.Context, ssh string, targets []Target, o AgentOptions) (*Fleet, error) {
	tr, err := newSSHTransport(ssh, o.Version)
	if err != nil {
		return nil, err
	}
	f := &Fleet{tr: tr, o: o}
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
func (f *Fleet) each(fn func(h *fleetHost)) {
	var wg sync.WaitGroup
	for _, h := range f.hosts {
		wg.Add(1)
		go func() { defer wg.Done(); fn(h) }()
	}
	wg.Wait()
}

// Close ends the agents and the masters.
func (f *Fleet) Close() {
	f.each(func(h *fleetHost) {
		if h.agent != nil {
			h.agent.Close()
		}
	})
	f.tr.Close()
}

// HostSnapshot is one line of `snapshot --json -H`: the snapshot with the
// host as given, or the error that host met.
type HostSnapshot struct {
	Target string `json:"target"`
	Error  string `json:"error,omitempty"`
	*inspect.Snapshot
	// Err is the error that host met (Error, as it came); nil when the
	// snapshot is there.
	Err error `json:"-"`
}

// HostEvent is one line of `watch --json -H`: an event and its host.
type HostEvent struct {
	Target string `json:"target"`
	inspect.Event
}

// Snapshots asks every host for a snapshot at once (full: with the
// host-wide pass), in the order the hosts were given.
func (f *Fleet) Snapshots(ctx context.Context, full bool) []HostSnapshot {
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
	out := make([]HostSnapshot, len(f.hosts))
	for i, h := range f.hosts {
		out[i] = HostSnapshot{Target: h.target.Spec, Snapshot: snaps[i], Err: h.err}
		if h.err != nil {
			out[i].Error = h.err.Error()
		}
	}
	return out
}

// Watch follows every host's timeline to out until ctx ends: a host lost
// is said once on out and reconnected; a host not reached at start is
// said to notice (with "; retrying" when it will be) and retried
// (reachLate) unless no retry could change why. It returns how many hosts
// are followed (0: every host failed in a way no retry changes) and the
// function that waits for them to stop after ctx ends.
func (f *Fleet) Watch(ctx context.Context, out chan<- HostEvent, notice func(host, msg string)) (followed int, wait func()) {
	var wg sync.WaitGroup
	o := f.o
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
				notice(h.target.Spec, msg)
				continue
			}
			notice(h.target.Spec, msg+"; retrying (1 s, doubling up to 30 s)")
		}
		followed++
		wg.Add(1)
		go func() {
			defer wg.Done()
			if first != nil && reachLate(ctx, f.tr, h, o, first, out, nil) != nil {
				return
			}
			follow(ctx, f.tr, h, o, out, followHooks{})
		}()
	}
	return followed, wg.Wait
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
func reachOnce(ctx context.Context, tr *sshTransport, tg Target, o AgentOptions) (*remoteAgent, *sshHost, error) {
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
func retryReach(ctx context.Context, tr *sshTransport, tg Target, o AgentOptions, last error, onRetry func(next time.Time, err error), final func(error) bool) (*remoteAgent, *sshHost, error) {
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
func reachLate(ctx context.Context, tr *sshTransport, h *fleetHost, o AgentOptions, first error, out chan<- HostEvent, onRetry func(next time.Time, err error)) error {
	send := func(e inspect.Event) {
		select {
		case out <- HostEvent{Target: h.target.Spec, Event: e}:
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
func follow(ctx context.Context, tr *sshTransport, h *fleetHost, o AgentOptions, out chan<- HostEvent, hooks followHooks) {
	agent, ssh := h.agent, h.ssh
	defer func() { agent.Close() }()
	send := func(e inspect.Event) bool {
		select {
		case out <- HostEvent{Target: h.target.Spec, Event: e}:
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
