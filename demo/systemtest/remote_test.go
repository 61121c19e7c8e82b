package systemtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/demo/sshtest"
	"github.com/fdtop/fdtop/inspect"
)

// TestRemoteSnapshotOverSSH: the booted system container as an ssh host —
// its own sshd (ssh.socket, Accept=yes, inside its private network, reached
// through nsenter) and its system manager as PID 1. `fdtop snapshot -H`
// from the host equals fdtop's snapshot run inside the container.
func TestRemoteSnapshotOverSSH(t *testing.T) {
	c := Shared(t)
	f := sshtest.New(t)
	if err := c.WriteFile("/root/.ssh/authorized_keys", []byte(f.PublicKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	hostKey, err := os.ReadFile(c.Path("/etc/ssh/ssh_host_ed25519_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	proxy := fmt.Sprintf(`nsenter --target %d --net -- bash -c 'exec 3<>/dev/tcp/127.0.0.1/22 && { cat <&3 & exec cat >&3; }'`, c.Leader)
	f.AddProxyHost(t, "system-container", proxy, string(hostKey))

	patterns := []string{"dbus.socket", "systemd-journald.socket"}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, sandboxtest.Fdtop(t), append([]string{"snapshot", "--json", "--system", "--ssh", f.SSH(), "-H", "system-container"}, patterns...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		cancel()
		if err != nil {
			t.Fatalf("snapshot -H system-container: %v: %s", err, stderr.String())
		}
		var remote struct {
			Target string `json:"target"`
			inspect.Snapshot
		}
		if err := json.Unmarshal(out, &remote); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		// The patterns' sockets, and those of the services they trigger
		// (a service is read with its socket units: journald's dev-log).
		if remote.Target != "system-container" || remote.Manager.Scope != "system" || len(remote.Sockets) < len(patterns) {
			t.Fatalf("target %q, scope %q, %d sockets; want system-container, system, at least %d", remote.Target, remote.Manager.Scope, len(remote.Sockets), len(patterns))
		}
		local := snapshot(t, c, Root, patterns...)
		r, l := normalize(t, &remote.Snapshot), normalize(t, &local)
		if r == l {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("remote and local snapshots of the container differ:\nremote %s\nlocal %s", r, l)
		}
	}
}

// normalize is a snapshot's JSON without what differs between two scans
// of the same state (when, how long).
func normalize(t *testing.T, s *inspect.Snapshot) string {
	t.Helper()
	c := *s
	c.Time = time.Time{}
	c.Host.ScanDuration = 0
	// Why the BPF pass was not used depends on how fdtop was started (an
	// ssh session's limits, a pid namespace): both read /proc.
	c.Host.HoldersNote = ""
	// Each ssh login (the remote read's own) starts a user manager whose
	// journald streams and bus connections come and go between the two
	// reads: the listeners, their holders and what was passed as a
	// listener are compared, not the connections and stored streams.
	c.Services = slices.Clone(c.Services)
	for i := range c.Services {
		svc := &c.Services[i]
		svc.Connections, svc.FDStore = nil, nil
		svc.FDStoreCount, svc.FDStoreIdentified = 0, 0
		svc.Passed = slices.DeleteFunc(slices.Clone(svc.Passed), func(p inspect.PassedFD) bool { return !strings.HasSuffix(p.Kind, "listen") })
	}
	b, err := json.MarshalIndent(&c, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
