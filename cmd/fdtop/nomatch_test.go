package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/syncbuf"
)

// TestPatternMatchingNothing: a pattern that matches no unit name
// ("journald" for systemd-journald.service) is said, with what patterns
// are, by snapshot (tree and JSON), watch and the dashboard, against a
// real manager; a pattern that matches says nothing, a backslash in it
// included (an ordinary character, as for the manager: the name
// demo\x2dextra.service matches itself).
func TestPatternMatchingNothing(t *testing.T) {
	tm := newTmux(t)
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		bin := sandboxtest.Fdtop(t)
		sandboxtest.InstallDemo(t, sb, 50*time.Millisecond)
		const escaped = `demo\x2dextra.service`
		if err := sb.WriteUnit(escaped, "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Systemctl(context.Background(), "daemon-reload"); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Systemctl(context.Background(), "start", escaped); err != nil {
			t.Fatal(err)
		}
		const want = "no unit matches 'demo': patterns are shell globs on whole unit names (try '*demo*')"
		tree, err := exec.Command(bin, "snapshot", "--user", "--address", sb.Address, "demo").Output()
		if err != nil || !strings.Contains(string(tree), want) {
			t.Errorf("snapshot demo: %v, want %q in:\n%s", err, want, tree)
		}
		out, err := exec.Command(bin, "snapshot", "--json", "--user", "--address", sb.Address, "demo", "demo-h*").Output()
		if err != nil {
			t.Fatal(err)
		}
		var snap inspect.Snapshot
		if err := json.Unmarshal(out, &snap); err != nil {
			t.Fatal(err)
		}
		if len(snap.Unmatched) != 1 || snap.Unmatched[0] != "demo" {
			t.Errorf("unmatched_patterns = %q, want [demo] (demo-h* matches)", snap.Unmatched)
		}
		for _, p := range []string{"demo-*", escaped, `demo\x2d*`} {
			out, err := exec.Command(bin, "snapshot", "--json", "--user", "--address", sb.Address, p).Output()
			if err != nil {
				t.Fatalf("snapshot --json %s: %v", p, err)
			}
			var snap inspect.Snapshot
			if err := json.Unmarshal(out, &snap); err != nil {
				t.Fatal(err)
			}
			if len(snap.Unmatched) != 0 {
				t.Errorf("snapshot %s: unmatched_patterns = %q, want none", p, snap.Unmatched)
			}
			tree, err = exec.Command(bin, "snapshot", "--user", "--address", sb.Address, p).Output()
			if err != nil || strings.Contains(string(tree), "no unit matches") {
				t.Errorf("snapshot %s: %v, says nothing matched:\n%s", p, err, tree)
			}
		}
		if tree, err = exec.Command(bin, "snapshot", "--user", "--address", sb.Address, escaped).Output(); err != nil || !strings.Contains(string(tree), `demo\x2dextra.service`) {
			t.Errorf("snapshot %s: %v, does not show the unit:\n%s", escaped, err, tree)
		}

		stderr := &syncbuf.Buffer{}
		w := exec.Command(bin, "watch", "--user", "--address", sb.Address, "demo")
		w.Stderr = stderr
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = w.Process.Kill(); _ = w.Wait() }()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) && !strings.Contains(stderr.String(), want) {
			time.Sleep(20 * time.Millisecond)
		}
		if got := stderr.String(); !strings.Contains(got, want) {
			t.Errorf("watch demo: stderr %q, want %q", got, want)
		}

		term := tm.start(t, bin, sb.Env(), "--user", "--address", sb.Address, "demo")
		term.waitFor(t, "the dashboard's note that 'demo' matches nothing", func(s string) bool {
			return strings.Contains(s, "⚠ "+want)
		})
		term.quit(t)
	})
}
