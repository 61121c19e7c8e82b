package inspect

import (
	"context"
	"strings"
	"testing"

	"github.com/fdtop/fdtop/dbusclient"
)

// deniedSystemd is a systemd ≥ 254 whose polkit refuses a plain user
// DumpUnitFileDescriptorStore (issue 19): FDStore says Denied.
type deniedSystemd struct {
	fakeSystemd
	dumps int
}

func (f *deniedSystemd) FDStore(ctx context.Context, s string) (dbusclient.FDStore, error) {
	f.dumps++
	return dbusclient.FDStore{Service: s, Max: 4, Count: 4, Preserve: "restart", Denied: true}, nil
}
func (f *deniedSystemd) Version() string { return "257.13-1~deb13u1" }
func (f *deniedSystemd) Features() dbusclient.Features {
	return dbusclient.Features{FDStoreDump: true, FDStorePreserve: true}
}

// TestStoreDenied: a refused fd store listing is not an error: the
// snapshot goes on, the store's entries are unknown (not zero, not
// inferred), the manager says so once, and it is not asked again.
func TestStoreDenied(t *testing.T) {
	in := fixture()
	sd := &deniedSystemd{fakeSystemd: fakeSystemd{state: in.State}}
	b := &Builder{Systemd: sd, Kernel: &fakeKernel{scan: in.Scan}, Scope: "system"}
	for i := range 2 {
		snap, err := b.Snapshot(context.Background(), SnapshotOptions{})
		if err != nil {
			t.Fatalf("snapshot %d: %v", i, err)
		}
		if !snap.Manager.FDStoreDenied {
			t.Error("manager: fdstore_denied not set")
		}
		n := 0
		for _, l := range snap.Manager.Limits {
			if strings.Contains(l, "fd store contents unknown") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("the refusal is said %d times in %q, want once", n, snap.Manager.Limits)
		}
		for _, svc := range snap.Services {
			if svc.Unit != "web.service" {
				continue
			}
			if !svc.FDStoreUnknown || len(svc.FDStore) != 0 || svc.FDStoreCount != 4 {
				t.Errorf("web.service: unknown %v, %d entries, count %d; want unknown, none listed or inferred, count 4", svc.FDStoreUnknown, len(svc.FDStore), svc.FDStoreCount)
			}
			var buf strings.Builder
			if err := WriteTree(&buf, snap); err != nil {
				t.Fatal(err)
			}
			if text := buf.String(); !strings.Contains(text, "stored: 4 entries, unknown to this user") || strings.Contains(text, "does not list") {
				t.Errorf("text does not say the store is unknown:\n%s", text)
			}
		}
	}
	if sd.dumps != 1 {
		t.Errorf("DumpUnitFileDescriptorStore asked %d times, want once (refused: not asked again)", sd.dumps)
	}
}
