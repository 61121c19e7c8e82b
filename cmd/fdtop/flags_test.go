package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/clierr"
	"github.com/fdtop/fdtop/ui"
)

// checkOneLine fails unless msg is one line, "fdtop[ CMD]: …", without a
// stray space before the colon or a prefix said twice ("replay: replay:").
func checkOneLine(t *testing.T, msg string) {
	t.Helper()
	if strings.Count(msg, "\n") != 1 || !strings.HasSuffix(msg, "\n") {
		t.Errorf("not one line: %q", msg)
	}
	if !strings.HasPrefix(msg, "fdtop: ") && !strings.HasPrefix(msg, "fdtop ") || strings.HasPrefix(msg, "fdtop :") {
		t.Errorf("does not start with \"fdtop: \" or \"fdtop CMD: \": %q", msg)
	}
	parts := strings.Split(strings.TrimSpace(msg), ": ")
	for i := 1; i < len(parts); i++ {
		if parts[i] == parts[i-1] {
			t.Errorf("prefix %q said twice: %q", parts[i], msg)
		}
	}
}

// TestFlagsAndMessages: --interval has one floor (100 ms) for the dashboard
// and watch; a --proc that is not a procfs is refused; --record leaves no
// file when there is nothing to record; every error is one line with the
// command's prefix once.
func TestFlagsAndMessages(t *testing.T) {
	dir := t.TempDir()
	missing := "unix:path=" + filepath.Join(dir, "systemd", "private")
	notRecording := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notRecording, []byte("shopping list\neggs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.jsonl")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rec := filepath.Join(dir, "rec.jsonl")
	tests := []struct {
		name string
		args []string
		code int
		want string // the whole message starts with it
	}{
		{"dashboard interval 0", []string{"--interval", "0"}, 2, "fdtop: --interval 0s: must be at least 100ms"},
		{"dashboard interval negative", []string{"--interval", "-1s"}, 2, "fdtop: --interval -1s: must be at least 100ms"},
		{"dashboard interval 1ns", []string{"--interval", "1ns"}, 2, "fdtop: --interval 1ns: must be at least 100ms"},
		{"dashboard interval 99ms", []string{"--interval", "99ms"}, 2, "fdtop: --interval 99ms: must be at least 100ms"},
		{"dashboard interval 100ms passes", []string{"--interval", "100ms", "--address", missing}, 1, "fdtop: no systemd manager answers at " + missing},
		{"watch interval 0", []string{"watch", "--interval", "0"}, 2, "fdtop watch: --interval 0s: must be at least 100ms"},
		{"watch interval 1ns", []string{"watch", "--interval", "1ns"}, 2, "fdtop watch: --interval 1ns: must be at least 100ms"},
		{"watch interval 100ms passes", []string{"watch", "--interval", "100ms", "--address", missing}, 1, "fdtop watch: no systemd manager answers at " + missing},
		{"dashboard error", []string{"--address", missing}, 1, "fdtop: no systemd manager answers at " + missing},
		{"proc not a procfs", []string{"snapshot", "--proc", dir}, 2, "fdtop snapshot: --proc " + dir + ": not a procfs"},
		{"proc missing", []string{"snapshot", "--proc", filepath.Join(dir, "nope")}, 2, "fdtop snapshot: --proc " + filepath.Join(dir, "nope") + ": no such file"},
		{"replay not a recording", []string{"replay", notRecording}, 1, "fdtop replay: not an fdtop recording: line 1: not an fdtop event"},
		{"replay empty", []string{"replay", empty}, 1, "fdtop replay: the recording has no events"},
		{"record, no manager", []string{"watch", "--record", rec, "--address", missing}, 1, "fdtop watch: no systemd manager answers at " + missing},
		{"record in a missing dir", []string{"watch", "--record", filepath.Join(dir, "nope", "rec.jsonl"), "--address", missing}, 1, "fdtop watch: record " + filepath.Join(dir, "nope", "rec.jsonl") + ": " + filepath.Join(dir, "nope") + ": no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tt.args, &out, &errb)
			msg := errb.String()
			if code != tt.code || !strings.HasPrefix(msg, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and a message starting %q", code, msg, tt.code, tt.want)
			}
			checkOneLine(t, msg)
		})
	}
	if _, err := os.Stat(rec); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("--record file exists after a watch that never connected (%v)", err)
	}
}

