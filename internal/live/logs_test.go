package live

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/internal/unitlog"
)

// TestFollowLogDemo: where there is no journal (the sandbox), the
// dashboard's log follower reads the demo service's own log file and the
// manager's lines about the unit, and keeps following across a restart; a
// line with escape sequences arrives exact (the UI escapes it, see
// ui.TestDashboardLog).
func TestFollowLogDemo(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		sandboxtest.InstallDemo(t, sb, 50*time.Millisecond)
		evilLog := filepath.Join(sb.Dir, "doc-evil.log")
		if err := sb.WriteUnit("doc-evil.service", fmt.Sprintf("[Service]\nExecStart=/bin/sh -c 'printf \"evil \\\\033]0;owned\\\\007 line\\\\n\"; exit 3'\nStandardOutput=append:%s\n", evilLog)); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Systemctl(ctx, "daemon-reload"); err != nil {
			t.Fatal(err)
		}
		client, b, err := Connect(ctx, Manager{User: true, Address: sb.Address, Proc: "/proc"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		src := &Source{actions: newActions(client, b, nil)}
		if (unitlog.Reader{}).HasJournal() {
			t.Fatalf("this test wants no journal (the sandbox's case); %s exists", unitlog.JournalSocket)
		}

		fctx, stop := context.WithCancel(ctx)
		defer stop()
		ch, ok, err := src.FollowLog(fctx, []string{demo.Handoff.Socket(), demo.Handoff.Service()})
		if err != nil || !ok {
			t.Fatalf("FollowLog: ok %v, %v", ok, err)
		}
		waitLine := func(what string, match func(unitlog.Line) bool) unitlog.Line {
			t.Helper()
			for {
				select {
				case l, open := <-ch:
					if !open {
						t.Fatalf("follower closed while waiting for %s", what)
					}
					if match(l) {
						return l
					}
				case <-ctx.Done():
					t.Fatalf("no %s in the log", what)
				}
			}
		}
		waitLine("the service's ready line", func(l unitlog.Line) bool {
			return strings.HasSuffix(l.Source, demo.Handoff.Service()+".log") && strings.Contains(l.Message, "msg=ready")
		})
		if _, err := sb.Systemctl(ctx, "restart", demo.Handoff.Service()); err != nil {
			t.Fatal(err)
		}
		pid := strings.TrimSpace(mainPIDOf(ctx, t, sb, demo.Handoff.Service()))
		waitLine("the new process's ready line", func(l unitlog.Line) bool {
			return strings.Contains(l.Message, "msg=ready pid="+pid)
		})
		stop()
		for range ch { // closed once stopped
		}

		// A failed unit (loaded, as the units on screen are): the manager's
		// lines about it and its hostile output line, exact.
		_, _ = sb.Systemctl(ctx, "start", "doc-evil.service")
		waitResult(t, sb, "doc-evil.service", "exit-code", nil)
		ectx, estop := context.WithCancel(ctx)
		defer estop()
		ch, ok, err = src.FollowLog(ectx, []string{"doc-evil.service"})
		if err != nil || !ok {
			t.Fatalf("FollowLog doc-evil: ok %v, %v", ok, err)
		}
		waitLine("the manager's line about the unit", func(l unitlog.Line) bool {
			return l.Source == "manager log" && strings.HasPrefix(l.Message, "doc-evil.service: ") && strings.Contains(l.Message, "status=3")
		})
		waitLine("the escape sequence, exact", func(l unitlog.Line) bool { return l.Message == "evil \x1b]0;owned\x07 line" })
	})
}

func mainPIDOf(ctx context.Context, t *testing.T, sb *sandbox.Sandbox, unit string) string {
	t.Helper()
	out, err := sb.Systemctl(ctx, "show", "-P", "MainPID", unit)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitResult waits until unit's Result property is want.
func waitResult(t *testing.T, sb *sandbox.Sandbox, unit, want string, poke func()) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	got := ""
	for time.Now().Before(deadline) {
		if poke != nil {
			poke()
		}
		out, err := sb.Systemctl(context.Background(), "show", "-p", "Result", "--value", unit)
		if got = strings.TrimSpace(out); err == nil && got == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: Result %q, want %q", unit, got, want)
}
