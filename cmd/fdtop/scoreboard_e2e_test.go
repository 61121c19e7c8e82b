package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandboxtest"
)

// scoreCells returns the cells of the scoreboard row with label, read from
// the screen's detail pane (right of the unit list): each cell is what
// stands under a column's heading (plain, activated, ...), so cells that
// fill their column are read whole.
func scoreCells(screen, label string) []string {
	detail := func(l string) []rune {
		if i := strings.Index(l, "│"); i >= 0 {
			l = l[i+len("│"):]
		}
		return []rune(l)
	}
	var starts []int
	lines := strings.Split(screen, "\n")
	for _, l := range lines {
		d := detail(l)
		if f := strings.Fields(string(d)); len(f) == 0 || f[0] != "plain" || len(f) != len(demo.Modes) {
			continue
		}
		for i, r := range d {
			if r != ' ' && (i == 0 || d[i-1] == ' ') {
				starts = append(starts, i)
			}
		}
		break
	}
	if starts == nil {
		return nil
	}
	for _, l := range lines {
		d := detail(l)
		if !strings.HasPrefix(strings.TrimSpace(string(d)), label+" ") {
			continue
		}
		var cells []string
		for i, st := range starts {
			end := len(d)
			if i+1 < len(starts) {
				end = min(starts[i+1], len(d))
			}
			if st < end {
				cells = append(cells, strings.TrimSpace(string(d[st:end])))
			}
		}
		return cells
	}
	return nil
}

// TestDemoScoreboardE2E runs `fdtop demo` in a tmux terminal as a newcomer
// would: it follows the first-run hint, restarts the four modes one after
// the other (select, r, y) and reads the scoreboard: plain refuses and
// drops, activated refuses nothing but drops, handoff loses nothing,
// stored refuses nothing (its listener waits in the fd store) but drops.
// The explain overlay then annotates the scoreboard.
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
					return strings.Contains(s, "restart "+svc+": done") && len(c) == len(demo.Modes) && c[i] != "–"
				})
				// All four clients reconnect before the next mode's restart.
				term.waitFor(t, "the clients back on "+svc, func(s string) bool {
					return rowWith(s, svc, "4") != ""
				})
			}
			screen := term.capture(t)
			t.Logf("scoreboard:\n%s", screen)
			if strings.Contains(screen, "new here?") || strings.Contains(screen, "next: select") {
				t.Errorf("a hint is still shown after all four restarts")
			}
			num := func(row string, col int) int {
				c := scoreCells(screen, row)
				if len(c) != len(demo.Modes) {
					t.Fatalf("row %s: cells %q", row, c)
				}
				// "≥ N": connections fdtop could not see (the view before
				// the job older than the service's last sockets) make the
				// count a lower bound, said so.
				n, err := strconv.Atoi(strings.Fields(strings.TrimPrefix(c[col], "≥ "))[0])
				if err != nil {
					t.Fatalf("row %s column %d: %q is not a number", row, col, c[col])
				}
				return n
			}
			if got := strings.Join(scoreCells(screen, "verdict"), " "); got != "✗ ✗ ✓ ✗" && got != "✗ ✗ ! ✗" {
				t.Errorf("verdicts %q, want ✗ ✗ ✓ ✗ (plain, activated, handoff, stored; handoff ! where a connection was not seen)", got)
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
			if num("refused", 3) != 0 || num("dropped", 3) == 0 {
				t.Errorf("stored: refused %d, dropped %d; want 0 refused, some dropped", num("refused", 3), num("dropped", 3))
			}
			if p := scoreCells(screen, "preserved"); len(p) != 4 || strings.TrimSuffix(p[2], " seen") != "4/4" || strings.TrimSuffix(p[3], " seen") != "0/4" {
				t.Errorf("preserved %q, want handoff 4/4, stored 0/4", p)
			}
			if nl := scoreCells(screen, "no listener"); len(nl) != 4 || !strings.HasPrefix(nl[0], "≤") || nl[1] != "0 (kept)" || nl[2] != "0 (kept)" || nl[3] != "0 (kept)" {
				t.Errorf("no listener %q, want plain ≤ N ms, the others kept", nl)
			}
			if !strings.Contains(screen, `listener kept (from the fd store) as "listener"`) {
				t.Errorf("no verdict says demo-stored's listener was kept through the fd store")
			}
			term.send(t, "e")
			term.waitFor(t, "the explain overlay on the scoreboard", func(s string) bool {
				return strings.Contains(s, "» The last restart of each demo mode")
			})
			term.quit(t)
		})
	}
}

