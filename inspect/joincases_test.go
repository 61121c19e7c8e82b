package inspect

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/procfs"
)

// The joined picture's cases of issue 20, each from what a real manager
// and kernel showed (the integration tests in joincases_integration_test.go
// replay them on 252 and 254).

func runningSvc(name string, pid uint32, by ...string) dbusclient.Service {
	return dbusclient.Service{UnitState: dbusclient.UnitState{Name: name, ActiveState: "active", SubState: "running"},
		MainPID: pid, TriggeredBy: by, Processes: []dbusclient.Process{{PID: pid}}}
}

func passedEnv(pid int, names ...string) *procfs.HandoffEnv {
	h := &procfs.HandoffEnv{ListenPID: pid, ListenFDs: len(names), Names: names, ForThisProcess: true}
	for i, n := range names {
		h.Passed = append(h.Passed, procfs.PassedFD{FD: 3 + i, Name: n})
	}
	return h
}

// TestJoinSocketWithSecondService (issue 20, case 12): p.socket has
// Service=real.service and other.service names it in Sockets=: the
// manager's Triggers lists both (other first), its WantedBy the second.
// The socket starts real.service; both services were passed the listener
// and hold it by right: nobody is outside, nothing leaks, no service has
// it as its own listener, and the doctor tells nobody to stop anything.
func TestJoinSocketWithSecondService(t *testing.T) {
	const realPID, otherPID, lst = 20, 21, 5000
	scan := &procfs.Scan{
		Processes: []procfs.Process{
			{PID: mgrPID, Comm: "systemd", UserUnit: "init.scope", FDs: []procfs.FD{sockFD(32, lst)}},
			{PID: realPID, Comm: "python3", UserUnit: "real.service", FDs: []procfs.FD{sockFD(3, lst)}, Handoff: passedEnv(realPID, "p.socket")},
			{PID: otherPID, Comm: "sleep", UserUnit: "other.service", FDs: []procfs.FD{sockFD(3, lst)}, Handoff: passedEnv(otherPID, "p.socket")},
		},
		Sockets: map[uint64]procfs.Socket{lst: tcp(lst, "127.0.0.1:31902", "", procfs.StateListen, 0)},
	}
	in := JoinInput{Manager: Manager{Scope: "user"}, ManagerPIDs: []int{mgrPID}, Scan: scan, State: &dbusclient.State{
		Sockets: []dbusclient.Socket{{UnitState: dbusclient.UnitState{Name: "p.socket", ActiveState: "active", SubState: "running"},
			Listen:   []dbusclient.Listener{{Type: "Stream", Address: "127.0.0.1:31902"}},
			Triggers: []string{"other.service", "real.service"}, WantedBy: []string{"other.service", "sockets.target"}}},
		Services: []dbusclient.Service{runningSvc("other.service", otherPID, "p.socket"), runningSvc("real.service", realPID, "p.socket")},
	}}
	snap := Join(in)
	su := snap.Sockets[0]
	if su.Service != "real.service" {
		t.Errorf("p.socket → %q, want real.service (its Service=)", su.Service)
	}
	for _, h := range su.Listeners[0].Holders {
		if h.Outside {
			t.Errorf("holder %+v outside: both services were passed the listener", h)
		}
	}
	for _, svc := range snap.Services {
		if len(svc.OwnListeners) > 0 {
			t.Errorf("%s own listeners %+v: the socket unit's listener", svc.Unit, svc.OwnListeners)
		}
	}
	if len(snap.Warnings) > 0 {
		t.Errorf("warnings %+v, want none", snap.Warnings)
	}
	if f := Diagnose(DoctorInput{Snapshot: snap}); len(f) > 0 {
		t.Errorf("findings %+v, want none", f)
	}
}

