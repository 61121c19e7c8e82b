package dbusclient

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

func ptr[T any](v T) *T { return &v }

func TestDecodeSignal(t *testing.T) {
	unitPath := UnitPath("demo-handoff.service")
	at := time.Unix(100, 0)
	tests := []struct {
		name string
		sig  *dbus.Signal
		want Event
	}{
		{"UnitNew", &dbus.Signal{Name: ifaceManager + ".UnitNew", Body: []any{"a.socket", UnitPath("a.socket")}},
			UnitNew{Unit: "a.socket", Path: UnitPath("a.socket")}},
		{"UnitRemoved", &dbus.Signal{Name: ifaceManager + ".UnitRemoved", Body: []any{"a.socket", UnitPath("a.socket")}},
			UnitRemoved{Unit: "a.socket", Path: UnitPath("a.socket")}},
		{"JobNew", &dbus.Signal{Name: ifaceManager + ".JobNew", Body: []any{uint32(7), dbus.ObjectPath("/org/freedesktop/systemd1/job/7"), "a.service"}},
			JobNew{ID: 7, Job: "/org/freedesktop/systemd1/job/7", Unit: "a.service"}},
		{"JobRemoved", &dbus.Signal{Name: ifaceManager + ".JobRemoved", Body: []any{uint32(7), dbus.ObjectPath("/org/freedesktop/systemd1/job/7"), "a.service", "failed"}},
			JobRemoved{ID: 7, Job: "/org/freedesktop/systemd1/job/7", Unit: "a.service", Result: JobFailed}},
		{"Reloading", &dbus.Signal{Name: ifaceManager + ".Reloading", Body: []any{true}}, Reloading{Active: true}},
		{"bad body", &dbus.Signal{Name: ifaceManager + ".JobNew", Body: []any{"x"}}, nil},
		{"other signal", &dbus.Signal{Name: ifaceManager + ".StartupFinished"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decodeSignal(tt.sig); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decodeSignal = %#v, want %#v", got, tt.want)
			}
		})
	}

	// PropertiesChanged, as systemd sends it for a service restart.
	body := []any{ifaceService, map[string]dbus.Variant{
		"MainPID":                dbus.MakeVariant(uint32(4242)),
		"ExecMainStartTimestamp": dbus.MakeVariant(uint64(1700000000123456)),
		"StatusText":             dbus.MakeVariant("ready"),
		"NRestarts":              dbus.MakeVariant(uint32(2)),
		"SomethingElse":          dbus.MakeVariant([]string{"x"}),
	}, []string{"ExecStart"}}
	got := decodePropertiesChanged(unitPath, body, at)
	want := UnitChanged{
		Unit: "demo-handoff.service", Path: unitPath, Iface: IfaceService,
		Changes: UnitChanges{
			MainPID:       ptr(uint32(4242)),
			ExecMainStart: ptr(time.UnixMicro(1700000000123456)),
			StatusText:    ptr("ready"),
			NRestarts:     ptr(uint32(2)),
		},
		Invalidated: []string{"ExecStart"},
		At:          at,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PropertiesChanged:\n got %#v\nwant %#v", got, want)
	}
	unitBody := []any{ifaceUnit, map[string]dbus.Variant{
		"ActiveState": dbus.MakeVariant("deactivating"),
		"SubState":    dbus.MakeVariant("stop-sigterm"),
		"Job": dbus.MakeVariant(struct {
			ID   uint32
			Path dbus.ObjectPath
		}{9, "/org/freedesktop/systemd1/job/9"}),
	}, []string{}}
	ev := decodePropertiesChanged(unitPath, unitBody, at).(UnitChanged)
	if *ev.Changes.ActiveState != "deactivating" || *ev.Changes.SubState != "stop-sigterm" || *ev.Changes.JobID != 9 {
		t.Errorf("Unit PropertiesChanged decoded as %+v", ev.Changes)
	}
	if e := decodePropertiesChanged(managerPath, unitBody, at); e != nil {
		t.Errorf("PropertiesChanged on the manager path = %#v, want nil", e)
	}
	if e := decodePropertiesChanged(unitPath, []any{ifaceJob, map[string]dbus.Variant{}, []string{}}, at); e != nil {
		t.Errorf("PropertiesChanged on the Job interface = %#v, want nil", e)
	}
}

