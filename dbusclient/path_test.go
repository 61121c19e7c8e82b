package dbusclient

import (
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
)

func TestUnitPath(t *testing.T) {
	long := strings.Repeat("x", 240) + ".service"
	tests := []struct {
		name string
		unit string
		want dbus.ObjectPath
	}{
		{"plain", "sshd.service", "/org/freedesktop/systemd1/unit/sshd_2eservice"},
		{"dash", "demo-handoff.socket", "/org/freedesktop/systemd1/unit/demo_2dhandoff_2esocket"},
		{"escaped dash", `a\x2db.socket`, "/org/freedesktop/systemd1/unit/a_5cx2db_2esocket"},
		{"instance", "getty@tty1.service", "/org/freedesktop/systemd1/unit/getty_40tty1_2eservice"},
		{"underscore", "a_b.service", "/org/freedesktop/systemd1/unit/a_5fb_2eservice"},
		{"colon", "x@0-1:2.service", "/org/freedesktop/systemd1/unit/x_400_2d1_3a2_2eservice"},
		{"empty", "", "/org/freedesktop/systemd1/unit/_"},
		{"long", long, dbus.ObjectPath("/org/freedesktop/systemd1/unit/" + strings.Repeat("x", 240) + "_2eservice")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := UnitPath(tt.unit)
			if got != tt.want {
				t.Errorf("UnitPath(%q) = %q, want %q", tt.unit, got, tt.want)
			}
			if !got.IsValid() {
				t.Errorf("UnitPath(%q) = %q is not a valid object path", tt.unit, got)
			}
			back, err := UnitNameFromPath(got)
			if err != nil || back != tt.unit {
				t.Errorf("UnitNameFromPath(%q) = %q, %v; want %q", got, back, err, tt.unit)
			}
		})
	}
}

func TestUnitNameFromPathErrors(t *testing.T) {
	for _, p := range []dbus.ObjectPath{
		"/org/freedesktop/systemd1",
		"/org/freedesktop/systemd1/unit/",
		"/org/freedesktop/systemd1/job/12",
		"/org/freedesktop/systemd1/unit/a_2",
		"/org/freedesktop/systemd1/unit/a_zz",
		"/org/freedesktop/systemd1/unit/a/b",
	} {
		if name, err := UnitNameFromPath(p); err == nil {
			t.Errorf("UnitNameFromPath(%q) = %q, want an error", p, name)
		}
	}
}

func FuzzUnitPath(f *testing.F) {
	for _, s := range []string{"", "a.service", `a\x2db.socket`, "x@y.service", "ü", "_", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		p := UnitPath(name)
		if !p.IsValid() {
			t.Fatalf("UnitPath(%q) = %q: invalid object path", name, p)
		}
		back, err := UnitNameFromPath(p)
		if err != nil || back != name {
			t.Fatalf("round trip %q -> %q -> %q, %v", name, p, back, err)
		}
	})
}