// TestSocketService: which of its triggers a socket starts.
func TestSocketService(t *testing.T) {
	for _, tt := range []struct {
		name               string
		triggers, wantedBy []string
		accept             bool
		want               string
	}{
		{"one", []string{"p.service"}, nil, false, "p.service"},
		{"Service= and a Sockets= service", []string{"b-other.service", "z-real.service"}, []string{"b-other.service", "sockets.target"}, false, "z-real.service"},
		{"own name with Sockets= too", []string{"z.service", "p.service"}, []string{"z.service", "p.service"}, false, "p.service"},
		{"all want it, none named like it", []string{"z.service", "b.service"}, []string{"z.service", "b.service"}, false, "b.service"},
		{"accept", []string{"p@1.service"}, nil, true, "p@.service"},
		{"none", nil, nil, false, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := dbusclient.Socket{UnitState: dbusclient.UnitState{Name: "p.socket"}, Triggers: tt.triggers, WantedBy: tt.wantedBy, Accept: tt.accept}
			if tt.accept {
				s.Template = "p@.service"
			}
			if got := s.Service(); got != tt.want {
				t.Errorf("Service() = %q, want %q", got, tt.want)
			}
			for _, u := range tt.triggers {
				if !s.Starts(u) {
					t.Errorf("Starts(%q) = false", u)
				}
			}
			if s.Starts("else.service") {
				t.Error("Starts(else.service) = true")
			}
		})
	}
}

// TestDoctorPreforkWorker (issue 20, case 13): the main process forked a
// worker that keeps the passed listener (fd 3) and closed its own copy.
// The listener is held inside the unit: no listener-not-held. Without the
// worker it is.
func TestDoctorPreforkWorker(t *testing.T) {
	const mainPID, workerPID, lst = 30, 31, 5001
	for _, worker := range []bool{true, false} {
		procs := []procfs.Process{
			{PID: mgrPID, Comm: "systemd", UserUnit: "init.scope", FDs: []procfs.FD{sockFD(33, lst)}},
			{PID: mainPID, Comm: "python3", UserUnit: "fork.service", Handoff: passedEnv(mainPID, "fork.socket")},
		}
		svc := runningSvc("fork.service", mainPID, "fork.socket")
		if worker {
			procs = append(procs, procfs.Process{PID: workerPID, Comm: "python3", UserUnit: "fork.service", FDs: []procfs.FD{sockFD(3, lst)}})
			svc.Processes = append(svc.Processes, dbusclient.Process{PID: workerPID})
		}
		snap := Join(JoinInput{Manager: Manager{Scope: "user"}, ManagerPIDs: []int{mgrPID},
			Scan: &procfs.Scan{Processes: procs, Sockets: map[uint64]procfs.Socket{lst: tcp(lst, "127.0.0.1:31903", "", procfs.StateListen, 0)}},
			State: &dbusclient.State{
				Sockets: []dbusclient.Socket{{UnitState: dbusclient.UnitState{Name: "fork.socket", ActiveState: "active", SubState: "running"},
					Listen: []dbusclient.Listener{{Type: "Stream", Address: "127.0.0.1:31903"}}, Triggers: []string{"fork.service"}}},
				Services: []dbusclient.Service{svc},
			}})
		var codes []string
		for _, f := range Diagnose(DoctorInput{Snapshot: snap}) {
			codes = append(codes, f.Unit+" "+f.Code)
		}
		if got := slices.Contains(codes, "fork.service listener-not-held") || slices.Contains(codes, "fork.socket listener-not-held"); got == worker {
			t.Errorf("worker %v: findings %v", worker, codes)
		}
	}
}

