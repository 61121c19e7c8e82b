package ui

import (
	"github.com/fdtop/fdtop/inspect"
)

// VerdictLevel grades a handoff (inspect.Level).
type VerdictLevel = inspect.Level

// Verdict levels.
const (
	// VerdictGood: nothing refused, nothing dropped, listeners kept.
	VerdictGood = inspect.LevelGood
	// VerdictCaution: nothing observed lost, but a listener was replaced or
	// a probe connect failed otherwise than by refusal.
	VerdictCaution = inspect.LevelCaution
	// VerdictBad: clients were refused or connections dropped.
	VerdictBad = inspect.LevelBad
)

// Verdict grades a handoff and summarises it in one line, worded as
// watch and the JSON timeline word it (inspect.Summary: the PIDs are on
// the detail pane's next line).
func Verdict(h *inspect.Handoff) (VerdictLevel, string) {
	if h == nil {
		return VerdictCaution, "! no handoff data"
	}
	return inspect.Grade(*h), inspect.Summary(*h)
}
