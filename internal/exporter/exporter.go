// Package exporter serves fdtop's live model to Prometheus: fd stores,
// listener holders, handoff verdicts and doctor findings (`fdtop exporter`).
package exporter

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/termsafe"
)

// Watcher is the live model as the exporter runs it: *inspect.Watcher has
// it. Its OnSnapshot and OnView must be the Exporter's, so the exporter
// keeps the model's picture.
type Watcher interface {
	Run(ctx context.Context, out chan<- inspect.Event) error
}

// DoctorFunc runs fdtop doctor's checks on a picture (the wiring reads
// what the doctor needs beyond it: results, logs).
type DoctorFunc func(ctx context.Context, snap *inspect.Snapshot) ([]inspect.Finding, error)

// Options configure an Exporter.
type Options struct {
	// Version is fdtop's version (fdtop_build_info).
	Version string
	// Include and Exclude, if set, filter the units by name (whole-name
	// matches: see UnitFilter).
	Include, Exclude *regexp.Regexp
	// MaxUnits caps the units with series (0: no cap); the rest are
	// counted in fdtop_units_omitted.
	MaxUnits int
	// Probe says the gap meter runs on every job: refused connections and
	// the time without a listener are measured (else their series are
	// absent: not measured is not zero).
	Probe bool
	// Doctor, if set, gives fdtop_doctor_findings.
	Doctor DoctorFunc
	// DoctorEvery is the least time between two doctor runs (default 30 s);
	// the doctor runs only when the picture changed.
	DoctorEvery time.Duration
	// Log gets one line each time the manager goes away or comes back.
	Log io.Writer
}

// UnitFilter compiles a --unit-include or --unit-exclude expression,
// anchored at both ends as node_exporter's systemd collector anchors its
// own: "demo-.*" matches demo-plain.service, "demo" matches nothing.
// An empty expression is no filter (nil).
func UnitFilter(expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, nil
	}
	re, err := regexp.Compile("^(?:" + expr + ")$")
	if err != nil {
		return nil, fmt.Errorf("unit filter %q: %w", expr, err)
	}
	return re, nil
}

// unitKeep is how long the counters of a unit gone from the picture are
// kept after its last handoff (a unit removed right after its restart
// still has that restart scraped).
const unitKeep = 10 * time.Minute

// Exporter keeps the model's current picture and the counters its handoff
// events feed, and answers scrapes from them (it is a
// prometheus.Collector). Nothing is read from the manager or /proc at a
// scrape.
type Exporter struct {
	opts Options

	mu      sync.Mutex
	picture *inspect.Snapshot // the model's picture; nil before the first
	seen    time.Time         // when the picture was last read (whole or in part)
	// staleSince is when the manager went away (or a rescan failed): the
	// picture is not presented until one read after it (a whole one when
	// wholeNeeded). Zero while the picture is current.
	staleSince  time.Time
	wholeNeeded bool
	disconnects uint64
	units       map[string]*unitCounters
	findings    []inspect.Finding // nil: the doctor has not run on a current picture
	doctored    *inspect.Snapshot // the picture the findings are of
	doctorKick  chan struct{}     // a picture to look at
	lastDoctor  string            // the doctor's last error, said once
	now         func() time.Time  // tests
	gen         uint64            // bumped by every change a scrape would show
	lastJob     time.Time         // when a job event was last seen (the doctor waits for quiet)
}

// New returns an Exporter; Run starts it.
func New(opts Options) *Exporter {
	if opts.DoctorEvery <= 0 {
		opts.DoctorEvery = 30 * time.Second
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	return &Exporter{opts: opts, units: map[string]*unitCounters{}, doctorKick: make(chan struct{}, 1), now: time.Now}
}

// Run runs the model until ctx ends (or the model stops) and feeds its
// events to the counters; the doctor runs alongside.
func (e *Exporter) Run(ctx context.Context, w Watcher) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan inspect.Event, 1024)
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx, events) }()
	var wg sync.WaitGroup
	if e.opts.Doctor != nil {
		wg.Add(1)
		go func() { defer wg.Done(); e.runDoctor(ctx) }()
	}
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("live model: %w", err)
			}
			return nil
		case ev := <-events:
			e.Observe(ev)
		}
	}
}