// TestJoinDatagramQueue (issue 20, case 14): a datagram listener shows
// the bytes queued unread (ss's Recv-Q), a FIFO no queue figure at all,
// never "backlog 0".
func TestJoinDatagramQueue(t *testing.T) {
	const udp, fifo = 5002, 5003
	scan := &procfs.Scan{
		Processes: []procfs.Process{{PID: mgrPID, Comm: "systemd", UserUnit: "init.scope", FDs: []procfs.FD{
			sockFD(30, udp), {Num: 25, Kind: procfs.KindFIFO, Inode: fifo, Name: "/tmp/j.fifo"}}}},
		Sockets: map[uint64]procfs.Socket{udp: {Inode: udp, Family: procfs.FamilyInet, Proto: procfs.ProtoUDP, Type: procfs.TypeDgram,
			State: procfs.StateClose, RecvQ: 4160, Local: netip.MustParseAddrPort("127.0.0.1:31901")}},
	}
	snap := Join(JoinInput{Manager: Manager{Scope: "user"}, ManagerPIDs: []int{mgrPID}, Scan: scan, State: &dbusclient.State{
		Sockets: []dbusclient.Socket{{UnitState: dbusclient.UnitState{Name: "d.socket", ActiveState: "active", SubState: "listening"},
			Listen: []dbusclient.Listener{{Type: "Datagram", Address: "127.0.0.1:31901"}, {Type: "FIFO", Address: "/tmp/j.fifo"}}}},
	}})
	ls := snap.Sockets[0].Listeners
	if ls[0].RecvQ == nil || *ls[0].RecvQ != 4160 || ListenerQueue(ls[0]) != "recv-q 4160" {
		t.Errorf("datagram listener %+v says %q, want recv-q 4160", ls[0], ListenerQueue(ls[0]))
	}
	if ls[1].Inode != fifo || ls[1].RecvQ != nil || ListenerQueue(ls[1]) != "" {
		t.Errorf("FIFO listener %+v says %q, want no queue figure", ls[1], ListenerQueue(ls[1]))
	}
	var b strings.Builder
	if err := WriteTree(&b, snap); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "backlog") {
		t.Errorf("tree speaks of a backlog:\n%s", b.String())
	}
}

// TestJoinInferredStoreNamesUnknown (issue 20, case 11): on 252 a service
// stored two socket pair ends as FDNAME=c-1 and c-2 and keeps the other
// ends. The manager does not list its store and the running process was
// never passed it, so the names were never seen: unknown, not "stored".
func TestJoinInferredStoreNamesUnknown(t *testing.T) {
	const pid, e1, e2, p1, p2 = 40, 6001, 6002, 6003, 6004
	pair := func(ino, peer uint64) procfs.Socket {
		return procfs.Socket{Inode: ino, Family: procfs.FamilyUnix, Type: procfs.TypeStream, State: procfs.StateEstablished, PeerInode: peer}
	}
	scan := &procfs.Scan{
		Processes: []procfs.Process{
			{PID: mgrPID, Comm: "systemd", UserUnit: "init.scope", FDs: []procfs.FD{sockFD(40, e1), sockFD(41, e2)}},
			{PID: pid, Comm: "python3", UserUnit: "store.service", FDs: []procfs.FD{sockFD(3, p1), sockFD(4, p2)}},
		},
		Sockets: map[uint64]procfs.Socket{e1: pair(e1, p1), p1: pair(p1, e1), e2: pair(e2, p2), p2: pair(p2, e2)},
	}
	svc := runningSvc("store.service", pid)
	svc.FDStoreMax, svc.NFDStore = 4, 2
	snap := Join(JoinInput{Manager: Manager{Scope: "user", Version: "252"}, ManagerPIDs: []int{mgrPID}, Scan: scan,
		State:  &dbusclient.State{Services: []dbusclient.Service{svc}},
		Stores: map[string]dbusclient.FDStore{"store.service": {Service: "store.service", Max: 4, Count: 2}}})
	got := snap.Services[0].FDStore
	if len(got) != 2 {
		t.Fatalf("fd store %+v, want the 2 entries", got)
	}
	for _, e := range got {
		if e.Name != "" || !e.NameUnknown || !e.Inferred {
			t.Errorf("entry %+v: want its name unknown (\"\", name_unknown), inferred", e)
		}
	}
	var b strings.Builder
	if err := WriteTree(&b, snap); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), `"stored"`) || !strings.Contains(b.String(), "stored (name unknown)") {
		t.Errorf("tree:\n%s", b.String())
	}
	ev := Event{Type: EventFDStored, Unit: "store.service", Inode: e1, Kind: "unix-stream", Inferred: true, NameUnknown: true}
	if d := Describe(ev); !strings.Contains(d, "(name unknown) stored") {
		t.Errorf("Describe = %q", d)
	}
}

