package inspect

import (
	"fmt"
	"strings"

	"github.com/fdtop/fdtop/dbusclient"
)

// SocketSettings words the settings of a socket unit that came after
// systemd 254, one phrase each, as systemd names them: "poll limit 150
// per 2s", "PassFileDescriptorsToExec=yes", "DeferTrigger=yes (at most
// 20s)", "PassPIDFD=no", "AcceptFileDescriptors=yes". A setting the
// manager does not have is left out (it is unknown there, not off).
func SocketSettings(su SocketUnit) []string {
	var out []string
	if su.PollLimitIntervalUSec != nil || su.PollLimitBurst != nil {
		out = append(out, pollLimitWords(su))
	}
	if su.PassFDsToExec != nil {
		out = append(out, "PassFileDescriptorsToExec="+yesNoWord(*su.PassFDsToExec))
	}
	if su.DeferTrigger != "" {
		s := "DeferTrigger=" + su.DeferTrigger
		if su.DeferTrigger != "no" && su.DeferTriggerMaxUSec != nil {
			s += " (at most " + Timespan(*su.DeferTriggerMaxUSec) + ")"
		}
		out = append(out, s)
	}
	if su.PassPIDFD != nil {
		out = append(out, "PassPIDFD="+yesNoWord(*su.PassPIDFD))
	}
	if su.AcceptFDs != nil {
		out = append(out, "AcceptFileDescriptors="+yesNoWord(*su.AcceptFDs))
	}
	return out
}

// pollLimitWords words PollLimitIntervalSec=/PollLimitBurst=; a zero
// interval or burst turns the limit off.
func pollLimitWords(su SocketUnit) string {
	interval, burst := "unknown", "unknown"
	if su.PollLimitIntervalUSec != nil {
		if *su.PollLimitIntervalUSec == 0 {
			return "no poll limit"
		}
		interval = Timespan(*su.PollLimitIntervalUSec)
	}
	if su.PollLimitBurst != nil {
		if *su.PollLimitBurst == 0 {
			return "no poll limit"
		}
		burst = fmt.Sprint(*su.PollLimitBurst)
	}
	return "poll limit " + burst + " per " + interval
}

// SocketStateNote says what a socket unit's state means where systemd's
// own word needs it, "" elsewhere:
//   - SubState deferred (v258, DeferTrigger=): a client is waiting and
//     the start of its service is held back because it would stop an
//     active unit it conflicts with (systemd's socket_enter_deferred:
//     the lenient start job is "destructive"); it is retried whenever a
//     unit stops, and given up after DeferTriggerMaxSec= (the socket
//     fails);
//   - a listening socket whose listener has connections queued that
//     the manager does not act on, with a poll limit set: it may be
//     paused by that limit. systemd says nothing then (SubState stays
//     listening, and the sd-event line "entered rate limit state" is a
//     debug message that does not name the unit), so this is a guess
//     and says so; a queue seen at one instant may also just be a
//     client the manager is about to serve.
func SocketStateNote(su SocketUnit) string {
	switch su.SubState {
	case "deferred":
		s := "deferred: a client is waiting, but starting " + orNoneWord(su.Service) + " now would stop a unit it conflicts with, so the trigger waits for that unit to stop"
		if su.DeferTriggerMaxUSec != nil {
			s += " (at most " + Timespan(*su.DeferTriggerMaxUSec) + ")"
		}
		return s
	case "listening":
		if su.PollLimitIntervalUSec == nil || su.PollLimitBurst == nil || *su.PollLimitIntervalUSec == 0 || *su.PollLimitBurst == 0 {
			return ""
		}
		queued := uint32(0)
		for _, l := range su.Listeners {
			switch {
			case l.State == "LISTEN":
				queued += l.Backlog
			case l.RecvQ != nil && *l.RecvQ > 0:
				queued++
			}
		}
		if queued == 0 {
			return ""
		}
		return fmt.Sprintf("clients are queued at a listening socket: paused by its poll limit (%s)? systemd does not say", pollLimitWords(su))
	}
	return ""
}

// Timespan words a time in microseconds as systemctl show prints it for
// whole units ("2s", "1min 30s", "infinity", "0"); a fraction of a
// second is printed in ms and us.
func Timespan(usec uint64) string {
	if usec == dbusclient.USecInfinity {
		return "infinity"
	}
	if usec == 0 {
		return "0"
	}
	units := []struct {
		name string
		us   uint64
	}{
		{"y", 31557600 * 1e6}, {"month", 2629800 * 1e6}, {"w", 7 * 24 * 3600 * 1e6},
		{"d", 24 * 3600 * 1e6}, {"h", 3600 * 1e6}, {"min", 60 * 1e6}, {"s", 1e6},
		{"ms", 1e3}, {"us", 1},
	}
	var parts []string
	for _, u := range units {
		if usec >= u.us {
			parts = append(parts, fmt.Sprintf("%d%s", usec/u.us, u.name))
			usec %= u.us
		}
	}
	return strings.Join(parts, " ")
}

func yesNoWord(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orNoneWord(s string) string {
	if s == "" {
		return "its service"
	}
	return s
}
