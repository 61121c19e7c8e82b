package tmuxtest

import (
	"slices"
	"strings"
	"testing"
)

func TestListRows(t *testing.T) {
	tests := []struct {
		name     string
		screen   []string
		want     []string
		selected int
	}{
		{
			name: "list over the detail",
			screen: []string{
				"fdtop · user 254.26 · 2 sock · 3 svc · 5 fds · 12 conn                    ↻ 1.5s",
				"▸ Units · 5",
				"     UNIT                          PID CONNS     STORE LISTEN",
				" ●   demo-activated.socket                             127.0.0.1:7101",
				" ●   └ demo-activated.service      201     4",
				" ●   demo-handoff.socket                               127.0.0.1:7102",
				"›● ! └ demo-handoff.service        202     4    5/1024",
				" ●   demo-plain.service            200     4           no socket unit",
				"",
				"  Detail · demo-handoff.service",
				"● demo-handoff.service  active (running)  pid 202",
			},
			want:     []string{"demo-activated.socket", "demo-activated.service", "demo-handoff.socket", "demo-handoff.service", "demo-plain.service"},
			selected: 3,
		},
		{
			name: "a full list, the next pane's title right under it",
			screen: []string{
				"▸ Units · 2",
				"     UNIT                          PID CONNS     STORE LISTEN",
				"›●   demo-handoff.socket                               127.0.0.1:7102",
				" ●   └ demo-handoff.service        202     4    5/1024",
				"  Timeline · 3 events",
				" ●   not.a.row",
			},
			want:     []string{"demo-handoff.socket", "demo-handoff.service"},
			selected: 0,
		},
		{
			name: "list beside the detail",
			screen: []string{
				"▸ Units · 3                                              │  Detail · demo-plain.service",
				"     UNIT                          PID CONNS     STORE   │● demo-plain.service  active",
				" ●   demo-handoff.socket                                 │  Passed at start",
				" ●   └ demo-handoff.service        202     4    5/1024   │    fd 3 demo-handoff.socket",
				"›●   demo-plain.service            200     4             │  Timeline",
				"                                                         │    09:00 demo-handoff.service",
			},
			want:     []string{"demo-handoff.socket", "demo-handoff.service", "demo-plain.service"},
			selected: 2,
		},
		{
			name: "a fleet: hosts, their units, a host's note",
			screen: []string{
				"     UNIT                          PID CONNS     STORE LISTEN",
				" ●   a.example                unreachable",
				"›    ssh: connect to host a.example port 22: Connection refused",
				" ●   b.example                connected",
				" ●     web.socket                                     0.0.0.0:80",
				" ●     └ web.service               300     2",
				"",
			},
			want:     []string{"a.example", "ssh:", "b.example", "web.socket", "web.service"},
			selected: 1,
		},
		{
			name:     "no list",
			screen:   []string{"$ fdtop", "[1]+  Stopped                 fdtop"},
			selected: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			names, sel := ListRows(strings.Join(tt.screen, "\n") + "\n")
			if !slices.Equal(names, tt.want) || sel != tt.selected {
				t.Errorf("ListRows = %q, selected %d; want %q, selected %d", names, sel, tt.want, tt.selected)
			}
		})
	}
}

// TestSelectRow drives a list that moves its selection a key late, as a
// busy dashboard does: SelectRow must press each key once per step.
func TestSelectRow(t *testing.T) {
	names := []string{"a.socket", "└ a.service", "b.socket", "└ b.service", "c.service"}
	cursor, pending := 4, []string{}
	screen := func() string {
		lines := []string{"     UNIT                          PID CONNS     STORE LISTEN"}
		for i, n := range names {
			cur := " "
			if i == cursor {
				cur = "›"
			}
			lines = append(lines, cur+"●   "+n)
		}
		return strings.Join(lines, "\n") + "\n\n"
	}
	keys := 0
	send := func(k string) { keys++; pending = append(pending, k) }
	waitFor := func(what string, ok func(string) bool) string {
		for range 3 {
			if s := screen(); ok(s) {
				return s
			}
			// The dashboard handles the keys typed so far, one a read.
			if len(pending) > 0 {
				switch pending[0] {
				case "j":
					cursor = min(cursor+1, len(names)-1)
				case "k":
					cursor = max(cursor-1, 0)
				}
				pending = pending[1:]
			}
		}
		t.Fatalf("timed out waiting for %s; screen:\n%s", what, screen())
		return ""
	}
	SelectRow(t, "b.service", send, waitFor)
	if cursor != 3 || keys != 1 || len(pending) != 0 {
		t.Errorf("cursor on row %d after %d keys (%d unhandled), want row 3 after 1", cursor, keys, len(pending))
	}
	SelectRow(t, "a.socket", send, waitFor)
	if cursor != 0 || keys != 4 {
		t.Errorf("cursor on row %d after %d keys, want row 0 after 4", cursor, keys)
	}
}