// OnSnapshot takes a whole picture of the model (inspect.Watcher.OnSnapshot).
func (e *Exporter) OnSnapshot(snap *inspect.Snapshot) {
	if snap == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gen++
	e.picture = snap
	e.readAt(snap.Time, true)
	now := e.now()
	present := map[string]bool{}
	for u, listens := range handoffUnits(snap) {
		present[u] = true
		e.counters(u).shape(listens)
	}
	for u, c := range e.units {
		if !present[u] && now.Sub(c.lastEvent) > unitKeep {
			delete(e.units, u)
		}
	}
	e.kickDoctor()
}

// OnView takes a picture of some units (inspect.Watcher.OnView) into the
// model's picture.
func (e *Exporter) OnView(units []string, snap *inspect.Snapshot) {
	if snap == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gen++
	e.picture = inspect.MergeUnits(e.picture, snap, units)
	e.readAt(snap.Time, false)
	for u, listens := range handoffUnits(snap) {
		e.counters(u).shape(listens)
	}
	e.kickDoctor()
}

// readAt notes a read of the picture at t: a current picture again when
// it is the read the picture waited for.
func (e *Exporter) readAt(t time.Time, whole bool) {
	if t.After(e.seen) {
		e.seen = t
	}
	if !e.staleSince.IsZero() && t.After(e.staleSince) && (whole || !e.wholeNeeded) {
		e.staleSince = time.Time{}
		fmt.Fprintf(e.opts.Log, "fdtop exporter: the manager's picture is current again (read %s): fdtop_up 1\n", t.Format(time.RFC3339))
	}
}

func (e *Exporter) kickDoctor() {
	select {
	case e.doctorKick <- struct{}{}:
	default:
	}
}

// Observe counts one event of the model: handoffs feed the counters; a
// lost manager makes the picture stale until it is read again.
func (e *Exporter) Observe(ev inspect.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gen++
	switch ev.Type {
	case inspect.EventJobStarted, inspect.EventJobFinished:
		e.lastJob = e.now()
	case inspect.EventHandoff:
		e.lastJob = e.now()
		if ev.Handoff != nil && ev.Unit != "" {
			c := e.counters(ev.Unit)
			c.add(*ev.Handoff)
			c.last = ev.Time
			c.lastEvent = e.now()
		}
	case inspect.EventDisconnected:
		lost := ev.Phase != "rescan" // the connection, or the model, stopped
		if lost && ev.Dropped == 0 {
			e.disconnects++
		}
		if ev.Dropped > 0 {
			// Signals were lost, not the manager: the model reads every
			// unit again and says so; the picture is as current as before.
			return
		}
		if !e.seen.After(ev.Time) {
			if e.staleSince.IsZero() || ev.Time.Before(e.staleSince) {
				e.staleSince = ev.Time
			}
			e.wholeNeeded = e.wholeNeeded || lost
		}
		what := "a rescan failed"
		if lost {
			what = "the manager went away"
		}
		reason := ev.Error
		if reason == "" {
			reason = "no reason given"
		}
		fmt.Fprintf(e.opts.Log, "fdtop exporter: %s (%s): fdtop_up 0, its units' gauges absent until the picture is read again\n",
			what, termsafe.String(reason))
	case inspect.EventReconnected:
		fmt.Fprintf(e.opts.Log, "fdtop exporter: reconnected to the manager (systemd %s): reading the picture again\n", termsafe.String(ev.Version))
	}
}

// counters returns the counters of unit, made (at 0) when new. e.mu held.
func (e *Exporter) counters(unit string) *unitCounters {
	c := e.units[unit]
	if c == nil {
		c = newUnitCounters()
		e.units[unit] = c
	}
	return c
}

// generation counts the changes a scrape would show.
func (e *Exporter) generation() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.gen
}

// current is the picture when it may be presented (nil otherwise), and
// whether the model is up. e.mu held.
func (e *Exporter) current() (*inspect.Snapshot, bool) {
	if e.picture == nil || !e.staleSince.IsZero() {
		return nil, false
	}
	return e.picture, true
}

