package ui

import (
	"strings"
	"testing"

	"github.com/fdtop/fdtop/inspect"
)

// TestHeaderUnreadableOnlyWhereItMatters (issue 20, case 18): a process
// whose descriptors are not readable but that started before the manager
// (this machine's PID 1) holds nothing of it: no banner. One that may hold
// its descriptors is warned about, counted alone.
func TestHeaderUnreadableOnlyWhereItMatters(t *testing.T) {
	for _, tt := range []struct {
		name string
		host inspect.HostInfo
		want string
	}{
		{"before the manager", inspect.HostInfo{Unreadable: 1, UnreadableBeforeManager: 1, Root: true,
			UnreadableProcesses: []inspect.UnreadableProcess{{PID: 1, Comm: "process_api", BeforeManager: true}}}, ""},
		{"one of two may hold them", inspect.HostInfo{Unreadable: 2, UnreadableBeforeManager: 1, Root: true,
			UnreadableProcesses: []inspect.UnreadableProcess{{PID: 1, Comm: "process_api", BeforeManager: true}, {PID: 900, Comm: "x"}}},
			"⚠ 1 process not readable: holders and connections are incomplete (kernel-protected, even for root)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHeaderModel(DefaultStyles(), "", false, false)
			h.snap = &inspect.Snapshot{Host: tt.host}
			got := strings.Join(h.banners(), "\n")
			if got != tt.want {
				t.Errorf("banners %q, want %q", got, tt.want)
			}
		})
	}
}
