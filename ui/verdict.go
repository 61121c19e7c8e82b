package ui

import (
	"fmt"
	"strings"

	"github.com/fdtop/fdtop/inspect"
)

// VerdictLevel grades a handoff.
type VerdictLevel int

// Verdict levels.
const (
	// VerdictGood: nothing refused, nothing dropped, listeners kept.
	VerdictGood VerdictLevel = iota
	// VerdictCaution: nothing observed lost, but a listener was replaced or
	// a probe connect failed otherwise than by refusal.
	VerdictCaution
	// VerdictBad: clients were refused or connections dropped.
	VerdictBad
)

// Glyph returns ✓, ! or ✗.
func (v VerdictLevel) Glyph() string {
	return [...]string{"✓", "!", "✗"}[v]
}

// Verdict summarises a handoff in one line, e.g. "✓ listener kept ·
// 12/12 connections preserved · 3 fds carried · 0 refused · 480 ms without
// a main PID".
func Verdict(h *inspect.Handoff) (VerdictLevel, string) {
	if h == nil {
		return VerdictCaution, "! no handoff data"
	}
	refused := h.RefusedDelta
	if h.Probe != nil && h.Probe.Refused > refused {
		refused = h.Probe.Refused
	}
	level := VerdictGood
	switch {
	case refused > 0 || h.ConnectionsDropped > 0:
		level = VerdictBad
	case h.ListenersReplaced > 0 || (h.Probe != nil && h.Probe.Failed > 0):
		level = VerdictCaution
	}
	parts := []string{listenerPhrase(h.ListenersKept, h.ListenersReplaced)}
	total := h.ConnectionsPreserved + h.ConnectionsDropped
	if total == 0 {
		parts = append(parts, "no connections to keep")
	} else {
		parts = append(parts, fmt.Sprintf("%d/%d connections preserved", h.ConnectionsPreserved, total))
	}
	parts = append(parts, plural(h.FDsCarried, "fd", "fds")+" carried")
	parts = append(parts, fmt.Sprintf("%d refused", refused))
	parts = append(parts, fmt.Sprintf("%d ms without a main PID", h.NoMainPIDMs))
	if p := h.Probe; p != nil {
		s := fmt.Sprintf("probe %d/%d refused", p.Refused, p.Attempts)
		if p.Failed > 0 {
			s += fmt.Sprintf(", %d failed", p.Failed)
		}
		parts = append(parts, s+fmt.Sprintf(", worst connect %.1f ms", p.WorstConnectMs))
	}
	return level, level.Glyph() + " " + strings.Join(parts, " · ")
}

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
