package inspect

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/procfs"
)

var update = flag.Bool("update", false, "rewrite golden files")

const (
	mgrPID  = 100
	webPID  = 200
	leakPID = 300
	listIno = 1000
	conn1   = 1001
	conn2   = 1002
	memIno  = 1003
	pinned  = 1004
	dupIno  = 1005
)

func tcp(ino uint64, local, remote string, state procfs.SockState, recvq uint32) procfs.Socket {
	s := procfs.Socket{Inode: ino, Family: procfs.FamilyInet, Proto: procfs.ProtoTCP, Type: procfs.TypeStream, State: state, RecvQ: recvq,
		Local: netip.MustParseAddrPort(local)}
	if remote != "" {
		s.Remote = netip.MustParseAddrPort(remote)
	}
	return s
}

func sockFD(n int, ino uint64) procfs.FD {
	return procfs.FD{Num: n, Kind: procfs.KindSocket, Inode: ino, Target: "socket:[" + itoa(ino) + "]"}
}

func itoa(n uint64) string { return strings.TrimSpace(strings.Repeat(" ", 0) + jsonNum(n)) }

func jsonNum(n uint64) string { b, _ := json.Marshal(n); return string(b) }

// fixture is a manager with web.socket → web.service (a handoff in the
// middle: the new process was passed the listener, a stored connection and
// a memfd), a leaking child in another unit, a second socket unit on the
// same address with FlushPending, and a pinned store entry.
func fixture() JoinInput {
	scan := &procfs.Scan{
		Processes: []procfs.Process{
			{PID: mgrPID, Comm: "systemd", UserUnit: "init.scope", FDs: []procfs.FD{
				sockFD(5, 7777), // the manager's own private socket connection
				sockFD(12, listIno),
				sockFD(13, conn1),
				{Num: 14, Kind: procfs.KindMemfd, Inode: memIno, Name: "state"},
				sockFD(15, pinned),
				sockFD(16, dupIno),
			}},
			{PID: webPID, Comm: "web", UserUnit: "web.service",
				Handoff: &procfs.HandoffEnv{ListenPID: webPID, ListenFDs: 3, Names: []string{"web.socket", "conn-1", "state"}, ForThisProcess: true,
					Passed: []procfs.PassedFD{{FD: 3, Name: "web.socket"}, {FD: 4, Name: "conn-1"}, {FD: 5, Name: "state"}}},
				FDs: []procfs.FD{
					sockFD(3, listIno),
					sockFD(4, conn1),
					{Num: 5, Kind: procfs.KindMemfd, Inode: memIno, Name: "state"},
					sockFD(6, conn2),
					sockFD(7, conn2), // a dup of the same connection
				}},
			{PID: leakPID, Comm: "sleep", UserUnit: "other.service", FDs: []procfs.FD{sockFD(3, listIno)}},
		},
		Sockets: map[uint64]procfs.Socket{
			7777:    {Inode: 7777, Family: procfs.FamilyUnix, Type: procfs.TypeStream, State: procfs.StateEstablished, Path: "/run/user/0/systemd/private", PeerInode: 7778},
			listIno: tcp(listIno, "127.0.0.1:8080", "", procfs.StateListen, 2),
			conn1:   tcp(conn1, "127.0.0.1:8080", "127.0.0.1:50001", procfs.StateEstablished, 0),
			conn2:   tcp(conn2, "127.0.0.1:8080", "127.0.0.1:50002", procfs.StateEstablished, 5),
			pinned:  tcp(pinned, "127.0.0.1:9090", "127.0.0.1:50003", procfs.StateCloseWait, 0),
			dupIno:  tcp(dupIno, "127.0.0.1:8081", "", procfs.StateListen, 0),
		},
		Unreadable: 1,
	}
	state := &dbusclient.State{
		Sockets: []dbusclient.Socket{
			{UnitState: dbusclient.UnitState{Name: "web.socket", ActiveState: "active", SubState: "running"},
				Listen: []dbusclient.Listener{{Type: "Stream", Address: "127.0.0.1:8080"}}, Triggers: []string{"web.service"},
				FileDescriptorName: "web.socket", Counters: dbusclient.SocketCounters{NAccepted: 0, NRefused: 0}},
			{UnitState: dbusclient.UnitState{Name: "alt.socket", ActiveState: "active", SubState: "listening"},
				Listen: []dbusclient.Listener{{Type: "Stream", Address: "127.0.0.1:8080"}}, Triggers: []string{"alt.service"}, FlushPending: true},
			{UnitState: dbusclient.UnitState{Name: "idle.socket", ActiveState: "active", SubState: "running"},
				Listen: []dbusclient.Listener{{Type: "Stream", Address: "127.0.0.1:8081"}}, Triggers: []string{"idle.service"}},
		},
		Services: []dbusclient.Service{
			{UnitState: dbusclient.UnitState{Name: "web.service", ActiveState: "active", SubState: "running"}, Type: "notify",
				MainPID: webPID, FDStoreMax: 4, NFDStore: 4, TriggeredBy: []string{"web.socket"},
				Processes: []dbusclient.Process{{PID: webPID, Cmdline: "web --serve"}}},
			{UnitState: dbusclient.UnitState{Name: "idle.service", ActiveState: "active", SubState: "running"}, MainPID: 400, TriggeredBy: []string{"idle.socket"}},
		},
	}
	return JoinInput{
		Time:        time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC),
		Manager:     Manager{Scope: "user", Version: "252.38-1~deb12u1"},
		ManagerPIDs: []int{mgrPID},
		State:       state,
		Stores:      map[string]dbusclient.FDStore{"web.service": {Service: "web.service", Max: 4, Count: 4}},
		Scan:        scan,
		Hostname:    "host",
	}
}