// TestJoinUnreadableBeforeManager (issue 20, case 18): PID 1 of this
// machine (not systemd) lets its fd directory be listed but not its links,
// fdinfo or environ. It started before the manager, so it holds nothing
// the manager or its services made: the listeners' holders are complete,
// the note names it and says so, and nothing warns. A process that started
// after the manager and is not readable may hold them: partial, warned. A
// listener the manager does not hold (a failed socket) has no holders to
// miss.
func TestJoinUnreadableBeforeManager(t *testing.T) {
	const lst, svcPID = 7000, 50
	for _, tt := range []struct {
		name        string
		start       uint64 // of the unreadable process; the manager's is 500
		partial     bool
		matters     bool
		noteHasPID1 bool
	}{
		{"started before the manager", 1, false, false, true},
		{"started after the manager", 600, true, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pid := 1
			if tt.start > 500 {
				pid = 700
			}
			scan := &procfs.Scan{
				Processes: []procfs.Process{
					{PID: pid, Comm: "process_api", StartTime: tt.start, Denied: true},
					{PID: svcPID, Comm: "web", UserUnit: "web.service", StartTime: 510, FDs: []procfs.FD{sockFD(3, lst)}},
					{PID: mgrPID, Comm: "systemd", UserUnit: "init.scope", StartTime: 500, FDs: []procfs.FD{sockFD(12, lst)}},
				},
				Sockets:    map[uint64]procfs.Socket{lst: tcp(lst, "127.0.0.1:8080", "", procfs.StateListen, 0)},
				Unreadable: 1,
			}
			sort.Slice(scan.Processes, func(i, j int) bool { return scan.Processes[i].PID < scan.Processes[j].PID })
			snap := Join(JoinInput{Manager: Manager{Scope: "user"}, ManagerPIDs: []int{mgrPID}, Scan: scan, State: &dbusclient.State{
				Sockets: []dbusclient.Socket{
					{UnitState: dbusclient.UnitState{Name: "web.socket", ActiveState: "active", SubState: "running"},
						Listen: []dbusclient.Listener{{Type: "Stream", Address: "127.0.0.1:8080"}}, Triggers: []string{"web.service"}},
					{UnitState: dbusclient.UnitState{Name: "dead.socket", ActiveState: "failed", SubState: "failed"},
						Listen: []dbusclient.Listener{{Type: "Stream", Address: "127.0.0.1:8081"}}, Triggers: []string{"dead.service"}},
				},
				Services: []dbusclient.Service{runningSvc("web.service", svcPID, "web.socket")},
			}})
			for _, su := range snap.Sockets {
				l := su.Listeners[0]
				if su.Unit == "dead.socket" && l.HoldersPartial {
					t.Errorf("a failed socket's listener (not held by the manager) is holders_partial")
				}
				if su.Unit == "web.socket" && l.HoldersPartial != tt.partial {
					t.Errorf("web.socket holders_partial = %v, want %v", l.HoldersPartial, tt.partial)
				}
			}
			note, matters := UnreadableNote(snap.Host)
			if matters != tt.matters || !strings.Contains(note, fmt.Sprintf("pid %d (process_api)", pid)) {
				t.Errorf("note %q matters %v, want it naming pid %d, matters %v", note, matters, pid, tt.matters)
			}
			if tt.noteHasPID1 && !strings.Contains(note, "started before the manager") {
				t.Errorf("note %q does not say why it does not matter", note)
			}
			var b strings.Builder
			if err := WriteTree(&b, snap); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(b.String(), "held by: unknown") { // the failed socket's
				t.Errorf("tree:\n%s", b.String())
			}
		})
	}
}

