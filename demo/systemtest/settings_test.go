package systemtest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/inspect"
)

// TestSocketSettingsAsRoot: the socket settings that came after 254, as
// fdtop shows them in a snapshot's JSON, equal what `systemctl show -p`
// prints in the same container; a setting the manager lacks (252 all of
// them, 257 those of 258) is unknown in fdtop (left out) and not printed by
// systemctl. Then, each where the version has it: a socket's
// ExecStartPost=/ExecStopPre= holding its listeners with
// PassFileDescriptorsToExec=yes (256) is inside the unit, for the
// snapshot and for the doctor; a socket paused by its poll limit (255)
// stays listening with clients queued and gets fdtop's hint; SubState
// deferred (258) is shown with its
// words; LISTEN_PIDFDID (259) is what the main process's environment
// has; an Accept=yes instance's name (with the cookie from 258) gives the
// connection's ends.
func TestSocketSettingsAsRoot(t *testing.T) { ForEach(t, testSocketSettingsAsRoot) }

func testSocketSettingsAsRoot(t *testing.T, c *Container) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ports, err := demo.FreePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	// Keys a manager does not know are ignored (with a warning in its log).
	units := map[string]string{
		"fdtset.socket": fmt.Sprintf("[Socket]\nListenStream=%s\nPollLimitIntervalSec=3s\nPollLimitBurst=7\n"+
			"DeferTrigger=yes\nDeferTriggerMaxSec=40s\nPassPIDFD=yes\nAcceptFileDescriptors=no\n", addr(0)),
		"fdtset.service":   "[Unit]\nConflicts=fdtblock.service\n[Service]\nExecStart=/bin/sleep infinity\n",
		"fdtblock.service": "[Service]\nExecStart=/bin/sleep infinity\n",
		"fdtpfx.socket": fmt.Sprintf("[Socket]\nListenStream=%s\nPassFileDescriptorsToExec=yes\n"+
			"ExecStartPost=/bin/sleep 15\nExecStopPre=/bin/sleep 60\nTimeoutSec=90\n", addr(1)),
		"fdtpfx.service":  "[Service]\nExecStart=/bin/sleep infinity\n",
		"fdtacc.socket":   fmt.Sprintf("[Socket]\nListenStream=%s\nAccept=yes\n", addr(2)),
		"fdtacc@.service": "[Service]\nExecStart=/bin/cat\nStandardInput=socket\n",
		"fdtpoll.socket": fmt.Sprintf("[Socket]\nListenStream=%s\nAccept=yes\nPollLimitIntervalSec=90s\nPollLimitBurst=2\n"+
			"TriggerLimitBurst=1000\n", addr(3)),
		"fdtpoll@.service": "[Service]\nExecStart=/bin/cat\nStandardInput=socket\n",
	}
	var names []string
	for name, content := range units {
		if err := c.WriteUnit(name, content); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(name, "@.") {
			names = append(names, name)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = c.Systemctl(ctx, append([]string{"kill", "--signal=KILL"}, names...)...)
		_, _ = c.Systemctl(ctx, append([]string{"stop", "fdtacc@*.service", "fdtpoll@*.service"}, names...)...)
		_, _ = c.Systemctl(ctx, append([]string{"reset-failed"}, names...)...)
	})
	if out, err := c.Systemctl(ctx, "daemon-reload"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := c.Systemctl(ctx, "start", "fdtset.socket", "fdtacc.socket", "fdtpoll.socket"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	major := c.Major()

	t.Run("settings", func(t *testing.T) {
		// Socket properties are readable by every user: a plain user sees
		// the same.
		for _, u := range []User{Root, Unprivileged} {
			snap := snapshot(t, c, u, "fdtset.socket")
			su := socketUnit(snap, "fdtset.socket")
			if su == nil {
				t.Fatalf("as %s: fdtset.socket not in the snapshot: %+v", u, snap.Sockets)
			}
			shown := showProps(t, c, "fdtset.socket", "PollLimitIntervalUSec", "PollLimitBurst", "PassFileDescriptorsToExec",
				"DeferTrigger", "DeferTriggerMaxUSec", "PassPIDFD", "AcceptFileDescriptors")
			fdtop := map[string]*string{
				"PollLimitIntervalUSec":     fmtPtr(su.PollLimitIntervalUSec, inspect.Timespan),
				"PollLimitBurst":            fmtPtr(su.PollLimitBurst, func(v uint32) string { return strconv.FormatUint(uint64(v), 10) }),
				"PassFileDescriptorsToExec": fmtPtr(su.PassFDsToExec, yesNo),
				"DeferTrigger":              strPtr(su.DeferTrigger),
				"DeferTriggerMaxUSec":       fmtPtr(su.DeferTriggerMaxUSec, inspect.Timespan),
				"PassPIDFD":                 fmtPtr(su.PassPIDFD, yesNo),
				"AcceptFileDescriptors":     fmtPtr(su.AcceptFDs, yesNo),
			}
			since := map[string]int{"PollLimitIntervalUSec": 255, "PollLimitBurst": 255, "PassFileDescriptorsToExec": 256,
				"DeferTrigger": 258, "DeferTriggerMaxUSec": 258, "PassPIDFD": 258, "AcceptFileDescriptors": 258}
			want := map[string]string{"PollLimitIntervalUSec": "3s", "PollLimitBurst": "7", "PassFileDescriptorsToExec": "no",
				"DeferTrigger": "yes", "DeferTriggerMaxUSec": "40s", "PassPIDFD": "yes", "AcceptFileDescriptors": "no"}
			for prop, got := range fdtop {
				sys, has := shown[prop]
				switch {
				case major < since[prop]:
					if has || got != nil {
						t.Errorf("as %s: %s on %s (before %d): systemctl shows %q (%v), fdtop %v; want both without it", u, prop, c.Version, since[prop], sys, has, deref(got))
					}
				case !has:
					t.Errorf("as %s: %s on %s: systemctl show does not print it", u, prop, c.Version)
				case got == nil:
					t.Errorf("as %s: %s on %s: fdtop says unknown, systemctl show says %q", u, prop, c.Version, sys)
				case *got != sys:
					t.Errorf("as %s: %s on %s: fdtop %q, systemctl show %q", u, prop, c.Version, *got, sys)
				case sys != want[prop]:
					t.Errorf("as %s: %s on %s: systemctl show %q, the unit file says %q", u, prop, c.Version, sys, want[prop])
				}
			}
			t.Logf("%s as %s: fdtop's words: %q", c.Version, u, inspect.SocketSettings(*su))
		}
	})

	t.Run("dashboard", func(t *testing.T) {
		// The dashboard's detail of the socket shows the same settings
		// (each phrase whole: the pane packs them to its width).
		var want []string
		if major >= 255 {
			want = append(want, "poll limit 7 per 3s")
		}
		if major >= 256 {
			want = append(want, "PassFileDescriptorsToExec=no")
		}
		if major >= 258 {
			want = append(want, "DeferTrigger=yes (at most 40s)", "PassPIDFD=yes", "AcceptFileDescriptors=no")
		}
		tm := newTmux(t)
		term := tm.start(t, c.Argv(Root, "env", "TERM=tmux-256color", FdtopPath, "fdtset*"))
		term.waitFor(t, "the socket", func(s string) bool { return strings.Contains(s, "fdtset.socket") })
		term.selectUnit(t, "fdtset.socket")
		screen := term.waitFor(t, "the socket's detail with its settings", func(s string) bool {
			if !strings.Contains(s, "Listeners") {
				return false
			}
			for _, w := range want {
				if !strings.Contains(s, w) {
					return false
				}
			}
			return true
		})
		t.Logf("the dashboard on %s:\n%s", c.Version, screen)
		head := socketDetailHead(screen, "fdtset.socket")
		if head == "" {
			t.Fatalf("no detail heading of fdtset.socket:\n%s", screen)
		}
		// Only the socket's own lines: its Log section quotes the
		// manager's "Unknown key 'DeferTrigger'" on older versions.
		for _, absent := range []string{"poll limit", "PassFileDescriptorsToExec", "DeferTrigger", "PassPIDFD", "AcceptFileDescriptors"} {
			if !strings.Contains(strings.Join(want, " "), absent) && strings.Contains(head, absent) {
				t.Errorf("systemd %d has no %s, the dashboard shows it:\n%s", major, absent, screen)
			}
		}
		term.quit(t)
	})

	t.Run("poll limit", func(t *testing.T) {
		if major < 255 {
			t.Skipf("systemd %d has no PollLimitBurst= (255)", major)
		}
		// Four clients at once on an Accept=yes socket whose poll limit
		// is 2 wake-ups in 90 s: the manager accepts two, then stops
		// polling; the others wait in the accept queue.
		for i := 0; i < 4; i++ {
			conn, err := c.DialTCP(ctx, addr(3))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
		}
		var su *inspect.SocketUnit
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			snap := snapshot(t, c, Root, "fdtpoll.socket")
			if su = socketUnit(snap, "fdtpoll.socket"); su != nil && su.NAccepted == 2 && len(su.Listeners) == 1 && su.Listeners[0].Backlog == 2 {
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
		shown := showProps(t, c, "fdtpoll.socket", "SubState", "NAccepted")
		log, _ := c.Run(ctx, Root, "journalctl", "--no-pager", "-q", "-u", "fdtpoll.socket")
		t.Logf("%s: systemctl show %v; its log:\n%s", c.Version, shown, log)
		if su == nil || su.NAccepted != 2 || len(su.Listeners) != 1 || su.Listeners[0].Backlog != 2 {
			t.Fatalf("fdtpoll.socket: %+v, want 2 accepted and 2 queued (paused by its poll limit)", su)
		}
		if su.SubState != "listening" || shown["SubState"] != "listening" {
			t.Errorf("paused: fdtop sub_state %q, systemctl %q: systemd was thought to say nothing", su.SubState, shown["SubState"])
		}
		if note := inspect.SocketStateNote(*su); !strings.Contains(note, "paused by its poll limit (poll limit 2 per 1min 30s)?") {
			t.Errorf("no poll-limit hint: %q", note)
		}
	})

	t.Run("PassFileDescriptorsToExec", func(t *testing.T) {
		if major < 256 {
			t.Skipf("systemd %d has no PassFileDescriptorsToExec= (256)", major)
		}
		if out, err := c.Systemctl(ctx, "start", "--no-block", "fdtpfx.socket"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		for _, phase := range []string{"start-post", "stop-pre"} {
			if phase == "stop-pre" {
				// ExecStartPost= ends by itself (15 s).
				waitSubState(t, c, "fdtpfx.socket", "listening")
				if out, err := c.Systemctl(ctx, "stop", "--no-block", "fdtpfx.socket"); err != nil {
					t.Fatalf("%v: %s", err, out)
				}
			}
			waitSubState(t, c, "fdtpfx.socket", phase)
			ctl, _ := strconv.Atoi(showProps(t, c, "fdtpfx.socket", "ControlPID")["ControlPID"])
			if ctl == 0 {
				t.Fatalf("%s: fdtpfx.socket has no control process", phase)
			}
			snap := snapshot(t, c, Root, "fdtpfx.socket")
			su := socketUnit(snap, "fdtpfx.socket")
			if su == nil || len(su.Listeners) != 1 {
				t.Fatalf("%s: fdtpfx.socket's listener not in the snapshot: %+v", phase, su)
			}
			held := false
			for _, h := range su.Listeners[0].Holders {
				if h.PID == ctl {
					held = true
					if h.Outside || h.Unit != "fdtpfx.socket" {
						t.Errorf("%s: ExecStartPost/ExecStopPre pid %d = %+v, want inside fdtpfx.socket", phase, ctl, h)
					}
				}
			}
			if !held {
				t.Errorf("%s: the control process (pid %d, systemctl's ControlPID) is not among the holders %+v", phase, ctl, su.Listeners[0].Holders)
			}
			for _, w := range snap.Warnings {
				if w.Code == "leaked-listener" {
					t.Errorf("%s: snapshot warns %+v", phase, w)
				}
			}
			out, code := doctor(t, c, Root, "fdtpfx.*")
			if code != 0 || strings.Contains(out, "leaked") {
				t.Errorf("%s: fdtop doctor fdtpfx.*: exit %d\n%s", phase, code, out)
			}
		}
	})

	t.Run("deferred", func(t *testing.T) {
		if major < 258 {
			t.Skipf("systemd %d has no DeferTrigger= (258)", major)
		}
		if out, err := c.Systemctl(ctx, "start", "fdtblock.service"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		conn, err := c.DialTCP(ctx, addr(0))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		waitSubState(t, c, "fdtset.socket", "deferred")
		snap := snapshot(t, c, Root, "fdtset.socket")
		su := socketUnit(snap, "fdtset.socket")
		if su == nil || su.SubState != "deferred" {
			t.Fatalf("fdtset.socket: %+v, want sub_state deferred", su)
		}
		if note := inspect.SocketStateNote(*su); !strings.HasPrefix(note, "deferred: ") {
			t.Errorf("deferred has no words: %q", note)
		}
		if out, err := c.Systemctl(ctx, "stop", "fdtblock.service"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		waitSubState(t, c, "fdtset.socket", "running")
	})

	t.Run("LISTEN_PIDFDID", func(t *testing.T) {
		snap := snapshot(t, c, Root, "dbus.socket")
		var svc *inspect.Service
		for i := range snap.Services {
			if snap.Services[i].Unit == "dbus.service" {
				svc = &snap.Services[i]
			}
		}
		if svc == nil || svc.MainPID == 0 {
			t.Fatalf("dbus.service not running in the snapshot: %+v", svc)
		}
		env, err := c.Run(ctx, Root, "sh", "-c", fmt.Sprintf("tr '\\0' '\\n' < /proc/%d/environ | grep ^LISTEN_PIDFDID= || true", svc.MainPID))
		if err != nil {
			t.Fatalf("%v: %s", err, env)
		}
		want, _ := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(env), "LISTEN_PIDFDID="), 10, 64)
		if svc.ListenPIDFDID != want {
			t.Errorf("dbus.service pid %d: fdtop listen_pidfdid %d, its environment %q", svc.MainPID, svc.ListenPIDFDID, strings.TrimSpace(env))
		}
		if major < 259 {
			if want != 0 {
				t.Errorf("systemd %d sets LISTEN_PIDFDID (%d): the version note is wrong", major, want)
			}
			t.Skipf("systemd %d sets no LISTEN_PIDFDID (259): checked fdtop shows none", major)
		}
		if want == 0 {
			t.Errorf("systemd %d: dbus.service has no LISTEN_PIDFDID", major)
		}
	})

	t.Run("instance name", func(t *testing.T) {
		conn, err := c.DialTCP(ctx, addr(2))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		client := conn.LocalAddr().(*net.TCPAddr).String()
		var inst *inspect.Instance
		deadline := time.Now().Add(30 * time.Second)
		for inst == nil && time.Now().Before(deadline) {
			snap := snapshot(t, c, Root, "fdtacc.socket")
			if su := socketUnit(snap, "fdtacc.socket"); su != nil {
				for i := range su.Instances {
					if su.Instances[i].MainPID != 0 {
						inst = &su.Instances[i]
					}
				}
			}
			if inst == nil {
				time.Sleep(200 * time.Millisecond)
			}
		}
		if inst == nil {
			t.Fatal("no running instance of fdtacc.socket")
		}
		in, ok := inspect.ParseInstanceName(inst.Unit)
		t.Logf("%s: instance %s parses as %+v", c.Version, inst.Unit, in)
		if !ok || in.Local != addr(2) || in.Remote != client {
			t.Errorf("ParseInstanceName(%q) = %+v, %v; want local %s remote %s", inst.Unit, in, ok, addr(2), client)
		}
		if (in.Cookie != 0) != (major >= 258) {
			t.Errorf("systemd %d: cookie %d in %s", major, in.Cookie, inst.Unit)
		}
		if inst.Local != addr(2) || inst.Remote != client || inst.Inode == 0 {
			t.Errorf("instance %+v, want ends %s ← %s and its connection's inode", inst, addr(2), client)
		}
	})
}

// socketDetailHead returns the detail pane's lines of a socket unit from
// its heading to its Listeners section (its state, notes and settings).
func socketDetailHead(screen, unit string) string {
	var out []string
	in := false
	for _, l := range strings.Split(screen, "\n") {
		_, pane, ok := strings.Cut(l, "│")
		if !ok {
			continue
		}
		switch {
		case strings.Contains(pane, unit+"  "):
			in = true
		case in && strings.Contains(pane, "Listeners"):
			return strings.Join(out, "\n")
		}
		if in {
			out = append(out, pane)
		}
	}
	return ""
}

// showProps runs `systemctl show -p A,B unit` inside and returns what it
// printed, by name: a property the manager lacks is not printed.
func showProps(t *testing.T, c *Container, unit string, props ...string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := c.Systemctl(ctx, "show", "-p", strings.Join(props, ","), unit)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// waitSubState waits until unit's SubState is sub.
func waitSubState(t *testing.T, c *Container, unit, sub string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got map[string]string
	for time.Now().Before(deadline) {
		if got = showProps(t, c, unit, "ActiveState", "SubState"); got["SubState"] == sub {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %v after 30s, want SubState=%s", unit, got, sub)
}

func fmtPtr[T any](p *T, f func(T) string) *string {
	if p == nil {
		return nil
	}
	s := f(*p)
	return &s
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
