package inspect

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// TestDiffApply: an update carries only what changed, and applied to the
// old picture gives the new one.
func TestDiffApply(t *testing.T) {
	t0 := time.Unix(1000, 0).UTC()
	base := &Snapshot{
		Time:     t0,
		Manager:  Manager{Scope: "user", Version: "254"},
		Host:     HostInfo{Hostname: "h", ScanDuration: time.Millisecond},
		Sockets:  []SocketUnit{{Unit: "a.socket", Service: "a.service"}, {Unit: "b.socket"}},
		Services: []Service{{Unit: "a.service", MainPID: 10}, {Unit: "b.service", MainPID: 20}},
		Warnings: []Warning{},
	}
	clone := func(f func(s *Snapshot)) *Snapshot {
		b, _ := json.Marshal(base)
		var s Snapshot
		_ = json.Unmarshal(b, &s)
		s.Time = t0.Add(time.Second)
		f(&s)
		return &s
	}
	tests := []struct {
		name     string
		cur      *Snapshot
		changed  bool
		services []string
		removed  []string
		host     bool
	}{
		{"nothing but the scan time", clone(func(s *Snapshot) { s.Host.ScanDuration = 5 * time.Millisecond }), false, nil, nil, false},
		{"a main PID", clone(func(s *Snapshot) { s.Services[1].MainPID = 21 }), true, []string{"b.service"}, nil, false},
		{"a service gone", clone(func(s *Snapshot) { s.Services = s.Services[:1] }), true, nil, []string{"b.service"}, false},
		{"host unreadable count", clone(func(s *Snapshot) { s.Host.Unreadable = 3 }), true, nil, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, changed := Diff(base, tc.cur)
			if changed != tc.changed {
				t.Fatalf("changed = %v, want %v: %+v", changed, tc.changed, u)
			}
			var svcs []string
			for _, s := range u.Services {
				svcs = append(svcs, s.Unit)
			}
			if !reflect.DeepEqual(svcs, tc.services) || !reflect.DeepEqual(u.RemovedServices, tc.removed) || (u.Host != nil) != tc.host {
				t.Fatalf("update services %v removed %v host %v; want %v %v %v", svcs, u.RemovedServices, u.Host != nil, tc.services, tc.removed, tc.host)
			}
			if len(u.Sockets) != 0 {
				t.Errorf("unchanged sockets sent: %+v", u.Sockets)
			}
			got := u.Apply(base)
			want := *tc.cur
			if !tc.host {
				want.Host = base.Host // the scan time alone is not sent
			}
			if a, b := mustJSON(t, got), mustJSON(t, &want); a != b {
				t.Fatalf("applied:\n%s\nwant:\n%s", a, b)
			}
		})
	}
	// From nothing, the update is the whole picture.
	u, changed := Diff(nil, base)
	if !changed {
		t.Fatal("first update not a change")
	}
	if a, b := mustJSON(t, u.Apply(nil)), mustJSON(t, base); a != b {
		t.Fatalf("first update applied:\n%s\nwant:\n%s", a, b)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
