package inspect

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/procfs"
)

func facts(name, active, result string) dbusclient.UnitFacts {
	return dbusclient.UnitFacts{UnitState: dbusclient.UnitState{Name: name, LoadState: "loaded", ActiveState: active, SubState: active}, Result: result}
}

func TestDiagnose(t *testing.T) {
	user := Manager{Scope: "user"}
	tests := []struct {
		name string
		in   DoctorInput
		// want maps unit+" "+code to substrings of its evidence and fix.
		want map[string][]string
	}{
		{
			name: "healthy",
			in: DoctorInput{Snapshot: &Snapshot{Manager: user,
				Sockets:  []SocketUnit{{Unit: "web.socket", Service: "web.service", ActiveState: "active"}},
				Services: []Service{{Unit: "web.service", ActiveState: "active", MainPID: 5, Type: "notify", FDStoreMax: 10, FDStoreCount: 2}}},
				Facts: map[string]dbusclient.UnitFacts{"web.socket": facts("web.socket", "active", "success"), "web.service": facts("web.service", "active", "success")},
				Logs:  map[string][]LogLine{"web.service": {{Source: "journal", Text: "web.service: Started."}}}},
			want: map[string][]string{},
		},
		{
			name: "trigger limit, user scope",
			in: DoctorInput{Snapshot: &Snapshot{Manager: user, Sockets: []SocketUnit{{Unit: "web.socket", NRefused: 3}}},
				Facts: map[string]dbusclient.UnitFacts{"web.socket": facts("web.socket", "failed", "trigger-limit-hit")},
				Logs:  map[string][]LogLine{"web.socket": {{Source: "manager log", Text: "web.socket: Trigger limit hit, refusing further activation."}}}},
			want: map[string][]string{"web.socket trigger-limit-hit": {"NRefused=3", "Trigger limit hit", "systemctl --user reset-failed web.socket && systemctl --user start web.socket"}},
		},
		{
			name: "trigger limit, system scope, log unknown",
			in: DoctorInput{Snapshot: &Snapshot{Manager: Manager{Scope: "system"}},
				Facts: map[string]dbusclient.UnitFacts{"web.socket": facts("web.socket", "failed", "trigger-limit-hit")}},
			want: map[string][]string{"web.socket trigger-limit-hit": {"Result=trigger-limit-hit", "systemctl reset-failed web.socket && systemctl start web.socket"}},
		},
		{
			name: "address held by another process",
			in: DoctorInput{Snapshot: &Snapshot{Manager: user},
				Facts:          map[string]dbusclient.UnitFacts{"web.socket": facts("web.socket", "failed", "resources")},
				AddressHolders: map[string][]AddressHolder{"web.socket": {{Address: "127.0.0.1:80", Local: "0.0.0.0:80", Holder: Holder{PID: 42, FD: 7, Comm: "nginx"}, Cmdline: "nginx -g daemon off;"}}}},
			want: map[string][]string{"web.socket address-in-use": {"127.0.0.1:80 is held by pid 42 (nginx) fd 7 listening on 0.0.0.0:80", "stop pid 42 (nginx)"}},
		},
		{
			name: "address in use, holder not found",
			in: DoctorInput{Snapshot: &Snapshot{Manager: user},
				Facts: map[string]dbusclient.UnitFacts{"web.socket": facts("web.socket", "failed", "resources")},
				Logs:  map[string][]LogLine{"web.socket": {{Source: "journal", Text: "web.socket: Failed to create listening socket (127.0.0.1:80): Address already in use"}}}},
			want: map[string][]string{"web.socket address-in-use": {"unknown (not found in /proc)", "Address already in use"}},
		},
		{
			name: "socket failed, journal not readable",
			in: DoctorInput{Snapshot: &Snapshot{Manager: user},
				Facts:     map[string]dbusclient.UnitFacts{"web.socket": facts("web.socket", "failed", "resources")},
				LogErrors: map[string]string{"web.socket": "journalctl -u web.socket: No journal files were opened due to insufficient permissions. (exit status 1)"}},
			want: map[string][]string{"web.socket socket-failed": {"log: unknown (journalctl -u web.socket: No journal files were opened due to insufficient permissions. (exit status 1))"}},
		},
		{
			name: "socket failed otherwise",
			in: DoctorInput{Snapshot: &Snapshot{Manager: user},
				Facts: map[string]dbusclient.UnitFacts{"web.socket": facts("web.socket", "failed", "resources")}},
			want: map[string][]string{"web.socket socket-failed": {"Result=resources", "log: unknown"}},
		},
		{
			name: "failing service with exit status and log",
			in: DoctorInput{Snapshot: &Snapshot{Manager: user},
				Facts: map[string]dbusclient.UnitFacts{"web.service": func() dbusclient.UnitFacts {
					f := facts("web.service", "failed", "exit-code")
					f.ExecMainCode, f.ExecMainStatus = 1, 3
					return f
				}()},
				Logs: map[string][]LogLine{"web.service": {{Source: "/var/log/web.log", Text: "cannot open config"}}}},
			want: map[string][]string{"web.service service-failed": {"exited with status 3", "log (/var/log/web.log): cannot open config", "systemctl --user restart web.service"}},
		},
		{
			name: "start limit hit, killed",
			in: DoctorInput{Snapshot: &Snapshot{Manager: user},
				Facts: map[string]dbusclient.UnitFacts{"web.service": func() dbusclient.UnitFacts {
					f := facts("web.service", "failed", "start-limit-hit")
					f.ExecMainCode, f.ExecMainStatus = 2, 9
					return f
				}()}},
			want: map[string][]string{"web.service start-limit-hit": {"killed by signal 9", "reset-failed web.service"}},
		},
		{
			name: "accept without template",
			in: DoctorInput{Snapshot: &Snapshot{Manager: user, Sockets: []SocketUnit{{Unit: "echo.socket", Accept: true, Service: "echo@.service"}}},
				Facts:     map[string]dbusclient.UnitFacts{"echo.socket": facts("echo.socket", "failed", "resources")},
				Templates: map[string]bool{"echo@.service": false}},
			want: map[string][]string{"echo.socket accept-no-template": {"no unit file", "echo@.service"}},
		},
		{
			name: "accept, template not looked up: no claim",
			in: DoctorInput{Snapshot: &Snapshot{Manager: user, Sockets: []SocketUnit{{Unit: "echo.socket", Accept: true, Service: "echo@.service"}}},
				Facts: map[string]dbusclient.UnitFacts{"echo.socket": facts("echo.socket", "active", "success")}},
			want: map[string][]string{},
		},
		{
			name: "FDSTORE with max 0, NotifyAccess refusing",
			in: DoctorInput{Snapshot: &Snapshot{Manager: user, Services: []Service{{Unit: "a.service", Type: "notify", MainPID: 3}, {Unit: "b.service", Type: "notify", MainPID: 4, FDStoreMax: 8}}},
				Facts: map[string]dbusclient.UnitFacts{"a.service": facts("a.service", "active", "success"), "b.service": func() dbusclient.UnitFacts {
					f := facts("b.service", "active", "success")
					f.NotifyAccess = "main"
					return f
				}()},
				Logs: map[string][]LogLine{
					"a.service": {{Source: "manager log", Text: "a.service: Cannot store more fds than FileDescriptorStoreMax=0, closing remaining."}},
					"b.service": {{Source: "journal", Text: "b.service: Got notification message from PID 99, but reception only permitted for main PID 4"}}}},
			want: map[string][]string{
				"a.service fdstore-disabled": {"Cannot store more fds", "FileDescriptorStoreMax="},
				"b.service notify-access":    {"NotifyAccess=main", "FileDescriptorStoreMax=8", "reception only permitted", "NotifyAccess=main (or all"},
			},
		},
		{
			name: "stop queued will discard the store",
			in: DoctorInput{Snapshot: &Snapshot{Manager: user, Services: []Service{{Unit: "a.service", MainPID: 3, FDStoreMax: 8, FDStoreCount: 2, FDStorePreserve: "restart"}}},
				Facts: map[string]dbusclient.UnitFacts{"a.service": func() dbusclient.UnitFacts {
					f := facts("a.service", "active", "success")
					f.JobType = "stop"
					return f
				}()}},
			want: map[string][]string{"a.service stop-discards-store": {"NFileDescriptorStore=2 FileDescriptorStorePreserve=restart", "restart a.service keeps the store"}},
		},
		{
			name: "snapshot warnings and a closed listener",
			in: DoctorInput{Snapshot: &Snapshot{Manager: user,
				Sockets: []SocketUnit{{Unit: "w.socket", Service: "w.service"}, {Unit: "v.socket", Service: "v.service", FileDescriptorName: "http"}},
				Services: []Service{{Unit: "v.service", MainPID: 9, FDStoreMax: 4, Passed: []PassedFD{
					{FD: 3, Name: "http", Kind: "closed"}, {FD: 4, Name: "conn-1", Kind: "closed"}}}},
				Warnings: []Warning{
					{Unit: "w.socket", Code: "orphan-listener", Message: "listener 127.0.0.1:80 is held only by the manager while w.service is active"},
					{Unit: "w.socket", Code: "flush-pending", Message: "FlushPending=yes: …"},
					{Unit: "s.service", Code: "fdstore-over-max", Message: "fd store full (4 of FileDescriptorStoreMax=4)"},
					{Unit: "s.service", Code: "fdstore-pinned", Message: "2 fd store entries are held only by the manager"},
					{Unit: "w.socket", Code: "leaked-listener", Message: "listener 127.0.0.1:80 is held by pid 7"},
				}}},
			want: map[string][]string{
				"w.socket listener-not-held":  {"held only by the manager", "sd_listen_fds", "restart w.service"},
				"w.socket flush-pending":      {"FlushPending=yes", "FlushPending=no"},
				"s.service fdstore-full":      {"4 of FileDescriptorStoreMax=4", "raise FileDescriptorStoreMax="},
				"s.service fdstore-pinned":    {"held only by the manager", "FDSTOREREMOVE=1"},
				"w.socket leaked-listener":    {"held by pid 7", "close-on-exec"},
				"v.service listener-not-held": {"LISTEN_FDNAMES names fd 3 http; pid 9 has no fd 3 now", "sd_listen_fds"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Diagnose(tt.in)
			seen := map[string]bool{}
			for _, f := range got {
				key := f.Unit + " " + f.Code
				seen[key] = true
				subs, ok := tt.want[key]
				if !ok {
					t.Errorf("unexpected finding %s: %+v", key, f)
					continue
				}
				all := strings.Join(f.Evidence, "\n") + "\nFIX " + f.Fix
				for _, s := range subs {
					if !strings.Contains(all, s) {
						t.Errorf("%s: %q missing from evidence/fix:\n%s", key, s, all)
					}
				}
				if f.Problem == "" || f.Fix == "" || f.Evidence == nil {
					t.Errorf("%s: empty problem, fix or evidence: %+v", key, f)
				}
			}
			for key := range tt.want {
				if !seen[key] {
					t.Errorf("missing finding %s; got %+v", key, got)
				}
			}
		})
	}
}

func TestFindAddressHolders(t *testing.T) {
	ap := netip.MustParseAddrPort
	scan := &procfs.Scan{
		Processes: []procfs.Process{
			{PID: 1, Comm: "systemd", FDs: []procfs.FD{{Num: 20, Kind: procfs.KindSocket, Inode: 100}}},
			{PID: 42, Comm: "nginx", Cmdline: []string{"nginx", "-g"}, FDs: []procfs.FD{{Num: 6, Kind: procfs.KindSocket, Inode: 101}}},
			{PID: 43, Comm: "other", FDs: []procfs.FD{{Num: 3, Kind: procfs.KindSocket, Inode: 102}, {Num: 4, Kind: procfs.KindSocket, Inode: 103}}},
			{PID: 50, Comm: "unixd", FDs: []procfs.FD{{Num: 3, Kind: procfs.KindSocket, Inode: 200}, {Num: 4, Kind: procfs.KindSocket, Inode: 201}, {Num: 5, Kind: procfs.KindSocket, Inode: 202}}},
			{PID: 51, Comm: "logd", FDs: []procfs.FD{{Num: 3, Kind: procfs.KindSocket, Inode: 203}}},
		},
		Sockets: map[uint64]procfs.Socket{
			100: {Inode: 100, Family: procfs.FamilyInet, Proto: procfs.ProtoTCP, State: procfs.StateListen, Local: ap("127.0.0.1:80")},
			101: {Inode: 101, Family: procfs.FamilyInet, Proto: procfs.ProtoTCP, State: procfs.StateListen, Local: ap("0.0.0.0:80")},
			102: {Inode: 102, Family: procfs.FamilyInet, Proto: procfs.ProtoTCP, State: procfs.StateListen, Local: ap("127.0.0.2:80")},
			103: {Inode: 103, Family: procfs.FamilyInet, Proto: procfs.ProtoTCP, State: procfs.StateEstablished, Local: ap("127.0.0.1:80"), Remote: ap("127.0.0.1:5000")},
			200: {Inode: 200, Family: procfs.FamilyUnix, Type: procfs.TypeStream, State: procfs.StateListen, Path: "/run/x.sock"},
			// A connection accepted from it carries its path, and holds no name.
			201: {Inode: 201, Family: procfs.FamilyUnix, Type: procfs.TypeStream, State: procfs.StateEstablished, Path: "/run/x.sock", PeerInode: 300},
			202: {Inode: 202, Family: procfs.FamilyUnix, Type: procfs.TypeStream, State: procfs.StateListen, Path: "x.sock", Abstract: true},
			203: {Inode: 203, Family: procfs.FamilyUnix, Type: procfs.TypeDgram, State: procfs.StateClose, Path: "/run/log", PeerInode: 0},
		},
	}
	tests := []struct {
		listen []dbusclient.Listener
		want   []int
	}{
		{[]dbusclient.Listener{{Type: "Stream", Address: "127.0.0.1:80"}}, []int{42}}, // the wildcard conflicts; the manager and a connection do not
		{[]dbusclient.Listener{{Type: "Stream", Address: "127.0.0.2:80"}}, []int{42, 43}},
		{[]dbusclient.Listener{{Type: "Stream", Address: "127.0.0.1:81"}}, nil},
		{[]dbusclient.Listener{{Type: "Stream", Address: "/run/x.sock"}}, []int{50}},
		{[]dbusclient.Listener{{Type: "Stream", Address: "/run/y.sock"}}, nil},
		{[]dbusclient.Listener{{Type: "Stream", Address: "@x.sock"}}, []int{50}},            // abstract: not the path x.sock
		{[]dbusclient.Listener{{Type: "SequentialPacket", Address: "/run/log"}}, []int{51}}, // a datagram socket holds the path too
		{[]dbusclient.Listener{{Type: "Datagram", Address: "/run/x.sock"}}, []int{50}},      // and a stream listener the datagram's
		{[]dbusclient.Listener{{Type: "Stream", Address: "@/run/x.sock"}}, nil},             // the abstract namespace is apart
	}
	for _, tt := range tests {
		got := FindAddressHolders(scan, []int{1}, "system", tt.listen)
		var pids []int
		for _, h := range got {
			pids = append(pids, h.PID)
		}
		if len(pids) != len(tt.want) || (len(pids) > 0 && (pids[0] != tt.want[0] || pids[len(pids)-1] != tt.want[len(tt.want)-1])) {
			t.Errorf("%v: holders %v, want %v", tt.listen, pids, tt.want)
		}
	}
	if got := FindAddressHolders(scan, []int{1}, "system", []dbusclient.Listener{{Type: "Stream", Address: "127.0.0.1:80"}}); len(got) == 1 && got[0].Cmdline != "nginx -g" {
		t.Errorf("cmdline %q", got[0].Cmdline)
	}
}

// TestUnchecked: what the doctor could not read is listed, so that no
// finding is never a clean bill by default.
func TestUnchecked(t *testing.T) {
	many := &Snapshot{}
	for _, u := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		many.Services = append(many.Services, Service{Unit: u + ".service", ConnectionsUnknown: true})
	}
	for _, tt := range []struct {
		name string
		in   DoctorInput
		want []string
	}{
		{"saw everything", DoctorInput{Snapshot: &Snapshot{Services: []Service{{Unit: "web.service"}}}}, nil},
		{"no snapshot", DoctorInput{}, nil},
		{"processes", DoctorInput{Snapshot: &Snapshot{Services: []Service{{Unit: "web.service", PassedUnknown: true}, {Unit: "ok.service"}, {Unit: "db.service", ConnectionsUnknown: true}}}},
			[]string{"the descriptors of web.service, db.service: processes not readable (run as root)"}},
		{"many", DoctorInput{Snapshot: many}, []string{"the descriptors of a.service, b.service, c.service, d.service, e.service and 2 more: processes not readable (run as root)"}},
		{"bpf, stores of sockets", DoctorInput{Snapshot: &Snapshot{Host: HostInfo{HoldersSource: "bpf"},
			Services: []Service{{Unit: "web.service", FDStore: []StoreEntry{{Kind: "tcp"}, {Kind: "unix-stream"}}}}}}, nil},
		{"bpf, a memfd stored", DoctorInput{Snapshot: &Snapshot{Host: HostInfo{HoldersSource: "bpf"},
			Services: []Service{{Unit: "web.service", FDStore: []StoreEntry{{Kind: "tcp"}, {Kind: "memfd"}}}, {Unit: "db.service", FDStore: []StoreEntry{{Kind: "pipe"}}}}}},
			[]string{"who outside the units holds the pipes, memfds and files in the fd store of web.service, db.service: the BPF holder pass lists sockets only"}},
		{"proc, a memfd stored", DoctorInput{Snapshot: &Snapshot{Host: HostInfo{HoldersSource: "proc"},
			Services: []Service{{Unit: "web.service", FDStore: []StoreEntry{{Kind: "memfd"}}}}}}, nil},
		{"logs", DoctorInput{LogErrors: map[string]string{"z.service": "journalctl refused", "a.socket": "no journal"}},
			[]string{"the log of a.socket: no journal", "the log of z.service: journalctl refused"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Unchecked(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("Unchecked = %q, want %q", got, tt.want)
			}
		})
	}
}