// TestErrorLine: the one formatter of command errors.
func TestErrorLine(t *testing.T) {
	tests := []struct {
		cmd  string
		err  error
		want string
	}{
		{"", errors.New("boom"), "fdtop: boom"},
		{"watch", errors.New("two\nlines\n"), "fdtop watch: two lines"},
		{"replay", clierr.Usage("--speed must be positive"), "fdtop replay: --speed must be positive"},
	}
	for _, tt := range tests {
		if got := errorLine(tt.cmd, tt.err); got != tt.want {
			t.Errorf("errorLine(%q, %q) = %q, want %q", tt.cmd, tt.err, got, tt.want)
		}
	}
}

// TestScopeOfAddress: a user manager's private socket given with --address
// and without --user is labelled by what answers there, in text and JSON.
func TestScopeOfAddress(t *testing.T) {
	sb := sandboxtest.Start(t, sandboxtest.Versions()[0])
	var out, errb bytes.Buffer
	if code := run([]string{"snapshot", "--targeted", "--address", sb.Address}, &out, &errb); code != 0 {
		t.Fatalf("snapshot: exit %d: %s", code, errb.String())
	}
	if first, _, _ := strings.Cut(out.String(), "\n"); !strings.HasPrefix(strings.ToLower(first), "user manager") {
		t.Errorf("text labels the sandbox's user manager %q", first)
	}
	out.Reset()
	if code := run([]string{"snapshot", "--targeted", "--json", "--address", sb.Address}, &out, &errb); code != 0 {
		t.Fatalf("snapshot --json: exit %d: %s", code, errb.String())
	}
	var snap inspect.Snapshot
	if err := json.Unmarshal(out.Bytes(), &snap); err != nil {
		t.Fatal(err)
	}
	if snap.Manager.Scope != "user" {
		t.Errorf(`JSON manager.scope = %q, want "user"`, snap.Manager.Scope)
	}
}

