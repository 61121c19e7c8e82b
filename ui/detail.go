package ui

import (
	"fmt"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/charmbracelet/x/ansi"
	"github.com/fdtop/fdtop/inspect"
)

// maxDetailRows caps the rows of one section (connections of a busy
// service) so that a refresh stays cheap.
const maxDetailRows = 500

// detailData is what the detail pane shows: the selected group and what
// the root knows about it.
type detailData struct {
	Group    *unitGroup
	Selected string
	// Host is the fleet host whose own row is selected (Group nil).
	Host    *HostPicture
	Manager inspect.Manager
	// Demo are the demo traffic counters by service, nil outside the demo.
	Demo map[string]DemoCounters
	// Handoff is the last handoff event of the group's service, if any.
	Handoff *inspect.Event
	// Job is the job running on a unit of the group ("" when none).
	Job string
	// Handoffs are the last handoff event of every unit, for the demo's
	// scoreboard (nil outside the demo).
	Handoffs map[string]*inspect.Event
	// Findings are fdtop doctor's findings about the group's units;
	// DoctorErr why the last doctor run failed; FixKey the key that runs
	// the trigger-limit fix ("" in read-only mode).
	Findings  []inspect.Finding
	DoctorErr string
	FixKey    string
	// DoctorFilling: the doctor's last run looked at a picture still
	// filling, so it did not check what depends on the holders outside
	// the units (inspect.FillingNote).
	DoctorFilling bool
	// Log is the followed units' last log lines.
	Log logData
	// Now is when the data was handed over (a reconnection's countdown).
	Now time.Time
	// Filling: the picture is still filling (inspect.HostInfo.Filling):
	// the processes outside the units were not read yet.
	Filling bool
	// Rollout is the last rollout started here, nil when none.
	Rollout *rolloutState
}

// detailModel is the detail pane of the selected unit.
type detailModel struct {
	st      Styles
	keys    DetailKeyMap
	data    detailData
	explain bool
	lines   []string
	scroll  scroller
	width   int
	height  int
	focused bool
}

func newDetailModel(st Styles) detailModel {
	return detailModel{st: st, keys: DefaultDetailKeyMap()}
}

// SetSize sets the pane's content size.
func (d *detailModel) SetSize(w, h int) {
	rewrap := w != d.width
	d.width, d.height = w, h
	d.scroll.height = h
	if rewrap {
		d.rebuild()
	}
	d.scroll.clamp(len(d.lines))
}

// SetData shows new data; the scroll position is kept for the same unit.
func (d *detailModel) SetData(data detailData) {
	if data.Selected != d.data.Selected {
		d.scroll.offset = 0
	}
	d.data = data
	d.rebuild()
}

// SetExplain turns the protocol annotations on or off.
func (d *detailModel) SetExplain(on bool) {
	d.explain = on
	d.rebuild()
}

// Update scrolls.
func (d detailModel) Update(msg tea.Msg) (detailModel, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return d, nil
	}
	n := len(d.lines)
	d.scroll.handleKey(km, d.keys.ScrollKeyMap, n, d.height)
	return d, nil
}

// Wheel scrolls by delta lines.
func (d *detailModel) Wheel(delta int) { d.scroll.scroll(delta, len(d.lines)) }

// View renders the visible lines.
func (d detailModel) View() string {
	end := min(d.scroll.offset+d.height, len(d.lines))
	return block(d.lines[min(d.scroll.offset, end):end], d.width, d.height)
}

// detailBuilder accumulates the pane's styled lines.
type detailBuilder struct {
	st      Styles
	width   int
	explain bool
	lines   []string
}

func (b *detailBuilder) add(s string) { b.lines = append(b.lines, s) }

func (b *detailBuilder) section(title string, explanation string) {
	b.add(b.st.Detail.Section.Render("  " + title))
	if b.explain && explanation != "" {
		for _, l := range wrap(explanation, b.width-6) {
			b.add("    " + b.st.Detail.Explain.Render("» "+l))
		}
	}
}

func (b *detailBuilder) muted(s string) { b.add(b.st.Detail.Muted.Render(s)) }

