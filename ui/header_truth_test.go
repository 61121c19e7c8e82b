package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/fdtop/fdtop/inspect"
)

// TestHeaderSaysWhatIsUnknown: the header says when patterns matched no
// unit, and counts connections as a lower bound when some processes were
// not readable.
func TestHeaderSaysWhatIsUnknown(t *testing.T) {
	tests := []struct {
		name string
		snap *inspect.Snapshot
		want []string
	}{
		{"no match", &inspect.Snapshot{Manager: inspect.Manager{Scope: "system", Version: "252"}, Unmatched: []string{"journald"}},
			[]string{"no unit matches 'journald': patterns are shell globs on whole unit names (try '*journald*')"}},
		{"not root", &inspect.Snapshot{Manager: inspect.Manager{Scope: "system", Version: "252"},
			Services: []inspect.Service{{Unit: "dbus.service", ConnectionsUnknown: true}}},
			[]string{"≥0 conns (not all readable)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHeaderModel(DefaultStyles(), "", true, false)
			h.width = 200
			h.SetIndex(buildIndex(tt.snap, nil), time.Now())
			got := ansi.Strip(h.View())
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("header lacks %q:\n%s", w, got)
				}
			}
		})
	}
}

// TestDetailSaysWhatIsUnknown: the detail pane says a short fd store list
// is short, and what the kernel side could not read is unknown.
func TestDetailSaysWhatIsUnknown(t *testing.T) {
	svc := &inspect.Service{Unit: "j.service", ActiveState: "active", MainPID: 7, FDStoreMax: 10, FDStoreCount: 5, FDStoreIdentified: 2,
		FDStore:            []inspect.StoreEntry{{Name: "stored", Kind: "memfd", Inferred: true}, {Name: "stored", Kind: "pipe", Inferred: true}},
		PassedUnknown:      true,
		ConnectionsUnknown: true}
	sock := &inspect.SocketUnit{Unit: "j.socket", ActiveState: "active", Service: "j.service",
		Listeners: []inspect.Listener{{Type: "Stream", Address: "/run/j", InodeUnknown: true, HoldersPartial: true, Holders: []inspect.Holder{}}}}
	for _, tt := range []struct {
		selected string
		want     []string
		not      []string
	}{
		{"j.service", []string{"2 of 5 identified", "unknown: pid 7's environment is not readable", "their connections are not counted", "Connections (≥0)"}, []string{"LISTEN_FDS unset", "Connections (0)"}},
		{"j.socket", []string{"inode unknown", "held by: unknown (processes not readable)"}, []string{"not found in the kernel", "held by nobody"}},
	} {
		t.Run(tt.selected, func(t *testing.T) {
			d := newDetailModel(DefaultStyles())
			d.SetSize(120, 60)
			d.SetData(detailData{Group: &unitGroup{Sockets: []*inspect.SocketUnit{sock}, Service: svc, Name: "j.service"}, Selected: tt.selected})
			v := ansi.Strip(d.View())
			for _, w := range tt.want {
				if !strings.Contains(v, w) {
					t.Errorf("detail lacks %q:\n%s", w, v)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(v, n) {
					t.Errorf("detail says %q:\n%s", n, v)
				}
			}
		})
	}
}
