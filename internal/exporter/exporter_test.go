package exporter

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fdtop/fdtop/inspect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var t0 = time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC)

// picture is a fixture of the model's picture: a socket-activated service
// with an fd store, an Accept=yes socket, a service with its own
// listener, a leaked listener and one whose holders were not all seen.
func picture(at time.Time) *inspect.Snapshot {
	mgr := inspect.Holder{PID: 1, FD: 40, Comm: "systemd", Manager: true}
	return &inspect.Snapshot{
		Time:    at,
		Manager: inspect.Manager{Scope: "system", Version: "254.26-1~bpo12+1", PID: 1},
		Host:    inspect.HostInfo{Root: true},
		Sockets: []inspect.SocketUnit{
			{Unit: "leaky.socket", Service: "leaky.service", Listeners: []inspect.Listener{{Type: "Stream", Address: "[::]:81", Inode: 11,
				Holders: []inspect.Holder{mgr, {PID: 300, FD: 3, Comm: "leaky", Unit: "leaky.service"}, {PID: 301, FD: 3, Comm: "child", Unit: "cron.service", Outside: true}}}}},
			{Unit: "partial.socket", Service: "partial.service", Listeners: []inspect.Listener{{Type: "Stream", Address: "[::]:82", Inode: 12, HoldersPartial: true,
				Holders: []inspect.Holder{mgr}}}},
			{Unit: "ssh.socket", ActiveState: "active", Accept: true, Service: "ssh@.service", Listeners: []inspect.Listener{{Type: "Stream", Address: "[::]:22", Inode: 13, Holders: []inspect.Holder{mgr}}}},
			{Unit: "web.socket", Service: "web.service", Listeners: []inspect.Listener{
				{Type: "Stream", Address: "[::]:80", Inode: 14, Holders: []inspect.Holder{mgr, {PID: 200, FD: 3, Comm: "web", Unit: "web.service"}}},
				{Type: "Stream", Address: "[::]:443", Inode: 15, Holders: []inspect.Holder{mgr, {PID: 200, FD: 4, Comm: "web", Unit: "web.service"}, {PID: 201, FD: 4, Comm: "web", Unit: "web.service"}}}}},
		},
		Services: []inspect.Service{
			{Unit: "leaky.service", ActiveState: "active", MainPID: 300},
			{Unit: "partial.service", ActiveState: "active"},
			{Unit: "idle.service", ActiveState: "inactive"},
			{Unit: "plain.service", MainPID: 400, OwnListeners: []inspect.Listener{{Type: "Stream", Address: "127.0.0.1:8080", Inode: 16,
				Holders: []inspect.Holder{{PID: 400, FD: 5, Comm: "plain", Unit: "plain.service"}}}}},
			{Unit: "web.service", MainPID: 200, FDStoreMax: 16, FDStoreCount: 3},
		},
	}
}

func handoff(unit string, at time.Time, h inspect.Handoff) inspect.Event {
	return inspect.Event{Time: at, Unit: unit, Type: inspect.EventHandoff, Handoff: &h}
}

// fed is an exporter that was given the fixture picture and a handoff of
// each kind the fixture's units had.
func fed(opts Options) *Exporter {
	e := New(opts)
	e.now = func() time.Time { return t0 }
	e.OnSnapshot(picture(t0))
	e.Observe(handoff("web.service", t0.Add(time.Second), inspect.Handoff{ListenersKept: 2, ConnectionsPreserved: 5, NoMainPIDMs: 120}))
	e.Observe(handoff("web.service", t0.Add(2*time.Second), inspect.Handoff{ListenersKept: 2, ConnectionsPreserved: 4, ConnectionsDropped: 1, ConnectionsClosed: 1, NoMainPIDMs: 30}))
	e.Observe(handoff("plain.service", t0.Add(3*time.Second), inspect.Handoff{ListenersReplaced: 1, ConnectionsDropped: 2, NoMainPIDMs: 700,
		Probe: &inspect.ProbeResult{Attempts: 80, Refused: 12, RefusedForMs: 640}}))
	e.Observe(handoff("leaky.service", t0.Add(3*time.Second), inspect.Handoff{ListenersKept: 1, NoMainPIDUnknown: true}))
	e.Observe(handoff("ssh.socket", t0.Add(4*time.Second), inspect.Handoff{ListenersKept: 1, ConnectionsUnknown: true,
		Accept: &inspect.AcceptHandoff{Instances: 1, InstancesUnknown: 1}}))
	e.findings = []inspect.Finding{{Unit: "leaky.socket", Code: "leaked-listener"}, {Unit: "leaky.service", Code: "service-failed"}}
	return e
}

