package inspect_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/procfs"
)

// wholeHost is the kernel with a full scan that reads the whole host,
// not only what relates to the units (ScanOptions.Related off).
type wholeHost struct{ procfs.FS }

func (k wholeHost) Scan(ctx context.Context, opts procfs.ScanOptions) (*procfs.Scan, error) {
	opts.Related = false
	return k.FS.Scan(ctx, opts)
}

// TestSnapshotRelatedMatchesFull: the snapshot of a host-wide pass that
// keeps only what relates to the units (what Builder asks for) shows the
// units as one that reads the whole host does: listeners and their
// holders (a leaked one held outside the unit), connections, passed
// descriptors, fd stores, warnings.
func TestSnapshotRelatedMatchesFull(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		e := newEnv(t, sb, 100*time.Millisecond)
		e.traffic(t, demo.Handoff, 3)
		ports, err := demo.FreePorts(1)
		if err != nil {
			t.Fatal(err)
		}
		if err := sb.WriteUnit("leaky.socket", fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\n", ports[0])); err != nil {
			t.Fatal(err)
		}
		if err := sb.WriteUnit("leaky.service", "[Service]\nKillMode=process\nExecStart=/bin/sh -c 'sleep 300 & exit 0'\n"); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for _, args := range [][]string{{"daemon-reload"}, {"start", "leaky.socket"}, {"start", "leaky.service"}} {
			if _, err := sb.Systemctl(ctx, args...); err != nil {
				t.Fatal(err)
			}
		}
		whole := &inspect.Builder{Systemd: e.client, Kernel: wholeHost{e.b.Kernel.(procfs.FS)}, Scope: e.b.Scope, Patterns: e.b.Patterns}
		var a, b any
		leaked := false
		for try := 0; try < 50; try++ {
			rel, err := e.b.Snapshot(ctx, inspect.SnapshotOptions{FullScan: true})
			if err != nil {
				t.Fatal(err)
			}
			full, err := whole.Snapshot(ctx, inspect.SnapshotOptions{FullScan: true})
			if err != nil {
				t.Fatal(err)
			}
			a, b = unitsPicture(t, rel), unitsPicture(t, full)
			leaked = slices.ContainsFunc(rel.Warnings, func(w inspect.Warning) bool {
				return w.Unit == "leaky.socket" && w.Code == "leaked-listener"
			})
			if reflect.DeepEqual(a, b) && leaked {
				return
			}
			time.Sleep(100 * time.Millisecond) // something changed between the two
		}
		if !leaked {
			t.Error("no leaked-listener warning for leaky.socket in the related pass")
		}
		ja, _ := json.MarshalIndent(a, "", " ")
		jb, _ := json.MarshalIndent(b, "", " ")
		t.Errorf("the related pass's units differ from the whole host's:\nrelated:\n%s\nwhole host:\n%s", ja, jb)
	})
}

// unitsPicture is what a snapshot says about the units, without what moves
// from one pass to the next (queues, times).
func unitsPicture(t *testing.T, s *inspect.Snapshot) any {
	t.Helper()
	b, err := json.Marshal(struct {
		Sockets  []inspect.SocketUnit
		Services []inspect.Service
		Warnings []inspect.Warning
		PeerPIDs []int
	}{s.Sockets, s.Services, s.Warnings, s.PeerPIDs})
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var strip func(any)
	strip = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, k := range []string{"backlog", "recv_q", "send_q", "n_accepted", "n_connections", "n_refused"} {
				delete(v, k)
			}
			for _, x := range v {
				strip(x)
			}
		case []any:
			for _, x := range v {
				strip(x)
			}
		}
	}
	strip(v)
	return v
}
