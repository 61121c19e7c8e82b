package inspect

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/fdtop/fdtop/internal/termsafe"
)

// WriteTree writes a snapshot as the readable tree of `fdtop snapshot`,
// every string from outside escaped for the terminal (ForTerminal).
func WriteTree(w io.Writer, s *Snapshot) error {
	s = s.ForTerminal()
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format+"\n", args...) }

	m := s.Manager
	head := fmt.Sprintf("%s manager, systemd %s", m.Scope, orDash(m.Version))
	if m.PID != 0 {
		head += fmt.Sprintf(" (pid %d)", m.PID)
	}
	if s.Host.Hostname != "" {
		head += " on " + s.Host.Hostname
	}
	p("%s", head)
	for _, l := range m.Limits {
		p("  note: %s", l)
	}
	if note, _ := UnreadableNote(s.Host); note != "" {
		p("  note: %s", note)
	}
	if note := NoMatchNote(s.Unmatched); note != "" {
		p("  note: %s", termsafe.String(note))
	}
	if s.Host.Partial {
		p("  note: socket details partial (an interrupted dump or a network namespace not entered)")
	}

	p("")
	p("sockets (%d)", len(s.Sockets))
	for _, su := range s.Sockets {
		line := fmt.Sprintf("  %s  %s/%s", su.Unit, su.ActiveState, su.SubState)
		if su.Service != "" {
			line += "  → " + su.Service
		}
		if su.Accept {
			line += fmt.Sprintf("  Accept=yes, %d connections, %d accepted", su.NConnections, su.NAccepted)
		}
		if su.NRefused > 0 {
			line += fmt.Sprintf("  %d refused", su.NRefused)
		}
		p("%s", line)
		if note := SocketStateNote(su); note != "" {
			p("    %s", note)
		}
		if set := SocketSettings(su); len(set) > 0 {
			p("    %s", strings.Join(set, " · "))
		}
		for _, l := range su.Listeners {
			inode := "not found"
			switch {
			case l.Inode != 0:
				inode = fmt.Sprintf("inode %d", l.Inode)
			case l.InodeUnknown:
				inode = "inode unknown (the manager's descriptors are not readable)"
			}
			p("    %s %s  %s%s", l.Type, l.Address, inode, ifSet(ListenerQueue(l) != "", "  "+ListenerQueue(l)))
			if l.HoldersPartial && len(l.Holders) == 0 {
				p("      held by: unknown (processes not readable)")
			}
			for _, h := range l.Holders {
				p("      held by pid %d fd %d %s (%s)%s", h.PID, h.FD, h.Comm, holderUnit(h), ifSet(h.Outside, "  ! outside the unit"))
			}
		}
		for _, in := range su.Instances {
			p("    instance %s  %s/%s  pid %d  %s ← %s%s", in.Unit, in.ActiveState, in.SubState, in.MainPID, orDash(in.Local), orDash(in.Remote), instanceHeld(in))
		}
	}

	p("")
	p("services (%d)", len(s.Services))
	for _, svc := range s.Services {
		line := fmt.Sprintf("  %s  %s/%s  main pid %s  restarts %d", svc.Unit, svc.ActiveState, svc.SubState, pidOrDash(svc.MainPID), svc.NRestarts)
		if svc.FDStoreMax > 0 {
			line += fmt.Sprintf("  fd store %d/%d", svc.FDStoreCount, svc.FDStoreMax)
			if svc.FDStorePreserve != "" {
				line += " (preserve=" + svc.FDStorePreserve + ")"
			}
			if svc.FDStoreUnidentified() > 0 {
				line += fmt.Sprintf(" · %d of %d identified", len(svc.FDStore), svc.FDStoreCount)
			}
		}
		p("%s", line)
		if svc.StatusText != "" {
			p("    status: %s", svc.StatusText)
		}
		if svc.PassedUnknown {
			p("    passed at start: unknown (pid %d not readable)", svc.MainPID)
		}
		for _, pf := range svc.Passed {
			p("    passed fd %d = \"%s\"  %s  %s", pf.FD, pf.Name, pf.Kind, pf.Detail)
		}
		if svc.ListenPIDFDID != 0 {
			p("    LISTEN_PIDFDID=%d", svc.ListenPIDFDID)
		}
		for _, e := range svc.FDStore {
			p("    stored %s  %s  %s%s%s", StoreName(e.Name, e.NameUnknown), e.Kind, e.Detail, ifSet(e.Inferred, "  (inferred)"), ifSet(e.ManagerOnly, "  (held only by the manager)"))
		}
		if svc.FDStoreUnknown {
			p("    stored: %d entries, unknown to this user (the manager refused to list them)", svc.FDStoreCount)
		} else if n := svc.FDStoreUnidentified(); n > 0 {
			p("    stored: %d of %d entries identified; %d more the manager does not list and /proc did not match", len(svc.FDStore), svc.FDStoreCount, n)
		}
		for _, l := range svc.OwnListeners {
			switch {
			case l.PassedBy != "":
				// Passed by a socket unit that does not show it: only the
				// service holds it now, and its restart closes it.
				p("    listener %s %s  inode %d%s  passed by %s, which does not hold it", l.Type, l.Address, l.Inode, ifSet(ListenerQueue(l) != "", "  "+ListenerQueue(l)), l.PassedBy)
			default:
				// Bound by the service itself: closed by every restart.
				p("    own listener %s %s  inode %d%s", l.Type, l.Address, l.Inode, ifSet(ListenerQueue(l) != "", "  "+ListenerQueue(l)))
			}
			for _, h := range l.Holders {
				p("      held by pid %d fd %d %s", h.PID, h.FD, h.Comm)
			}
		}
		if svc.ConnectionsUnknown {
			p("    connections: %d readable; processes not readable may hold more", len(svc.Connections))
		}
		for _, c := range svc.Connections {
			p("    connection pid %d fd %d  %s ← %s  %s  recv-q %d send-q %d%s", c.PID, c.FD, c.Local, c.Remote, c.State, c.RecvQ, c.SendQ, connectionHeld(c))
		}
		for _, pr := range svc.Processes {
			p("    process %d %s", pr.PID, truncate(pr.Cmdline, 100))
		}
	}

	if len(s.Warnings) > 0 {
		p("")
		p("warnings (%d)", len(s.Warnings))
		for _, wn := range s.Warnings {
			p("  ! %s [%s]: %s", wn.Unit, wn.Code, wn.Message)
		}
	}
	return bw.Flush()
}

