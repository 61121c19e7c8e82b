package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/exp/teatest"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/live"
	"github.com/fdtop/fdtop/ui"
	"github.com/muesli/termenv"
)

// controlLines returns the lines of text holding a control character other
// than the line break (below 0x20, DEL, C1).
func controlLines(text string) []string {
	var bad []string
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if strings.ContainsFunc(line, func(r rune) bool { return r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f }) {
			bad = append(bad, fmt.Sprintf("%q", line))
		}
	}
	return bad
}

// escapedStatus and escapedComm are sandboxtest.HostileStatus and
// HostileComm as a terminal must show them.
const (
	escapedStatus = `\e]0;pwned-title\x07\e[2J\e[31mRED STATUS`
	escapedComm   = `\e[31mEVIL\x07`
)

// TestHostileServiceOutput: a service with an escape-laden STATUS= and
// comm behind listeners systemd prints C-escaped, seen through the real
// binary's `snapshot` (tree and JSON), the dashboard's View() on the live
// source, and the dashboard in a real terminal (tmux): nothing raw reaches
// the terminal, the escaped text is there to read, JSON keeps the exact
// values and every listener is found.
func TestHostileServiceOutput(t *testing.T) {
	tm := newTmux(t)
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		bin := sandboxtest.Fdtop(t)
		h := sandboxtest.InstallHostile(t, sb)
		args := []string{"--user", "--address", sb.Address, "hostile*"}

		t.Run("snapshot", func(t *testing.T) {
			var snap inspect.Snapshot
			var svc inspect.Service
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) && svc.StatusText == "" { // the status comes with READY=1
				out, err := exec.Command(bin, append([]string{"snapshot", "--json"}, args...)...).Output()
				if err != nil {
					t.Fatalf("snapshot --json: %v", err)
				}
				if err := json.Unmarshal(out, &snap); err != nil {
					t.Fatalf("snapshot --json does not decode: %v", err)
				}
				for _, s := range snap.Services {
					if s.Unit == h.Service {
						svc = s
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
			if svc.StatusText != sandboxtest.HostileStatus {
				t.Errorf("JSON status_text = %q, want exactly %q", svc.StatusText, sandboxtest.HostileStatus)
			}
			if len(snap.Sockets) != 1 || len(snap.Sockets[0].Listeners) != len(h.Listeners) {
				t.Fatalf("JSON sockets = %+v, want %s with %d listeners", snap.Sockets, h.Socket, len(h.Listeners))
			}
			for _, l := range snap.Sockets[0].Listeners {
				comms := map[string]bool{}
				for _, ho := range l.Holders {
					comms[ho.Comm] = true
				}
				if l.Inode == 0 || !comms[sandboxtest.HostileComm] {
					t.Errorf("JSON listener %q: inode %d, holders %+v; want found and held by comm %q", l.Address, l.Inode, l.Holders, sandboxtest.HostileComm)
				}
			}

			tree, err := exec.Command(bin, append([]string{"snapshot"}, args...)...).Output()
			if err != nil {
				t.Fatalf("snapshot: %v", err)
			}
			if bad := controlLines(string(tree)); len(bad) > 0 {
				t.Errorf("snapshot tree has raw control characters in:\n%s", strings.Join(bad, "\n"))
			}
			for _, want := range []string{"status: " + escapedStatus, escapedComm, `@bell\a\033[31m`} {
				if !bytes.Contains(tree, []byte(want)) {
					t.Errorf("snapshot tree lacks %q:\n%s", want, tree)
				}
			}
			if bytes.Contains(tree, []byte("not found")) {
				t.Errorf("snapshot tree has a listener not found:\n%s", tree)
			}
		})

		t.Run("dashboard View", func(t *testing.T) {
			lipgloss.SetColorProfile(termenv.Ascii) // no styling: any escape in View came from outside
			src := startLiveSource(t, sb, []string{"hostile*"}, time.Second)
			prog := teatest.NewTestModel(t, ui.NewModel(src, ui.Options{Patterns: []string{"hostile*"}}), teatest.WithInitialTermSize(160, 60))
			var drawn bytes.Buffer
			teatest.WaitFor(t, prog.Output(), func(out []byte) bool {
				drawn.Reset()
				drawn.Write(out)
				return bytes.Contains(drawn.Bytes(), []byte(escapedStatus)) && bytes.Contains(drawn.Bytes(), []byte(escapedComm))
			}, teatest.WithDuration(20*time.Second), teatest.WithCheckInterval(20*time.Millisecond))
			prog.Send(tea.KeyMsg{Type: tea.KeyDown}) // the service's own detail
			if err := prog.Quit(); err != nil {
				t.Fatal(err)
			}
			view := prog.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).View()
			rest, err := io.ReadAll(prog.FinalOutput(t))
			if err != nil {
				t.Fatal(err)
			}
			drawn.Write(rest)
			if bad := controlLines(view); len(bad) > 0 {
				t.Errorf("View has raw control characters in:\n%s", strings.Join(bad, "\n"))
			}
			for _, want := range []string{"status: " + escapedStatus, escapedComm} {
				if !strings.Contains(view, want) {
					t.Errorf("View lacks %q:\n%s", want, view)
				}
			}
			// What went to the terminal: the renderer's own sequences only,
			// no title change (OSC) and no bell.
			if bytes.ContainsAny(drawn.Bytes(), "\a") || bytes.Contains(drawn.Bytes(), []byte("\x1b]")) {
				t.Errorf("a bell or an OSC sequence reached the terminal: %q", drawn.Bytes())
			}
		})

		t.Run("dashboard in tmux", func(t *testing.T) {
			term := tm.start(t, bin, sb.Env(), args...)
			screen := term.waitFor(t, "the escaped status and comm", func(s string) bool {
				return strings.Contains(s, escapedComm) && strings.Contains(s, `\e]0;pwned-title`)
			})
			out, err := term.s.command("display-message", "-p", "-t", term.name, "#{pane_title}").Output()
			if err != nil {
				t.Fatal(err)
			}
			if title := strings.TrimSpace(string(out)); strings.Contains(title, "pwned") || strings.Contains(title, "cmdline-title") {
				t.Errorf("the service set the terminal's title to %q", title)
			}
			if !strings.Contains(screen, "fdtop") || !strings.Contains(screen, h.Socket) {
				t.Errorf("the header or the list is gone (screen wiped?):\n%s", screen)
			}
			term.quit(t)
		})
	})
}

// startLiveSource starts the dashboard's live model on the sandbox's
// manager, on the units patterns name; it stops when the test ends.
func startLiveSource(t *testing.T, sb *sandbox.Sandbox, patterns []string, interval time.Duration) *live.Source {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	client, b, err := live.Connect(ctx, live.Manager{User: true, Address: sb.Address, Proc: "/proc"}, patterns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	src, err := live.New(ctx, client, b, live.Options{Interval: interval})
	if err != nil {
		t.Fatal(err)
	}
	return src
}
