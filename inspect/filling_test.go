package inspect

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/procfs"
)

// fillingFixture is the join fixture read two ways: host-wide, and from
// the manager's and the units' processes only (what a live model puts on
// screen first). Outside the units, a login's shell (pid 500,
// session-1.scope) holds idle.socket's listener, and idle.service's main
// process (pid 400) holds nothing; the fd store is listed, with a
// connection only the manager holds. Every process is readable.
func fillingFixture() (full, unitsOnly JoinInput) {
	full = fixture()
	full.Scan.Unreadable = 0
	full.Scan.Processes = append(full.Scan.Processes,
		procfs.Process{PID: 500, Comm: "bash", UserUnit: "session-1.scope", FDs: []procfs.FD{sockFD(4, dupIno)}})
	full.Stores["web.service"] = dbusclient.FDStore{Service: "web.service", Max: 4, Count: 2, Listed: true, Entries: []dbusclient.StoreEntry{
		{Name: "conn-9", Mode: 0o140777, Inode: pinned, Path: "socket:[1004]"},
		{Name: "state", Mode: 0o100777, Inode: memIno, Path: "/memfd:state (deleted)"},
	}}
	unitsOnly = full
	scan := *full.Scan
	scan.Processes = slices.DeleteFunc(slices.Clone(scan.Processes), func(p procfs.Process) bool {
		return p.PID != mgrPID && p.PID != webPID // the units' processes and the manager's
	})
	unitsOnly.Scan = &scan
	return full, unitsOnly
}

func codesOf(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Unit+" "+f.Code)
	}
	return out
}

// TestMarkFilling: a view of the units that read only their own and the
// manager's processes concludes from holders it did not read (idle.socket
// "held only by the manager", a store entry "held only by the manager");
// marked still filling, it says the holders are partial, keeps no such
// conclusion, and the doctor says those checks are not done yet instead
// of finding anything from them. The host-wide view finds the leak.
func TestMarkFilling(t *testing.T) {
	fullIn, unitsIn := fillingFixture()
	full, units := Join(fullIn), Join(unitsIn)

	// What an unmarked view of the units would wrongly say.
	if !hasWarning(units, "idle.socket", "orphan-listener") || !hasWarning(units, "web.service", "fdstore-pinned") {
		t.Fatalf("the units-only join lacks the conclusions this test is about: %+v", units.Warnings)
	}
	if hasWarning(full, "idle.socket", "orphan-listener") || !hasWarning(full, "idle.socket", "leaked-listener") {
		t.Fatalf("the host-wide join should see pid 500 holding idle.socket's listener: %+v", full.Warnings)
	}

	filling := MarkFilling(units)
	if !filling.Host.Filling || units.Host.Filling || full.Host.Filling {
		t.Errorf("Filling: marked %v, units-only %v, host-wide %v; want true, false, false", filling.Host.Filling, units.Host.Filling, full.Host.Filling)
	}
	if !hasWarning(units, "idle.socket", "orphan-listener") {
		t.Error("MarkFilling changed the snapshot it was given")
	}
	for _, code := range []string{"orphan-listener", "fdstore-pinned"} {
		for _, w := range filling.Warnings {
			if w.Code == code {
				t.Errorf("still filling, yet warns %s %s: %s", w.Unit, w.Code, w.Message)
			}
		}
	}
	if !hasWarning(filling, "alt.socket", "duplicate-address") {
		t.Errorf("a warning that needs no holder is gone: %+v", filling.Warnings)
	}
	for _, su := range filling.Sockets {
		for _, l := range su.Listeners {
			if l.Inode != 0 && !l.HoldersPartial {
				t.Errorf("%s %s: holders %+v given as complete while filling", su.Unit, l.Address, l.Holders)
			}
		}
	}
	for _, svc := range filling.Services {
		for _, e := range svc.FDStore {
			if e.ManagerOnly {
				t.Errorf("%s store entry %s said held only by the manager while filling", svc.Unit, e.Name)
			}
		}
	}

	hostWide := func(fs []Finding) []string {
		var out []string
		for _, c := range codesOf(fs) {
			if hostWideFindings[strings.Fields(c)[1]] {
				out = append(out, c)
			}
		}
		return out
	}
	if got := hostWide(Diagnose(DoctorInput{Snapshot: filling})); len(got) > 0 {
		t.Errorf("the doctor, while filling, finds %v", got)
	}
	if !slices.Contains(Unchecked(DoctorInput{Snapshot: filling}), FillingNote) {
		t.Errorf("Unchecked while filling = %q, want %q among them", Unchecked(DoctorInput{Snapshot: filling}), FillingNote)
	}
	if slices.Contains(Unchecked(DoctorInput{Snapshot: full}), FillingNote) {
		t.Error("Unchecked of the host-wide view says it is still filling")
	}
	want := []string{"idle.socket leaked-listener", "web.service fdstore-pinned"}
	for _, w := range want {
		if !slices.Contains(hostWide(Diagnose(DoctorInput{Snapshot: full})), w) {
			t.Errorf("the doctor on the host-wide view lacks %q: %v", w, codesOf(Diagnose(DoctorInput{Snapshot: full})))
		}
	}

	b, err := json.Marshal(filling)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"filling":true`) {
		t.Errorf("JSON of a picture still filling lacks host.filling: %s", b)
	}
	if b, _ := json.Marshal(full); strings.Contains(string(b), `"filling"`) {
		t.Errorf("JSON of a host-wide picture has filling: %s", b)
	}
}

// TestOutsideListenerHoldersKept: the process outside the units that a
// host-wide pass found holding a listener (a leak) is read by the scans
// of the units that follow (Builder.outsidePIDs), so the leak stays in
// the picture between host-wide passes instead of vanishing (and the
// listener being "held only by the manager").
func TestOutsideListenerHoldersKept(t *testing.T) {
	full, _ := fillingFixture()
	var b Builder
	b.noteOutside(Join(full))
	got := b.outsidePIDs()
	for _, pid := range []int{leakPID, 500} { // web.socket's leak, idle.socket's login shell
		if !slices.Contains(got, pid) {
			t.Errorf("outside holders read with the units = %v, want %d among them", got, pid)
		}
	}
	if slices.Contains(got, mgrPID) {
		t.Errorf("outside holders = %v: the manager among them", got)
	}
}