// runDoctor runs the doctor on each new current picture, at most every
// DoctorEvery.
func (e *Exporter) runDoctor(ctx context.Context) {
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.doctorKick:
		}
		if wait := e.opts.DoctorEvery - time.Since(last); !last.IsZero() && wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		// Not while jobs come and go: the doctor's reads of the manager
		// beside the model's made its views miss a restarting service's
		// old process on 254 (every handoff's connections unknown).
		for {
			e.mu.Lock()
			wait := jobQuiet - e.now().Sub(e.lastJob)
			e.mu.Unlock()
			if e.lastJobZero() || wait <= 0 {
				break
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		e.mu.Lock()
		snap, _ := e.current()
		prev := e.doctored
		e.mu.Unlock()
		if snap == nil || snap == prev {
			continue
		}
		if prev != nil {
			if _, changed := inspect.Diff(prev, snap); !changed {
				continue
			}
		}
		last = time.Now()
		found, err := e.opts.Doctor(ctx, snap)
		if ctx.Err() != nil {
			return
		}
		e.mu.Lock()
		e.gen++
		if err != nil {
			e.findings, e.doctored = nil, nil
			if msg := err.Error(); msg != e.lastDoctor {
				e.lastDoctor = msg
				fmt.Fprintf(e.opts.Log, "fdtop exporter: doctor: %s: fdtop_doctor_findings absent\n", termsafe.String(msg))
			}
		} else {
			e.lastDoctor = ""
			if found == nil {
				found = []inspect.Finding{}
			}
			e.findings, e.doctored = found, snap
		}
		e.mu.Unlock()
	}
}

// jobQuiet is how long after the last job event the doctor waits.
const jobQuiet = 5 * time.Second

func (e *Exporter) lastJobZero() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastJob.IsZero()
}

// countFindings counts by code the findings on the units the filters
// keep (--max-units does not apply: a finding may be about a unit with no
// series), every code of the catalogue at 0.
func (e *Exporter) countFindings(found []inspect.Finding) map[string]int {
	out := make(map[string]int, len(DoctorCodes))
	for _, c := range DoctorCodes {
		out[c] = 0
	}
	for _, f := range found {
		if e.filtered(f.Unit) {
			out[f.Code]++
		}
	}
	return out
}

// DoctorCodes is the catalogue of fdtop doctor's finding codes: each is a
// series of fdtop_doctor_findings from the start (0 when not found).
var DoctorCodes = []string{
	"accept-no-template", "address-in-use", "duplicate-address", "fdstore-disabled", "fdstore-full",
	"fdstore-pinned", "flush-pending", "leaked-listener", "listener-not-held", "notify-access",
	"service-failed", "service-start-limit-hit", "socket-failed", "socket-not-listening", "start-limit-hit",
	"stop-discards-store", "trigger-limit-hit",
}

// handoffUnits are the units of a picture that can have a handoff, each
// with whether it has listeners (a socket unit's, or its own): services
// the picture shows running (a service that never ran has had no
// restart: on a host of idle socket-activated services, series of zeros
// for each would be most of a scrape), and Accept=yes socket units that
// are active (a restart of one is its own handoff). A unit's series stay
// once made.
func handoffUnits(snap *inspect.Snapshot) map[string]bool {
	out := make(map[string]bool, len(snap.Services))
	for _, svc := range snap.Services {
		if svc.MainPID != 0 || running(svc.ActiveState) {
			out[svc.Unit] = len(svc.Sockets) > 0 || len(svc.OwnListeners) > 0
		}
	}
	for _, su := range snap.Sockets {
		switch {
		case su.Accept && running(su.ActiveState):
			out[su.Unit] = true
		case su.Service != "":
			if _, ok := out[su.Service]; ok {
				out[su.Service] = true
			}
		}
	}
	return out
}

// running reports whether an ActiveState is a unit's that runs (or is
// going to or from running).
func running(state string) bool {
	switch state {
	case "active", "activating", "deactivating", "reloading", "refreshing":
		return true
	}
	return false
}

// filtered reports whether a unit passes --unit-include and --unit-exclude.
func (e *Exporter) filtered(unit string) bool {
	return (e.opts.Include == nil || e.opts.Include.MatchString(unit)) &&
		(e.opts.Exclude == nil || !e.opts.Exclude.MatchString(unit))
}

// selectUnits filters names (deduplicated here) by the include and exclude
// expressions and caps them at MaxUnits in name order; it returns the set
// kept and how many the cap left out.
func (e *Exporter) selectUnits(names []string) (map[string]bool, int) {
	sort.Strings(names)
	names = slices.Compact(names)
	kept := names[:0]
	for _, n := range names {
		if e.filtered(n) {
			kept = append(kept, n)
		}
	}
	omitted := 0
	if e.opts.MaxUnits > 0 && len(kept) > e.opts.MaxUnits {
		omitted = len(kept) - e.opts.MaxUnits
		kept = kept[:e.opts.MaxUnits]
	}
	out := make(map[string]bool, len(kept))
	for _, n := range kept {
		out[n] = true
	}
	return out, omitted
}
