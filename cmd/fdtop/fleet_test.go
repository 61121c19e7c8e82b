package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/demo/sshtest"
	"github.com/fdtop/fdtop/demo/traffic"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/inspect/agent"
	"github.com/fdtop/fdtop/internal/fleet"
	"github.com/fdtop/fdtop/internal/syncbuf"
	"github.com/fdtop/fdtop/internal/tmuxtest"
)

// testHost is one sshd host with its own systemd user manager.
type testHost struct {
	*sshtest.Host
	sb *sandbox.Sandbox
}

// startFleet starts n sshd hosts, each with a sandbox manager of its own
// (systemd 252 and 254 in turn) that its sessions reach as their user
// manager. With fdtopOnPath the built fdtop is on the sessions' PATH.
func startFleet(t *testing.T, n int, fdtopOnPath bool) (*sshtest.Fleet, []testHost) {
	t.Helper()
	f := sshtest.New(t)
	path := "PATH=/usr/local/bin:/usr/bin:/bin"
	if fdtopOnPath {
		path = "PATH=" + filepath.Dir(sandboxtest.Fdtop(t)) + ":/usr/local/bin:/usr/bin:/bin"
	}
	vs := sandboxtest.Versions()
	var hosts []testHost
	for i := 0; i < n; i++ {
		sb := sandboxtest.Start(t, vs[i%len(vs)])
		h := f.AddHost(t, append(sb.Env(), path)...)
		hosts = append(hosts, testHost{Host: h, sb: sb})
	}
	return f, hosts
}

