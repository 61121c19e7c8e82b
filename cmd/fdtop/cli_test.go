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
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/ui"
)

// TestExitCodes: 0 ok, 1 runtime error with one line saying why, 2 usage.
func TestExitCodes(t *testing.T) {
	empty := t.TempDir()
	tests := []struct {
		name     string
		args     []string
		env      []string
		code     int
		contains []string
	}{
		{"help", []string{"--help"}, nil, 0, []string{"fdtop snapshot", "fdtop watch", "fdtop demo"}},
		{"version", []string{"--version"}, nil, 0, []string{"fdtop " + version}},
		{"bad flag", []string{"snapshot", "--no-such-flag"}, nil, 2, []string{"unknown flag: --no-such-flag", "Usage: fdtop snapshot"}},
		{"user and system", []string{"snapshot", "--user", "--system"}, nil, 2, []string{"exclude each other"}},
		{"replay without file", []string{"replay"}, nil, 2, []string{"Usage: fdtop replay"}},
		{"replay missing file", []string{"replay", filepath.Join(empty, "nope.jsonl")}, nil, 1, []string{"no such file"}},
		{"no system manager", []string{"snapshot", "--address", "unix:path=" + filepath.Join(empty, "private")}, nil, 1, []string{"no systemd manager answers"}},
		{"no user manager", []string{"snapshot", "--user"}, []string{"XDG_RUNTIME_DIR=" + empty, "DBUS_SESSION_BUS_ADDRESS="}, 1, []string{"no user manager answers", "fdtop demo"}},
		{"watch bad interval", []string{"watch", "--interval", "0s"}, nil, 2, []string{"--interval"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, kv := range tt.env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			var out, errb bytes.Buffer
			code := run(tt.args, &out, &errb)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out.String(), errb.String())
			}
			all := out.String() + errb.String()
			for _, c := range tt.contains {
				if !strings.Contains(all, c) {
					t.Errorf("output lacks %q:\n%s", c, all)
				}
			}
			if tt.code == 1 && strings.Count(strings.TrimSpace(errb.String()), "\n") != 0 {
				t.Errorf("runtime error is not one line:\n%s", errb.String())
			}
		})
	}
}

// TestSnapshotAndRecord runs the real binary on a sandbox: `snapshot
// --json` decodes and shows the demo units; `watch --record` keeps every
// event written before fdtop is SIGKILLed, as whole JSON lines.
func TestSnapshotAndRecord(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		ctx := context.Background()
		bin := sandboxtest.Fdtop(t)
		sandboxtest.InstallDemo(t, sb, 50*time.Millisecond)
		out, err := exec.Command(bin, "snapshot", "--json", "--user", "--address", sb.Address, "demo-*").Output()
		if err != nil {
			t.Fatalf("snapshot --json: %v", err)
		}
		var snap inspect.Snapshot
		if err := json.Unmarshal(out, &snap); err != nil {
			t.Fatalf("snapshot --json output does not decode: %v", err)
		}
		if len(snap.Sockets) != 2 || snap.Manager.Scope != "user" {
			t.Errorf("snapshot: %d sockets, scope %q; want the 2 demo sockets of the user manager", len(snap.Sockets), snap.Manager.Scope)
		}
		tree, err := exec.Command(bin, "snapshot", "--user", "--address", sb.Address, "demo-*").Output()
		if err != nil || !bytes.Contains(tree, []byte("demo-handoff.socket")) {
			t.Errorf("snapshot tree: %v\n%s", err, tree)
		}

		rec := filepath.Join(t.TempDir(), "rec.jsonl")
		w := exec.Command(bin, "watch", "--user", "--address", sb.Address, "--record", rec, "demo-*")
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = w.Process.Kill(); _ = w.Wait() }()
		// watch is ready once it records a daemon-reload: its watcher reads
		// the manager's state before it handles any signal.
		ready := time.Now().Add(30 * time.Second)
		for countType(t, rec, "reloading") == 0 {
			if time.Now().After(ready) {
				t.Fatal("fdtop watch recorded no daemon-reload in 30s")
			}
			if _, err := sb.Systemctl(ctx, "daemon-reload"); err != nil {
				t.Fatal(err)
			}
			for end := time.Now().Add(time.Second); time.Now().Before(end) && countType(t, rec, "reloading") == 0; {
				time.Sleep(20 * time.Millisecond)
			}
		}
		for i := 0; i < 2; i++ {
			if _, err := sb.Systemctl(ctx, "restart", demo.Handoff.Service()); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) && countType(t, rec, "handoff") < 2 {
			time.Sleep(50 * time.Millisecond)
		}
		_ = w.Process.Signal(syscall.SIGKILL)
		_ = w.Wait()
		if n := countType(t, rec, "handoff"); n != 2 {
			t.Errorf("record holds %d handoff events after SIGKILL, want 2", n)
		}
		var events bytes.Buffer
		if code := runReplayCheck(t, rec, &events); code != 0 {
			t.Errorf("recorded file does not parse for replay: %s", events.String())
		}
	})
}

// countType counts the lines of a record of one event type; every line
// must be a whole JSON event.
func countType(t *testing.T, path, typ string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e inspect.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("record line %q is not a whole event: %v", sc.Text(), err)
		}
		if string(e.Type) == typ {
			n++
		}
	}
	return n
}

// runReplayCheck parses a recording the way `fdtop replay` does.
func runReplayCheck(t *testing.T, path string, msg *bytes.Buffer) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		msg.WriteString(err.Error())
		return 1
	}
	defer f.Close()
	evs, err := ui.ParseRecording(f)
	if err != nil || len(evs) == 0 {
		msg.WriteString(fmt.Sprint(err, len(evs)))
		return 1
	}
	return 0
}
