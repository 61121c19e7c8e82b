package ui

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/fdtop/fdtop/inspect"
)

// demoOrder is the order of the demo's modes on the scoreboard: the
// argument goes from refusing and dropping to losing nothing.
var demoOrder = []string{"demo-plain.service", "demo-activated.service", "demo-handoff.service", "demo-stored.service"}

// scoreboardServices lists the demo services of the counters in demoOrder,
// any others after them.
func scoreboardServices(demo map[string]DemoCounters) []string {
	var out, rest []string
	for _, s := range demoOrder {
		if _, ok := demo[s]; ok {
			out = append(out, s)
		}
	}
	for s := range demo {
		known := false
		for _, k := range demoOrder {
			known = known || k == s
		}
		if !known {
			rest = append(rest, s)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// scoreboardExplain is what the explain overlay says about the scoreboard's
// rows.
const scoreboardExplain = "The last restart of each demo mode, side by side. refused: connects turned away while no one listened (the gap meter's probe and the socket's NRefused). dropped: client connections closed under them. preserved: connections that lived on in the new process, carried through the fd store. worst latency: the slowest reply the demo's clients have waited for since the demo started. no listener: the time without a listening socket, 0 when systemd kept it, otherwise at most the restart's duration."

// scoreboardModes is what the explain overlay says about each demo mode:
// the calls involved and what a restart costs its clients, in the
// verdicts' words.
var scoreboardModes = []string{
	"plain binds its own listener after start-up (no socket unit, no sd_listen_fds): listener replaced, connects refused during the gap, clients dropped.",
	"activated gets its listener from demo-activated.socket (sd_listen_fds: LISTEN_FDS=1, fd 3); systemd holds it across the restart: listener kept, 0 refused (connects wait in the backlog), clients dropped.",
	"handoff is activated plus FileDescriptorStoreMax=: on stop it sends each client connection with sd_notify FDSTORE=1 + FDNAME=conn-N, and its state in a memfd; the next process finds them by name (sd_listen_fds_with_names) and takes them out of the store (FDSTOREREMOVE=1): listener kept, 0 refused, connections preserved.",
	"stored has no socket unit: its first start binds the listener and stores it (sd_notify FDSTORE=1 + FDNAME=listener; FileDescriptorStoreMax=4), every later start gets it back by name (sd_listen_fds_with_names) and binds only if it is missing: listener kept (from the fd store), 0 refused, clients dropped (it stores no connections).",
	"A stop discards the store (systemd 252; 254+ unless FileDescriptorStorePreserve=yes, which the demo sets on 254+; it keeps the store only while the unit stays loaded): the next start binds anew, and connects are refused while it is stopped.",
}

// scoreboard writes the demo scoreboard: per mode the last handoff's
// refused, dropped and preserved connections, the clients' worst reply and
// the time without a listener, and a hint for what to press next.
func (b *detailBuilder) scoreboard(handoffs map[string]*inspect.Event, demo map[string]DemoCounters) {
	svcs := scoreboardServices(demo)
	if len(svcs) == 0 {
		return
	}
	b.section("Scoreboard (last restart of each mode)", scoreboardExplain)
	if b.explain {
		for _, p := range scoreboardModes {
			for i, l := range wrap(p, b.width-6) {
				mark := "» "
				if i > 0 {
					mark = "  "
				}
				b.add("    " + b.st.Detail.Explain.Render(mark+l))
			}
		}
	}
	// Four columns fit beside the unit list of a 120-column terminal when
	// the indent and the labels are cut a little.
	indent, label := 4, 15
	if indent+label+9*len(svcs) > b.width {
		indent, label = 2, 14
	}
	colW := max(min((b.width-indent-label)/len(svcs), 16), 9)
	// row lays out a row; style, if set, colours each cell (after padding,
	// so that the columns stay aligned).
	row := func(name string, cells []string, style func(i int) string) string {
		var s strings.Builder
		s.WriteString(strings.Repeat(" ", indent) + fmt.Sprintf("%-*s", label, name))
		for i, c := range cells {
			cell := fmt.Sprintf("%-*s", colW, truncateCell(c, colW-1))
			if style != nil {
				cell = b.st.verdictCell(style(i), cell)
			}
			s.WriteString(cell)
		}
		return s.String()
	}
	var heads []string
	for _, s := range svcs {
		heads = append(heads, strings.TrimSuffix(strings.TrimPrefix(s, "demo-"), ".service"))
	}
	b.add(b.st.Detail.Label.Render(row("", heads, nil)))
	cells := make([][]string, 6)
	levels := make([]string, len(svcs)) // the verdict cells' grades
	var todo []string
	for _, s := range svcs {
		ev := handoffs[s]
		if ev == nil || ev.Handoff == nil {
			todo = append(todo, s)
			for i := range cells {
				cells[i] = append(cells[i], "–")
			}
			cells[4][len(cells[4])-1] = latency(demo[s].MaxLatency)
			continue
		}
		h := ev.Handoff
		level := inspect.Grade(*h)
		levels[len(cells[0])] = level.Glyph()
		cells[0] = append(cells[0], level.Glyph())
		refused := h.RefusedDelta
		if h.Probe != nil {
			refused += h.Probe.Refused
		}
		switch {
		case h.Probe == nil && h.ListenersReplaced+h.ListenersUnknown > 0 && refused == 0:
			cells[1] = append(cells[1], "not measured")
		default:
			cells[1] = append(cells[1], fmt.Sprint(refused))
		}
		// Connections of processes that could not be read are not counted:
		// what was seen is a lower bound.
		total := h.ConnectionsPreserved + h.ConnectionsDropped
		switch {
		case h.ConnectionsUnknown && total == 0:
			cells[2] = append(cells[2], "unknown")
			cells[3] = append(cells[3], "unknown")
		case h.ConnectionsUnknown:
			cells[2] = append(cells[2], fmt.Sprintf("≥ %d", h.ConnectionsDropped))
			cells[3] = append(cells[3], fmt.Sprintf("%d/%d seen", h.ConnectionsPreserved, total))
		case total == 0:
			cells[2] = append(cells[2], "0")
			cells[3] = append(cells[3], "none held")
		default:
			cells[2] = append(cells[2], fmt.Sprint(h.ConnectionsDropped))
			cells[3] = append(cells[3], fmt.Sprintf("%d/%d", h.ConnectionsPreserved, total))
		}
		cells[4] = append(cells[4], latency(demo[s].MaxLatency))
		switch {
		case h.ListenersReplaced > 0:
			cells[5] = append(cells[5], fmt.Sprintf("≤ %d ms", h.DurationMs))
		case h.ListenersKept > 0 && h.ListenersUnknown == 0:
			cells[5] = append(cells[5], "0 (kept)")
		default:
			cells[5] = append(cells[5], "unknown")
		}
	}
	names := []string{"verdict", "refused", "dropped", "preserved", "worst latency", "no listener"}
	for i, n := range names {
		var style func(int) string
		if i == 0 {
			style = func(j int) string { return levels[j] }
		}
		b.add(row(n, cells[i], style))
	}
	hint := ""
	switch {
	case len(todo) == len(svcs):
		hint = "new here? restart the modes one by one, left to right: select a demo service (↑↓), press r, then y, and read its column; fdtop demo --tour guides you"
	case len(todo) > 0:
		hint = "next: select " + todo[0] + ", press r, then y"
	}
	if hint != "" {
		for _, l := range wrap(hint, max(b.width-6, 20)) {
			b.add("    " + b.st.Detail.Explain.Render(l))
		}
	}
	b.add("")
}

// verdictCell colours a scoreboard cell by the verdict glyph it belongs to
// ("" leaves it as it is).
func (st Styles) verdictCell(glyph, cell string) string {
	switch glyph {
	case inspect.LevelGood.Glyph():
		return verdictStyle(st, VerdictGood).Render(cell)
	case inspect.LevelBad.Glyph():
		return verdictStyle(st, VerdictBad).Render(cell)
	case inspect.LevelCaution.Glyph():
		return verdictStyle(st, VerdictCaution).Render(cell)
	}
	return cell
}

func latency(d time.Duration) string {
	if d == 0 {
		return "–"
	}
	return fmt.Sprintf("%d ms", d.Round(time.Millisecond).Milliseconds())
}

// truncateCell cuts a cell to n runes.
func truncateCell(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n <= 1 {
		return string(r[:max(n, 0)])
	}
	return string(r[:n-1]) + "…"
}