// runFdtop runs fdtop in this process and returns its exit code and output.
func runFdtop(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// normalized is a snapshot's JSON with what differs between two scans of
// the same state (when, how long) taken out.
func normalized(t *testing.T, s *inspect.Snapshot) string {
	t.Helper()
	c := *s
	c.Time = time.Time{}
	c.Host.ScanDuration = 0
	b, err := json.MarshalIndent(&c, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRemoteSnapshot: over real sshd hosts, each host's snapshot (JSON
// lines carrying "target", in the order given) equals the local snapshot
// of the same manager: same units, listeners, holders, fd store.
func TestRemoteSnapshot(t *testing.T) {
	start := time.Now()
	f, hosts := startFleet(t, 3, true)
	t.Logf("fleet up in %s", time.Since(start))
	var targets []string
	for _, h := range hosts {
		sandboxtest.InstallDemo(t, h.sb, 50*time.Millisecond)
		targets = append(targets, h.Target)
	}
	t.Logf("demo installed at %s", time.Since(start))
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 1; ; attempt++ {
		start := time.Now()
		code, out, errOut := runFdtop("snapshot", "--json", "--user", "--ssh", f.SSH(), "-H", strings.Join(targets, ","), "demo-*")
		t.Logf("snapshot of %d hosts: %s", len(targets), time.Since(start))
		if code != 0 {
			t.Fatalf("snapshot -H: exit %d: %s", code, errOut)
		}
		sc := bufio.NewScanner(strings.NewReader(out))
		sc.Buffer(nil, 1<<22)
		var diffs []string
		i := 0
		for ; sc.Scan(); i++ {
			var line struct {
				Target string `json:"target"`
				inspect.Snapshot
			}
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Fatalf("line %d: %v: %s", i, err, sc.Text())
			}
			if i >= len(hosts) || line.Target != targets[i] {
				t.Fatalf("line %d has target %q, want the hosts in order %v", i, line.Target, targets)
			}
			if len(line.Sockets) != 2 || len(line.Services) != 4 {
				t.Fatalf("%s: %d sockets, %d services; want the demo's 2 and 4 (plain, activated, handoff, stored)", line.Target, len(line.Sockets), len(line.Services))
			}
			for k, v := range map[string]string{"XDG_RUNTIME_DIR": hosts[i].sb.RuntimeDir, "DBUS_SESSION_BUS_ADDRESS": hosts[i].sb.Address} {
				t.Setenv(k, v)
			}
			local, err := localSnapshot(hosts[i].sb)
			if err != nil {
				t.Fatal(err)
			}
			if r, l := normalized(t, &line.Snapshot), normalized(t, local); r != l {
				diffs = append(diffs, fmt.Sprintf("%s:\nremote %s\nlocal %s", line.Target, r, l))
			}
		}
		if i != len(hosts) {
			t.Fatalf("%d lines, want %d", i, len(hosts))
		}
		if len(diffs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d attempts the remote and local snapshots still differ:\n%s", attempt, strings.Join(diffs, "\n"))
		}
	}
}

// localSnapshot is `fdtop snapshot --json --user` here, on the manager the
// environment points at.
func localSnapshot(sb *sandbox.Sandbox) (*inspect.Snapshot, error) {
	code, out, errOut := runFdtop("snapshot", "--json", "--user", "demo-*")
	if code != 0 {
		return nil, fmt.Errorf("local snapshot of %s: exit %d: %s", sb.Address, code, errOut)
	}
	var s inspect.Snapshot
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// TestRemoteUnreachable: a host that refuses connections, and one without
// fdtop, fail with ssh's message and fdtop's advice, and don't stop the
// others; with --push the binary is copied to ~/.cache/fdtop and used.
func TestRemoteUnreachable(t *testing.T) {
	f, hosts := startFleet(t, 2, false)
	ok, noFdtop := hosts[0], hosts[1]
	// The first host has fdtop in ~/.cache/fdtop (as --push leaves it).
	cache := filepath.Join(ok.Home, ".cache", "fdtop")
	if err := os.MkdirAll(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(sandboxtest.Fdtop(t), filepath.Join(cache, "fdtop-"+version)); err != nil {
		t.Fatal(err)
	}
	bad := f.Unreachable(t)
	code, out, errOut := runFdtop("snapshot", "--json", "--user", "--ssh", f.SSH(), "-H", bad+","+ok.Target+","+noFdtop.Target)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want one per host:\n%s", len(lines), out)
	}
	tests := []struct {
		target string
		errHas []string // empty: a snapshot
	}{
		{bad, []string{"Connection refused"}},
		{ok.Target, nil},
		{noFdtop.Target, []string{"no fdtop with agent protocol", "--push"}},
	}
	for i, tc := range tests {
		var line struct {
			Target string `json:"target"`
			Error  string `json:"error"`
			inspect.Snapshot
		}
		if err := json.Unmarshal([]byte(lines[i]), &line); err != nil {
			t.Fatal(err)
		}
		if line.Target != tc.target {
			t.Errorf("line %d: target %q, want %q", i, line.Target, tc.target)
		}
		if len(tc.errHas) == 0 {
			if line.Error != "" || line.Manager.Scope != "user" {
				t.Errorf("%s: error %q, scope %q; want a snapshot", tc.target, line.Error, line.Manager.Scope)
			}
			continue
		}
		for _, want := range tc.errHas {
			if !strings.Contains(line.Error, want) || !strings.Contains(errOut, want) {
				t.Errorf("%s: error %q (stderr %q) lacks %q", tc.target, line.Error, errOut, want)
			}
		}
	}

	// --push copies this (static) binary there; the next run finds it
	// without --push.
	bin := sandboxtest.Fdtop(t)
	for _, args := range [][]string{{"--push"}, nil} {
		cmd := exec.Command(bin, append([]string{"snapshot", "--json", "--user", "--ssh", f.SSH(), "-H", noFdtop.Target}, args...)...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		if err := cmd.Run(); err != nil {
			t.Fatalf("snapshot %v: %v: %s", args, err, e.String())
		}
		if !strings.Contains(o.String(), `"scope":"user"`) {
			t.Fatalf("snapshot %v: %s", args, o.String())
		}
	}
	if _, err := os.Stat(filepath.Join(noFdtop.Home, ".cache", "fdtop", "fdtop-"+version)); err != nil {
		t.Fatalf("--push left no binary: %v", err)
	}
}

// installWeb installs NAME.socket and NAME.service on a host's manager,
// behaving as the demo's mode m (handoff keeps its clients through the fd
// store, activated drops them), with clients connected.
func installWeb(t *testing.T, sb *sandbox.Sandbox, name string, m demo.Mode, delay time.Duration) *traffic.Generator {
	t.Helper()
	cfg, err := demo.NewConfig(sandboxtest.Fdtop(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.StartupDelay = delay
	cfg.LogDir = sb.Dir
	units := cfg.Units()
	if err := sb.WriteUnit(name+".socket", units[m.Socket()]); err != nil {
		t.Fatal(err)
	}
	if err := sb.WriteUnit(name+".service", units[m.Service()]); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, args := range [][]string{{"daemon-reload"}, {"start", name + ".socket"}} {
		if out, err := sb.Systemctl(ctx, args...); err != nil {
			t.Fatalf("systemctl %v: %v: %s", args, err, out)
		}
	}
	return sandboxtest.Traffic(t, cfg.Addr(m), 2, 20*time.Millisecond)
}

// rolloutLines parses `rollout --json` output.
func rolloutLines(t *testing.T, out string) []fleet.RolloutLine {
	t.Helper()
	var ls []fleet.RolloutLine
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r fleet.RolloutLine
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("%v: %q", err, l)
		}
		ls = append(ls, r)
	}
	return ls
}

// TestRollout: across three real sshd hosts, a rollout halts at the host
// whose service drops its clients (exit 1) and leaves the later host's
// MainPID unchanged; over the hosts that hand off, it passes (exit 0); an
// unreachable host stops it before anything is restarted.
func TestRollout(t *testing.T) {
	f, hosts := startFleet(t, 3, true)
	modes := []demo.Mode{demo.Handoff, demo.Activated, demo.Handoff}
	var gens []*traffic.Generator
	for i, h := range hosts {
		gens = append(gens, installWeb(t, h.sb, "web", modes[i], 50*time.Millisecond))
	}
	pids := func() []string {
		var p []string
		for _, h := range hosts {
			p = append(p, mainPID(context.Background(), t, h.sb, "web.service"))
		}
		return p
	}
	all := hosts[0].Target + "," + hosts[1].Target + "," + hosts[2].Target
	tests := []struct {
		name     string
		hosts    string
		code     int
		statuses []string
		restart  []bool // which hosts' MainPID changes
		stderr   string
	}{
		{"halts at the dropping host", all, 1, []string{"passed", "halted", "not_touched"}, []bool{true, true, false}, "halted at " + hosts[1].Target},
		{"all pass", hosts[0].Target + "," + hosts[2].Target, 0, []string{"passed", "passed"}, []bool{true, false, true}, ""},
		{"unreachable host: nothing restarted", hosts[0].Target + "," + f.Unreachable(t), 1, []string{"not_touched", "not_touched"}, []bool{false, false, false}, "not started"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := pids()
			start := time.Now()
			code, out, errOut := runFdtop("rollout", "web.service", "--user", "--json", "--probe", "--ssh", f.SSH(), "-H", tc.hosts)
			t.Logf("rollout took %s\n%s%s", time.Since(start), out, errOut)
			for i, g := range gens {
				st := g.Stats()
				t.Logf("host %d clients: dropped %d, refused %d, counter resets %d", i, st.Dropped, st.Refused, st.CounterResets)
			}
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout %s\nstderr %s", code, tc.code, out, errOut)
			}
			if !strings.Contains(errOut, tc.stderr) {
				t.Errorf("stderr %q lacks %q", errOut, tc.stderr)
			}
			ls := rolloutLines(t, out)
			if len(ls) != len(tc.statuses) {
				t.Fatalf("%d lines, want %d: %s", len(ls), len(tc.statuses), out)
			}
			for i, l := range ls {
				if l.Status != tc.statuses[i] {
					t.Errorf("%s: status %s (%s), want %s", l.Target, l.Status, l.Reason, tc.statuses[i])
				}
				if l.Status == "halted" && (l.Handoff == nil || l.ConnectionsDropped == 0) {
					t.Errorf("%s halted without dropped connections: %+v", l.Target, l)
				}
			}
			after := pids()
			for i := range hosts {
				if changed := after[i] != before[i]; changed != tc.restart[i] {
					t.Errorf("host %d MainPID %s → %s; want changed=%v", i, before[i], after[i], tc.restart[i])
				}
			}
		})
	}
}

// TestRolloutInterrupted: Ctrl-C stops a rollout after the current host
// and says so (exit 130, as for every command); a connection dropped during a host's restart halts it,
// saying that host's state is unknown; no later host is touched.
func TestRolloutInterrupted(t *testing.T) {
	f, hosts := startFleet(t, 3, true)
	delays := []time.Duration{50 * time.Millisecond, 3 * time.Second, 50 * time.Millisecond}
	for i, h := range hosts {
		installWeb(t, h.sb, "web", demo.Handoff, delays[i])
	}
	all := hosts[0].Target + "," + hosts[1].Target + "," + hosts[2].Target
	tests := []struct {
		name     string
		extra    []string
		act      func(t *testing.T, p *os.Process) // after the first host's line
		code     int
		statuses []string
		restart  []bool
		stderr   string
	}{
		{"ctrl-c", []string{"--pause", "5s"}, func(t *testing.T, p *os.Process) { _ = p.Signal(os.Interrupt) }, 130,
			[]string{"passed", "not_touched", "not_touched"}, []bool{true, false, false}, "interrupted: stopped after " + hosts[0].Target},
		{"connection dropped", nil, func(t *testing.T, p *os.Process) {
			// Wait until the second host's restart runs (its start takes 3 s), then drop every connection to it.
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				out, _ := hosts[1].sb.Systemctl(context.Background(), "show", "-P", "ActiveState", "web.service")
				if strings.TrimSpace(out) == "activating" {
					hosts[1].Kill()
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Errorf("the second host's restart never seen running")
		}, 1, []string{"passed", "unknown", "not_touched"}, []bool{true, true, false}, "state unknown at " + hosts[1].Target},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before []string
			for _, h := range hosts {
				before = append(before, mainPID(context.Background(), t, h.sb, "web.service"))
			}
			args := append([]string{"rollout", "web.service", "--user", "--json", "--ssh", f.SSH(), "-H", all}, tc.extra...)
			cmd := exec.Command(sandboxtest.Fdtop(t), args...)
			var errb bytes.Buffer
			cmd.Stderr = &errb
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(stdout)
			var out strings.Builder
			for n := 0; sc.Scan(); n++ {
				out.WriteString(sc.Text() + "\n")
				if n == 0 {
					tc.act(t, cmd.Process)
				}
			}
			err = cmd.Wait()
			t.Logf("%s%s", out.String(), errb.String())
			if code := cmd.ProcessState.ExitCode(); code != tc.code {
				t.Fatalf("exit %d (%v), want %d", code, err, tc.code)
			}
			if !strings.Contains(errb.String(), tc.stderr) {
				t.Errorf("stderr %q lacks %q", errb.String(), tc.stderr)
			}
			ls := rolloutLines(t, out.String())
			if len(ls) != len(tc.statuses) {
				t.Fatalf("%d lines, want %d", len(ls), len(tc.statuses))
			}
			for i, l := range ls {
				if l.Status != tc.statuses[i] {
					t.Errorf("%s: status %s (%s), want %s", l.Target, l.Status, l.Reason, tc.statuses[i])
				}
			}
			for i, h := range hosts {
				after := mainPID(context.Background(), t, h.sb, "web.service")
				if after == "0" && tc.restart[i] {
					continue // still starting after the drop
				}
				if changed := after != before[i]; changed != tc.restart[i] {
					t.Errorf("host %d MainPID %s → %s; want changed=%v", i, before[i], after, tc.restart[i])
				}
			}
		})
	}
}

// TestRolloutLocal: without -H, rollout is the local deploy gate: exit 0
// for a service that hands off, 1 for one that drops its clients, 2 for
// usage mistakes.
func TestRolloutLocal(t *testing.T) {
	sb := sandboxtest.Start(t, sandboxtest.Versions()[0])
	installWeb(t, sb, "keeps", demo.Handoff, 50*time.Millisecond)
	installWeb(t, sb, "drops", demo.Activated, 50*time.Millisecond)
	for _, kv := range sb.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	tests := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"keeps.service"}, 0, "rollout of keeps.service passed on 1 host"},
		{[]string{"keeps.socket", "--probe"}, 0, "✓ listener kept"},
		{[]string{"drops"}, 1, "halted at"},
		{[]string{"drops.service", "--max-dropped", "2"}, 0, "passed"},
		{[]string{"nope.service"}, 1, "no unit nope.service there"},
		{nil, 2, "Usage: fdtop rollout"},
		{[]string{"a.service", "b.service"}, 2, "Usage: fdtop rollout"},
		{[]string{"web-*"}, 2, "not a pattern"},
		{[]string{"keeps.service", "--max-dropped", "-1"}, 2, "must not be negative"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := runFdtop(append([]string{"rollout", "--user"}, tc.args...)...)
			t.Logf("%s%s", out, errOut)
			if code != tc.code {
				t.Fatalf("exit %d, want %d", code, tc.code)
			}
			if !strings.Contains(out+errOut, tc.out) {
				t.Fatalf("output lacks %q", tc.out)
			}
		})
	}
}