func TestJoinListenersAndHolders(t *testing.T) {
	s := Join(fixture())
	var web SocketUnit
	for _, su := range s.Sockets {
		if su.Unit == "web.socket" {
			web = su
		}
	}
	if len(web.Listeners) != 1 {
		t.Fatalf("web.socket listeners = %+v", web.Listeners)
	}
	l := web.Listeners[0]
	if l.Inode != listIno || l.Backlog != 2 || l.State != "LISTEN" {
		t.Errorf("listener = %+v, want inode %d backlog 2 LISTEN", l, listIno)
	}
	want := []Holder{
		{PID: mgrPID, FD: 12, Comm: "systemd", Unit: "init.scope", Manager: true},
		{PID: webPID, FD: 3, Comm: "web", Unit: "web.service"},
		{PID: leakPID, FD: 3, Comm: "sleep", Unit: "other.service", Outside: true},
	}
	if !reflect.DeepEqual(l.Holders, want) {
		t.Errorf("holders:\n got %+v\nwant %+v", l.Holders, want)
	}
}

func TestJoinService(t *testing.T) {
	s := Join(fixture())
	var web Service
	for _, svc := range s.Services {
		if svc.Unit == "web.service" {
			web = svc
		}
	}
	wantPassed := []PassedFD{
		{FD: 3, Name: "web.socket", Kind: "tcp-listen", Inode: listIno, Detail: "127.0.0.1:8080 LISTEN"},
		{FD: 4, Name: "conn-1", Kind: "tcp", Inode: conn1, Detail: "127.0.0.1:8080 → 127.0.0.1:50001 ESTAB"},
		{FD: 5, Name: "state", Kind: "memfd", Inode: memIno, Detail: "memfd:state"},
	}
	if !reflect.DeepEqual(web.Passed, wantPassed) {
		t.Errorf("passed:\n got %+v\nwant %+v", web.Passed, wantPassed)
	}
	// Two connections, the dup of conn2 counted once.
	if len(web.Connections) != 2 || web.Connections[0].Inode != conn1 || web.Connections[1].Inode != conn2 || web.Connections[1].RecvQ != 5 {
		t.Errorf("connections = %+v, want conn1 and conn2 once each", web.Connections)
	}
	// The store (systemd 252: not listed) is inferred from the manager's
	// descriptors: the passed connection and memfd, named by LISTEN_FDNAMES.
	// The pinned socket is held by the manager only and matches nothing of
	// the service, so it cannot be attributed; the manager's own private
	// socket connection is never a candidate.
	wantStore := []StoreEntry{
		{Name: "conn-1", Kind: "tcp", Inode: conn1, Inferred: true, Detail: "127.0.0.1:8080 → 127.0.0.1:50001 ESTAB"},
		{Name: "state", Kind: "memfd", Inode: memIno, Inferred: true, Detail: "memfd:state"},
	}
	if !reflect.DeepEqual(web.FDStore, wantStore) {
		t.Errorf("fd store:\n got %+v\nwant %+v", web.FDStore, wantStore)
	}
}