// ownMetrics are the exporter's metric names but fdtop_build_info (its Go
// version label varies; TestBuildInfo checks it).
var ownMetrics = []string{"fdtop_up", "fdtop_last_scan_timestamp_seconds", "fdtop_manager_disconnects_total", "fdtop_manager_info",
	"fdtop_processes_unreadable", "fdtop_units_omitted", "fdtop_fdstore_entries", "fdtop_fdstore_max",
	"fdtop_listener_holder_processes", "fdtop_listener_leaked_holders", "fdtop_handoffs_total",
	"fdtop_handoff_dropped_connections_total", "fdtop_handoff_preserved_connections_total", "fdtop_handoff_client_closed_connections_total", "fdtop_handoff_refused_connections_total",
	"fdtop_handoff_no_main_pid_seconds", "fdtop_handoff_no_listener_seconds", "fdtop_last_handoff_timestamp_seconds", "fdtop_doctor_findings"}

// golden compares what c collects with testdata/NAME (rewritten with -update).
func golden(t *testing.T, c prometheus.Collector, name string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		out, err := testutil.CollectAndFormat(c, expfmt.TypeTextPlain, ownMetrics...)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if err := testutil.CollectAndCompare(c, bytes.NewReader(want), ownMetrics...); err != nil {
		t.Errorf("scrape differs from %s (-update rewrites it):\n%v", path, err)
	}
}

func TestScrapeGolden(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"scrape.golden", Options{Version: "1.2.3"}},
		{"scrape-probe.golden", Options{Version: "1.2.3", Probe: true}},
		{"scrape-filtered.golden", Options{Version: "1.2.3", Include: mustFilter(t, "(web|ssh|plain|leaky)\\..*"), Exclude: mustFilter(t, "leaky\\.service"), MaxUnits: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden(t, fed(tt.opts), tt.name)
		})
	}
}

func mustFilter(t *testing.T, expr string) *regexp.Regexp {
	t.Helper()
	re, err := UnitFilter(expr)
	if err != nil {
		t.Fatal(err)
	}
	return re
}

// TestScrapeAway: while the manager is away the per-unit gauges are
// absent (never the last values presented as current), the counters stay,
// and the picture is current again only once read whole after it.
func TestScrapeAway(t *testing.T) {
	e := fed(Options{Version: "1.2.3"})
	var log bytes.Buffer
	e.opts.Log = &log
	e.Observe(inspect.Event{Time: t0.Add(10 * time.Second), Type: inspect.EventDisconnected, Error: "connection to unix:path=/run/systemd/private lost"})
	golden(t, e, "scrape-away.golden")
	if got := log.String(); !strings.Contains(got, "the manager went away (connection to unix:path=/run/systemd/private lost): fdtop_up 0") {
		t.Errorf("stderr says %q, want the reason and fdtop_up 0", got)
	}

	// A view of some units is not the whole picture read again.
	e.OnView([]string{"web.service"}, picture(t0.Add(11*time.Second)))
	if up := testutil.ToFloat64(upOnly{e}); up != 0 {
		t.Errorf("fdtop_up = %v after a partial read, want 0", up)
	}
	// A whole picture read before the loss (delivered late) is not either.
	e.OnSnapshot(picture(t0.Add(9 * time.Second)))
	if up := testutil.ToFloat64(upOnly{e}); up != 0 {
		t.Errorf("fdtop_up = %v after a picture older than the loss, want 0", up)
	}
	e.Observe(inspect.Event{Time: t0.Add(12 * time.Second), Type: inspect.EventReconnected, Version: "254.26"})
	e.OnSnapshot(picture(t0.Add(13 * time.Second)))
	if up := testutil.ToFloat64(upOnly{e}); up != 1 {
		t.Errorf("fdtop_up = %v after the whole picture was read again, want 1", up)
	}
	if n := testutil.CollectAndCount(e, "fdtop_fdstore_max"); n != 5 {
		t.Errorf("%d fdtop_fdstore_max series once back, want 5", n)
	}
	for _, want := range []string{"reconnected to the manager (systemd 254.26)", "current again", "fdtop_up 1"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, log.String())
		}
	}
}

