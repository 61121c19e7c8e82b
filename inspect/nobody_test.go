package inspect_test

import (
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/procfs"
)

// euidMu serialises the moments this test process runs as nobody with
// anything that starts a process (systemctl), which would inherit it.
var euidMu sync.Mutex

const nobody = 65534

// asNobody runs fn with the effective uid and gid of nobody (every thread;
// the saved uid stays root so it can switch back): /proc reads as an
// unprivileged user does.
func asNobody(fn func()) {
	euidMu.Lock()
	defer euidMu.Unlock()
	if err := syscall.Setresgid(-1, nobody, -1); err != nil {
		panic(err)
	}
	if err := syscall.Setresuid(-1, nobody, -1); err != nil {
		panic(err)
	}
	defer func() {
		if err := syscall.Setresuid(-1, 0, -1); err != nil {
			panic(err)
		}
		if err := syscall.Setresgid(-1, 0, -1); err != nil {
			panic(err)
		}
	}()
	fn()
}

// nobodyKernel scans /proc as nobody.
type nobodyKernel struct{ fs procfs.FS }

func (k nobodyKernel) Scan(ctx context.Context, opts procfs.ScanOptions) (s *procfs.Scan, err error) {
	asNobody(func() { s, err = k.fs.Scan(ctx, opts) })
	return s, err
}

func (k nobodyKernel) ScanPIDs(ctx context.Context, pids []int, opts procfs.ScanOptions) (s *procfs.Scan, err error) {
	asNobody(func() { s, err = k.fs.ScanPIDs(ctx, pids, opts) })
	return s, err
}

// fsOf returns the procfs behind a Builder's Kernel.
func fsOf(k inspect.Kernel) procfs.FS {
	if nk, ok := k.(nobodyKernel); ok {
		return nk.fs
	}
	return k.(procfs.FS)
}

// systemctl runs systemctl in the sandbox as root (never while a scan
// runs as nobody).
func systemctl(t *testing.T, sb *sandbox.Sandbox, args ...string) {
	t.Helper()
	euidMu.Lock()
	defer euidMu.Unlock()
	if out, err := sb.Systemctl(context.Background(), args...); err != nil {
		t.Fatalf("systemctl %v: %v\n%s", args, err, out)
	}
}

// TestNotRootSaysUnknown: the kernel side read as nobody (the units and the
// manager run as root), the D-Bus side as usual. What cannot be read is
// unknown, never zero, "not found", "unset" or "replaced": the listener's
// inode, its holders, what the service was passed, its connections; and a
// restart under traffic does not claim a replaced listener, no
// connections or a discarded store.
func TestNotRootSaysUnknown(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		e := newEnv(t, sb, 300*time.Millisecond)
		e.traffic(t, demo.Handoff, 3)
		e.b.Kernel = nobodyKernel{fs: e.b.Kernel.(procfs.FS)}
		s := e.snapshot(t)
		su := findSocket(t, s, demo.Handoff.Socket())
		svc := findService(t, s, demo.Handoff.Service())
		if len(su.Listeners) != 1 || !su.Listeners[0].InodeUnknown || su.Listeners[0].Inode != 0 || !su.Listeners[0].HoldersPartial {
			t.Errorf("listener as nobody = %+v, want inode unknown and holders partial", su.Listeners)
		}
		if !svc.PassedUnknown || !svc.ConnectionsUnknown || len(svc.Connections) != 0 {
			t.Errorf("service as nobody: passed unknown %v, connections unknown %v (%d), want both unknown", svc.PassedUnknown, svc.ConnectionsUnknown, len(svc.Connections))
		}
		text := tree(t, s)
		for _, want := range []string{"inode unknown", "held by: unknown", "passed at start: unknown", "processes not readable may hold more"} {
			if !strings.Contains(text, want) {
				t.Errorf("tree as nobody lacks %q:\n%s", want, text)
			}
		}
		for _, bad := range []string{"not found", "LISTEN_FDS unset"} {
			if strings.Contains(text, bad) {
				t.Errorf("tree as nobody says %q:\n%s", bad, text)
			}
		}

		w := e.watch(t)
		systemctl(t, sb, "restart", demo.Handoff.Service())
		h := w.waitHandoffs(t, demo.Handoff.Service(), 1)[0]
		for _, bad := range []string{"replaced", "no connections", "discarded", "✓"} {
			if strings.Contains(h.Message, bad) {
				t.Errorf("verdict as nobody says %q: %s\n%s", bad, h.Message, w.text())
			}
		}
		if h.ListenersUnknown != 1 || !h.ConnectionsUnknown || !h.FDsCarriedUnknown || h.StoreDiscarded {
			t.Errorf("handoff as nobody = %+v, want the listener, connections and carried fds unknown", *h.Handoff)
		}
		t.Logf("as nobody: %s", h.Message)
	})
}