// TestRemoteSudo: --sudo runs the agent under `sudo -n` (root's sudo needs
// no password); a sudo that wants a password is a clear error, not a
// prompt on the protocol channel. The second host's sudo is a stand-in
// that answers as sudo -n does when a password is required.
func TestRemoteSudo(t *testing.T) {
	if _, err := exec.LookPath("sudo"); err != nil {
		sandboxtest.Unavailable(t, "sudo not found: apt-get install sudo")
	}
	f := sshtest.New(t)
	sb := sandboxtest.Start(t, sandboxtest.Versions()[0])
	bin := filepath.Dir(sandboxtest.Fdtop(t))
	standin := t.TempDir()
	script := "#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(standin, "sudo"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	good := f.AddHost(t, "PATH="+bin+":/usr/bin:/bin")
	needsPassword := f.AddHost(t, "PATH="+standin+":"+bin+":/usr/bin:/bin")
	tests := []struct {
		host string
		code int
		want string
	}{
		{good.Target, 0, `"scope":"user"`},
		{needsPassword.Target, 1, "sudo -n refused"},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			// sudo resets the environment: the manager is named by address.
			code, out, errOut := runFdtop("snapshot", "--json", "--sudo", "--user", "--address", sb.Address, "--ssh", f.SSH(), "-H", tc.host)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s%s", code, tc.code, tc.want, out, errOut)
			}
		})
	}
}

