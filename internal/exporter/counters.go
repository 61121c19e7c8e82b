package exporter

import (
	"time"

	"github.com/fdtop/fdtop/inspect"
)

// Label values of fdtop_handoffs_total. "none" for listener is fdtop's
// addition to the kept|replaced|unknown: a service with no
// listener at all (only an fd store, or nothing) would otherwise be
// counted as one of the three, none of which it is.
var (
	listenerValues   = []string{"kept", "replaced", "unknown", "none"}
	connectionValues = []string{"preserved", "dropped", "none", "unknown"}
)

// Verdict is how a handoff is labelled in fdtop_handoffs_total.
type Verdict struct {
	// Listener is replaced when any listener was closed and opened anew,
	// else unknown when any was not seen, else kept when there were
	// listeners, else none.
	Listener string
	// Connections is dropped when any connection was seen closed, else
	// unknown when some were not seen, else preserved when some were
	// carried, else none.
	Connections string
}

// VerdictOf labels a handoff. A fact seen wins over what was not seen: a
// dropped connection is "dropped" even if others were not seen.
func VerdictOf(h inspect.Handoff) Verdict {
	var v Verdict
	switch {
	case h.ListenersReplaced > 0:
		v.Listener = "replaced"
	case h.ListenersUnknown > 0:
		v.Listener = "unknown"
	case h.ListenersKept > 0:
		v.Listener = "kept"
	default:
		v.Listener = "none"
	}
	switch {
	case h.ConnectionsDropped > 0:
		v.Connections = "dropped"
	case h.ConnectionsUnknown:
		v.Connections = "unknown"
	case h.ConnectionsPreserved > 0:
		v.Connections = "preserved"
	default:
		v.Connections = "none"
	}
	return v
}

// buckets are the bounds of the handoff histograms, in seconds: 5 ms (a
// fast restart's gap) to 60 s (past the default start timeout's half).
// Eight: every bucket is a series per unit (two histograms, on 1,000
// units), and a scrape's cost grows with them.
var buckets = []float64{0.005, 0.025, 0.1, 0.25, 1, 5, 15, 60}

// histogram is a Prometheus histogram kept by hand (the collector builds
// const metrics from it at a scrape).
type histogram struct {
	counts []uint64 // per bucket, not cumulative
	count  uint64
	sum    float64
}

func (h *histogram) observe(v float64) {
	if h.counts == nil {
		h.counts = make([]uint64, len(buckets))
	}
	for i, b := range buckets {
		if v <= b {
			h.counts[i]++
			break
		}
	}
	h.count++
	h.sum += v
}

// cumulative is the bucket map prometheus.NewConstHistogram takes.
func (h *histogram) cumulative() map[float64]uint64 {
	out := make(map[float64]uint64, len(buckets))
	var n uint64
	for i, b := range buckets {
		if h.counts != nil {
			n += h.counts[i]
		}
		out[b] = n
	}
	return out
}

// unitCounters are one unit's counters, all from its handoff events.
type unitCounters struct {
	handoffs            [4][4]uint64 // [listener][connections], as listenerValues and connectionValues
	dropped, preserved  uint64
	closed              uint64 // by their clients during the handoff
	refused             uint64 // by the gap meter
	noMainPID, noListen histogram
	// withListeners and withoutListeners say how the picture showed the
	// unit: the listener label values it can have (kept, replaced and
	// unknown; none) start at 0, the others appear when counted.
	withListeners, withoutListeners bool
	last                            time.Time // the last handoff (when it was seen)
	lastEvent                       time.Time // when the exporter counted it (pruning)
}

func newUnitCounters() *unitCounters { return &unitCounters{} }

// shape notes whether the picture showed the unit with listeners.
func (c *unitCounters) shape(listens bool) {
	if listens {
		c.withListeners = true
	} else {
		c.withoutListeners = true
	}
}

// shown reports whether the fdtop_handoffs_total series of listener value
// i and connections value j is in a scrape: those the unit's shape can
// have, from 0, and any other once counted.
func (c *unitCounters) shown(i, j int) bool {
	if c.handoffs[i][j] > 0 {
		return true
	}
	if listenerValues[i] == "none" {
		return c.withoutListeners
	}
	return c.withListeners
}

func indexOf(values []string, v string) int {
	for i, x := range values {
		if x == v {
			return i
		}
	}
	return len(values) - 1
}

// add counts one handoff.
func (c *unitCounters) add(h inspect.Handoff) {
	v := VerdictOf(h)
	c.handoffs[indexOf(listenerValues, v.Listener)][indexOf(connectionValues, v.Connections)]++
	// With ConnectionsDroppedAtLeast the drops seen are a lower bound:
	// counted as seen.
	c.dropped += uint64(max(h.ConnectionsDropped, 0))
	c.preserved += uint64(max(h.ConnectionsPreserved, 0))
	c.closed += uint64(max(h.ConnectionsClosed, 0))
	if h.Probe != nil {
		c.refused += uint64(max(h.Probe.Refused, 0))
	}
	if h.Accept == nil && !h.NoMainPIDUnknown {
		// An Accept=yes socket unit has no main process: nothing to time;
		// a time without one that was not seen is not 0.
		c.noMainPID.observe(float64(h.NoMainPIDMs) / 1000)
	}
	switch {
	case h.Probe != nil:
		// The gap meter's longest refusal: nobody listened at least that long.
		c.noListen.observe(h.Probe.RefusedForMs / 1000)
	case v.Listener == "kept" && h.ListenersKept > 0:
		// The same socket before and after, held by the manager: no gap.
		c.noListen.observe(0)
	}
	// Otherwise (replaced without the gap meter, unknown) the gap was not
	// measured: no observation, rather than a made-up one.
}
