package main

import (
	"strconv"
	"strings"
	"testing"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandboxtest"
)

// scoreCells returns the cells of the scoreboard row with label, read from
// the screen's detail pane (right of the unit list).
func scoreCells(screen, label string) []string {
	for _, l := range strings.Split(screen, "\n") {
		i := strings.Index(l, " "+label+" ")
		if i < 0 {
			continue
		}
		rest := strings.TrimSpace(l[i+len(label)+2:])
		var cells []string
		for _, c := range strings.Split(rest, "  ") {
			if c = strings.TrimSpace(c); c != "" && c != "│" {
				cells = append(cells, c)
			}
		}
		return cells
	}
	return nil
}

// TestDemoScoreboardE2E runs `fdtop demo` in a tmux terminal as a newcomer
// would: it follows the first-run hint, restarts the three modes one after
// the other (select, r, y) and reads the scoreboard: plain refuses and
// drops, activated refuses nothing but drops, handoff loses nothing. The
// explain overlay then annotates the scoreboard.
func TestDemoScoreboardE2E(t *testing.T) {
	tm := newTmux(t)
	bin := sandboxtest.Fdtop(t)
	for _, v := range sandboxtest.Versions() {
		t.Run("systemd"+v.Name, func(t *testing.T) {
			sandboxtest.Require(t)
			args := []string{"demo"}
			if v.Systemd != "" {
				args = append(args, "--systemd", v.Systemd)
			} else if v.Name == "254" {
				sandboxtest.Unavailable(t, "systemd 254 not in the cache: run demo/scripts/fetch-systemd-254.sh")
			}
			term := tm.start(t, bin, nil, args...)
			term.waitFor(t, "the scoreboard and the first-run hint", func(s string) bool {
				return strings.Contains(s, "Scoreboard") && strings.Contains(s, "new here?") &&
					rowWith(s, "demo-handoff.service", "4") != "" && rowWith(s, "demo-plain.service", "4") != ""
			})
			for i, m := range demo.Modes {
				svc := m.Service()
				term.selectUnit(t, svc)
				term.send(t, "r")
				term.waitFor(t, "the confirmation for "+svc, func(s string) bool {
					return strings.Contains(s, "restart "+svc+"?")
				})
				term.send(t, "y")
				term.waitFor(t, svc+"'s column on the scoreboard", func(s string) bool {
					c := scoreCells(s, "verdict")
					return strings.Contains(s, "restart "+svc+": done") && len(c) == 3 && c[i] != "–"
				})
				// All four clients reconnect before the next mode's restart.
				term.waitFor(t, "the clients back on "+svc, func(s string) bool {
					return rowWith(s, svc, "4") != ""
				})
			}
			screen := term.capture(t)
			t.Logf("scoreboard:\n%s", screen)
			if strings.Contains(screen, "new here?") || strings.Contains(screen, "next: select") {
				t.Errorf("a hint is still shown after all three restarts")
			}
			num := func(row string, col int) int {
				c := scoreCells(screen, row)
				if len(c) != 3 {
					t.Fatalf("row %s: cells %q", row, c)
				}
				n, err := strconv.Atoi(strings.Fields(c[col])[0])
				if err != nil {
					t.Fatalf("row %s column %d: %q is not a number", row, col, c[col])
				}
				return n
			}
			if got := scoreCells(screen, "verdict"); strings.Join(got, " ") != "✗ ✗ ✓" {
				t.Errorf("verdicts %q, want ✗ ✗ ✓ (plain, activated, handoff)", got)
			}
			if num("refused", 0) == 0 || num("dropped", 0) == 0 {
				t.Errorf("plain: refused %d, dropped %d; want both > 0", num("refused", 0), num("dropped", 0))
			}
			if num("refused", 1) != 0 || num("dropped", 1) == 0 {
				t.Errorf("activated: refused %d, dropped %d; want 0 refused, some dropped", num("refused", 1), num("dropped", 1))
			}
			if num("refused", 2) != 0 || num("dropped", 2) != 0 {
				t.Errorf("handoff: refused %d, dropped %d; want 0 and 0", num("refused", 2), num("dropped", 2))
			}
			if p := scoreCells(screen, "preserved"); len(p) != 3 || p[2] != "4/4" {
				t.Errorf("preserved %q, want handoff 4/4", p)
			}
			if nl := scoreCells(screen, "no listener"); len(nl) != 3 || !strings.HasPrefix(nl[0], "≤") || nl[1] != "0 (kept)" || nl[2] != "0 (kept)" {
				t.Errorf("no listener %q, want plain ≤ N ms, the others kept", nl)
			}
			term.send(t, "e")
			term.waitFor(t, "the explain overlay on the scoreboard", func(s string) bool {
				return strings.Contains(s, "» The last restart of each demo mode")
			})
			term.quit(t)
		})
	}
}