// TestRescanFailed: a failed rescan (the manager still there) makes the
// picture stale until any read after it.
func TestRescanFailed(t *testing.T) {
	e := fed(Options{})
	e.Observe(inspect.Event{Time: t0.Add(10 * time.Second), Type: inspect.EventDisconnected, Phase: "rescan", Error: "timeout"})
	if up := testutil.ToFloat64(upOnly{e}); up != 0 {
		t.Fatalf("fdtop_up = %v after a failed rescan, want 0", up)
	}
	if n := testutil.CollectAndCount(e, "fdtop_manager_disconnects_total"); n != 1 {
		t.Fatalf("fdtop_manager_disconnects_total: %d series", n)
	}
	e.OnView([]string{"web.service"}, picture(t0.Add(11*time.Second)))
	if up := testutil.ToFloat64(upOnly{e}); up != 1 {
		t.Errorf("fdtop_up = %v after a read, want 1", up)
	}
}

// upOnly collects fdtop_up alone.
type upOnly struct{ e *Exporter }

func (u upOnly) Describe(ch chan<- *prometheus.Desc) { ch <- descUp }
func (u upOnly) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 4096)
	go func() { u.e.Collect(all); close(all) }()
	for m := range all {
		if m.Desc() == descUp {
			ch <- m
		}
	}
}

func TestLint(t *testing.T) {
	reg := Gatherer(fed(Options{Version: "1.2.3", Probe: true}))
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestBuildInfo(t *testing.T) {
	e := New(Options{Version: "1.2.3"})
	if n := testutil.CollectAndCount(e, "fdtop_build_info"); n != 1 {
		t.Fatalf("%d fdtop_build_info series, want 1", n)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(e)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "fdtop_build_info" {
			continue
		}
		var got []string
		for _, l := range mf.GetMetric()[0].GetLabel() {
			got = append(got, l.GetName()+"="+l.GetValue())
		}
		if !slices.Contains(got, "version=1.2.3") || !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "goversion=go") }) {
			t.Errorf("fdtop_build_info labels %v", got)
		}
	}
}

