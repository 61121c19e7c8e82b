package systemtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/inspect/agent"
)

// TestJournaldStreamPeersStayNamed (issue 20, case 17): journald keeps the
// stdout streams of the system's services (dbus-daemon's, logind's...) as
// connections on its stdout listener. The live model's first picture is a
// host-wide scan and names their other ends; the scans of the units it
// makes between host-wide ones (journald is re-read whenever the manager's
// or its own descriptor count moves, which a new stream does) name them
// too, as ss does, not "peer socket:[N]" until the next host-wide scan.
func TestJournaldStreamPeersStayNamed(t *testing.T) {
	c := Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := c.Command(ctx, Root, FdtopPath, "agent", "--interval", "300ms", "systemd-journald.service")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	ac, err := agent.NewClient(ctx, out, in, 64)
	if err != nil {
		t.Fatalf("agent: %v: %s", err, stderr.String())
	}
	if err := ac.Watch(ctx); err != nil {
		t.Fatalf("watch: %v: %s", err, stderr.String())
	}
	journald := func() (inspect.Service, bool) {
		if m := ac.Model(); m != nil {
			for _, s := range m.Services {
				if s.Unit == "systemd-journald.service" {
					return s, true
				}
			}
		}
		return inspect.Service{}, false
	}
	// The streams the first picture names.
	named := map[uint64]string{}
	deadline := time.After(time.Minute)
	for len(named) == 0 {
		select {
		case <-ac.Changed():
		case <-deadline:
			t.Fatalf("journald's streams never named: %s", stderr.String())
		case <-ac.Done():
			t.Fatalf("agent gone: %v: %s", ac.Err(), stderr.String())
		}
		j, ok := journald()
		if !ok {
			continue
		}
		for _, cn := range j.Connections {
			if cn.Remote != "" && !strings.HasPrefix(cn.Remote, "peer socket:[") {
				named[cn.Inode] = cn.Remote
			}
		}
	}
	// A new stream (a service that writes to its stdout and stays) makes
	// journald's descriptors move: it is read again, alone.
	if err := c.WriteUnit("jc-talker.service", "[Service]\nExecStart=/bin/sh -c 'echo talking; exec sleep infinity'\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Systemctl(ctx, "daemon-reload"); err != nil {
		t.Fatal(err)
	}
	if out, err := c.Systemctl(ctx, "start", "jc-talker.service"); err != nil {
		t.Fatalf("start jc-talker.service: %v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = c.Systemctl(context.Background(), "stop", "jc-talker.service") })
	// Until the new stream is in the picture, every picture names the
	// streams the first one named.
	before := len(named)
	for {
		select {
		case <-ac.Changed():
		case <-deadline:
			t.Fatalf("journald's new stream never seen")
		case <-ac.Done():
			t.Fatalf("agent gone: %v: %s", ac.Err(), stderr.String())
		}
		j, ok := journald()
		if !ok {
			continue
		}
		for _, cn := range j.Connections {
			if want, ok := named[cn.Inode]; ok {
				if cn.Remote != want {
					t.Fatalf("stream %d's peer %q, was %q", cn.Inode, cn.Remote, want)
				}
			}
		}
		if len(j.Connections) > before {
			return
		}
	}
}