func TestJoinListedStore(t *testing.T) {
	in := fixture()
	in.Stores["web.service"] = dbusclient.FDStore{Service: "web.service", Max: 4, Count: 2, Listed: true, Entries: []dbusclient.StoreEntry{
		{Name: "conn-9", Mode: 0o140777, Inode: pinned, Path: "socket:[1004]"},
		{Name: "state", Mode: 0o100777, Inode: memIno, Path: "/memfd:state (deleted)"},
	}}
	s := Join(in)
	var web Service
	for _, svc := range s.Services {
		if svc.Unit == "web.service" {
			web = svc
		}
	}
	want := []StoreEntry{
		{Name: "conn-9", Kind: "tcp", Inode: pinned, Detail: "127.0.0.1:9090 → 127.0.0.1:50003 CLOSE-WAIT", ManagerOnly: true},
		{Name: "state", Kind: "memfd", Inode: memIno, Detail: "memfd:state"},
	}
	if !reflect.DeepEqual(web.FDStore, want) {
		t.Errorf("fd store:\n got %+v\nwant %+v", web.FDStore, want)
	}
	if !hasWarning(s, "web.service", "fdstore-pinned") {
		t.Errorf("no fdstore-pinned warning: %+v", s.Warnings)
	}
}

func hasWarning(s *Snapshot, unit, code string) bool {
	for _, w := range s.Warnings {
		if w.Unit == unit && w.Code == code {
			return true
		}
	}
	return false
}

func TestJoinWarnings(t *testing.T) {
	s := Join(fixture())
	for _, tt := range []struct{ unit, code string }{
		{"alt.socket", "duplicate-address"},
		{"alt.socket", "flush-pending"},
		{"web.socket", "leaked-listener"},
		{"idle.socket", "orphan-listener"},
		{"web.service", "fdstore-over-max"},
	} {
		if !hasWarning(s, tt.unit, tt.code) {
			t.Errorf("no %s warning for %s; warnings: %+v", tt.code, tt.unit, s.Warnings)
		}
	}
	if hasWarning(s, "web.socket", "orphan-listener") {
		t.Error("web.socket is served by web.service: not an orphan")
	}
}

func TestJoinEmptyAndNil(t *testing.T) {
	s := Join(JoinInput{})
	if s.Sockets == nil || s.Services == nil || s.Warnings == nil {
		t.Errorf("empty join has nil slices (JSON null): %+v", s)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("null")) {
		t.Errorf("empty snapshot JSON has nulls: %s", b)
	}
}

// TestTreeGolden pins the readable output of `fdtop snapshot`.
func TestTreeGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTree(&b, Join(fixture())); err != nil {
		t.Fatal(err)
	}
	golden(t, "tree.golden", b.Bytes())
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update once)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (-want +got):\n-%s\n+%s", name, want, got)
	}
}

// schemaSnapshot is the documented JSON schema of `fdtop snapshot --json`
// (docs/json.md): every field path fdtop promises, with its JSON type.
var schemaSnapshot = map[string]string{
	"manager":                              "object",
	"manager.scope":                        "string",
	"manager.version":                      "string",
	"sockets":                              "array",
	"sockets[].unit":                       "string",
	"sockets[].active_state":               "string",
	"sockets[].sub_state":                  "string",
	"sockets[].accept":                     "boolean",
	"sockets[].service":                    "string",
	"sockets[].listeners":                  "array",
	"sockets[].listeners[].type":           "string",
	"sockets[].listeners[].address":        "string",
	"sockets[].listeners[].inode":          "number",
	"sockets[].listeners[].backlog":        "number",
	"sockets[].listeners[].holders":        "array",
	"sockets[].listeners[].holders[].pid":  "number",
	"sockets[].listeners[].holders[].fd":   "number",
	"sockets[].listeners[].holders[].comm": "string",
	"sockets[].listeners[].holders[].unit": "string",
	"services":                             "array",
	"services[].unit":                      "string",
	"services[].active_state":              "string",
	"services[].sub_state":                 "string",
	"services[].main_pid":                  "number",
	"services[].n_restarts":                "number",
	"services[].fdstore_max":               "number",
	"services[].fdstore_count":             "number",
	"services[].fdstore":                   "array",
	"services[].fdstore[].name":            "string",
	"services[].fdstore[].kind":            "string",
	"services[].fdstore[].inode":           "number",
	"services[].fdstore[].inferred":        "boolean",
	"services[].fdstore[].detail":          "string",
	"services[].passed":                    "array",
	"services[].passed[].fd":               "number",
	"services[].passed[].name":             "string",
	"services[].passed[].kind":             "string",
	"services[].passed[].inode":            "number",
	"services[].passed[].detail":           "string",
	"services[].connections":               "array",
	"services[].connections[].pid":         "number",
	"services[].connections[].fd":          "number",
	"services[].connections[].inode":       "number",
	"services[].connections[].local":       "string",
	"services[].connections[].remote":      "string",
	"services[].connections[].state":       "string",
	"warnings":                             "array",
}