// hostLines describe a fleet host's connection: its state, and ssh's
// message when it is lost or failed.
func (b *detailBuilder) hostLines(h HostPicture, now time.Time) {
	b.section("Host "+h.Host, "")
	what := map[HostState]string{
		HostConnecting:   "connecting: its ControlMaster is up, its first picture is not in yet",
		HostOK:           "ok: its live model is followed over ssh",
		HostLost:         "lost: its connection ended",
		HostReconnecting: "lost, reconnecting (1 s, doubling up to 30 s between tries, never prompting)",
		HostUnreachable:  "unreachable: not reached since fdtop started, its units unknown; retried (1 s, doubling up to 30 s between tries, never prompting)",
		HostFailed:       "failed: it could not be reached, and a retry would not change why; it is not retried",
	}[h.State]
	if what == "" {
		what = string(h.State)
	}
	for _, l := range wrap(what, b.width-4) {
		b.add("    " + l)
	}
	if (h.State == HostReconnecting || h.State == HostUnreachable) && !h.Retry.IsZero() {
		if h.Retry.After(now) {
			b.add("    next try at " + h.Retry.Format("15:04:05"))
		} else {
			b.add("    trying since " + h.Retry.Format("15:04:05"))
		}
	}
	if h.Message != "" {
		for _, l := range wrap(h.Message, b.width-4) {
			b.add("    " + l)
		}
	}
	if h.Snapshot != nil && h.State != HostOK {
		b.muted("    its units below are its last picture, no longer live")
	}
	b.add("")
}

func (d *detailModel) rebuild() {
	b := &detailBuilder{st: d.st, width: d.width, explain: d.explain}
	if d.data.Demo != nil {
		b.scoreboard(d.data.Handoffs, d.data.Demo)
	}
	if d.data.Rollout != nil {
		b.rolloutLines(d.data.Rollout)
	}
	g := d.data.Group
	if g == nil && d.data.Host != nil {
		b.hostLines(*d.data.Host, d.data.Now)
	}
	if g == nil {
		b.muted("  select a unit in the list")
		d.lines = b.lines
		d.scroll.clamp(len(d.lines))
		return
	}
	if d.data.Job != "" {
		b.add(d.st.Status.Busy.Render("  ◐ " + d.data.Job))
	}
	if len(g.Warnings) > 0 {
		b.section("Warnings", "")
		for _, w := range g.Warnings {
			b.add("    " + d.st.Detail.Warning.Render("! "+w.Unit+": "+w.Message+" ("+w.Code+")"))
		}
	}
	b.findings(d.data.Findings, d.data.DoctorErr, d.data.FixKey, d.data.DoctorFilling)
	// The selected unit comes first, then the rest of its group.
	serviceFirst := g.Service != nil && g.Service.Unit == d.data.Selected
	if serviceFirst {
		d.serviceLines(b, g.Service, len(g.Sockets) > 0)
	}
	for _, so := range g.Sockets {
		if so.Unit == d.data.Selected {
			d.socketLines(b, so)
		}
	}
	for _, so := range g.Sockets {
		if so.Unit != d.data.Selected {
			d.socketLines(b, so)
		}
	}
	if g.Service != nil && !serviceFirst {
		d.serviceLines(b, g.Service, len(g.Sockets) > 0)
	}
	if g.Service == nil {
		d.handoffLines(b)
	}
	b.logSection(d.data.Log)
	d.lines = b.lines
	d.scroll.clamp(len(d.lines))
}

func unitHeading(st Styles, unit, active, sub, extra string) string {
	glyph, gs := stateGlyph(st, active)
	state := active
	if sub != "" {
		state += " (" + sub + ")"
	}
	s := gs.Render(glyph) + " " + st.Detail.Section.Render(unit) + "  " + state
	if extra != "" {
		s += st.Detail.Muted.Render("  " + extra)
	}
	return s
}