func TestVerdictOf(t *testing.T) {
	tests := []struct {
		name string
		h    inspect.Handoff
		want Verdict
	}{
		{"kept and preserved", inspect.Handoff{ListenersKept: 1, ConnectionsPreserved: 3}, Verdict{"kept", "preserved"}},
		{"replaced and dropped", inspect.Handoff{ListenersReplaced: 1, ConnectionsDropped: 2}, Verdict{"replaced", "dropped"}},
		{"one replaced of two", inspect.Handoff{ListenersKept: 1, ListenersReplaced: 1}, Verdict{"replaced", "none"}},
		{"listener not seen", inspect.Handoff{ListenersKept: 1, ListenersUnknown: 1}, Verdict{"unknown", "none"}},
		{"no listener", inspect.Handoff{}, Verdict{"none", "none"}},
		{"connections not seen", inspect.Handoff{ListenersKept: 1, ConnectionsUnknown: true}, Verdict{"kept", "unknown"}},
		{"some preserved, others not seen", inspect.Handoff{ListenersKept: 1, ConnectionsPreserved: 2, ConnectionsUnknown: true}, Verdict{"kept", "unknown"}},
		{"a drop seen beats not seen", inspect.Handoff{ListenersKept: 1, ConnectionsDropped: 1, ConnectionsUnknown: true}, Verdict{"kept", "dropped"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerdictOf(tt.h); got != tt.want {
				t.Errorf("VerdictOf = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestHistogramBuckets: an observation lands in the first bucket it fits,
// and the buckets a scrape shows are cumulative.
func TestHistogramBuckets(t *testing.T) {
	var h histogram
	for _, v := range []float64{0, 0.005, 0.006, 59, 61} {
		h.observe(v)
	}
	c := h.cumulative()
	for le, want := range map[float64]uint64{0.005: 2, 0.025: 3, 15: 3, 60: 4} {
		if c[le] != want {
			t.Errorf("bucket le=%v: %d, want %d", le, c[le], want)
		}
	}
	if h.count != 5 {
		t.Errorf("count %d, want 5", h.count)
	}
}

// TestUnitsComeAndGo: a unit's counters exist (at 0) from the picture
// that shows it; a unit gone from the picture keeps them while its last
// handoff is recent, and loses them after.
func TestUnitsComeAndGo(t *testing.T) {
	now := t0
	e := New(Options{})
	e.now = func() time.Time { return now }
	snap := picture(t0)
	e.OnSnapshot(snap)
	if n := testutil.CollectAndCount(e, "fdtop_handoffs_total"); n != 12*5 {
		t.Fatalf("%d fdtop_handoffs_total series, want 12 (kept, replaced, unknown; by 4 connections values) for each of the 4 services and the Accept=yes socket, all with listeners", n)
	}
	e.Observe(handoff("web.service", t0, inspect.Handoff{ListenersKept: 2}))
	gone := *snap
	gone.Services = slices.DeleteFunc(slices.Clone(snap.Services), func(s inspect.Service) bool { return s.Unit == "web.service" || s.Unit == "plain.service" })
	now = t0.Add(time.Minute)
	e.OnSnapshot(&gone)
	if n := testutil.CollectAndCount(e, "fdtop_handoff_dropped_connections_total"); n != 4 {
		t.Errorf("%d units with counters a minute after two left, want 4 (web.service's recent handoff keeps it)", n)
	}
	now = t0.Add(unitKeep + 2*time.Minute)
	e.OnSnapshot(&gone)
	if n := testutil.CollectAndCount(e, "fdtop_handoff_dropped_connections_total"); n != 3 {
		t.Errorf("%d units with counters long after, want 3", n)
	}
}

func TestUnitFilter(t *testing.T) {
	re := mustFilter(t, "demo-.*")
	for name, want := range map[string]bool{"demo-plain.service": true, "x-demo-plain.service": false} {
		if got := re.MatchString(name); got != want {
			t.Errorf("demo-.* on %s: %v, want %v", name, got, want)
		}
	}
	if re, err := UnitFilter(""); re != nil || err != nil {
		t.Errorf("empty filter: %v, %v", re, err)
	}
	if _, err := UnitFilter("("); err == nil {
		t.Error("a bad expression was taken")
	}
}

// TestDoctorCatalogue: every code the doctor can find is in DoctorCodes
// (read from inspect's source: a new code must be added there).
func TestDoctorCatalogue(t *testing.T) {
	renamed := map[string]string{"orphan-listener": "listener-not-held", "fdstore-over-max": "fdstore-full"}
	codeRE := regexp.MustCompile(`Code(?::| =) *"([a-z0-9-]+)"`)
	files, err := filepath.Glob("../../inspect/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("inspect sources: %v", err)
	}
	found := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range codeRE.FindAllSubmatch(src, -1) {
			code := string(m[1])
			if r, ok := renamed[code]; ok {
				code = r
			}
			found[code] = true
		}
	}
	for code := range found {
		if !slices.Contains(DoctorCodes, code) {
			t.Errorf("the doctor can find %q: add it to DoctorCodes", code)
		}
	}
	for _, code := range DoctorCodes {
		if !found[code] {
			t.Errorf("DoctorCodes has %q, which nothing in inspect finds", code)
		}
	}
}

// TestDoctorRuns: the doctor runs on a current picture, not again on an
// unchanged one, and its failure makes the findings absent.
func TestDoctorRuns(t *testing.T) {
	runs := make(chan *inspect.Snapshot, 10)
	var fail atomic.Bool
	e := New(Options{DoctorEvery: time.Millisecond, Doctor: func(_ context.Context, snap *inspect.Snapshot) ([]inspect.Finding, error) {
		runs <- snap
		if fail.Load() {
			return nil, errors.New("journal not readable")
		}
		return []inspect.Finding{{Unit: "web.service", Code: "service-failed"}, {Unit: "x.service", Code: "service-failed"}}, nil
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.runDoctor(ctx) }()
	defer func() { cancel(); <-done }()
	e.OnSnapshot(picture(t0))
	<-runs
	waitFor(t, func() bool { return testutil.CollectAndCount(e, "fdtop_doctor_findings") == len(DoctorCodes) })
	e.mu.Lock()
	n := e.countFindings(e.findings)["service-failed"]
	e.mu.Unlock()
	if n != 2 {
		t.Errorf("service-failed: %d, want 2", n)
	}
	e.OnSnapshot(picture(t0.Add(time.Second))) // the same units
	fail.Store(true)
	changed := picture(t0.Add(2 * time.Second))
	changed.Services[3].FDStoreCount = 4
	e.OnSnapshot(changed)
	if got := <-runs; got != changed {
		t.Errorf("the doctor ran on a picture that did not change")
	}
	waitFor(t, func() bool { return testutil.CollectAndCount(e, "fdtop_doctor_findings") == 0 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}
