package dbusclient

import (
	"fmt"
	"strings"

	"github.com/godbus/dbus/v5"
)

// D-Bus names of the systemd manager.
const (
	busName      = "org.freedesktop.systemd1"
	managerPath  = dbus.ObjectPath("/org/freedesktop/systemd1")
	unitPrefix   = "/org/freedesktop/systemd1/unit/"
	ifaceManager = "org.freedesktop.systemd1.Manager"
	ifaceUnit    = "org.freedesktop.systemd1.Unit"
	ifaceService = "org.freedesktop.systemd1.Service"
	ifaceSocket  = "org.freedesktop.systemd1.Socket"
	ifaceJob     = "org.freedesktop.systemd1.Job"
	ifaceProps   = "org.freedesktop.DBus.Properties"
)

// UnitPath returns the object path systemd gives the unit name: every byte
// that is not an ASCII letter or digit becomes _XX (lowercase hex), and the
// empty name becomes "_" (systemd's bus_label_escape). Prefer the paths
// ListUnitsByPatterns returns; this is for names from elsewhere.
func UnitPath(name string) dbus.ObjectPath {
	return dbus.ObjectPath(unitPrefix + escapeLabel(name))
}

// UnitNameFromPath is the inverse of UnitPath.
func UnitNameFromPath(p dbus.ObjectPath) (string, error) {
	label, ok := strings.CutPrefix(string(p), unitPrefix)
	if !ok || label == "" || strings.Contains(label, "/") {
		return "", fmt.Errorf("object path %q is not a unit path", p)
	}
	name, err := unescapeLabel(label)
	if err != nil {
		return "", fmt.Errorf("object path %q: %w", p, err)
	}
	return name, nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

const hexDigits = "0123456789abcdef"

func escapeLabel(s string) string {
	if s == "" {
		return "_"
	}
	var b strings.Builder
	b.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlnum(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func unescapeLabel(s string) (string, error) {
	if s == "_" {
		return "", nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("truncated escape at byte %d", i)
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("bad escape %q at byte %d", s[i:i+3], i)
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), nil
}

// exactPattern turns a unit name into a ListUnitsByPatterns pattern that
// matches it alone: the manager matches with FNM_NOESCAPE, and valid unit
// names hold no glob characters (only [A-Za-z0-9:_.\\@-]), so the name
// itself.
func exactPattern(name string) string { return name }