func (d *detailModel) socketLines(b *detailBuilder, so *inspect.SocketUnit) {
	extra := fmt.Sprintf("Accept=%s · %d accepted · %d connected · %d refused", yesNo(so.Accept), so.NAccepted, so.NConnections, so.NRefused)
	if so.FileDescriptorName != "" {
		extra += " · fd name " + so.FileDescriptorName
	}
	b.add(unitHeading(d.st, so.Unit, so.ActiveState, so.SubState, extra))
	if b.explain {
		for _, l := range wrap("A socket unit: systemd opens these sockets itself, before the service runs, and starts "+orDash(so.Service)+" when the first client arrives (socket activation).", b.width-6) {
			b.add("    " + d.st.Detail.Explain.Render("» "+l))
		}
	}
	if so.FlushPending {
		b.add("    " + d.st.Detail.Warning.Render("FlushPending=yes: queued connections are dropped when the service exits"))
	}
	if note := inspect.SocketStateNote(*so); note != "" {
		b.add("    " + d.st.Detail.Warning.Render(note))
	}
	for _, l := range packPhrases(inspect.SocketSettings(*so), " · ", b.width-6) {
		b.muted("    " + l)
	}
	b.section("Listeners", "The manager keeps its own copy of every listener (the systemd holder) and passes a duplicate to the service. Because that copy stays open, restarting the service does not close the listener: clients wait in the kernel's accept queue (backlog) instead of being refused.")
	if len(so.Listeners) == 0 {
		b.muted("    none")
	}
	for _, l := range so.Listeners {
		state := l.State
		inode := fmt.Sprintf("inode %d", l.Inode)
		switch {
		case l.InodeUnknown:
			inode, state = "inode unknown", "the manager's descriptors are not readable (not root)"
		case l.Inode == 0:
			state = "not found in the kernel"
		}
		facts := []string{inode, orDash(state)}
		if q := inspect.ListenerQueue(l); q != "" {
			facts = append(facts, q)
		}
		b.add(fmt.Sprintf("    %s %s  %s", l.Type, l.Address, d.st.Detail.Muted.Render(strings.Join(facts, " · "))))
		switch {
		case len(l.Holders) == 0 && l.HoldersPartial && d.data.Filling:
			b.muted("      held by: unknown (processes outside the units not read yet)")
		case len(l.Holders) == 0 && l.HoldersPartial:
			b.muted("      held by: unknown (processes not readable)")
		case len(l.Holders) == 0:
			b.muted("      held by nobody")
		}
		for _, h := range l.Holders {
			who := fmt.Sprintf("%s pid %d fd %d", h.Comm, h.PID, h.FD)
			switch {
			case h.Manager:
				who += " (the manager's copy)"
			case h.Outside:
				who = d.st.Detail.Warning.Render(who + " (outside " + orDash(h.Unit) + ": leaked?)")
			case h.Unit != "":
				who += " (" + h.Unit + ")"
			}
			b.add("      held by " + who)
		}
		switch {
		case len(l.Holders) > 0 && l.HoldersPartial && d.data.Filling:
			b.muted("      (processes outside the units not read yet: the host-wide pass is under way)")
		case len(l.Holders) > 0 && l.HoldersPartial:
			b.muted("      (processes not readable may hold it too)")
		}
	}
	if so.Accept {
		b.section(fmt.Sprintf("Instances (%d)", len(so.Instances)), "Accept=yes: systemd accepts each connection itself and starts one service instance per connection, passing the connected socket as fd 3.")
		for i, in := range so.Instances {
			if i == maxDetailRows {
				b.muted(fmt.Sprintf("    … %d more", len(so.Instances)-i))
				break
			}
			line := fmt.Sprintf("    %s  %s  pid %d  %s ↔ %s", in.Unit, in.ActiveState, in.MainPID, orDash(in.Local), orDash(in.Remote))
			for _, h := range in.Holders {
				if !h.Manager && h.Unit != in.Unit {
					line += fmt.Sprintf("  held by %s pid %d in %s", h.Comm, h.PID, orDash(h.Unit))
				}
			}
			b.add(line)
		}
	}
}

