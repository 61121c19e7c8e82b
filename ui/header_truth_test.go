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