// TestOwnerOnlySocket: a user who is not root, refused by a private socket
// of root's, is told why and pointed at the system bus and --user.
func TestOwnerOnlySocket(t *testing.T) {
	sandboxtest.Require(t)
	bin := sandboxtest.Fdtop(t)
	dir, err := os.MkdirTemp("", "fdtop-owner-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.MkdirAll(filepath.Join(dir, "systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "systemd", "private")
	// Like systemd's: anyone may connect; the peer's uid is checked and a
	// stranger's connection closed.
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.Chmod(path, 0o777); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	cmd := exec.Command(bin, "snapshot", "--address", "unix:path="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err = cmd.Run()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("exit: %v; stderr %s", err, errb.String())
	}
	msg := errb.String()
	checkOneLine(t, msg)
	for _, want := range []string{"refused the connection", "admits only its owner (uid 0)", "uid 65534", "system bus", "--user"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
}

// TestWatchShutdown: a watch ended by Ctrl-C records nothing that did not
// happen, and ends within a second, also once the manager is gone.
func TestWatchShutdown(t *testing.T) {
	sb := sandboxtest.Start(t, sandboxtest.Versions()[0])
	sandboxtest.InstallDemo(t, sb, 100*time.Millisecond)
	bin := sandboxtest.Fdtop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// start runs a watch and waits until it has its first view (its ready
	// file appears).
	start := func(t *testing.T, rec string) *exec.Cmd {
		stats := filepath.Join(t.TempDir(), "ready")
		cmd := exec.Command(bin, "watch", "--interval", "100ms", "--record", rec, "--address", sb.Address, "demo-*")
		cmd.Env = append(os.Environ(), "FDTOP_READY="+stats)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err := os.Stat(stats); err == nil {
				return cmd
			}
			if time.Now().After(deadline) {
				t.Fatal("watch had no first view within 20 s")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitRecorded := func(t *testing.T, rec, what string) {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if b, _ := os.ReadFile(rec); strings.Contains(string(b), what) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		b, _ := os.ReadFile(rec)
		t.Fatalf("%s not recorded:\n%s", what, b)
	}
	interrupt := func(t *testing.T, cmd *exec.Cmd) {
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		sent := time.Now()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("watch still running 5 s after SIGINT")
		}
		if took := time.Since(sent); took > exitWithin {
			t.Errorf("watch took %v to end after SIGINT, want at most %v", took, exitWithin)
		}
		if code := cmd.ProcessState.ExitCode(); code != 130 {
			t.Errorf("exit %d after SIGINT, want 130", code)
		}
	}
	lines := func(t *testing.T, rec string) []inspect.Event {
		f, err := os.Open(rec)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		evs, err := ui.ParseRecording(f)
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}

	t.Run("manager up", func(t *testing.T) {
		rec := filepath.Join(t.TempDir(), "rec.jsonl")
		cmd := start(t, rec)
		if _, err := sb.Systemctl(ctx, "restart", demo.Handoff.Service()); err != nil {
			t.Fatal(err)
		}
		waitRecorded(t, rec, `"type":"handoff"`)
		interrupt(t, cmd)
		for _, e := range lines(t, rec) {
			if e.Type == inspect.EventDisconnected || strings.Contains(e.Message, "context canceled") {
				t.Errorf("recorded what did not happen: %+v", e)
			}
		}
	})
	t.Run("manager gone", func(t *testing.T) {
		const slowUnit = "demo-slow.service"
		if err := sb.WriteUnit(slowUnit, "[Service]\nType=oneshot\nExecStart=/bin/sleep 60\n"); err != nil {
			t.Fatal(err)
		}
		if out, err := sb.Systemctl(ctx, "daemon-reload"); err != nil {
			t.Fatalf("daemon-reload: %v: %s", err, out)
		}
		rec := filepath.Join(t.TempDir(), "rec.jsonl")
		cmd := start(t, rec)
		if _, err := sb.Systemctl(ctx, "restart", demo.Handoff.Service()); err != nil {
			t.Fatal(err)
		}
		waitRecorded(t, rec, `"type":"handoff"`)
		// Kill the manager with a rescan in flight: stop it, wait until
		// a request of the watch waits unread in its socket, then kill.
		// An idle watch asks the manager nothing: start a job that lasts
		// (a oneshot service's start: the watch rescans a unit every 15
		// ms while its job runs) and stop the manager once the watch has
		// seen the job start. (A restart of a demo service was over
		// before the manager was stopped once, on a loaded machine: CI
		// run 29.)
		before, _ := os.ReadFile(rec)
		if _, err := sb.Systemctl(ctx, "--no-block", "start", slowUnit); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			b, _ := os.ReadFile(rec)
			if strings.Count(string(b), `"type":"job_started"`) > strings.Count(string(before), `"type":"job_started"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the job of %s not recorded:\n%s", slowUnit, b)
			}
		}
		if err := syscall.Kill(sb.PID, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(20 * time.Second); !unreadRequest(t, sb.PID); {
			if time.Now().After(deadline) {
				t.Fatal("no request of the watch reached the stopped manager within 20 s")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := syscall.Kill(sb.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		for !exited(sb.PID) {
			time.Sleep(10 * time.Millisecond)
		}
		// The manager is gone: the watch records it once, at once, even
		// with a rescan in flight (which stops waiting for a reconnection
		// once the manager's process is gone).
		disconnects := func() int {
			n := 0
			for _, e := range lines(t, rec) {
				if e.Type == inspect.EventDisconnected {
					n++
				}
			}
			return n
		}
		for disconnects() == 0 {
			if time.Since(killed) > 10*time.Second {
				b, _ := os.ReadFile(rec)
				t.Fatalf("no disconnected line 10 s after the manager was killed:\n%s", b)
			}
			time.Sleep(10 * time.Millisecond)
		}
		took := time.Since(killed)
		t.Logf("disconnected recorded %v after the manager was killed", took)
		if took > time.Second {
			t.Errorf("disconnected recorded %v after the manager was killed, want at most 1 s", took)
		}
		// Rescans go on failing while the manager is gone: they must not
		// add lines.
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
			time.Sleep(50 * time.Millisecond)
		}
		interrupt(t, cmd)
		if n := disconnects(); n != 1 {
			t.Errorf("%d disconnected lines, want 1", n)
		}
		for _, e := range lines(t, rec) {
			if strings.Contains(e.Message, "context canceled") || strings.Contains(e.Message, "rescan failed") ||
				e.Type == inspect.EventDisconnected && !strings.HasPrefix(e.Message, "connection to the manager lost") {
				t.Errorf("recorded what did not happen: %+v", e)
			}
		}
	})
}

// unreadRequest reports whether a unix socket of pid has bytes waiting to
// be read (ss's Recv-Q).
func unreadRequest(t *testing.T, pid int) bool {
	t.Helper()
	out, err := exec.Command("ss", "-xpH").Output()
	if err != nil {
		t.Fatalf("ss -xpH: %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || !strings.Contains(l, fmt.Sprintf("pid=%d,", pid)) {
			continue
		}
		if n, err := strconv.Atoi(f[2]); err == nil && n > 0 {
			return true
		}
	}
	return false
}