// schemaHandoff is the documented schema of a `fdtop watch --json` line of
// type "handoff".
var schemaHandoff = map[string]string{
	"time": "string", "unit": "string", "type": "string",
	"old_pid": "number", "new_pid": "number", "listeners_kept": "number", "listeners_replaced": "number",
	"fdstore_before": "number", "fdstore_after": "number", "connections_preserved": "number",
	"connections_dropped": "number", "no_main_pid_ms": "number",
}

// collectTypes walks decoded JSON and records the type of every path.
func collectTypes(prefix string, v any, out map[string]map[string]bool) {
	add := func(p, t string) {
		if out[p] == nil {
			out[p] = map[string]bool{}
		}
		out[p][t] = true
	}
	switch x := v.(type) {
	case map[string]any:
		if prefix != "" {
			add(prefix, "object")
		}
		for k, e := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			collectTypes(p, e, out)
		}
	case []any:
		add(prefix, "array")
		for _, e := range x {
			collectTypes(prefix+"[]", e, out)
		}
	case string:
		add(prefix, "string")
	case float64:
		add(prefix, "number")
	case bool:
		add(prefix, "boolean")
	case nil:
		add(prefix, "null")
	}
}

func checkSchema(t *testing.T, doc []byte, schema map[string]string) {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]bool{}
	collectTypes("", v, got)
	keys := make([]string, 0, len(schema))
	for k := range schema {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, path := range keys {
		types := got[path]
		if types == nil {
			t.Errorf("JSON lacks %s", path)
			continue
		}
		if len(types) != 1 || !types[schema[path]] {
			t.Errorf("%s has types %v, want %s", path, types, schema[path])
		}
	}
}

func TestSnapshotJSONSchema(t *testing.T) {
	in := fixture()
	in.Stores["web.service"] = dbusclient.FDStore{Service: "web.service", Max: 4, Count: 1, Listed: true, Entries: []dbusclient.StoreEntry{
		{Name: "state", Mode: 0o100777, Inode: memIno, Path: "/memfd:state (deleted)"},
	}}
	b, err := json.Marshal(Join(in))
	if err != nil {
		t.Fatal(err)
	}
	checkSchema(t, b, schemaSnapshot)
}

func TestHandoffEventJSONSchema(t *testing.T) {
	e := Event{Time: time.Now(), Unit: "web.service", Type: EventHandoff, Handoff: &Handoff{OldPID: 1, NewPID: 2, ListenersKept: 1}}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	checkSchema(t, b, schemaHandoff)
	var back Event
	if err := json.Unmarshal(b, &back); err != nil || back.Handoff == nil || back.Handoff.NewPID != 2 {
		t.Errorf("round trip = %+v, %v", back, err)
	}
}

// schemaAcceptHandoff is what a handoff of an Accept=yes socket unit adds.
var schemaAcceptHandoff = map[string]string{
	"accept": "object", "accept.instances": "number", "accept.instances_kept": "number",
	"accept.instances_restarted": "number", "accept.instances_stopped": "number", "accept.instances_unknown": "number",
	"listeners_replaced": "number", "connections_preserved": "number", "connections_dropped": "number",
	"probe.refused_for_ms": "number",
}

