package main

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
)

// TestDashboardDoctorE2E: a socket driven into trigger-limit-hit on a real
// manager shows the doctor's finding in the dashboard's detail pane, and F
// then y fixes it (reset-failed and start): the socket listens again.
func TestDashboardDoctorE2E(t *testing.T) {
	tm := newTmux(t)
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		ctx := context.Background()
		ports, err := demo.FreePorts(1)
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
		for name, content := range map[string]string{
			"doc-trig.socket":  fmt.Sprintf("[Socket]\nListenStream=%s\nTriggerLimitBurst=2\nTriggerLimitIntervalSec=60s\n", addr),
			"doc-trig.service": "[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart=/bin/true\n",
		} {
			if err := sb.WriteUnit(name, content); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := sb.Systemctl(ctx, "daemon-reload"); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Systemctl(ctx, "start", "doc-trig.socket"); err != nil {
			t.Fatal(err)
		}
		waitResult(t, sb, "doc-trig.socket", "trigger-limit-hit", func() {
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
			}
		})

		term := tm.start(t, sandboxtest.Fdtop(t), sb.Env(), "--user", "--address", sb.Address, "doc-*")
		term.waitFor(t, "the socket in the list", func(s string) bool { return rowWith(s, "doc-trig.socket") != "" })
		term.selectUnit(t, "doc-trig.socket")
		term.waitFor(t, "the doctor's finding", func(s string) bool {
			return strings.Contains(s, "doc-trig.socket: trigger-limit-hit") && strings.Contains(s, "(F runs it)")
		})
		term.send(t, "F")
		term.waitFor(t, "the fix's confirmation", func(s string) bool {
			return strings.Contains(s, "reset-failed and start doc-trig.socket?")
		})
		term.send(t, "y")
		term.waitFor(t, "the fix done", func(s string) bool {
			return strings.Contains(s, "reset-failed and start doc-trig.socket: done")
		})
		out, err := sb.Systemctl(ctx, "show", "-p", "ActiveState", "--value", "doc-trig.socket")
		if err != nil || strings.TrimSpace(out) != "active" {
			t.Errorf("after the fix doc-trig.socket is %q (%v), want active", strings.TrimSpace(out), err)
		}
		// Ask the kernel, not a connect: a connection nobody accepts
		// (the service is /bin/true) would trigger the socket until it
		// hits its trigger limit again.
		if out, err := exec.Command("ss", "-Hltn", fmt.Sprintf("sport = :%d", ports[0])).Output(); err != nil || !strings.Contains(string(out), "LISTEN") {
			t.Errorf("after the fix nothing listens on %s (ss: %q, %v)", addr, out, err)
		}
		term.waitFor(t, "the finding gone", func(s string) bool {
			return !strings.Contains(s, "trigger-limit-hit")
		})
		term.quit(t)
	})
}
