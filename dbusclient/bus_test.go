package dbusclient_test

import (
	"context"
	"testing"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
)

// TestSessionBus runs a bus daemon in the sandbox (the distribution's
// dbus.socket and dbus.service user units) and talks to the manager through
// it, found the way --user finds it: Hello, match rules, pipelined reads
// and signals all go through the bus.
func TestSessionBus(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		ctx := testCtx(t, 60*time.Second)
		if _, err := sb.Systemctl(ctx, "start", "dbus.socket", "dbus.service"); err != nil {
			sandboxtest.Unavailable(t, "no session bus in the sandbox: %v", err)
		}
		if err := sb.WriteUnit("fdt-sleep.service", "[Service]\nExecStart=/bin/sleep 300\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Systemctl(ctx, "daemon-reload"); err != nil {
			t.Fatal(err)
		}
		t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
		t.Setenv("XDG_RUNTIME_DIR", sb.RuntimeDir)
		// The manager takes its bus name a moment after the bus is up.
		var c *dbusclient.Client
		var err error
		for ctx.Err() == nil {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			c, err = dbusclient.Connect(cctx, dbusclient.Options{Scope: dbusclient.User})
			cancel()
			if err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if ep := c.Endpoint(); !ep.Bus || ep.Address != "unix:path="+sb.RuntimeDir+"/bus" {
			t.Fatalf("connected to %+v, want the session bus", ep)
		}
		sub, err := c.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		if res, err := c.Start(ctx, "fdt-sleep.service"); err != nil || res != dbusclient.JobDone {
			t.Fatalf("Start over the bus: %v %v", res, err)
		}
		next(t, sub, 10*time.Second, func(ev dbusclient.Event) bool {
			uc, ok := ev.(dbusclient.UnitChanged)
			return ok && uc.Unit == "fdt-sleep.service" && uc.Changes.ActiveState != nil && *uc.Changes.ActiveState == "active"
		})
		svc, err := c.Service(ctx, "fdt-sleep.service")
		if err != nil || svc.MainPID == 0 {
			t.Errorf("Service over the bus: %+v, %v", svc, err)
		}
		socks, err := c.ListSockets(ctx, []string{"dbus.socket"}, false)
		if err != nil || len(socks) != 1 || len(socks[0].Listen) != 1 {
			t.Errorf("ListSockets over the bus: %+v, %v", socks, err)
		}
	})
}