func TestAcceptHandoffEventJSONSchema(t *testing.T) {
	h := &Handoff{HandoffJob: "restart", ListenersReplaced: 1, ConnectionsPreserved: 2,
		Accept: &AcceptHandoff{Instances: 2, InstancesKept: 2}, Probe: &ProbeResult{Attempts: 9, Refused: 2, RefusedForMs: 51.2}}
	b, err := json.Marshal(Event{Time: time.Now(), Unit: "ssh.socket", Type: EventHandoff, Handoff: h})
	if err != nil {
		t.Fatal(err)
	}
	checkSchema(t, b, schemaAcceptHandoff)
	var back Event
	if err := json.Unmarshal(b, &back); err != nil || back.Handoff == nil || back.Accept == nil || *back.Accept != *h.Accept {
		t.Errorf("round trip = %+v, %v", back, err)
	}
	// A service's handoff has no "accept", and a probe that saw nothing
	// refused no "refused_for_ms": its JSON is as it was.
	b, err = json.Marshal(Event{Type: EventHandoff, Handoff: &Handoff{Probe: &ProbeResult{Attempts: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"accept"`) || strings.Contains(string(b), "refused_for_ms") {
		t.Errorf("a service's handoff: %s", b)
	}
}

// fakeSystemd and fakeKernel check what Builder asks for.
type fakeSystemd struct {
	state    *dbusclient.State
	patterns []string
}

func (f *fakeSystemd) Load(ctx context.Context, patterns []string, all bool) (*dbusclient.State, error) {
	f.patterns = patterns
	cp := *f.state
	cp.Services = append([]dbusclient.Service(nil), f.state.Services...)
	return &cp, nil
}
func (f *fakeSystemd) ListServices(ctx context.Context, names []string) ([]dbusclient.Service, error) {
	return nil, nil
}
func (f *fakeSystemd) FDStore(ctx context.Context, s string) (dbusclient.FDStore, error) {
	return dbusclient.FDStore{}, nil
}
func (f *fakeSystemd) Processes(ctx context.Context, unit string) ([]dbusclient.Process, error) {
	return []dbusclient.Process{{PID: mgrPID}}, nil
}
func (f *fakeSystemd) Version() string               { return "252" }
func (f *fakeSystemd) Features() dbusclient.Features { return dbusclient.Features{} }
func (f *fakeSystemd) Endpoint() dbusclient.Endpoint {
	return dbusclient.Endpoint{Address: "unix:path=/x"}
}

type fakeKernel struct {
	scan *procfs.Scan
	pids []int
	full bool
}

func (f *fakeKernel) Scan(ctx context.Context, opts procfs.ScanOptions) (*procfs.Scan, error) {
	f.full = true
	return f.scan, nil
}
func (f *fakeKernel) ScanPIDs(ctx context.Context, pids []int, opts procfs.ScanOptions) (*procfs.Scan, error) {
	f.pids = pids
	return f.scan, nil
}

func TestBuilderTargetedScan(t *testing.T) {
	in := fixture()
	sd := &fakeSystemd{state: in.State}
	k := &fakeKernel{scan: in.Scan}
	b := &Builder{Systemd: sd, Kernel: k, Scope: "user"}
	snap, err := b.Snapshot(context.Background(), SnapshotOptions{Units: []string{"web.service"}})
	if err != nil {
		t.Fatal(err)
	}
	if k.full {
		t.Error("a unit snapshot scanned the whole host")
	}
	if !reflect.DeepEqual(k.pids, []int{mgrPID, webPID}) {
		t.Errorf("scanned pids %v, want the manager's and web.service's", k.pids)
	}
	// Only the named unit: another service (idle.service here, every
	// fd-store service in a real Load) would come without its sockets, so
	// without its connections, and a watch would take that for its state.
	if len(snap.Services) != 1 || snap.Services[0].Unit != "web.service" {
		t.Errorf("services %v, want web.service only", serviceNames(snap))
	}
	if !reflect.DeepEqual(sd.patterns, []string{"web.socket", "web@*.socket"}) {
		t.Errorf("Load patterns %v, want the service's socket", sd.patterns)
	}
	if len(snap.Manager.Limits) == 0 {
		t.Error("a 252 manager without features has no limits noted")
	}
	byName := map[string][]string{
		"idle.socket":  {"idle.service"},
		"idle.service": {"idle.service"},
		"web.socket":   {"web.service"},
	}
	for unit, want := range byName {
		snap, err := b.Snapshot(context.Background(), SnapshotOptions{Units: []string{unit}})
		if err != nil {
			t.Fatal(err)
		}
		if got := serviceNames(snap); !reflect.DeepEqual(got, want) {
			t.Errorf("snapshot of %s has services %v, want %v", unit, got, want)
		}
	}
}

func serviceNames(s *Snapshot) []string {
	var out []string
	for _, svc := range s.Services {
		out = append(out, svc.Unit)
	}
	return out
}

// TestVerdictLine: what watch prints for a handoff (the dashboard's
// wording is ui's TestVerdict), PIDs included.
func TestVerdictLine(t *testing.T) {
	tests := []struct {
		name string
		h    Handoff
		want string
	}{
		{"handoff", Handoff{ListenersKept: 1, ConnectionsPreserved: 3, FDsCarried: 4, NoMainPIDMs: 11, OldPID: 10, NewPID: 20},
			"✓ listener kept · 3/3 connections preserved · 4 fds carried · 0 refused · 11 ms without a main PID (pid 10 → 20)"},
		{"plain, no gap meter", Handoff{ListenersReplaced: 1, ConnectionsDropped: 4, NoMainPIDMs: 10, OldPID: 10, NewPID: 20},
			"✗ listener replaced · 0/4 connections preserved · 0 fds carried · refusals not measured (gap meter off) · 10 ms without a main PID (pid 10 → 20)"},
		{"plain, gap meter", Handoff{ListenersReplaced: 1, NoMainPIDMs: 6, OldPID: 10, NewPID: 20, Probe: &ProbeResult{Attempts: 57, Refused: 51, WorstConnectMs: 0.8}},
			"✗ listener replaced · no connections held by the unit · 0 fds carried · 51 refused · 6 ms without a main PID · probe 51/57 refused, worst connect 0.8 ms (pid 10 → 20)"},
		{"stop+start", Handoff{HandoffJob: "stop+start", ListenersKept: 1, StoreDiscarded: true, OldPID: 10, NewPID: 20},
			"✓ listener kept · no connections held by the unit · fd store discarded by the stop · 0 refused · 0 ms without a main PID (pid 10 → 20)"},
		{"stored listener", Handoff{ListenersKept: 1, ListenersFromStore: []string{"listener"}, ConnectionsDropped: 4, FDsCarried: 1, NoMainPIDMs: 9, OldPID: 10, NewPID: 20},
			"✗ listener kept (from the fd store) as \"listener\" · 0/4 connections preserved · 1 fd carried · 0 refused · 9 ms without a main PID (pid 10 → 20)"},
		{"two listeners, one stored", Handoff{ListenersKept: 2, ListenersFromStore: []string{"web"}, NoMainPIDMs: 9, OldPID: 10, NewPID: 20, FDsCarried: 1},
			"✓ 2 listeners kept (1 from the fd store: \"web\") · no connections held by the unit · 1 fd carried · 0 refused · 9 ms without a main PID (pid 10 → 20)"},
		{"stored listener, stop+start on 252", Handoff{HandoffJob: "stop+start", ListenersReplaced: 1, ConnectionsDropped: 3, FDStoreBefore: 1, StoreDiscarded: true, OldPID: 10, NewPID: 20},
			"✗ listener replaced · 0/3 connections preserved · fd store discarded (1 fd) · refusals not measured (gap meter off) · 0 ms without a main PID (pid 10 → 20)"},
		{"not root: nothing readable", Handoff{ListenersUnknown: 1, ConnectionsUnknown: true, FDsCarriedUnknown: true, FDStoreBefore: 3, NoMainPIDMs: 5, OldPID: 10, NewPID: 20},
			"! 1 listener not seen · connections unknown (not seen) · fds carried unknown (not readable) · refusals not measured (gap meter off) · 5 ms without a main PID (pid 10 → 20)"},
		{"not root: some connections", Handoff{ListenersKept: 1, ListenersUnknown: 1, ConnectionsPreserved: 2, ConnectionsUnknown: true, FDsCarried: 2, OldPID: 10, NewPID: 20},
			"! listener kept, 1 listener not seen · 2/2 seen connections preserved (others not seen) · 2 fds carried · refusals not measured (gap meter off) · 0 ms without a main PID (pid 10 → 20)"},
	}
	acc := func(a AcceptHandoff) *AcceptHandoff { return &a }
	tests = append(tests, []struct {
		name string
		h    Handoff
		want string
	}{
		{"Accept=yes restart", Handoff{HandoffJob: "restart", ListenersReplaced: 1, ConnectionsPreserved: 2, Accept: acc(AcceptHandoff{Instances: 2, InstancesKept: 2})},
			"! listener replaced · 2/2 instances kept their connections · refusals and time not listening unknown (gap meter off)"},
		{"Accept=yes, gap meter", Handoff{ListenersReplaced: 1, ConnectionsPreserved: 1, Accept: acc(AcceptHandoff{Instances: 1, InstancesKept: 1}),
			Probe: &ProbeResult{Attempts: 40, Refused: 2, RefusedForMs: 51.3, WorstConnectMs: 0.4}},
			"✗ listener replaced · 1/1 instances kept their connections · 2 refused · not listening ~51 ms · probe 2/40 refused, worst connect 0.4 ms"},
		{"Accept=yes, gap meter, one refusal", Handoff{ListenersReplaced: 1, Accept: acc(AcceptHandoff{}), Probe: &ProbeResult{Attempts: 2, Refused: 1, WorstConnectMs: 0.4}},
			"✗ listener replaced · no instances seen running before · 1 refused · not listening for a while (not timed) · probe 1/2 refused, worst connect 0.4 ms"},
		{"Accept=yes, gap meter saw nothing", Handoff{ListenersReplaced: 1, Accept: acc(AcceptHandoff{}), Probe: &ProbeResult{Attempts: 3, WorstConnectMs: 0.2}},
			"! listener replaced · no instances seen running before · 0 refused · no gap seen by the gap meter · probe 0/3 refused, worst connect 0.2 ms"},
		{"Accept=yes, restarted and stopped", Handoff{ListenersReplaced: 1, ConnectionsPreserved: 1, ConnectionsDropped: 1,
			Accept: acc(AcceptHandoff{Instances: 3, InstancesKept: 1, InstancesRestarted: 0, InstancesStopped: 2}), RefusedDelta: 1},
			"✗ listener replaced · 1/3 instances kept their connections, 2 stopped, 1 connection dropped · 1 refused · time not listening unknown (gap meter off)"},
		{"Accept=yes, not root", Handoff{ListenersUnknown: 1, ConnectionsUnknown: true, Accept: acc(AcceptHandoff{Instances: 2, InstancesUnknown: 2})},
			"! 1 listener not seen · 2 instances: connections not seen · refusals and time not listening unknown (gap meter off)"},
		{"Accept=yes, some not seen", Handoff{ListenersReplaced: 1, ConnectionsPreserved: 1, ConnectionsUnknown: true, Accept: acc(AcceptHandoff{Instances: 3, InstancesKept: 0, InstancesRestarted: 1, InstancesUnknown: 2})},
			"! listener replaced · 0/1 seen instances kept their connections (2 not seen), 1 restarted on the same connection · refusals and time not listening unknown (gap meter off)"},
	}...)
	for _, tt := range tests {
		if got := Verdict(tt.h); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
}

// TestListenerMatchesUnixKind: a unix Listen= entry matches only the
// socket of its type in the listening state (an unconnected one for
// datagrams), never an accepted connection bound to the same path.
func TestListenerMatchesUnixKind(t *testing.T) {
	unixSock := func(typ procfs.SockType, state procfs.SockState, peer uint64) procfs.Socket {
		return procfs.Socket{Inode: 1, Family: procfs.FamilyUnix, Type: typ, State: state, Path: "/run/x", PeerInode: peer}
	}
	tests := []struct {
		name   string
		listen string
		sock   procfs.Socket
		want   bool
	}{
		{"stream listener", "Stream", unixSock(procfs.TypeStream, procfs.StateListen, 0), true},
		{"stream connection on the path", "Stream", unixSock(procfs.TypeStream, procfs.StateEstablished, 9), false},
		{"seqpacket listener", "SequentialPacket", unixSock(procfs.TypeSeqPacket, procfs.StateListen, 0), true},
		{"seqpacket connection", "SequentialPacket", unixSock(procfs.TypeSeqPacket, procfs.StateEstablished, 9), false},
		{"stream listener for a seqpacket entry", "SequentialPacket", unixSock(procfs.TypeStream, procfs.StateListen, 0), false},
		{"datagram", "Datagram", unixSock(procfs.TypeDgram, procfs.StateClose, 0), true},
		{"connected datagram", "Datagram", unixSock(procfs.TypeDgram, procfs.StateEstablished, 9), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := listenerMatches(dbusclient.Listener{Type: tt.listen, Address: "/run/x"}, sockFD(3, 1), map[uint64]procfs.Socket{1: tt.sock})
			if got != tt.want {
				t.Errorf("listenerMatches(%s, %+v) = %v, want %v", tt.listen, tt.sock, got, tt.want)
			}
		})
	}
}

// TestParseInstanceName: both instance name forms, inet and unix, and
// names that are not instances of an Accept=yes socket.
func TestParseInstanceName(t *testing.T) {
	tests := []struct {
		unit string
		want InstanceName
		ok   bool
	}{
		{"echo@3-127.0.0.1:7-127.0.0.1:5000.service", InstanceName{Nr: 3, Local: "127.0.0.1:7", Remote: "127.0.0.1:5000"}, true},
		{"sshd@12-4097-10.0.0.1:22-10.0.0.9:51234.service", InstanceName{Nr: 12, Cookie: 4097, Local: "10.0.0.1:22", Remote: "10.0.0.9:51234"}, true},
		{"echo@0-1234-1000.service", InstanceName{Nr: 0}, true},
		{"echo@0-8193-1234-1000.service", InstanceName{Nr: 0, Cookie: 8193}, true},
		// Seen on sid (262): ssh.socket's instance, the cookie after the number.
		{"ssh@0-105317-127.0.0.1:22-127.0.0.1:51764.service", InstanceName{Nr: 0, Cookie: 105317, Local: "127.0.0.1:22", Remote: "127.0.0.1:51764"}, true},
		// Seen on trixie (257) and bookworm (252): no cookie.
		{"ssh@0-127.0.0.1:22-127.0.0.1:51764.service", InstanceName{Nr: 0, Local: "127.0.0.1:22", Remote: "127.0.0.1:51764"}, true},
		// 258+ IPv6 (no brackets), AF_UNIX with the peer's pidfd id, and
		// a unix peer in another namespace (systemd's instance_from_socket).
		{"echo@2-4100-::1:7-::1:40000.service", InstanceName{Nr: 2, Cookie: 4100, Local: "::1:7", Remote: "::1:40000"}, true},
		{"echo@5-8200-1234_99887-1000.service", InstanceName{Nr: 5, Cookie: 8200}, true},
		{"echo@6-8300-unknown.service", InstanceName{Nr: 6, Cookie: 8300}, true},
		{"echo@6-unknown.service", InstanceName{Nr: 6}, true},
		{"echo@6-x-unknown.service", InstanceName{}, false},
		{"getty@tty1.service", InstanceName{}, false},
		{"plain.service", InstanceName{}, false},
		{"x@a-b-c.service", InstanceName{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.unit, func(t *testing.T) {
			got, ok := ParseInstanceName(tt.unit)
			if ok != tt.ok || got != tt.want {
				t.Errorf("ParseInstanceName(%q) = %+v, %v; want %+v, %v", tt.unit, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestJoinStoreManagerOnlyBPF: a memfd in the store that no process but
// the manager holds is "held only by the manager" after a /proc pass; after
// the BPF pass, which lists only sockets of the processes outside the
// units, who else holds it is unknown and it is not said. A socket is
// said either way.
func TestJoinStoreManagerOnlyBPF(t *testing.T) {
	for _, tt := range []struct {
		source    string
		memfdOnly bool
	}{{procfs.HoldersProc, true}, {procfs.HoldersBPF, false}} {
		t.Run(tt.source, func(t *testing.T) {
			in := fixture()
			in.Scan.HoldersSource = tt.source
			for i := range in.Scan.Processes {
				p := &in.Scan.Processes[i]
				if p.PID != mgrPID {
					p.FDs = slices.DeleteFunc(slices.Clone(p.FDs), func(fd procfs.FD) bool { return fd.Inode == memIno })
				}
			}
			in.Stores["web.service"] = dbusclient.FDStore{Service: "web.service", Max: 4, Count: 2, Listed: true, Entries: []dbusclient.StoreEntry{
				{Name: "conn-9", Mode: 0o140777, Inode: pinned, Path: "socket:[1004]"},
				{Name: "state", Mode: 0o100777, Inode: memIno, Path: "/memfd:state (deleted)"},
			}}
			s := Join(in)
			for _, svc := range s.Services {
				if svc.Unit != "web.service" {
					continue
				}
				if len(svc.FDStore) != 2 || !svc.FDStore[0].ManagerOnly || svc.FDStore[1].ManagerOnly != tt.memfdOnly {
					t.Errorf("fd store %+v: want the socket held only by the manager, the memfd %v", svc.FDStore, tt.memfdOnly)
				}
			}
		})
	}
}

// TestJoinPreExecChild: a view that reads a service's new main process
// between systemd's fork and its exec sees a copy of the manager's
// descriptors (oracle seed 1 on 252: a connection to the manager's private
// bus was "stored" and "preserved"). None of it is the service's.
func TestJoinPreExecChild(t *testing.T) {
	for _, tt := range []struct {
		name, comm string
		cmdline    []string
		preExec    bool
	}{
		{"before systemd renames it", "systemd", []string{"/lib/systemd/systemd", "--user"}, true},
		{"renamed", "(web)", []string{"(web)"}, true},
		{"a service that runs another manager", "systemd", []string{"/lib/systemd/systemd", "--user", "--other"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := fixture()
			for i := range in.Scan.Processes {
				p := &in.Scan.Processes[i]
				switch p.PID {
				case mgrPID:
					p.Cmdline = []string{"/lib/systemd/systemd", "--user"}
				case webPID:
					// The manager's fork: its descriptors, its environment.
					p.PPID, p.Comm, p.Cmdline, p.Handoff = mgrPID, tt.comm, tt.cmdline, nil
					p.FDs = slices.Clone(in.Scan.Processes[0].FDs)
				}
			}
			s := Join(in)
			var web Service
			for _, svc := range s.Services {
				if svc.Unit == "web.service" {
					web = svc
				}
			}
			if len(web.Processes) != 1 || web.Processes[0].PreExec != tt.preExec {
				t.Fatalf("processes %+v: want pre_exec %v", web.Processes, tt.preExec)
			}
			if !tt.preExec {
				if len(web.Connections) == 0 {
					t.Errorf("a service's own process: connections %+v, want its own", web.Connections)
				}
				return
			}
			if len(web.Connections) != 0 || !web.ConnectionsUnknown {
				t.Errorf("connections %+v (unknown %v): want none claimed, unknown", web.Connections, web.ConnectionsUnknown)
			}
			if len(web.OwnListeners) != 0 {
				t.Errorf("own listeners %+v: want none", web.OwnListeners)
			}
			if len(web.FDStore) != 0 {
				t.Errorf("fd store %+v: nothing can be inferred from the manager's copy", web.FDStore)
			}
			if !web.PassedUnknown {
				t.Errorf("passed: want unknown")
			}
		})
	}
}