// startJSONWatch starts cmd, a `watch --json -H`, and returns its events
// as they come, a channel closed once it has exited (its output read to
// the end) and its stderr. When the test ends it is interrupted, as a user
// would (fdtop closes its ControlMasters and removes their directory), and
// must end within 20 s.
func startJSONWatch(t *testing.T, cmd *exec.Cmd) (lines <-chan fleet.HostEvent, exited <-chan struct{}, stderr *syncbuf.Buffer) {
	t.Helper()
	stderr = &syncbuf.Buffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Room for every event a test sees, so that the exit is never held
	// up by events nobody has read yet.
	out := make(chan fleet.HostEvent, 4096)
	done, ended := make(chan struct{}), make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e fleet.HostEvent
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				continue
			}
			select {
			case out <- e:
			case <-ended: // nobody reads any more: read to the end
			}
		}
		close(out)
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		close(ended)
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("watch -H did not end within 20 s of SIGINT")
		}
	})
	return out, done, stderr
}

// TestRemoteWatch: `watch --json -H` streams every host's timeline, each
// event carrying its host as "target": a restart on the second host shows
// as its handoff there, also after its manager re-executed itself; a host
// lost is said once, the other goes on, and the lost one is reconnected
// when it is back.
func TestRemoteWatch(t *testing.T) {
	f, hosts := startFleet(t, 2, true)
	for _, h := range hosts {
		installWeb(t, h.sb, "web", demo.Handoff, 50*time.Millisecond)
	}
	cmd := exec.Command(sandboxtest.Fdtop(t), "watch", "--json", "--user", "--ssh", f.SSH(), "-H", hosts[0].Target+","+hosts[1].Target, "web.service")
	lines, _, errb := startJSONWatch(t, cmd)
	// Restart on the second host until the watch has seen its handoff (the
	// first restart may come before the remote watcher's first picture).
	deadline := time.After(60 * time.Second)
	restart := time.NewTicker(3 * time.Second)
	defer restart.Stop()
	if out, err := hosts[1].sb.Systemctl(context.Background(), "restart", "web.service"); err != nil {
		t.Fatalf("restart: %v: %s", err, out)
	}
	for done := false; !done; {
		select {
		case e, ok := <-lines:
			if !ok {
				t.Fatalf("watch ended: %s", errb.String())
			}
			if e.Type == inspect.EventHandoff && e.Unit == "web.service" {
				if e.Target == hosts[1].Target && e.Handoff != nil && e.ConnectionsUnknown && e.ConnectionsDropped == 0 {
					continue // a restart the watcher saw no view before: unknown, never 0/0; the next is seen whole
				}
				if e.Target != hosts[1].Target || e.Handoff == nil || e.ConnectionsPreserved != 2 {
					t.Fatalf("handoff %+v from %q, want host %s with 2 connections preserved", e.Handoff, e.Target, hosts[1].Target)
				}
				done = true
			}
		case <-restart.C:
			_, _ = hosts[1].sb.Systemctl(context.Background(), "restart", "web.service")
		case <-deadline:
			t.Fatalf("no handoff from %s within 60 s; stderr %s", hosts[1].Target, errb.String())
		}
	}
	// The second host's manager re-executes itself: the remote watch goes
	// on, and sees the next restart's handoff.
	if out, err := hosts[1].sb.Systemctl(context.Background(), "daemon-reexec"); err != nil {
		t.Fatalf("daemon-reexec: %v: %s", err, out)
	}
	waitHandoff := func(what string) {
		deadline := time.After(60 * time.Second)
		for {
			select {
			case e, ok := <-lines:
				if !ok {
					t.Fatalf("watch ended (%s): %s", what, errb.String())
				}
				if e.Type == inspect.EventHandoff && e.Unit == "web.service" && e.Target == hosts[1].Target {
					return
				}
			case <-restart.C:
				_, _ = hosts[1].sb.Systemctl(context.Background(), "restart", "web.service")
			case <-deadline:
				t.Fatalf("no handoff from %s within 60 s %s; stderr %s", hosts[1].Target, what, errb.String())
			}
		}
	}
	if out, err := hosts[1].sb.Systemctl(context.Background(), "restart", "web.service"); err != nil {
		t.Fatalf("restart: %v: %s", err, out)
	}
	waitHandoff("after daemon-reexec")

	// The first host goes away: one disconnected line for it, the watch goes
	// on; when it is back, the watch reconnects to it.
	hosts[0].Kill()
	want := inspect.EventDisconnected
	for {
		select {
		case e, ok := <-lines:
			if !ok {
				t.Fatalf("watch ended when one host was lost: %s", errb.String())
			}
			if e.Target != hosts[0].Target || (e.Type != inspect.EventDisconnected && e.Type != inspect.EventReconnected) {
				continue
			}
			if e.Type != want {
				t.Fatalf("%s: %s, want %s", e.Target, e.Type, want)
			}
			if want == inspect.EventReconnected {
				return
			}
			if !strings.Contains(e.Message, "connection lost") || !strings.Contains(e.Message, "reconnecting") {
				t.Fatalf("disconnected: %q", e.Message)
			}
			hosts[0].Restart(t)
			want = inspect.EventReconnected
		case <-time.After(60 * time.Second):
			t.Fatalf("no %s line for %s; stderr %s", want, hosts[0].Target, errb.String())
		}
	}
}

