package inspect

import (
	"reflect"
	"strings"
	"testing"
)

// hostile is what a service can put in its STATUS=, its comm or a socket
// name: a title change, a screen wipe and colour, a C1 CSI, a bidi override.
const hostile = "\x1b]0;pwned-title\a\x1b[2J\x1b[31mRED\u009b1m\u202e\n"

// fill sets every string reachable from v to hostile, gives every slice
// two elements and every pointer a value.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(hostile)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := 0; i < v.Len(); i++ {
			fill(v.Index(i))
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Map:
		if v.Type().Key().Kind() == reflect.String || v.Type().Elem().Kind() == reflect.String {
			panic("fill: a map with strings: extend fill and ForTerminal")
		}
	}
}

// walkStrings calls f on every string reachable from v, with its path.
func walkStrings(v reflect.Value, path string, f func(path, s string)) {
	switch v.Kind() {
	case reflect.String:
		f(path, v.String())
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				walkStrings(v.Field(i), path+"."+v.Type().Field(i).Name, f)
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			walkStrings(v.Index(i), path+"[]", f)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			walkStrings(v.Elem(), path, f)
		}
	}
}

func unsafeForTerminal(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f || r == 0x202e })
}

// TestForTerminalCoversEveryString: every string field of a Snapshot and an
// Event, filled with escape sequences, comes out of ForTerminal escaped,
// and the original keeps its exact values (what JSON prints).
func TestForTerminalCoversEveryString(t *testing.T) {
	var snap Snapshot
	fill(reflect.ValueOf(&snap).Elem())
	var ev Event
	fill(reflect.ValueOf(&ev).Elem())
	for _, tt := range []struct {
		name      string
		orig, out any
	}{
		{"Snapshot", &snap, snap.ForTerminal()},
		{"Event", &ev, ev.ForTerminal()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			walkStrings(reflect.ValueOf(tt.out), tt.name, func(path, s string) {
				n++
				if unsafeForTerminal(s) {
					t.Errorf("%s = %q after ForTerminal: not sanitized", path, s)
				}
			})
			if n < 10 {
				t.Fatalf("only %d strings walked: fill or walkStrings is broken", n)
			}
			walkStrings(reflect.ValueOf(tt.orig), tt.name, func(path, s string) {
				if s != hostile {
					t.Errorf("%s = %q: ForTerminal changed the original", path, s)
				}
			})
		})
	}
	if (*Snapshot)(nil).ForTerminal() != nil {
		t.Error("nil snapshot: want nil")
	}
}

// TestForTerminalCleanSnapshotIsNotCopied: a snapshot with nothing to
// escape (the common case, redrawn every refresh) costs one allocation,
// its slices shared.
func TestForTerminalCleanSnapshotIsNotCopied(t *testing.T) {
	snap := Join(fixture())
	out := snap.ForTerminal()
	if &out.Services[0] != &snap.Services[0] || &out.Sockets[0].Listeners[0] != &snap.Sockets[0].Listeners[0] {
		t.Error("clean slices were copied")
	}
	if n := testing.AllocsPerRun(100, func() { snap.ForTerminal() }); n > 1 {
		t.Errorf("ForTerminal of a clean snapshot: %v allocations, want at most 1", n)
	}
}