func (d *detailModel) serviceLines(b *detailBuilder, s *inspect.Service, hasSocket bool) {
	var extra []string
	if s.MainPID > 0 {
		extra = append(extra, fmt.Sprintf("pid %d", s.MainPID))
	} else {
		extra = append(extra, "no main PID")
	}
	if s.Type != "" {
		extra = append(extra, "Type="+s.Type)
	}
	if s.Result != "" && s.Result != "success" {
		extra = append(extra, "result "+s.Result)
	}
	extra = append(extra, fmt.Sprintf("%d restarts", s.NRestarts))
	if !s.StartedAt.IsZero() {
		extra = append(extra, "started "+s.StartedAt.Format("15:04:05"))
	}
	b.add(unitHeading(d.st, s.Unit, s.ActiveState, s.SubState, strings.Join(extra, " · ")))
	if s.StatusText != "" {
		b.add("    status: " + s.StatusText)
	}
	if !hasSocket {
		stored := storedListeners(*s)
		switch {
		case len(s.OwnListeners) > 0 && len(stored) == len(s.OwnListeners):
			b.add("    no socket unit; its listener is in its fd store")
		default:
			b.add("    " + d.st.Detail.Warning.Render("no socket unit: while it restarts nobody listens and clients are refused"))
		}
		for _, l := range s.OwnListeners {
			facts := []string{fmt.Sprintf("inode %d", l.Inode), l.State}
			if q := inspect.ListenerQueue(l); q != "" {
				facts = append(facts, q)
			}
			if name, ok := stored[l.Inode]; ok {
				facts = append(facts, "in the fd store as "+quoteName(name))
			}
			b.add(fmt.Sprintf("    own listener %s %s  %s", l.Type, l.Address, strings.Join(facts, " · ")))
		}
		if b.explain {
			text := "Without a socket unit the service opens its own listener; the listening socket dies with the process, so the port is closed between the old process exiting and the new one binding."
			if len(stored) > 0 {
				text = "Without a socket unit the service opened its own listener and stored it (sd_notify FDSTORE=1 + FDNAME=): the manager holds a copy, so the port stays open while the process restarts, and each new process gets it back by name (sd_listen_fds_with_names). A stop discards the store (before systemd 254, or unless FileDescriptorStorePreserve=yes and the unit stays loaded): the next start binds anew."
			}
			for _, l := range wrap(text, b.width-6) {
				b.add("    " + d.st.Detail.Explain.Render("» "+l))
			}
		}
	}

	b.section("Passed at start", "At start the service got these descriptors from fd 3 on, announced in LISTEN_FDS (how many), LISTEN_FDNAMES (their names) and LISTEN_PID (sd_listen_fds(3)): socket units' listeners first, fd store entries last.")
	switch {
	case s.PassedUnknown:
		b.muted(fmt.Sprintf("    unknown: pid %d's environment is not readable (not root)", s.MainPID))
	case len(s.Passed) == 0:
		b.muted("    nothing (LISTEN_FDS unset)")
	}
	for _, p := range s.Passed {
		b.add(fmt.Sprintf("    fd %-3d %-20s %-10s %s", p.FD, quoteName(p.Name), orDash(p.Kind), d.st.Detail.Muted.Render(p.Detail)))
	}
	if s.ListenPIDFDID != 0 {
		b.muted(fmt.Sprintf("    LISTEN_PIDFDID=%d (the pidfd id of pid %d, systemd 259+)", s.ListenPIDFDID, s.MainPID))
	}

	title := fmt.Sprintf("FD store %d/%d", s.FDStoreCount, s.FDStoreMax)
	switch {
	case s.FDStoreMax == 0 && s.FDStoreCount == 0:
		title = "FD store"
	case s.FDStorePreserve != "":
		title += " · FileDescriptorStorePreserve=" + s.FDStorePreserve
	case !d.data.Manager.FDStorePreserve:
		title += " · systemd < 254: discarded on stop"
	}
	b.section(title, "The fd store: descriptors the service handed to systemd with sd_notify(\"FDSTORE=1\", FDNAME=…) so they stay open while it restarts; the next process gets them back after its listeners. Entries marked inferred were reconstructed from the manager's descriptors (systemd before 254 cannot list them).")
	if s.FDStoreMax == 0 && len(s.FDStore) == 0 {
		b.muted("    disabled (FileDescriptorStoreMax=0)")
	} else if s.FDStoreCount == 0 && len(s.FDStore) == 0 {
		b.muted("    empty")
	}
	if s.FDStoreUnknown {
		b.muted(fmt.Sprintf("    %d entries, unknown to this user: the manager refused to list them", s.FDStoreCount))
	} else if n := s.FDStoreUnidentified(); n > 0 {
		b.muted(fmt.Sprintf("    %d of %d identified: %d more the manager does not list and /proc did not match", len(s.FDStore), s.FDStoreCount, n))
	}
	for i, e := range s.FDStore {
		if i == maxDetailRows {
			b.muted(fmt.Sprintf("    … %d more", len(s.FDStore)-i))
			break
		}
		line := fmt.Sprintf("    %-20s %-8s %s", inspect.StoreName(e.Name, e.NameUnknown), orDash(e.Kind), e.Detail)
		var marks []string
		if e.Inferred {
			marks = append(marks, "inferred")
		}
		if e.ManagerOnly {
			marks = append(marks, "held only by the manager")
		}
		if len(marks) > 0 {
			line += " " + d.st.Detail.Inferred.Render("["+strings.Join(marks, "] [")+"]")
		}
		b.add(line)
	}

	count := fmt.Sprint(len(s.Connections))
	if s.ConnectionsUnknown {
		count = "≥" + count // not root: unreadable processes not counted
	}
	b.section("Connections ("+count+")", "Connected sockets accepted from the service's listeners. Those its processes hold survive a restart only if the service puts them in the fd store before it exits; one held outside the service (a login session's sshd in session-N.scope, named with its unit) is not touched by it.")
	if s.ConnectionsUnknown {
		b.muted("    processes not readable (not root): their connections are not counted")
	}
	if len(s.Connections) > 0 {
		b.muted(fmt.Sprintf("    %-22s %-22s %-12s %7s %7s  %s", "LOCAL", "REMOTE", "STATE", "RECV-Q", "SEND-Q", "PID/FD"))
	}
	for i, c := range s.Connections {
		if i == maxDetailRows {
			b.muted(fmt.Sprintf("    … %d more", len(s.Connections)-i))
			break
		}
		line := fmt.Sprintf("    %-22s %-22s %-12s %7d %7d  %d/%d", c.Local, c.Remote, c.State, c.RecvQ, c.SendQ, c.PID, c.FD)
		if c.Outside {
			line += fmt.Sprintf("  %s in %s", c.Comm, orDash(c.Unit))
		}
		b.add(line)
	}

	b.section("Processes", "The processes in the unit's cgroup; MainPID is the one systemd tracks and passes the descriptors to.")
	if len(s.Processes) == 0 {
		b.muted("    none")
	}
	for i, p := range s.Processes {
		if i == maxDetailRows {
			b.muted(fmt.Sprintf("    … %d more", len(s.Processes)-i))
			break
		}
		mark := " "
		if p.PID == s.MainPID {
			mark = "*"
		}
		b.add(fmt.Sprintf("   %s%-7d %-15s %s", mark, p.PID, p.Comm, d.st.Detail.Muted.Render(p.Cmdline)))
	}

	if c, ok := d.data.Demo[s.Unit]; ok {
		b.section("Demo traffic", "The demo's clients: refused = connects that found nobody listening, dropped = connections closed under a client, counter resets = a connection whose server-side state was lost in the restart.")
		b.add(fmt.Sprintf("    %d/%d connected · sent %d · replies %d", c.Connected, c.Conns, c.Sent, c.Replies))
		line := fmt.Sprintf("    refused %d · dropped %d · counter resets %d", c.Refused, c.Dropped, c.CounterResets)
		if c.Refused > 0 || c.Dropped > 0 || c.CounterResets > 0 {
			line = d.st.Detail.Warning.Render(line)
		}
		b.add(line)
		b.muted(fmt.Sprintf("    last pid %d · max latency %s", c.LastPID, c.MaxLatency.Round(time.Microsecond*100)))
	}

	d.handoffLines(b)
}