// TestBuilderTargetedScanNamesPeers (issue 20, case 17): journald keeps
// the stdout streams of dbus-daemon and sshd (connections on its stdout
// listener, stored in its fd store). A host-wide scan names their other
// ends; a scan limited to the units after it reads those processes too,
// so the ends stay named ("dbus-daemon pid 46 fd 1"), never "peer
// socket:[N]" until the next host-wide scan.
func TestBuilderTargetedScanNamesPeers(t *testing.T) {
	const jPID, dbusPID, lst, srv, cli = 33, 46, 8000, 8001, 8002
	unix := func(ino, peer uint64, path string, st procfs.SockState) procfs.Socket {
		return procfs.Socket{Inode: ino, Family: procfs.FamilyUnix, Type: procfs.TypeStream, State: st, Path: path, PeerInode: peer}
	}
	scan := &procfs.Scan{
		Processes: []procfs.Process{
			{PID: jPID, Comm: "systemd-journal", Unit: "systemd-journald.service", FDs: []procfs.FD{sockFD(3, lst), sockFD(14, srv)}},
			{PID: dbusPID, Comm: "dbus-daemon", Unit: "dbus.service", FDs: []procfs.FD{sockFD(1, cli)}},
			{PID: mgrPID, Comm: "systemd", Unit: "init.scope", FDs: []procfs.FD{sockFD(29, lst), sockFD(34, srv)}},
		},
		Sockets: map[uint64]procfs.Socket{
			lst: unix(lst, 0, "/run/systemd/journal/stdout", procfs.StateListen),
			srv: unix(srv, cli, "/run/systemd/journal/stdout", procfs.StateEstablished),
			cli: unix(cli, srv, "", procfs.StateEstablished),
		},
	}
	svc := runningSvc("systemd-journald.service", jPID, "systemd-journald.socket")
	svc.FDStoreMax, svc.NFDStore = 4224, 1
	state := &dbusclient.State{
		Sockets: []dbusclient.Socket{{UnitState: dbusclient.UnitState{Name: "systemd-journald.socket", ActiveState: "active", SubState: "running"},
			Listen: []dbusclient.Listener{{Type: "Stream", Address: "/run/systemd/journal/stdout"}}, Triggers: []string{"systemd-journald.service"}}},
		Services: []dbusclient.Service{svc},
	}
	k := &pidKernel{fakeKernel{scan: scan}}
	b := &Builder{Systemd: &fakeSystemd{state: state}, Kernel: k, Scope: "system"}
	ctx := context.Background()
	for _, opts := range []SnapshotOptions{{FullScan: true}, {Units: []string{"systemd-journald.service"}}} {
		snap, err := b.Snapshot(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !opts.FullScan && !slices.Contains(k.pids, dbusPID) {
			t.Errorf("targeted scan of %v, not the peer's holder %d", k.pids, dbusPID)
		}
		j := snap.Services[0]
		if len(j.Connections) != 1 || j.Connections[0].Remote != "dbus-daemon pid 46 fd 1" {
			t.Errorf("full %v: connections %+v, want the stream from dbus-daemon pid 46 fd 1", opts.FullScan, j.Connections)
		}
	}
}

// pidKernel is a fakeKernel whose targeted scans hold only the processes
// asked for, as procfs's do.
type pidKernel struct{ fakeKernel }

func (f *pidKernel) ScanPIDs(ctx context.Context, pids []int, opts procfs.ScanOptions) (*procfs.Scan, error) {
	f.pids = pids
	out := *f.scan
	out.Processes = nil
	for _, p := range f.scan.Processes {
		if slices.Contains(pids, p.PID) {
			out.Processes = append(out.Processes, p)
		}
	}
	return &out, nil
}
