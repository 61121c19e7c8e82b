package ui

import (
	"fmt"

	"github.com/charmbracelet/lipgloss"
	"strings"
	"time"

	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/termsafe"
)

// headerModel is the top of the screen: manager, counts, refresh state and
// banners when the picture is degraded.
type headerModel struct {
	st       Styles
	width    int
	title    string
	readOnly bool
	probe    bool

	snap         *inspect.Snapshot
	fleet        []HostPicture // a fleet's hosts (snap nil)
	counts       [4]int        // sockets, services, stored fds, connections
	connsPartial bool          // connections counted only where readable
	lastScan     time.Time
	scanErr      string
	disconnected bool
	reloading    bool
	now          time.Time
}

func newHeaderModel(st Styles, title string, readOnly, probe bool) headerModel {
	return headerModel{st: st, title: title, readOnly: readOnly, probe: probe}
}

// SetSize sets the width.
func (h *headerModel) SetSize(w int) { h.width = w }

// SetIndex takes the manager and the counts from a snapshot index.
func (h *headerModel) SetIndex(ix *snapIndex, at time.Time) {
	h.snap = ix.Snap
	h.fleet = ix.Fleet
	h.counts = [4]int{ix.NSockets, ix.NServices, ix.NStoreFDs, ix.NConns}
	h.connsPartial = ix.ConnsPartial
	h.lastScan = at
}

// banners returns the degraded-state lines.
func (h headerModel) banners() []string {
	var b []string
	if h.disconnected {
		b = append(b, "⚠ lost the manager connection: reconnecting…")
	}
	if h.reloading {
		b = append(b, "⚠ manager reloading (daemon-reload)")
	}
	if h.snap != nil {
		if note := inspect.NoMatchNote(h.snap.Unmatched); note != "" {
			b = append(b, "⚠ "+termsafe.String(note))
		}
	}
	if h.scanErr != "" {
		b = append(b, "⚠ scan failed: "+termsafe.String(h.scanErr))
	}
	if h.snap != nil {
		if _, matters := inspect.UnreadableNote(h.snap.Host); matters {
			// Only where it matters: a process that started before the
			// manager holds nothing of it (the text note still names it).
			hint := "run as root"
			if h.snap.Host.Root {
				hint = "kernel-protected, even for root"
			}
			b = append(b, fmt.Sprintf("⚠ %s not readable: holders and connections are incomplete (%s)", plural(h.snap.Host.Relevant(), "process", "processes"), hint))
		}
		if h.snap.Host.Partial {
			b = append(b, "⚠ socket table dump interrupted: connections are partial")
		}
		if h.snap.Host.Filling {
			b = append(b, "⚠ still filling: holders and connections outside the units not read yet (host-wide pass under way)")
		}
	}
	return b
}

// Height returns how many lines View draws.
func (h headerModel) Height() int { return 1 + len(h.banners()) }

// shortVersion cuts a distribution suffix: "254.26-1~bpo12+1" → "254.26".
func shortVersion(v string) string {
	if i := strings.IndexAny(v, "-~+ "); i > 0 {
		return v[:i]
	}
	return v
}

// View renders the header, one line plus a line per banner. The first
// line uses the longest wording that fits the width.
func (h headerModel) View() string {
	title := "fdtop"
	if h.title != "" {
		title += " " + h.title
	}
	sep := h.st.Header.Muted.Render(" · ")
	var candidates [][2]string
	if h.fleet != nil {
		c := h.counts
		states := map[HostState]int{}
		for _, hp := range h.fleet {
			states[hp.State]++
		}
		var st []string
		for _, s := range []HostState{HostOK, HostConnecting, HostLost, HostReconnecting, HostUnreachable, HostFailed} {
			if states[s] > 0 {
				st = append(st, fmt.Sprintf("%d %s", states[s], s))
			}
		}
		hosts := plural(len(h.fleet), "host", "hosts") + " (" + strings.Join(st, ", ") + ")"
		conns := plural(c[3], "conn", "conns")
		if h.connsPartial {
			conns = "≥" + conns
		}
		long := fmt.Sprintf("%s · %s · %s stored · %s", plural(c[0], "socket", "sockets"), plural(c[1], "service", "services"), plural(c[2], "fd", "fds"), conns)
		candidates = [][2]string{
			{"fleet · " + hosts + " · " + long, h.flags(" · ", "gap meter on", "gap meter off")},
			{hosts + " · " + long, h.flags(" ", "probe", "")},
			{hosts, h.flags("", "probe", "")},
		}
	} else if s := h.snap; s != nil {
		c := h.counts
		conns, connsShort := plural(c[3], "conn", "conns"), fmt.Sprintf("%d conn", c[3])
		switch {
		case h.connsPartial:
			// Not root: unreadable processes' connections are not counted.
			conns, connsShort = fmt.Sprintf("≥%s (not all readable)", conns), fmt.Sprintf("≥%d conn", c[3])
		case s.Host.Filling:
			// Those held outside the units are not read yet (the banner
			// says so).
			conns, connsShort = "≥"+conns, fmt.Sprintf("≥%d conn", c[3])
		}
		long := fmt.Sprintf("%s · %s · %s stored · %s", plural(c[0], "socket", "sockets"), plural(c[1], "service", "services"), plural(c[2], "fd", "fds"), conns)
		short := fmt.Sprintf("%d sock · %d svc · %d fds · %s", c[0], c[1], c[2], connsShort)
		host := ""
		if s.Host.Hostname != "" {
			host = " @ " + s.Host.Hostname
		}
		age := h.now.Sub(h.lastScan).Truncate(100 * time.Millisecond)
		scanLong := fmt.Sprintf("scan %s, %s ago", s.Host.ScanDuration.Round(time.Millisecond), age)
		scanShort := fmt.Sprintf("↻ %s", age)
		candidates = [][2]string{
			{s.Manager.Scope + " manager " + s.Manager.Version + host + " · " + long, scanLong + h.flags(" · ", "gap meter on", "gap meter off")},
			{s.Manager.Scope + " " + shortVersion(s.Manager.Version) + host + " · " + long, scanShort + h.flags(" · ", "gap meter on", "gap meter off")},
			{s.Manager.Scope + " " + shortVersion(s.Manager.Version) + " · " + short, scanShort + h.flags(" ", "probe", "")},
			{s.Manager.Scope + " · " + short, h.flags("", "probe", "")},
		}
	} else {
		candidates = [][2]string{{"connecting…", h.flags(" · ", "gap meter on", "gap meter off")}}
	}
	var line string
	for i, c := range candidates {
		l := h.st.Header.Title.Render(title) + sep + h.st.Header.Text.Render(c[0])
		r := h.st.Header.Muted.Render(c[1])
		if lipgloss.Width(l)+1+lipgloss.Width(r) <= h.width || i == len(candidates)-1 {
			line = fitLeftRight(l, r, h.width)
			break
		}
	}
	lines := []string{line}
	for _, b := range h.banners() {
		lines = append(lines, h.st.Header.Banner.Render(fit(b, h.width)))
	}
	return strings.Join(lines, "\n")
}

// flags returns the probe and read-only markers, prefixed by sep.
func (h headerModel) flags(sep, probeOn, probeOff string) string {
	var f []string
	if h.probe && probeOn != "" {
		f = append(f, probeOn)
	} else if !h.probe && probeOff != "" {
		f = append(f, probeOff)
	}
	if h.readOnly {
		f = append(f, "read-only")
	}
	if len(f) == 0 {
		return ""
	}
	return sep + strings.Join(f, " · ")
}

// plural counts n things: "1 fd", "3 fds".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