// handoffLines show the last handoff of the selected group: a service's,
// or an Accept=yes socket unit's (a group without a service).
func (d *detailModel) handoffLines(b *detailBuilder) {
	if ev := d.data.Handoff; ev != nil && ev.Handoff != nil {
		b.section("Last handoff "+ev.Time.Format("15:04:05"), "What the last restart kept and lost: listener kept = the same socket inode before and after; preserved connections lived on in the new process; refused = clients turned away during the gap.")
		level, text := Verdict(ev.Handoff)
		b.add("    " + verdictStyle(d.st, level).Render(text))
		h := ev.Handoff
		if a := h.Accept; a != nil {
			// An Accept=yes socket unit: no main process, no store.
			b.muted(fmt.Sprintf("    Accept=yes · instances before %d, stopped %d · job %s took %d ms", a.Instances, a.InstancesStopped, orDash(h.HandoffJob), h.DurationMs))
		} else {
			b.muted(fmt.Sprintf("    pid %d → %d · fd store %d → %d · job %s took %d ms", h.OldPID, h.NewPID, h.FDStoreBefore, h.FDStoreAfter, orDash(h.HandoffJob), h.DurationMs))
		}
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func quoteName(s string) string {
	if s == "" {
		return "-"
	}
	return `"` + s + `"`
}

// storedListeners maps the service's own listeners that are in its fd
// store (listed there, or passed back to it under a store name) to their
// entry's name.
func storedListeners(s inspect.Service) map[uint64]string {
	out := map[uint64]string{}
	for _, l := range s.OwnListeners {
		for _, e := range s.FDStore {
			if e.Inode == l.Inode && l.Inode != 0 {
				out[l.Inode] = e.Name
			}
		}
		if _, ok := out[l.Inode]; ok || len(s.Sockets) > 0 {
			continue
		}
		for _, p := range s.Passed {
			if p.Inode == l.Inode && l.Inode != 0 {
				out[l.Inode] = p.Name
			}
		}
	}
	return out
}

// packPhrases joins phrases with sep into lines of at most w cells,
// never splitting a phrase (one longer than w gets a line of its own).
func packPhrases(phrases []string, sep string, w int) []string {
	var lines []string
	cur := ""
	for _, p := range phrases {
		switch {
		case cur == "":
			cur = p
		case ansi.StringWidth(cur+sep+p) <= w:
			cur += sep + p
		default:
			lines = append(lines, cur)
			cur = p
		}
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}