// TestRemoteSSHErrors: what ssh says when it cannot connect reaches the
// user as ssh said it, per host.
func TestRemoteSSHErrors(t *testing.T) {
	f, hosts := startFleet(t, 1, true)
	h := hosts[0]
	tests := []struct {
		name   string
		ssh    string
		target string
		want   string
	}{
		{"unknown host key", f.SSH() + " -o UserKnownHostsFile=/dev/null", h.Target, "Host key verification failed"},
		{"authentication", f.SSH(), "nosuchuser@" + h.Target, "Permission denied"},
		{"unreachable", f.SSH(), f.Unreachable(t), "Connection refused"},
		{"no such ssh", "/nonexistent/ssh", h.Target, "ssh client \"/nonexistent/ssh\" not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runFdtop("snapshot", "--user", "--ssh", tc.ssh, "-H", tc.target)
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q (stdout %q)", code, errOut, tc.want, out)
			}
			if strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("more than one line: %q", errOut)
			}
		})
	}
}

// TestRemoteDashboardE2E drives the real fdtop binary in a tmux terminal
// on a remote host (-H, over a real sshd): the unit list comes from the
// host's live model, r y restarts web.service there, and its verdict and
// new main PID appear.
func TestRemoteDashboardE2E(t *testing.T) {
	tm := newTmux(t)
	f, hosts := startFleet(t, 1, true)
	h := hosts[0]
	installWeb(t, h.sb, "web", demo.Handoff, 50*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	term := tm.start(t, sandboxtest.Fdtop(t), nil, "--user", "--ssh", f.SSH(), "-H", h.Target, "web*")
	term.waitFor(t, "web.service with its 2 connections", func(s string) bool {
		return rowWith(s, "web.service", "2") != ""
	})
	term.selectUnit(t, "web.service")
	oldPID := mainPID(ctx, t, h.sb, "web.service")
	term.send(t, "r")
	term.waitFor(t, "the restart confirmation", func(s string) bool {
		return strings.Contains(s, "restart web.service?")
	})
	term.send(t, "y")
	var newPID string
	screen := term.waitFor(t, "the new main PID and the verdict", func(s string) bool {
		if newPID == "" {
			if p := mainPID(ctx, t, h.sb, "web.service"); p != oldPID && p != "0" {
				newPID = p
			}
		}
		verdict := false
		for _, l := range strings.Split(s, "\n") {
			// ✓ 2/2, or the same counts honestly short of a connection
			// the old process may have accepted unseen ("! … 2/2 seen").
			if strings.Contains(l, "web.service") &&
				(strings.Contains(l, "✓") && strings.Contains(l, "2/2 connections preserved") ||
					strings.Contains(l, "!") && strings.Contains(l, "2/2 seen connections preserved")) {
				verdict = true
			}
		}
		return newPID != "" && verdict && strings.Contains(s, "restart web.service: done") && rowWith(s, "web.service", newPID) != ""
	})
	t.Logf("main pid %s → %s\n%s", oldPID, newPID, screen)
	term.quit(t)
}

// TestRemoteOtherProtocol: a remote fdtop that speaks another agent
// protocol is refused with both versions named; --push replaces it.
func TestRemoteOtherProtocol(t *testing.T) {
	f, hosts := startFleet(t, 1, false)
	h := hosts[0]
	cached := filepath.Join(h.Home, ".cache", "fdtop", "fdtop-"+version)
	if err := os.MkdirAll(filepath.Dir(cached), 0o700); err != nil {
		t.Fatal(err)
	}
	old := "#!/bin/sh\necho '{\"type\":\"hello\",\"protocol\":99,\"version\":\"9.9\"}'\nexec cat >/dev/null\n"
	if err := os.WriteFile(cached, []byte(old), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		push bool
		code int
		want string
	}{
		{false, 1, "speaks protocol 99, this fdtop " + strconv.Itoa(agent.Protocol)},
		{true, 0, `"scope":"user"`},
	}
	for _, tc := range tests {
		args := []string{"snapshot", "--json", "--user", "--ssh", f.SSH(), "-H", h.Target}
		if tc.push {
			args = append(args, "--push")
		}
		cmd := exec.Command(sandboxtest.Fdtop(t), args...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		_ = cmd.Run()
		if code := cmd.ProcessState.ExitCode(); code != tc.code || !strings.Contains(o.String()+e.String(), tc.want) {
			t.Fatalf("push=%v: exit %d (want %d), output lacks %q:\n%s%s", tc.push, code, tc.code, tc.want, o.String(), e.String())
		}
	}
}

// waitWithin is waitFor with a longer deadline: a fleet's hosts start
// their live models at once, each over ssh, on a machine that may be
// busy with other tests.
func (term *terminal) waitWithin(t *testing.T, d time.Duration, what string, ok func(screen string) bool) string {
	t.Helper()
	deadline := time.Now().Add(d)
	var s string
	for time.Now().Before(deadline) {
		s = term.capture(t)
		if ok(s) {
			return s
		}
		if term.dead(t) {
			t.Fatalf("fdtop exited while waiting for %s; screen:\n%s", what, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s; screen:\n%s", d, what, s)
	return ""
}

// fleetSection returns the unit list's lines of host's section: from its
// host row to the next host row (hosts lists every host row's name).
func fleetSection(screen, host string, hosts []string) []string {
	var out []string
	in := false
	for _, l := range strings.Split(screen, "\n") {
		if strings.Contains(l, "Timeline ·") {
			break // the list ended
		}
		if r := []rune(l); len(r) > 66 {
			l = string(r[:66]) // the list's side of the wide layout
		}
		isHost := false
		f := strings.Fields(strings.TrimLeft(l, "›"))
		for _, h := range hosts {
			for i := 0; i < min(len(f), 3); i++ {
				isHost = isHost || f[i] == h
			}
		}
		if isHost {
			in = strings.Contains(l, " "+host+" ")
			continue
		}
		if in {
			out = append(out, l)
		}
	}
	return out
}

// TestFleetDashboardE2E drives the real fdtop binary in a tmux terminal on
// a fleet: three real sshd hosts, each with its own manager running
// web.socket/web.service (the middle one drops its clients on a restart,
// the others hand them off through the fd store), and one host where
// nothing listens. Every host is a row at the top of the unit tree with
// its state (the unreachable one retried, with ssh's message). r y on
// web.service of ONE host restarts it there only: its verdict is tagged
// with that host in the timeline, its new main PID shows under that host,
// and the other hosts' MainPID is unchanged. Then O y rolls web.service
// out after a confirmation listing the hosts in order: the first passes,
// the one that drops halts it, and the last is not touched (its MainPID
// unchanged).
func TestFleetDashboardE2E(t *testing.T) {
	tm := newTmux(t)
	f, hosts := startFleet(t, 3, true)
	for i, h := range hosts {
		mode := demo.Handoff
		if i == 1 {
			mode = demo.Activated // drops its clients: a rollout halts here
		}
		installWeb(t, h.sb, "web", mode, 50*time.Millisecond)
	}
	bad := f.Unreachable(t)
	names := []string{hosts[0].Target, bad, hosts[1].Target, hosts[2].Target}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	term := tm.start(t, sandboxtest.Fdtop(t), nil, "--user", "--ssh", f.SSH(), "-H", strings.Join(names, ","), "web*")
	term.waitWithin(t, 60*time.Second, "every host with its state, each reachable one with web.service and its 2 connections", func(s string) bool {
		if rowWith(s, bad, "unreachable") == "" || !strings.Contains(strings.Join(strings.Fields(strings.Join(fleetSection(s, bad, names), " ")), " "), "Connection refused") {
			return false
		}
		for _, h := range hosts {
			if rowWith(s, h.Target, "ok") == "" {
				return false
			}
			found := false
			for _, l := range fleetSection(s, h.Target, names) {
				found = found || rowWith(l, "web.service", "2") != ""
			}
			if !found {
				return false
			}
		}
		return strings.Contains(s, "4 hosts (3 ok, 1 unreachable)")
	})
	target := hosts[2]
	oldPIDs := make([]string, len(hosts))
	for i, h := range hosts {
		oldPIDs[i] = mainPID(ctx, t, h.sb, "web.service")
	}
	// Select web.service on the second reachable host: the detail pane's
	// title names the unit and its host.
	tmuxtest.SelectRowWith(t, "web.service on "+target.Target, func(rows []string) int {
		host := slices.Index(rows, target.Target)
		for i := host + 1; host >= 0 && i < len(rows); i++ {
			if tmuxtest.NameIs(rows[i], "web.service") {
				return i
			}
		}
		return -1
	}, func(k string) { term.send(t, k) }, func(what string, ok func(string) bool) string { return term.waitFor(t, what, ok) })
	term.waitFor(t, "the detail of web.service on "+target.Target, func(s string) bool {
		return strings.Contains(s, "Detail · web.service on "+target.Target)
	})
	term.send(t, "r")
	term.waitFor(t, "the restart confirmation naming the host", func(s string) bool {
		return strings.Contains(s, "restart web.service on "+target.Target+"?")
	})
	term.send(t, "y")
	var newPID string
	screen := term.waitWithin(t, 60*time.Second, "the verdict tagged with the host and its new main PID under it", func(s string) bool {
		if newPID == "" {
			if p := mainPID(ctx, t, target.sb, "web.service"); p != oldPIDs[2] && p != "0" {
				newPID = p
			}
		}
		verdict := false
		for _, l := range strings.Split(s, "\n") {
			// ✓ 2/2, or the same counts honestly short of a connection
			// the old process may have accepted unseen ("! … 2/2 seen").
			if strings.Contains(l, target.Target) && strings.Contains(l, "web.service") &&
				(strings.Contains(l, "✓") && strings.Contains(l, "2/2 connections preserved") ||
					strings.Contains(l, "!") && strings.Contains(l, "2/2 seen connections preserved")) {
				verdict = true
			}
		}
		underHost := false
		for _, l := range fleetSection(s, target.Target, names) {
			underHost = underHost || (newPID != "" && rowWith(l, "web.service", newPID) != "")
		}
		return verdict && underHost && strings.Contains(s, "restart web.service on "+target.Target+": done")
	})
	for _, l := range strings.Split(screen, "\n") {
		if strings.Contains(l, "✓") && (strings.Contains(l, hosts[0].Target) || strings.Contains(l, hosts[1].Target)) {
			t.Errorf("a verdict on a host that was not restarted: %q\n%s", l, screen)
		}
	}
	for _, i := range []int{0, 1} {
		if p := mainPID(ctx, t, hosts[i].sb, "web.service"); p != oldPIDs[i] {
			t.Errorf("%s: web.service MainPID %s → %s; only %s was restarted", hosts[i].Target, oldPIDs[i], p, target.Target)
		}
	}
	t.Logf("%s: main pid %s → %s\n%s", target.Target, oldPIDs[2], newPID, screen)

	// The rollout: the confirmation lists the hosts in order and the one
	// left out; the first host passes, the second halts it (dropped), the
	// third is not touched.
	oldPIDs[2] = newPID
	term.send(t, "O")
	screen = term.waitFor(t, "the rollout confirmation listing the hosts in order", func(s string) bool {
		return strings.Contains(s, "rollout web.service?") && strings.Contains(s, "left out: "+bad+" (unreachable")
	})
	t.Logf("rollout confirmation:\n%s", screen)
	order := []string{hosts[0].Target, hosts[1].Target, hosts[2].Target}
	for i, h := range order {
		if !strings.Contains(screen, fmt.Sprintf("%d. %s", i+1, h)) {
			t.Fatalf("the confirmation does not list %s as host %d:\n%s", h, i+1, screen)
		}
	}
	term.send(t, "y")
	screen = term.waitWithin(t, 90*time.Second, "the rollout halted at the host that drops", func(s string) bool {
		return strings.Contains(s, "rollout of web.service halted at "+hosts[1].Target) && strings.Contains(s, "not touched: "+hosts[2].Target)
	})
	for _, want := range []string{"1. " + hosts[0].Target + "  passed", "2. " + hosts[1].Target + "  halted", "3. " + hosts[2].Target + "  not touched"} {
		if !strings.Contains(screen, want) {
			t.Errorf("the rollout's progress lacks %q:\n%s", want, screen)
		}
	}
	for i, wantNew := range []bool{true, true, false} {
		p := mainPID(ctx, t, hosts[i].sb, "web.service")
		if (p != oldPIDs[i]) != wantNew {
			t.Errorf("%s: MainPID %s → %s after the rollout; restarted %v, want %v", hosts[i].Target, oldPIDs[i], p, p != oldPIDs[i], wantNew)
		}
	}
	t.Logf("after the rollout:\n%s", screen)

	// A host that drops off the network is lost and reconnecting, the
	// others stay ok; once it is back, it is ok again.
	lost := hosts[0]
	lost.Kill()
	screen = term.waitWithin(t, 60*time.Second, "the killed host lost and reconnecting, the others ok", func(s string) bool {
		return rowWith(s, lost.Target, "reconnecting,") != "" && rowWith(s, hosts[1].Target, "ok") != "" &&
			rowWith(s, hosts[2].Target, "ok") != "" && strings.Contains(s, "(2 ok, 1 reconnecting, 1 unreachable)")
	})
	t.Logf("host lost:\n%s", screen)
	lost.Restart(t)
	term.waitWithin(t, 90*time.Second, "the host back and ok", func(s string) bool {
		return rowWith(s, lost.Target, "ok") != "" && strings.Contains(s, "(3 ok, 1 unreachable)")
	})
	term.quit(t)
}

// TestFleetDashboardLateHost drives the real fdtop binary in a tmux terminal
// on a fleet of three: a host that is up, one whose sshd starts only after
// fdtop started (a host still booting during a deploy), and one that
// refuses the login. The late host is unreachable and retried, with ssh's
// reason and the next try, and no units under it (they are unknown, not
// none); the refused one is failed and says why it is not retried. Once
// the late host's sshd is up, it appears by itself with web.service and its
// 2 connections, without restarting fdtop.
func TestFleetDashboardLateHost(t *testing.T) {
	tm := newTmux(t)
	f, hosts := startFleet(t, 1, true)
	up := hosts[0]
	installWeb(t, up.sb, "web", demo.Handoff, 50*time.Millisecond)
	sb := sandboxtest.Start(t, sandboxtest.Versions()[len(sandboxtest.Versions())-1])
	late := f.AddHostDown(t, append(sb.Env(), "PATH="+filepath.Dir(sandboxtest.Fdtop(t))+":/usr/local/bin:/usr/bin:/bin")...)
	installWeb(t, sb, "web", demo.Handoff, 50*time.Millisecond)
	denied := "x@" + up.Target // no such user: authentication refused
	names := []string{up.Target, late.Target, denied}
	term := tm.start(t, sandboxtest.Fdtop(t), nil, "--user", "--ssh", f.SSH(), "-H", strings.Join(names, ","), "web*")
	section := func(s, host string) string {
		return strings.Join(strings.Fields(strings.Join(fleetSection(s, host, names), " ")), " ")
	}
	screen := term.waitWithin(t, 60*time.Second, "the late host unreachable and retried with ssh's reason, the refused one failed", func(s string) bool {
		return rowWith(s, up.Target, "ok") != "" &&
			rowWith(s, late.Target, "unreachable", "retrying,", "next", "try") != "" &&
			strings.Contains(section(s, late.Target), "Connection refused") && !strings.Contains(section(s, late.Target), "web.") &&
			rowWith(s, denied, "failed", "(not", "retried)") != "" && strings.Contains(section(s, denied), "Permission denied") &&
			strings.Contains(s, "3 hosts (1 ok, 1 unreachable, 1 failed)")
	})
	t.Logf("before the late host's sshd:\n%s", screen)

	late.Start(t)
	screen = term.waitWithin(t, 90*time.Second, "the late host ok with web.service and its 2 connections", func(s string) bool {
		found := false
		for _, l := range fleetSection(s, late.Target, names) {
			found = found || rowWith(l, "web.service", "2") != ""
		}
		return found && rowWith(s, late.Target, "ok") != "" && strings.Contains(s, "3 hosts (2 ok, 1 failed)")
	})
	t.Logf("after:\n%s", screen)
	term.quit(t)
}

// TestRemoteWatchLateHost: `watch --json -H` with three hosts that cannot
// be reached when the watch starts, each fixed later without touching
// fdtop: one whose sshd is not up yet, one with no fdtop (installed
// later), one whose manager does not answer (its bus appears later). Each
// gets one disconnected line saying why it is not reached and that it is
// retried, a reconnected line when it is reached, and its timeline follows
// (a restart there is its handoff); the host that was up goes on meanwhile.
func TestRemoteWatchLateHost(t *testing.T) {
	f, hosts := startFleet(t, 1, true)
	up := hosts[0]
	installWeb(t, up.sb, "web", demo.Handoff, 50*time.Millisecond)
	// The three late hosts share one manager.
	sb := sandboxtest.Start(t, sandboxtest.Versions()[len(sandboxtest.Versions())-1])
	installWeb(t, sb, "web", demo.Handoff, 50*time.Millisecond)
	withFdtop := "PATH=" + filepath.Dir(sandboxtest.Fdtop(t)) + ":/usr/local/bin:/usr/bin:/bin"
	late := f.AddHostDown(t, append(sb.Env(), withFdtop)...)
	noFdtop := f.AddHost(t, append(sb.Env(), "PATH=/usr/local/bin:/usr/bin:/bin")...)
	// Its runtime directory (where its manager's bus is) does not exist
	// yet: the agent finds no manager until it is a link to the manager's.
	runtimeDir := filepath.Join(t.TempDir(), "run")
	noManager := f.AddHost(t, "XDG_RUNTIME_DIR="+runtimeDir, "DBUS_SESSION_BUS_ADDRESS=unix:path="+filepath.Join(runtimeDir, "systemd", "private"), withFdtop)
	fixes := []struct {
		host *sshtest.Host
		why  string // in the disconnected line
		fix  func()
	}{
		{late, "Connection refused", func() { late.Start(t) }},
		{noFdtop, "no fdtop with agent protocol", func() {
			cache := filepath.Join(noFdtop.Home, ".cache", "fdtop")
			if err := os.MkdirAll(cache, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(sandboxtest.Fdtop(t), filepath.Join(cache, "fdtop-"+version)); err != nil {
				t.Fatal(err)
			}
		}},
		{noManager, "no user manager answers", func() {
			if err := os.Symlink(sb.RuntimeDir, runtimeDir); err != nil {
				t.Fatal(err)
			}
		}},
	}
	names := []string{up.Target}
	for _, fx := range fixes {
		names = append(names, fx.host.Target)
	}
	cmd := exec.Command(sandboxtest.Fdtop(t), "watch", "--json", "--user", "--ssh", f.SSH(), "-H", strings.Join(names, ","), "web.service")
	lines, exited, errb := startJSONWatch(t, cmd)
	// until reads lines until done says all was seen; tick runs every 3 s.
	until := func(what string, done func(e fleet.HostEvent) bool, tick func()) {
		t.Helper()
		deadline := time.After(90 * time.Second)
		ticker := time.NewTicker(3 * time.Second)
		defer ticker.Stop()
		for {
			select {
			case e, open := <-lines:
				if !open {
					t.Fatalf("watch ended waiting for %s: %s", what, errb.String())
				}
				if e.Type == inspect.EventDisconnected || e.Type == inspect.EventReconnected {
					t.Logf("%s %s %q", e.Target, e.Type, e.Message)
				}
				if done(e) {
					return
				}
			case <-ticker.C:
				if tick != nil {
					tick()
				}
			case <-deadline:
				t.Fatalf("no %s within 90 s; stderr %s", what, errb.String())
			}
		}
	}
	said := map[string]string{}
	until("a disconnected line for each late host", func(e fleet.HostEvent) bool {
		if e.Type == inspect.EventDisconnected {
			if said[e.Target] != "" {
				t.Fatalf("a second disconnected line for %s: %q", e.Target, e.Message)
			}
			said[e.Target] = e.Message
		}
		return len(said) == len(fixes)
	}, nil)
	for _, fx := range fixes {
		for _, want := range []string{"not reached", fx.why, "retrying"} {
			if !strings.Contains(said[fx.host.Target], want) {
				t.Errorf("%s: disconnected line %q lacks %q", fx.host.Target, said[fx.host.Target], want)
			}
		}
		fx.fix()
	}
	reached := map[string]bool{}
	until("a reconnected line for each late host", func(e fleet.HostEvent) bool {
		if e.Type == inspect.EventDisconnected {
			t.Fatalf("a second disconnected line for %s: %q", e.Target, e.Message)
		}
		if e.Type == inspect.EventReconnected && e.Message == "reached" {
			reached[e.Target] = true
		}
		return len(reached) == len(fixes)
	}, nil)
	restart := func() {
		for _, s := range []*sandbox.Sandbox{sb, up.sb} {
			_, _ = s.Systemctl(context.Background(), "restart", "web.service")
		}
	}
	restart()
	handoffs := map[string]bool{}
	until("a handoff from every host", func(e fleet.HostEvent) bool {
		if e.Type == inspect.EventHandoff && e.Unit == "web.service" {
			handoffs[e.Target] = true
		}
		return len(handoffs) == len(names)
	}, restart)
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Fatal("watch -H did not end within 20 s of SIGINT")
	}
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit %d after SIGINT, want 130", code)
	}
	for _, fx := range fixes {
		if out := errb.String(); !strings.Contains(out, "fdtop watch: "+fx.host.Target+": ") || !strings.Contains(out, "retrying") {
			t.Errorf("stderr %q does not say %s is retried", out, fx.host.Target)
		}
	}
}
