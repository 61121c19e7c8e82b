package inspect

import (
	"testing"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/procfs"
)

// journaldAudit is a fresh systemd 257 system in a container (issue 19):
// systemd-journald-audit.socket (ListenNetlink=audit 1) is inactive, its
// condition unmet, while systemd-journald.service runs; PID 1 holds an
// audit netlink socket of its own (group 0) and a uevent monitor. The
// udev socket (kobject-uevent 1) is listening, held by the manager and
// by udevd.
func journaldAudit(auditState string) JoinInput {
	const (
		mgrAudit  = 5001
		mgrUevent = 5002
		udevIno   = 5003
		journal   = 300
		udevd     = 400
	)
	nl := func(ino uint64, proto int, groups uint32) procfs.Socket {
		return procfs.Socket{Inode: ino, Family: procfs.FamilyNetlink, Status: procfs.FamilyOnly, Netlink: &procfs.NetlinkInfo{Protocol: proto, Groups: groups}}
	}
	scan := &procfs.Scan{
		Processes: []procfs.Process{
			{PID: 1, Comm: "systemd", Unit: "init.scope", FDs: []procfs.FD{sockFD(20, mgrAudit), sockFD(21, mgrUevent), sockFD(22, udevIno)}},
			{PID: journal, Comm: "systemd-journal", Unit: "systemd-journald.service"},
			{PID: udevd, Comm: "systemd-udevd", Unit: "systemd-udevd.service", FDs: []procfs.FD{sockFD(3, udevIno)}},
		},
		Sockets: map[uint64]procfs.Socket{
			mgrAudit:  nl(mgrAudit, 9, 0),
			mgrUevent: nl(mgrUevent, 15, 0),
			udevIno:   nl(udevIno, 15, 1),
		},
	}
	state := &dbusclient.State{
		Sockets: []dbusclient.Socket{
			{UnitState: dbusclient.UnitState{Name: "systemd-journald-audit.socket", ActiveState: auditState, SubState: map[string]string{"inactive": "dead", "active": "running"}[auditState]},
				Listen: []dbusclient.Listener{{Type: "Netlink", Address: "audit 1"}}, Triggers: []string{"systemd-journald.service"}},
			{UnitState: dbusclient.UnitState{Name: "systemd-udevd-kernel.socket", ActiveState: "active", SubState: "running"},
				Listen: []dbusclient.Listener{{Type: "Netlink", Address: "kobject-uevent 1"}}, Triggers: []string{"systemd-udevd.service"}},
		},
		Services: []dbusclient.Service{
			{UnitState: dbusclient.UnitState{Name: "systemd-journald.service", ActiveState: "active", SubState: "running"}, MainPID: journal},
			{UnitState: dbusclient.UnitState{Name: "systemd-udevd.service", ActiveState: "active", SubState: "running"}, MainPID: udevd},
		},
	}
	return JoinInput{Time: time.Unix(0, 0), Manager: Manager{Scope: "system", Version: "257.13-1~deb13u1"},
		ManagerPIDs: []int{1}, State: state, Scan: scan, Stores: map[string]dbusclient.FDStore{}}
}

// TestNetlinkListeners: a Netlink listener is the manager's socket of that
// protocol and group, never another netlink socket of the manager's; an
// inactive socket unit has no listener at all, so no finding blames one
// (issue 19: listener-not-held for systemd-journald-audit.socket on 257).
func TestNetlinkListeners(t *testing.T) {
	for _, st := range []string{"inactive", "active"} {
		t.Run("audit socket "+st, func(t *testing.T) {
			s := Join(journaldAudit(st))
			for _, w := range s.Warnings {
				t.Errorf("warning on a fresh system: %+v", w)
			}
			for _, su := range s.Sockets {
				l := su.Listeners[0]
				switch su.Unit {
				case "systemd-journald-audit.socket":
					// Inactive: nothing held. Active with no audit socket
					// of group 1 in the manager: not found, and nobody's.
					if l.Inode != 0 || len(l.Holders) != 0 {
						t.Errorf("%s: listener %+v, want none", su.Unit, l)
					}
				case "systemd-udevd-kernel.socket":
					if l.Inode != 5003 || len(l.Holders) != 2 || l.Holders[1].PID != 400 || l.Holders[1].Outside {
						t.Errorf("%s: listener %+v, want inode 5003 held by the manager and udevd", su.Unit, l)
					}
				}
			}
			f := Diagnose(DoctorInput{Snapshot: s})
			for _, x := range f {
				t.Errorf("doctor finding on a fresh system: %+v", x)
			}
		})
	}
}

func TestParseNetlinkAddress(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want procfs.NetlinkInfo
		bad  bool
	}{
		{"audit 1", procfs.NetlinkInfo{Protocol: 9, Groups: 1}, false},
		{"kobject-uevent 1", procfs.NetlinkInfo{Protocol: 15, Groups: 1}, false},
		{"route 0", procfs.NetlinkInfo{Protocol: 0}, false},
		{"route", procfs.NetlinkInfo{Protocol: 0}, false},
		{"31 4", procfs.NetlinkInfo{Protocol: 31, Groups: 4}, false},
		{"nonsense 1", procfs.NetlinkInfo{}, true},
		{"", procfs.NetlinkInfo{}, true},
	} {
		got, err := procfs.ParseNetlinkAddress(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseNetlinkAddress(%q) = %+v, %v; want %+v (error %v)", tt.in, got, err, tt.want, tt.bad)
		}
	}
}
