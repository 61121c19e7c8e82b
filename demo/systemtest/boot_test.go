package systemtest

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

// TestBoot: each system's shared container booted to "running" with
// systemd as PID 1, and journald, logind, dbus, polkit and the Accept=yes
// ssh.socket are up.
func TestBoot(t *testing.T) { ForEach(t, testBoot) }

func testBoot(t *testing.T, c *Container) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Logf("systemd %s: %s after %v (manager's own userspace startup %v); masked %v",
		c.Version, c.State, c.Ready.Round(time.Millisecond), c.Boot.Round(time.Millisecond), c.Masked)
	if c.State != "running" {
		out, _ := c.Systemctl(ctx, "--failed")
		t.Errorf("system state %q, want running; failed units:\n%s", c.State, out)
	}
	if comm, err := c.Run(ctx, Root, "cat", "/proc/1/comm"); err != nil || strings.TrimSpace(comm) != "systemd" {
		t.Errorf("PID 1 inside is %q (%v), want systemd", strings.TrimSpace(comm), err)
	}
	// polkit is started by D-Bus on demand: start it as the bus would.
	if out, err := c.Systemctl(ctx, "start", "polkit.service"); err != nil {
		t.Errorf("start polkit.service: %v: %s", err, out)
	}
	for _, u := range []string{"systemd-journald.service", "systemd-logind.service", "dbus.service", "polkit.service", "ssh.socket"} {
		if out, err := c.Systemctl(ctx, "is-active", u); err != nil || strings.TrimSpace(out) != "active" {
			t.Errorf("%s is %q (%v), want active", u, strings.TrimSpace(out), err)
		}
	}
	if out, err := c.Systemctl(ctx, "show", "-p", "Accept", "--value", "ssh.socket"); err != nil || strings.TrimSpace(out) != "yes" {
		t.Errorf("ssh.socket Accept=%q (%v), want yes", strings.TrimSpace(out), err)
	}
	if out, err := c.Run(ctx, Unprivileged, "id", "-un"); err != nil || strings.TrimSpace(out) != UserName {
		t.Errorf("unprivileged command runs as %q (%v), want %s", strings.TrimSpace(out), err, UserName)
	}
}
