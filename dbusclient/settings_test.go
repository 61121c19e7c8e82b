package dbusclient

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/godbus/dbus/v5"
)

// TestSocketSettingsDecode: each setting newer managers added is set from
// the manager's reply, and stays nil (unknown) where the manager answers
// that it has no such property, as 252 does; a setting that is there with
// a zero value is zero, not unknown.
func TestSocketSettingsDecode(t *testing.T) {
	missing := dbus.Error{Name: errNameUnknownProp, Body: []any{"Unknown property"}}
	u64 := func(v uint64) *uint64 { return &v }
	u32 := func(v uint32) *uint32 { return &v }
	b := func(v bool) *bool { return &v }
	s := func(v string) *string { return &v }
	tests := []struct {
		name    string
		replies map[string]any // property -> value; absent: UnknownProperty
		want    SocketSettings
	}{
		{"252: none", nil, SocketSettings{}},
		{"257", map[string]any{"PollLimitIntervalUSec": uint64(2000000), "PollLimitBurst": uint32(150), "PassFileDescriptorsToExec": false},
			SocketSettings{PollLimitIntervalUSec: u64(2000000), PollLimitBurst: u32(150), PassFDsToExec: b(false)}},
		{"262", map[string]any{"PollLimitIntervalUSec": uint64(3000000), "PollLimitBurst": uint32(7), "PassFileDescriptorsToExec": true,
			"DeferTrigger": "yes", "DeferTriggerMaxUSec": USecInfinity, "PassPIDFD": false, "AcceptFileDescriptors": true},
			SocketSettings{PollLimitIntervalUSec: u64(3000000), PollLimitBurst: u32(7), PassFDsToExec: b(true),
				DeferTrigger: s("yes"), DeferTriggerMaxUSec: u64(USecInfinity), PassPIDFD: b(false), AcceptFDs: b(true)}},
		{"no poll limit is zero, not unknown", map[string]any{"PollLimitIntervalUSec": uint64(0), "PollLimitBurst": uint32(0)},
			SocketSettings{PollLimitIntervalUSec: u64(0), PollLimitBurst: u32(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got SocketSettings
			r := newUnitRead("x.socket", "/org/freedesktop/systemd1/unit/x_2esocket", socketSettingProps(&got))
			for i, p := range r.props {
				if v, ok := tt.replies[p.name]; ok {
					r.calls[i].body = []any{dbus.MakeVariant(v)}
				} else {
					r.calls[i].err = missing
				}
			}
			gone, err := r.decode(&Client{})
			if err != nil || gone {
				t.Fatalf("decode: gone %v, %v", gone, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("settings\n got %s\nwant %s", fmtSettings(got), fmtSettings(tt.want))
			}
		})
	}
}

func fmtSettings(s SocketSettings) string {
	v := reflect.ValueOf(s)
	out := ""
	for i := 0; i < v.NumField(); i++ {
		out += v.Type().Field(i).Name + "="
		if f := v.Field(i); f.IsNil() {
			out += "nil "
		} else {
			out += fmt.Sprint(f.Elem().Interface()) + " "
		}
	}
	return out
}

// TestIntrospectedProps: the socket settings a manager has are read off
// its introspection XML, as sd-bus writes it.
func TestIntrospectedProps(t *testing.T) {
	xml := `<interface name="org.freedesktop.systemd1.Socket">
  <property name="PollLimitIntervalUSec" type="t" access="read">
  <property name="PollLimitBurst" type="u" access="read">
  <property name="PassFileDescriptorsToExec" type="b" access="read">
  <property name="DeferAcceptUSec" type="t" access="read">
</interface>`
	got := introspectedProps(xml, SocketSettingNames())
	want := []string{"PollLimitIntervalUSec", "PollLimitBurst", "PassFileDescriptorsToExec"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("introspectedProps = %q, want %q", got, want)
	}
	if got := introspectedProps(`<property name="DeferTriggerMaxUSec" type="t">`, []string{"DeferTrigger"}); got != nil {
		t.Errorf("a longer name is not the property: %q", got)
	}
}

// TestSocketSettingsLearned: where no socket unit could be introspected at
// connect, the first full read of a socket asks for every setting and
// notes which the manager has (257: three), so later reads ask for those
// only; a quick read (ListListeners) teaches nothing.
func TestSocketSettingsLearned(t *testing.T) {
	c := &Client{}
	u := unitStatus{Name: "x.socket", Path: "/org/freedesktop/systemd1/unit/x_2esocket", LoadState: "loaded", ActiveState: "active"}
	have := map[string]any{"PollLimitIntervalUSec": uint64(2000000), "PollLimitBurst": uint32(150), "PassFileDescriptorsToExec": false}
	answer := func(r *unitRead) {
		for i, p := range r.props {
			if p.found == nil {
				continue
			}
			if v, ok := have[p.name]; ok {
				r.calls[i].body = []any{dbus.MakeVariant(v)}
			} else {
				r.calls[i].err = dbus.Error{Name: errNameUnknownProp}
			}
		}
	}
	settingReads := func(r *unitRead) (n int) {
		for _, p := range r.props {
			if p.found != nil {
				n++
			}
		}
		return n
	}
	r, s := c.socketRead(u)
	if n := settingReads(r); n != 7 {
		t.Fatalf("first read asks for %d settings, want all 7", n)
	}
	r.props, r.calls = r.props[:2], r.calls[:2] // as ListListeners
	c.learnSocketSettings(r, &s.Settings)
	if c.Features().SocketSettingsKnown {
		t.Fatal("a quick read taught which settings the manager has")
	}
	r, s = c.socketRead(u)
	answer(r)
	// Decode only the settings (the base properties are not faked here).
	sr := &unitRead{name: r.name}
	for i, p := range r.props {
		if p.found != nil {
			sr.props, sr.calls = append(sr.props, p), append(sr.calls, r.calls[i])
		}
	}
	if gone, err := sr.decode(c); err != nil || gone {
		t.Fatalf("decode: %v %v", gone, err)
	}
	c.learnSocketSettings(sr, &s.Settings)
	f := c.Features()
	want := []string{"PollLimitIntervalUSec", "PollLimitBurst", "PassFileDescriptorsToExec"}
	if !f.SocketSettingsKnown || !reflect.DeepEqual(f.SocketSettings, want) {
		t.Fatalf("learned %v %q, want %q", f.SocketSettingsKnown, f.SocketSettings, want)
	}
	if r, _ := c.socketRead(u); settingReads(r) != 3 {
		t.Errorf("later reads ask for %d settings, want 3", settingReads(r))
	}
}
