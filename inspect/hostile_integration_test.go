package inspect_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/procfs"
)

// rawControl returns the lines of text that hold a control character
// (anything below 0x20 but the line breaks, DEL, C1).
func rawControl(text string) []string {
	var bad []string
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if strings.ContainsFunc(line, func(r rune) bool { return r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f }) {
			bad = append(bad, fmt.Sprintf("%q", line))
		}
	}
	return bad
}

// TestHostileNames runs a service that sets an escape-laden STATUS= and
// comm, behind a socket unit whose listeners systemd prints C-escaped (ü
// in a path and an abstract name, a backslash, quotes, control bytes):
// every listener is found with its inode and holders, the JSON keeps the
// exact values, the tree and the watch lines show them escaped, and a
// restart of the service keeps every listener.
func TestHostileNames(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		h := sandboxtest.InstallHostile(t, sb)
		client, err := dbusclient.Connect(context.Background(), dbusclient.Options{Scope: dbusclient.User, Address: sb.Address})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		fs, err := procfs.New("/proc")
		if err != nil {
			t.Fatal(err)
		}
		e := &env{sb: sb, client: client, b: &inspect.Builder{Systemd: client, Kernel: fs, Scope: "user", Patterns: []string{"hostile*"}}}

		// The status arrives with READY=1, the comm just before.
		var s *inspect.Snapshot
		var svc inspect.Service
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			s = e.snapshot(t)
			if svc = findService(t, s, h.Service); svc.StatusText != "" && svc.MainPID != 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if svc.StatusText != sandboxtest.HostileStatus {
			t.Errorf("status text = %q, want exactly %q", svc.StatusText, sandboxtest.HostileStatus)
		}
		su := findSocket(t, s, h.Socket)
		if len(su.Listeners) != len(h.Listeners) {
			t.Fatalf("listeners = %+v, want %d", su.Listeners, len(h.Listeners))
		}
		for i, l := range su.Listeners {
			want := h.Listeners[i]
			var manager, service bool
			for _, ho := range l.Holders {
				manager = manager || ho.Manager
				if ho.PID == svc.MainPID && !ho.Outside {
					service = true
					if ho.Comm != sandboxtest.HostileComm {
						t.Errorf("holder comm = %q, want exactly %q", ho.Comm, sandboxtest.HostileComm)
					}
				}
			}
			if l.Type != want.Type || l.Inode == 0 || !manager || !service {
				t.Errorf("listener %s %q (%s %q): inode %d, holders %+v; want found, held by the manager and pid %d",
					l.Type, l.Address, want.Type, want.Name, l.Inode, l.Holders, svc.MainPID)
			}
		}

		// JSON: exact values.
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back inspect.Snapshot
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if got := findService(t, &back, h.Service).StatusText; got != sandboxtest.HostileStatus {
			t.Errorf("JSON status_text = %q, want exactly %q", got, sandboxtest.HostileStatus)
		}

		// The tree: nothing raw, everything visible.
		text := tree(t, s)
		if bad := rawControl(text); len(bad) > 0 {
			t.Errorf("snapshot tree has raw control characters in:\n%s", strings.Join(bad, "\n"))
		}
		for _, want := range []string{`status: \e]0;pwned-title\x07\e[2J\e[31mRED STATUS`, `\e[31mEVIL\x07`, `@bell\a\033[31m-`, `\303\274.sock`} {
			if !strings.Contains(text, want) {
				t.Errorf("snapshot tree lacks %q:\n%s", want, text)
			}
		}
		if strings.Contains(text, "not found") {
			t.Errorf("a listener not found:\n%s", text)
		}

		// A restart keeps every listener: the verdict says so.
		w := e.watch(t)
		if _, err := sb.Systemctl(context.Background(), "restart", h.Service); err != nil {
			t.Fatal(err)
		}
		ho := w.waitHandoffs(t, h.Service, 1)[0].Handoff
		if ho.ListenersKept != len(h.Listeners) || ho.ListenersReplaced != 0 {
			t.Errorf("handoff: %d listeners kept, %d replaced; want %d kept\n%s", ho.ListenersKept, ho.ListenersReplaced, len(h.Listeners), w.text())
		}
		if v := inspect.Verdict(*ho); !strings.HasPrefix(v, fmt.Sprintf("✓ %d listeners kept", len(h.Listeners))) {
			t.Errorf("verdict %q, want ✓ and %d listeners kept", v, len(h.Listeners))
		}
		lines := w.text()
		if bad := rawControl(lines); len(bad) > 0 {
			t.Errorf("watch lines have raw control characters in:\n%s", strings.Join(bad, "\n"))
		}
		if strings.Contains(lines, "replaced") {
			t.Errorf("a listener reported replaced:\n%s", lines)
		}
	})
}
