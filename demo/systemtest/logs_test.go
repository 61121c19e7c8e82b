package systemtest

import (
	"context"
	"strings"
	"testing"
	"time"
)

// logtestScript is the service of TestLogsInDashboardAsRoot: a line naming
// its PID (so a restart's line is told from the last one's), a line with a
// title-setting OSC and a colour (hostile output), then it holds the
// listener it was passed.
const logtestScript = `#!/bin/sh
printf 'fdtlog started pid %s\n' "$$"
printf '\033]0;pwned\007\033[31mRED fdtlog\n'
exec sleep infinity
`

// TestLogsInDashboardAsRoot: in the dashboard run as root on the system
// manager, the selected service's Log section follows the journal: after a
// restart (r, y) the new process's line appears; a line carrying an OSC
// (window title) and an SGR sequence is shown escaped, the terminal's
// title stays and no colour of the service's choosing reaches it.
func TestLogsInDashboardAsRoot(t *testing.T) { ForEach(t, testLogsInDashboardAsRoot) }

func testLogsInDashboardAsRoot(t *testing.T, c *Container) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const sock, svc = "fdtlog.socket", "fdtlog.service"
	if err := c.WriteFile("/usr/local/libexec/fdtlog.sh", []byte(logtestScript), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteUnit(sock, "[Socket]\nListenStream=/run/fdtlog.sock\n"); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteUnit(svc, "[Service]\nExecStart=/usr/local/libexec/fdtlog.sh\n"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = c.Systemctl(context.Background(), "stop", sock, svc) })
	if out, err := c.Systemctl(ctx, "daemon-reload"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := c.Systemctl(ctx, "start", sock, svc); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	before := mainPID(t, c, svc)
	// The first line is in the journal before the dashboard starts: it is
	// history, read by the same journalctl that follows.
	waitJournal(t, c, svc, "fdtlog started pid "+before)

	tm := newTmux(t)
	term := tm.start(t, c.Argv(Root, "env", "TERM=tmux-256color", FdtopPath, "fdtlog*"))
	term.waitFor(t, "the service", func(s string) bool { return strings.Contains(s, svc) })
	term.selectUnit(t, svc)
	term.waitFor(t, "the first process's line in the Log section", func(s string) bool {
		return logSection(s) != "" && strings.Contains(logSection(s), "fdtlog started pid "+before)
	})
	term.send(t, "r")
	term.waitFor(t, "the restart confirmation", func(s string) bool { return strings.Contains(s, "restart "+svc+"?") })
	term.send(t, "y")
	var after string
	screen := term.waitFor(t, "the new process's line in the Log section", func(s string) bool {
		if p := mainPID(t, c, svc); p != before && p != "0" {
			after = p
		}
		return after != "" && strings.Contains(logSection(s), "fdtlog started pid "+after)
	})
	t.Logf("Log section after the restart (pid %s → %s):\n%s", before, after, logSection(screen))

	// Hostile output: escaped, visibly.
	const escaped = `\e]0;pwned\x07\e[31mRED fdtlog`
	if !strings.Contains(logSection(screen), escaped) {
		t.Errorf("the Log section does not show %q escaped:\n%s", escaped, logSection(screen))
	}
	if title := term.title(t); strings.Contains(title, "pwned") {
		t.Errorf("pane title %q: the service's OSC reached the terminal", title)
	}
	raw := term.captureEscapes(t)
	for _, l := range strings.Split(raw, "\n") {
		if !strings.Contains(l, "RED fdtlog") {
			continue
		}
		if strings.ContainsRune(l, '\a') {
			t.Errorf("a BEL reached the terminal: %q", l)
		}
		// tmux renders cells' attributes as SGR; the service's red
		// (colour 1) must not be among those of its line.
		for _, red := range []string{"\x1b[31m", "\x1b[91m", "\x1b[38;5;1m", "\x1b[38;5;9m", ";31m", ";91m"} {
			if strings.Contains(l, red) {
				t.Errorf("the service's colour reached the terminal (%q): %q", red, l)
			}
		}
	}
	term.quit(t)

	// A plain user may not read the system journal: the Log section says
	// the log is unknown, never "nothing logged yet".
	t.Run("unprivileged", func(t *testing.T) {
		term := tm.start(t, c.Argv(Unprivileged, "env", "TERM=tmux-256color", FdtopPath, "fdtlog*"))
		term.waitFor(t, "the service", func(s string) bool { return strings.Contains(s, svc) })
		term.selectUnit(t, svc)
		screen := term.waitFor(t, "the log unknown", func(s string) bool {
			return strings.Contains(logSection(s), "the log is unknown: journalctl")
		})
		t.Logf("Log section as %s:\n%s", UserName, logSection(screen))
		if strings.Contains(logSection(screen), "nothing logged yet") {
			t.Errorf("says nothing was logged:\n%s", logSection(screen))
		}
		term.quit(t)
	})
}

// logSection returns the dashboard's Log section: the lines from its
// heading to the first blank line of the detail pane ("" when there is
// none).
func logSection(screen string) string {
	lines := strings.Split(screen, "\n")
	for i, l := range lines {
		if !strings.Contains(l, "Log (l: full view)") {
			continue
		}
		end := i + 1
		for end < len(lines) && strings.Trim(lines[end], " │") != "" {
			end++
		}
		return strings.Join(lines[i:end], "\n")
	}
	return ""
}

// waitJournal waits until the unit's journal has a line containing want.
func waitJournal(t *testing.T, c *Container, unit, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var out string
	for time.Now().Before(deadline) {
		out, _ = c.Run(context.Background(), Root, "journalctl", "--no-pager", "-q", "-o", "cat", "-u", unit)
		if strings.Contains(out, want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the journal of %s never had %q:\n%s", unit, want, out)
}

// title is the pane's title (what an OSC 0/2 would set).
func (term *terminal) title(t testing.TB) string {
	t.Helper()
	out, err := term.s.command("display-message", "-p", "-t", term.name, "#{pane_title}").Output()
	if err != nil {
		t.Fatalf("tmux display-message: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// captureEscapes is the screen with its cells' attributes as escape
// sequences (capture-pane -e).
func (term *terminal) captureEscapes(t testing.TB) string {
	t.Helper()
	out, err := term.s.command("capture-pane", "-p", "-e", "-t", term.name).Output()
	if err != nil {
		t.Fatalf("tmux capture-pane -e: %v", err)
	}
	return string(out)
}
