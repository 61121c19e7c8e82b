package inspect

import (
	"strings"
	"testing"

	"github.com/fdtop/fdtop/dbusclient"
)

// TestDiagnoseSocketNotListening (issue 20, case 9): a socket unit refused
// its start because its service already runs ("Socket service X already
// active, refusing"), the service running on the listeners an earlier
// start of the socket passed it, which the manager no longer holds: the
// doctor finds it. Not when the manager holds them, nor when its
// descriptors were not read.
func TestDiagnoseSocketNotListening(t *testing.T) {
	passed := []PassedFD{{FD: 3, Name: "web.socket", Kind: "tcp-listen", Inode: 77, Detail: "127.0.0.1:8080 LISTEN"}, {FD: 4, Name: "state", Kind: "memfd", Inode: 99}}
	snap := func(held map[uint64]bool) *Snapshot {
		return &Snapshot{Manager: Manager{Scope: "user"}, ManagerInodes: held,
			Services: []Service{{Unit: "web.service", ActiveState: "active", MainPID: 5, Passed: passed}}}
	}
	log := map[string][]LogLine{"web.socket": {{Source: "manager log", Text: "web.socket: Socket service web.service already active, refusing."}}}
	tests := []struct {
		name string
		in   DoctorInput
		want bool
	}{
		{"refused, not loaded", DoctorInput{Snapshot: snap(map[uint64]bool{12: true}), Logs: log}, true},
		{"refused, inactive", DoctorInput{Snapshot: snap(map[uint64]bool{12: true}), Logs: log,
			Facts: map[string]dbusclient.UnitFacts{"web.socket": facts("web.socket", "inactive", "success")}}, true},
		{"the manager holds it", DoctorInput{Snapshot: snap(map[uint64]bool{12: true, 77: true})}, false},
		{"the manager not read", DoctorInput{Snapshot: snap(nil)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got *Finding
			fs := Diagnose(tc.in)
			for i := range fs {
				if fs[i].Code == "socket-not-listening" {
					got = &fs[i]
				}
			}
			if (got != nil) != tc.want {
				t.Fatalf("findings %+v, want socket-not-listening: %v", fs, tc.want)
			}
			if got == nil {
				return
			}
			all := strings.Join(append(got.Evidence, got.Problem, got.Fix), "\n")
			for _, want := range []string{"web.socket", "pid 5 fd 3", "inode 77", "already active, refusing", "systemctl --user stop web.service && systemctl --user start web.socket web.service"} {
				if !strings.Contains(all, want) {
					t.Errorf("finding %+v lacks %q", got, want)
				}
			}
			if got.Unit != "web.socket" || strings.Contains(all, "state") {
				t.Errorf("finding %+v: want it on web.socket, the store's memfd not in it", got)
			}
		})
	}
}

// TestTreePassedListener: a listener a service was passed by a socket unit
// that does not show it is not called the service's own listener.
func TestTreePassedListener(t *testing.T) {
	s := &Snapshot{Manager: Manager{Scope: "user"}, Services: []Service{{Unit: "web.service", ActiveState: "active", MainPID: 5,
		Passed:       []PassedFD{{FD: 3, Name: "web.socket", Kind: "tcp-listen", Inode: 77}},
		OwnListeners: []Listener{{Type: "Stream", Address: "127.0.0.1:8080", Inode: 77, PassedBy: "web.socket"}}}}}
	var b strings.Builder
	if err := WriteTree(&b, s); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); strings.Contains(out, "own listener") || !strings.Contains(out, "passed by web.socket, which does not hold it") {
		t.Errorf("tree:\n%s\nwant the listener passed by web.socket, not an own listener", out)
	}
}