func TestDecodeStoreEntries(t *testing.T) {
	// As v254 answers DumpUnitFileDescriptorStore (see SYSTEMD.md).
	body := []any{[][]any{
		{"peer", uint32(49663), uint32(0), uint32(9), uint64(4235175), uint32(0), uint32(0), "socket:[4235175]", uint32(2)},
		{"state", uint32(33279), uint32(0), uint32(1), uint64(1074), uint32(0), uint32(0), "/memfd:hstate (deleted)", uint32(2)},
	}}
	got, err := decodeStoreEntries(body)
	if err != nil {
		t.Fatal(err)
	}
	want := []StoreEntry{
		{Name: "peer", Mode: 49663, Dev: DevNum{0, 9}, Inode: 4235175, Path: "socket:[4235175]", Flags: 2},
		{Name: "state", Mode: 33279, Dev: DevNum{0, 1}, Inode: 1074, Path: "/memfd:hstate (deleted)", Flags: 2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decodeStoreEntries:\n got %+v\nwant %+v", got, want)
	}
	if got[0].FileType() != "socket" || got[1].FileType() != "regular" {
		t.Errorf("FileType = %s, %s; want socket, regular", got[0].FileType(), got[1].FileType())
	}
}

func TestDecodeProcesses(t *testing.T) {
	// As godbus decodes a(sus) off the wire.
	body := []any{[][]any{{"/app.slice/x.service", uint32(12), "/bin/sleep 300"}}}
	got, err := decodeProcesses(body)
	if err != nil {
		t.Fatal(err)
	}
	want := []Process{{PID: 12, Cmdline: "/bin/sleep 300", CGroup: "/app.slice/x.service"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decodeProcesses = %+v, want %+v", got, want)
	}
}

func TestListenerNetwork(t *testing.T) {
	tests := []struct {
		l    Listener
		want string
	}{
		{Listener{"Stream", "127.0.0.1:80"}, "tcp"},
		{Listener{"Stream", "[::1]:80"}, "tcp"},
		{Listener{"Datagram", "0.0.0.0:53"}, "udp"},
		{Listener{"Stream", "/run/x.sock"}, "unix"},
		{Listener{"Stream", "@abstract"}, "unix"},
		{Listener{"Datagram", "/run/x.sock"}, "unixgram"},
		{Listener{"SequentialPacket", "/run/x.seq"}, "unixpacket"},
		{Listener{"FIFO", "/run/x.fifo"}, "fifo"},
		{Listener{"Netlink", "kobject-uevent 1"}, "netlink"},
		{Listener{"Stream", "vsock:2:1234"}, "vsock"},
	}
	for _, tt := range tests {
		if got := tt.l.Network(); got != tt.want {
			t.Errorf("%+v.Network() = %q, want %q", tt.l, got, tt.want)
		}
	}
}

func TestTemplateOf(t *testing.T) {
	tests := []struct{ in, want string }{
		{"echo@0-127.0.0.1:1-127.0.0.1:2.service", "echo@.service"},
		{"echo@.service", "echo@.service"},
		{"plain.service", ""},
	}
	for _, tt := range tests {
		if got := templateOf(tt.in); got != tt.want {
			t.Errorf("templateOf(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEndpoints(t *testing.T) {
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	got := Endpoints(Options{Scope: User})
	want := []Endpoint{
		{Address: "unix:path=/run/user/1000/bus", Bus: true},
		{Address: "unix:path=/run/user/1000/systemd/private"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("user endpoints = %+v, want %+v", got, want)
	}
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/tmp/x/systemd/private")
	if got := Endpoints(Options{Scope: User}); got[0] != (Endpoint{Address: "unix:path=/tmp/x/systemd/private"}) {
		t.Errorf("session address pointing at a private socket: %+v", got[0])
	}
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/tmp/sys")
	got = Endpoints(Options{Scope: System})
	last := got[len(got)-1]
	if last != (Endpoint{Address: "unix:path=/tmp/sys", Bus: true}) {
		t.Errorf("system endpoints = %+v, want the system bus last", got)
	}
	if got := Endpoints(Options{Address: "unix:abstract=x"}); len(got) != 1 || !got[0].Bus {
		t.Errorf("explicit address: %+v", got)
	}
}

func TestUnixSocketAddr(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"unix:path=/run/systemd/private", "/run/systemd/private", true},
		{"unix:abstract=/tmp/dbus-x,guid=1", "@/tmp/dbus-x", true},
		{"tcp:host=x,port=1;unix:path=/a%20b", "/a b", true},
		{"unixexec:path=ssh", "", false},
	}
	for _, tt := range tests {
		got, ok := unixSocketAddr(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("unixSocketAddr(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// TestSubscriptionCoalescing feeds a subscription directly: changes for one
// unit merge, but never across a job event, and job events all arrive.
func TestSubscriptionCoalescing(t *testing.T) {
	c := &Client{subs: map[*Subscription]struct{}{}, closed: make(chan struct{})}
	s := &Subscription{c: c, out: make(chan Event), index: map[changeKey]uint64{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
	p := UnitPath("a.service")
	change := func(state string) UnitChanged {
		return UnitChanged{Unit: "a.service", Path: p, Iface: IfaceUnit, Changes: UnitChanges{ActiveState: ptr(state)}}
	}
	s.push(JobNew{ID: 1, Unit: "a.service"})
	s.push(change("deactivating"))
	s.push(change("inactive"))
	s.push(UnitChanged{Unit: "a.service", Path: p, Iface: IfaceService, Changes: UnitChanges{MainPID: ptr(uint32(0))}})
	s.push(change("activating"))
	s.push(UnitChanged{Unit: "a.service", Path: p, Iface: IfaceUnit, Changes: UnitChanges{SubState: ptr("start")}})
	s.push(JobRemoved{ID: 1, Unit: "a.service", Result: JobDone})
	s.push(change("active"))
	go s.pump()
	defer s.stop()
	var got []string
	for range 5 {
		switch e := (<-s.out).(type) {
		case JobNew:
			got = append(got, "JobNew")
		case JobRemoved:
			got = append(got, "JobRemoved:"+string(e.Result))
		case UnitChanged:
			d := string(e.Iface) + ":"
			if e.Changes.ActiveState != nil {
				d += *e.Changes.ActiveState
			}
			if e.Changes.SubState != nil {
				d += "/" + *e.Changes.SubState
			}
			if e.Changes.MainPID != nil {
				d += "pid"
			}
			got = append(got, d)
		}
	}
	want := []string{"JobNew", "Unit:activating/start", "Service:pid", "JobRemoved:done", "Unit:active"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events (-want +got):\n want %v\n  got %v", want, got)
	}
}

func TestUnitErr(t *testing.T) {
	noSuch := dbus.Error{Name: errNameNoSuchUnit, Body: []any{"Unit x.service not loaded."}}
	err := unitErr("stop", "x.service", noSuch)
	if !errors.Is(err, ErrNoSuchUnit) || !strings.Contains(err.Error(), "not loaded") {
		t.Errorf("NoSuchUnit: %v", err)
	}
	for _, name := range []string{errNameAccessDenied, errNameInteractive} {
		err = unitErr("restart", "x.service", &dbus.Error{Name: name, Body: []any{"Interactive authentication required."}})
		var ad *AccessDeniedError
		if !errors.As(err, &ad) || ad.Unit != "x.service" || !strings.Contains(err.Error(), "run as root or check polkit") {
			t.Errorf("%s: %v", name, err)
		}
	}
	other := dbus.Error{Name: "org.freedesktop.systemd1.UnitMasked", Body: []any{"Unit x.service is masked."}}
	err = unitErr("start", "x.service", other)
	var ue *UnitError
	if !errors.As(err, &ue) || dbusErrorName(err) != other.Name {
		t.Errorf("other errors keep their D-Bus name: %v", err)
	}
	jf := &JobFailedError{Op: "start", Unit: "x.service", Result: JobFailed, UnitResult: "exit-code"}
	if got := jf.Error(); got != "start x.service: job failed (unit result: exit-code)" {
		t.Errorf("JobFailedError = %q", got)
	}
}
