package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/inspect"
)

// TestWatchJSONAcceptVerdict: `fdtop watch --json --probe` prints a
// handoff line for a restart of an Accept=yes socket unit, with the
// instances' outcome under "accept", the gap meter's result under "probe"
// and the verdict as its message: the listener replaced, both instances
// still holding their connections in the same processes (as /proc says).
func TestWatchJSONAcceptVerdict(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		ctx := context.Background()
		ports, err := demo.FreePorts(1)
		if err != nil {
			t.Fatal(err)
		}
		units := map[string]string{
			"fdt-json.socket":   fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\nAccept=yes\n", ports[0]),
			"fdt-json@.service": "[Service]\nExecStart=/bin/cat\nStandardInput=socket\n",
		}
		for name, content := range units {
			if err := sb.WriteUnit(name, content); err != nil {
				t.Fatal(err)
			}
		}
		for _, args := range [][]string{{"daemon-reload"}, {"start", "fdt-json.socket"}} {
			if _, err := sb.Systemctl(ctx, args...); err != nil {
				t.Fatal(err)
			}
		}
		// Two clients, each echoed once: two instances hold a connection.
		var conns []net.Conn
		for range 2 {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			echoOnce(t, c)
			conns = append(conns, c)
		}
		before := acceptInstanceConns(t, sb, "fdt-json@")
		if len(before) != 2 {
			t.Fatalf("instances %v, want 2", before)
		}
		// Its first view (before the ready file) shows both instances.
		w := startWatchJSON(t, sb, "--probe", "fdt-json*")
		if _, err := sb.Systemctl(ctx, "restart", "fdt-json.socket"); err != nil {
			t.Fatal(err)
		}
		hs := w.waitHandoffs(t, "fdt-json.socket", 1)
		if len(hs) != 1 {
			t.Fatalf("%d handoffs of fdt-json.socket, want 1", len(hs))
		}
		h := *hs[0].Handoff
		t.Logf("%s", hs[0].Message)
		// (The gap meter's connects spawn instances of their own, which
		// end at once: only those of before are looked for.)
		after := acceptInstanceConns(t, sb, "fdt-json@")
		for _, c := range before {
			if !slices.Contains(after, c) {
				t.Fatalf("the kernel: instances' connections %v after the restart, %v before", after, before)
			}
		}
		for _, c := range conns {
			echoOnce(t, c)
		}
		a := h.Accept
		if a == nil || h.HandoffJob != "restart" || h.ListenersReplaced != 1 || a.Instances != 2 || a.InstancesKept != 2 ||
			h.ConnectionsPreserved != 2 || h.ConnectionsDropped != 0 || h.Probe == nil || h.Probe.Attempts == 0 {
			t.Errorf("handoff %+v accept %+v: want a restart, the listener replaced, 2 instances kept, the gap meter's attempts", h, a)
		}
		if hs[0].Message != inspect.Verdict(h) || !strings.Contains(hs[0].Message, "2/2 instances kept their connections") {
			t.Errorf("message %q, want the verdict %q", hs[0].Message, inspect.Verdict(h))
		}
	})
}

// echoOnce sends a line to a cat instance and reads it back.
func echoOnce(t *testing.T, c net.Conn) {
	t.Helper()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintln(c, "ping"); err != nil {
		t.Fatal(err)
	}
	// One line from a fresh reader: nothing else is ever sent.
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("echo %q, %v", line, err)
	}
}

// acceptInstanceConns asks systemd and /proc, without fdtop, which socket
// the main process of each running instance of template holds as its
// standard input: "PID:socket:[INODE]" entries, sorted.
func acceptInstanceConns(t *testing.T, sb *sandbox.Sandbox, template string) []string {
	t.Helper()
	ctx := context.Background()
	out, err := sb.Systemctl(ctx, "list-units", "--no-legend", "--plain", "--state=active", template+"*")
	if err != nil {
		t.Fatal(err)
	}
	var conns []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], template) {
			continue
		}
		pid, err := sb.Systemctl(ctx, "show", "-P", "MainPID", f[0])
		if err != nil {
			t.Fatal(err)
		}
		pid = strings.TrimSpace(pid)
		link, err := os.Readlink("/proc/" + pid + "/fd/0")
		if pid == "0" || err != nil {
			continue // gone meanwhile: one of the gap meter's
		}
		conns = append(conns, pid+":"+link)
	}
	slices.Sort(conns)
	return conns
}