// connectionHeld says who holds a connection outside its service, e.g.
// "  held by sshd pid 56 in session-3.scope"; "" for the service's own.
func connectionHeld(c Connection) string {
	if !c.Outside {
		return ""
	}
	return fmt.Sprintf("  held by %s pid %d in %s", c.Comm, c.PID, holderUnit(Holder{Unit: c.Unit}))
}

// instanceHeld says who holds an Accept=yes instance's connection when it
// is a process outside the instance's unit (a login moved it into
// session-N.scope), e.g. "  held by sshd pid 56 in session-3.scope".
func instanceHeld(in Instance) string {
	var parts []string
	for _, h := range in.Holders {
		if !h.Manager && h.Unit != in.Unit {
			parts = append(parts, fmt.Sprintf("%s pid %d in %s", h.Comm, h.PID, holderUnit(h)))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "  held by " + strings.Join(parts, ", ")
}

func holderUnit(h Holder) string {
	if h.Manager {
		return "the manager"
	}
	if h.Unit == "" {
		return "no unit"
	}
	return h.Unit
}

func ifSet(on bool, s string) string {
	if on {
		return s
	}
	return ""
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func pidOrDash(pid int) string {
	if pid == 0 {
		return "-"
	}
	return fmt.Sprint(pid)
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// FormatEvent renders a timeline event as one readable line, every string
// from outside escaped for the terminal (ForTerminal).
func FormatEvent(e Event) string {
	e = e.ForTerminal()
	var b strings.Builder
	b.WriteString(e.Time.Format("15:04:05.000"))
	b.WriteString("  ")
	if e.Unit != "" {
		b.WriteString(e.Unit)
		b.WriteString("  ")
	}
	if e.Type == EventHandoff && e.Handoff != nil {
		b.WriteString(Verdict(*e.Handoff))
		return b.String()
	}
	b.WriteString(string(e.Type))
	if m := Describe(e); m != "" {
		b.WriteString(": ")
		b.WriteString(m)
	}
	return b.String()
}

// Describe says an event in words, from its data: the one place the
// timeline, `fdtop watch` and the JSON message get them from. An event
// recorded before its data had fields keeps the words it was recorded with.
func Describe(e Event) string {
	job := "job" // its type unknown (gone before it was read)
	if e.Job != "" {
		job = e.Job + " job"
	}
	switch e.Type {
	case EventJobStarted:
		if e.JobID == 0 {
			break
		}
		return fmt.Sprintf("%s %d queued", job, e.JobID)
	case EventJobFinished:
		if e.JobID == 0 {
			break
		}
		return fmt.Sprintf("%s %d %s", job, e.JobID, e.Result)
	case EventState:
		switch {
		case e.ActiveState != "" && e.SubState != "":
			return e.ActiveState + " (" + e.SubState + ")"
		case e.ActiveState != "" || e.SubState != "":
			return e.ActiveState + e.SubState
		}
	case EventMainPID:
		switch {
		case e.PID == 0 && e.PrevPID != 0:
			return fmt.Sprintf("main process %d gone", e.PrevPID)
		case e.PID != 0 && e.PrevPID != 0:
			return fmt.Sprintf("main PID %d → %d", e.PrevPID, e.PID)
		case e.PID != 0:
			return fmt.Sprintf("main PID %d", e.PID)
		}
	case EventFDPassed:
		if e.PID == 0 {
			break
		}
		return fmt.Sprintf("pid %d got fd %d = %q (%s)", e.PID, e.FD, e.Name, strings.TrimSpace(e.Kind+" "+e.Detail))
	case EventFDStored:
		if e.Name == "" && e.Inode == 0 {
			break
		}
		return fmt.Sprintf("%s stored: %s%s", StoreName(e.Name, e.NameUnknown), strings.TrimSpace(e.Kind+" "+e.Detail), ifSet(e.Inferred, " (inferred)"))
	case EventFDRemoved:
		if e.Name == "" && e.Inode == 0 {
			break
		}
		if e.Via == "taken" {
			return fmt.Sprintf("%s taken back by the service and removed (FDSTOREREMOVE)", StoreName(e.Name, e.NameUnknown))
		}
		return fmt.Sprintf("%s removed (FDSTOREREMOVE, or its peer hung up)", StoreName(e.Name, e.NameUnknown))
	case EventListenerKept:
		if e.Detail == "" {
			break
		}
		if e.Via == "fdstore" {
			return fmt.Sprintf("listener %s kept (from the fd store) as %q (inode %d)", e.Detail, e.Name, e.Inode)
		}
		return fmt.Sprintf("listener %s kept (inode %d)", e.Detail, e.Inode)
	case EventListenerReplaced:
		if e.Detail == "" {
			break
		}
		return fmt.Sprintf("listener %s replaced (inode %d → %d): closed and opened anew, so connects in between could be refused", e.Detail, e.PrevInode, e.Inode)
	case EventConnectionPreserved:
		switch e.Via {
		case "process":
			if e.PrevPID == e.PID && e.PrevFD == e.FD {
				// An Accept=yes instance that kept its connection.
				return fmt.Sprintf("connection from %s kept: still held by pid %d fd %d", e.Detail, e.PID, e.FD)
			}
			return fmt.Sprintf("connection from %s preserved: pid %d fd %d → pid %d fd %d", e.Detail, e.PrevPID, e.PrevFD, e.PID, e.FD)
		case "fdstore":
			return fmt.Sprintf("connection from %s preserved: held in the fd store", e.Detail)
		case "open":
			return fmt.Sprintf("connection from %s preserved: the socket is still open", e.Detail)
		}
	case EventConnectionDropped:
		if e.Detail == "" {
			break
		}
		return fmt.Sprintf("connection from %s dropped", e.Detail)
	case EventConnectionClosed:
		if e.Detail == "" {
			break
		}
		return fmt.Sprintf("connection from %s closed by its client, not dropped", e.Detail)
	case EventHandoff:
		if e.Handoff != nil {
			return Verdict(*e.Handoff)
		}
	case EventUnitNew:
		if e.Phase == "reload" {
			return "added by the reload"
		}
		return "loaded"
	case EventUnitRemoved:
		if e.Phase == "reload" {
			return "gone after the reload"
		}
		return "unloaded"
	case EventReloading:
		switch e.Phase {
		case "started":
			return "reloading"
		case "finished":
			if e.UnitsAdded+e.UnitsGone > 0 {
				return fmt.Sprintf("reload finished: %d units added, %d gone", e.UnitsAdded, e.UnitsGone)
			}
			return "reload finished"
		}
	case EventDisconnected:
		switch {
		case e.Dropped > 0:
			return fmt.Sprintf("%d property changes coalesced", e.Dropped)
		case e.Phase == "rescan":
			return "rescan failed: " + e.Error
		case e.Phase == "stopped":
			return "watch stopped: " + e.Error
		case e.Error != "":
			return "connection to the manager lost: " + e.Error + "; reconnecting"
		case e.Message == "":
			return "connection to the manager lost; reconnecting"
		}
	case EventReconnected:
		if e.Version != "" {
			return "reconnected to systemd " + e.Version
		}
		if e.Message == "" {
			return "reconnected"
		}
	}
	return e.Message
}

// Level grades a handoff.
type Level int

// The grades of a handoff.
const (
	// LevelGood: nothing refused, nothing dropped, listeners kept.
	LevelGood Level = iota
	// LevelCaution: nothing observed lost, but a listener was replaced (no
	// one measured the gap) or a probe connect failed otherwise than by
	// refusal.
	LevelCaution
	// LevelBad: clients were refused or connections dropped.
	LevelBad
)

// Glyph returns ✓, ! or ✗.
func (l Level) Glyph() string {
	return [...]string{"✓", "!", "✗"}[l]
}

// Grade grades a handoff.
func Grade(h Handoff) Level {
	switch {
	case h.Failed || refusedTotal(h) > 0 || h.ConnectionsDropped > 0:
		return LevelBad
	case h.ListenersReplaced > 0 || (h.Probe != nil && h.Probe.Failed > 0):
		return LevelCaution
	case h.ListenersUnknown > 0 || h.ConnectionsUnknown || h.FDsCarriedUnknown:
		return LevelCaution // nothing seen lost, but not everything was seen
	}
	return LevelGood
}

// refusedTotal is what the manager counted refused plus what the gap meter
// saw refused.
func refusedTotal(h Handoff) int {
	n := h.RefusedDelta
	if h.Probe != nil {
		n += h.Probe.Refused
	}
	return n
}

// Verdict summarises a handoff in one line, its grade's glyph first, e.g.
// "✓ listener kept · 12/12 connections preserved · 3 fds carried · 0
// refused · 480 ms without a main PID (pid 812 → 907)": Summary and the
// PIDs. watch and the JSON timeline say it this way.
func Verdict(h Handoff) string {
	line := Summary(h)
	if h.Failed {
		if h.OldPID != 0 {
			line += fmt.Sprintf(" (pid %d, none after)", h.OldPID)
		}
		return line
	}
	if h.OldPID != 0 || h.NewPID != 0 {
		line += fmt.Sprintf(" (pid %d → %d)", h.OldPID, h.NewPID)
	}
	return line
}

// Summary is Verdict without the PIDs (the dashboard shows them apart).
func Summary(h Handoff) string {
	if h.Failed {
		return failedSummary(h)
	}
	if h.Accept != nil {
		return acceptSummary(h)
	}
	parts := []string{listenersPhrase(h)}
	parts = append(parts, connectionsPhrase(h))
	switch {
	case h.FDsCarriedUnknown && !h.StoreDiscarded:
		parts = append(parts, "fds carried unknown (not readable)")
	case h.StoreDiscarded && h.FDStoreBefore > 0:
		parts = append(parts, fmt.Sprintf("fd store discarded (%s)", plural(h.FDStoreBefore, "fd", "fds")))
	case h.StoreDiscarded:
		parts = append(parts, "fd store discarded by the stop")
	default:
		parts = append(parts, plural(h.FDsCarried, "fd", "fds")+" carried")
	}
	refused := refusedTotal(h)
	if h.Probe == nil && h.ListenersReplaced+h.ListenersUnknown > 0 && refused == 0 {
		// The manager counts no refusal on a listener it does not hold:
		// "0 refused" would claim what nothing measured.
		parts = append(parts, "refusals not measured (gap meter off)")
	} else {
		parts = append(parts, fmt.Sprintf("%d refused", refused))
	}
	if h.NoMainPIDUnknown {
		parts = append(parts, "time without a main PID not seen")
	} else {
		parts = append(parts, fmt.Sprintf("%d ms without a main PID", h.NoMainPIDMs))
	}
	if p := h.Probe; p != nil {
		probe := fmt.Sprintf("probe %d/%d refused", p.Refused, p.Attempts)
		if p.Failed > 0 {
			probe += fmt.Sprintf(", %d failed", p.Failed)
		}
		parts = append(parts, probe+fmt.Sprintf(", worst connect %.1f ms", p.WorstConnectMs))
	}
	return Grade(h).Glyph() + " " + strings.Join(parts, " · ")
}

// failedSummary is the Summary of a job that failed and left the service
// without a main process, e.g. "✗ restart failed (start-limit-hit) ·
// service failed · demo.socket failed · listener closed · 0/4 connections
// preserved · fd store lost (5 fds)": what happened and what it cost.
func failedSummary(h Handoff) string {
	job := h.HandoffJob
	if job == "" {
		job = "job"
	}
	head := job + " failed"
	if h.ServiceResult != "" && h.ServiceResult != "success" {
		head += " (" + h.ServiceResult + ")"
	}
	parts := []string{head}
	if h.ServiceState != "" {
		parts = append(parts, "service "+h.ServiceState)
	}
	for _, su := range h.SocketsFailed {
		parts = append(parts, su+" failed")
	}
	var ls []string
	if h.ListenersClosed > 0 {
		ls = append(ls, plural1(h.ListenersClosed, "listener", fmt.Sprintf("%d listeners", h.ListenersClosed))+" closed")
	}
	if h.ListenersKept+h.ListenersReplaced > 0 {
		ls = append(ls, listenerPhrase(h.ListenersKept, h.ListenersReplaced))
	}
	if h.ListenersUnknown > 0 {
		ls = append(ls, plural(h.ListenersUnknown, "listener", "listeners")+" not seen")
	}
	parts = append(parts, ls...)
	parts = append(parts, connectionsPhrase(h))
	switch {
	case h.FDStoreBefore > 0 && h.FDStoreAfter == 0:
		parts = append(parts, fmt.Sprintf("fd store lost (%d fds)", h.FDStoreBefore))
	case h.FDStoreAfter > 0:
		parts = append(parts, fmt.Sprintf("fd store kept (%d fds)", h.FDStoreAfter))
	}
	return LevelBad.Glyph() + " " + strings.Join(parts, " · ")
}

// connectionsPhrase says what became of the connections held before, those
// their clients closed too.
func connectionsPhrase(h Handoff) string {
	total := h.ConnectionsPreserved + h.ConnectionsDropped
	var phrase string
	switch {
	case total == 0 && h.ConnectionsUnknown:
		phrase = "connections unknown (not seen)"
	case total == 0 && h.ConnectionsClosed > 0:
		phrase = "no connections held by the unit"
	case total == 0:
		// Only the unit's processes were looked at: connections handed
		// to other units (a login session) are not among them.
		phrase = "no connections held by the unit"
	case h.ConnectionsUnknown:
		phrase = fmt.Sprintf("%d/%d seen connections preserved (others not seen)", h.ConnectionsPreserved, total)
	case h.ConnectionsDroppedAtLeast:
		// Clients dropped can reconnect and be dropped again before the
		// old process exits, unseen.
		phrase = fmt.Sprintf("%d/%d seen connections preserved (at least %d dropped)", h.ConnectionsPreserved, total, h.ConnectionsDropped)
	default:
		phrase = fmt.Sprintf("%d/%d connections preserved", h.ConnectionsPreserved, total)
	}
	if h.ConnectionsClosed > 0 {
		phrase += fmt.Sprintf(", %d closed by %s", h.ConnectionsClosed, plural1(h.ConnectionsClosed, "its client", "their clients"))
	}
	return phrase
}

// plural1 is one or many by n.
func plural1(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// listenersPhrase says what became of the listeners, those not seen too,
// and which kept ones came through the fd store: "listener kept (from the
// fd store) as "listener"".
func listenersPhrase(h Handoff) string {
	phrase := listenerPhrase(h.ListenersKept, h.ListenersReplaced)
	if n := len(h.ListenersFromStore); n > 0 {
		quoted := make([]string, n)
		for i, name := range h.ListenersFromStore {
			quoted[i] = strconv.Quote(name)
		}
		if h.ListenersKept == 1 && h.ListenersReplaced == 0 {
			phrase = "listener kept (from the fd store) as " + quoted[0]
		} else {
			phrase += fmt.Sprintf(" (%d from the fd store: %s)", n, strings.Join(quoted, ", "))
		}
	}
	if h.ListenersUnknown > 0 {
		unseen := plural(h.ListenersUnknown, "listener", "listeners") + " not seen"
		if h.ListenersKept+h.ListenersReplaced == 0 {
			return unseen
		}
		phrase += ", " + unseen
	}
	return phrase
}

// acceptSummary is the Summary of a restart of an Accept=yes socket unit,
// e.g. "! listener replaced · 2/2 instances kept their connections · 0
// refused · not listening ~20 ms · probe 2/31 refused, worst connect 0.4
// ms": its listeners, what became of the per-connection instances that ran
// before, and the gap where the gap meter measured it.
func acceptSummary(h Handoff) string {
	a := h.Accept
	parts := []string{listenersPhrase(h)}
	seen := a.Instances - a.InstancesUnknown
	inst := ""
	switch {
	case a.Instances == 0:
		inst = "no instances seen running before"
	case seen == 0:
		inst = fmt.Sprintf("%s: connections not seen", plural(a.Instances, "instance", "instances"))
	case a.InstancesUnknown > 0:
		inst = fmt.Sprintf("%d/%d seen instances kept their connections (%d not seen)", a.InstancesKept, seen, a.InstancesUnknown)
	default:
		inst = fmt.Sprintf("%d/%d instances kept their connections", a.InstancesKept, seen)
	}
	if a.InstancesRestarted > 0 {
		inst += fmt.Sprintf(", %d restarted on the same connection", a.InstancesRestarted)
	}
	if a.InstancesStopped > 0 {
		inst += fmt.Sprintf(", %d stopped", a.InstancesStopped)
	}
	if h.ConnectionsDropped > 0 {
		inst += fmt.Sprintf(", %s dropped", plural(h.ConnectionsDropped, "connection", "connections"))
	}
	parts = append(parts, inst)
	p := h.Probe
	switch {
	case p == nil && h.RefusedDelta > 0:
		parts = append(parts, fmt.Sprintf("%d refused", h.RefusedDelta), "time not listening unknown (gap meter off)")
	case p == nil && h.ListenersReplaced+h.ListenersUnknown > 0:
		parts = append(parts, "refusals and time not listening unknown (gap meter off)")
	case p == nil:
		parts = append(parts, "0 refused")
	case p.Refused > 0 && p.RefusedForMs > 0:
		parts = append(parts, fmt.Sprintf("%d refused", refusedTotal(h)), fmt.Sprintf("not listening ~%.0f ms", p.RefusedForMs))
	case p.Refused > 0:
		// One refused connect, or the meter stopped before one succeeded
		// again: a gap seen, its length not.
		parts = append(parts, fmt.Sprintf("%d refused", refusedTotal(h)), "not listening for a while (not timed)")
	default:
		// The manager closes and binds again within its job, maybe before
		// the gap meter's first connect: no refusal seen is no gap measured.
		parts = append(parts, fmt.Sprintf("%d refused", refusedTotal(h)), "no gap seen by the gap meter")
	}
	if p != nil {
		probe := fmt.Sprintf("probe %d/%d refused", p.Refused, p.Attempts)
		if p.Failed > 0 {
			probe += fmt.Sprintf(", %d failed", p.Failed)
		}
		parts = append(parts, probe+fmt.Sprintf(", worst connect %.1f ms", p.WorstConnectMs))
	}
	return Grade(h).Glyph() + " " + strings.Join(parts, " · ")
}

// listenerPhrase says what became of the listeners.
func listenerPhrase(kept, replaced int) string {
	switch {
	case kept == 0 && replaced == 0:
		return "no listener"
	case replaced == 0 && kept == 1:
		return "listener kept"
	case replaced == 0:
		return fmt.Sprintf("%d listeners kept", kept)
	case kept == 0 && replaced == 1:
		return "listener replaced"
	case kept == 0:
		return fmt.Sprintf("%d listeners replaced", replaced)
	}
	return fmt.Sprintf("%d listeners kept, %d replaced", kept, replaced)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// ListenerQueue says what waits on a listener, as the kernel reports it:
// "backlog N" (connections in a stream listener's accept queue), "recv-q
// N" (bytes of unread datagrams), or "" where there is no such figure (a
// FIFO, a listener not found in the kernel).
func ListenerQueue(l Listener) string {
	switch {
	case l.State == "LISTEN":
		return fmt.Sprintf("backlog %d", l.Backlog)
	case l.RecvQ != nil:
		return fmt.Sprintf("recv-q %d", *l.RecvQ)
	}
	return ""
}

// StoreName names an fd store entry: its FDNAME quoted, or "(name
// unknown)" where it was never seen (systemd before 254 does not list its
// store).
func StoreName(name string, unknown bool) string {
	if unknown && name == "" {
		return "(name unknown)"
	}
	return fmt.Sprintf("%q", name)
}

// UnreadableNote says which processes' descriptors could not be read and
// whether that matters: it does (matters) when one of them may hold the
// manager's descriptors or its services' (holders and connections are
// then incomplete), not when all of them started before the manager and
// so inherited none. "" when every process was read.
func UnreadableNote(h HostInfo) (note string, matters bool) {
	if h.Unreadable == 0 {
		return "", false
	}
	var names []string
	for _, p := range h.UnreadableProcesses {
		names = append(names, fmt.Sprintf("pid %d (%s)", p.PID, p.Comm))
	}
	who := ""
	if len(names) > 0 {
		who = ": " + strings.Join(names, ", ")
		if more := h.Unreadable - len(names); more > 0 {
			who += fmt.Sprintf(" and %d more", more)
		}
	}
	note = fmt.Sprintf("descriptors of %s not readable%s", plural(h.Unreadable, "process", "processes"), who)
	if h.Relevant() > 0 {
		return note, true
	}
	if h.Unreadable == 1 {
		return note + "; it started before the manager, so it holds none of its descriptors or its services'", false
	}
	return note + "; they started before the manager, so they hold none of its descriptors or its services'", false
}