// TestDemoTourE2E runs `fdtop demo --tour` in a tmux terminal as a learner
// would: it reads each step's panel, presses what the panel says (select
// the named service, r, y), waits until the next step unlocks, and ends on
// the scoreboard with the four verdicts. x then closes the panel.
func TestDemoTourE2E(t *testing.T) {
	tm := newTmux(t)
	bin := sandboxtest.Fdtop(t)
	for _, v := range sandboxtest.Versions() {
		t.Run("systemd"+v.Name, func(t *testing.T) {
			sandboxtest.Require(t)
			args := []string{"demo", "--tour"}
			if v.Systemd != "" {
				args = append(args, "--systemd", v.Systemd)
			} else if v.Name == "254" {
				sandboxtest.Unavailable(t, "systemd 254 not in the cache: run demo/scripts/fetch-systemd-254.sh")
			}
			term := tm.start(t, bin, nil, args...)
			flat := func(s string) string { return strings.Join(strings.Fields(s), " ") }
			term.waitFor(t, "the tour's first step with every client connected", func(s string) bool {
				return strings.Contains(s, "Tour · step 1/4") && rowWith(s, "demo-stored.service", "4") != "" && rowWith(s, "demo-plain.service", "4") != ""
			})
			for i, m := range demo.Modes {
				// What the panel says to press, read from the screen.
				screen := term.waitFor(t, fmt.Sprintf("step %d/4", i+1), func(s string) bool {
					return strings.Contains(s, fmt.Sprintf("Tour · step %d/4", i+1))
				})
				want := "Select " + m.Service() + " (↑↓), press r, then y."
				if !strings.Contains(flat(screen), want) {
					t.Fatalf("step %d does not say %q:\n%s", i+1, want, screen)
				}
				term.waitFor(t, "the clients on "+m.Service(), func(s string) bool { return rowWith(s, m.Service(), "4") != "" })
				term.selectUnit(t, m.Service())
				term.send(t, "r")
				term.waitFor(t, "the confirmation for "+m.Service(), func(s string) bool {
					return strings.Contains(s, "restart "+m.Service()+"?")
				})
				term.send(t, "y")
				next := fmt.Sprintf("Tour · step %d/4", i+2)
				if i == len(demo.Modes)-1 {
					next = "Tour · done"
				}
				term.waitFor(t, "the verdict of "+m.Service()+" unlocking the next step", func(s string) bool {
					return strings.Contains(s, next) && strings.Contains(s, m.Short()+": ")
				})
			}
			screen := term.waitFor(t, "the scoreboard with four verdicts", func(s string) bool {
				c := scoreCells(s, "verdict")
				return len(c) == 4 && !slices.Contains(c, "–")
			})
			t.Logf("end of the tour:\n%s", screen)
			if got := strings.Join(scoreCells(screen, "verdict"), " "); got != "✗ ✗ ✓ ✗" && got != "✗ ✗ ! ✗" {
				t.Errorf("verdicts %q, want ✗ ✗ ✓ ✗ (plain, activated, handoff, stored; handoff ! where a connection was not seen)", got)
			}
			if !strings.Contains(flat(screen), "All four verdicts are in") {
				t.Errorf("the tour's last panel does not point at the scoreboard:\n%s", screen)
			}
			// demo-stored.service is selected: its detail says where its
			// listener lives, and its last handoff how it survived.
			if !strings.Contains(screen, "no socket unit; its listener is in its fd store") {
				t.Errorf("demo-stored.service's detail does not say its listener is in its fd store:\n%s", screen)
			}
			if !strings.Contains(flat(screen), `listener kept (from the fd store) as "listener"`) {
				t.Errorf("no verdict says demo-stored's listener was kept through the fd store:\n%s", screen)
			}
			term.send(t, "x")
			term.waitFor(t, "the tour panel closed", func(s string) bool {
				return !strings.Contains(s, "Tour ·") && strings.Contains(s, "Scoreboard")
			})
			term.quit(t)
		})
	}
}
