package exporter

import (
	"runtime"
	"strings"
	"time"

	"github.com/fdtop/fdtop/inspect"
	"github.com/prometheus/client_golang/prometheus"
)

// The metrics. docs/exporter.md has the same table in words; a change
// here is a change there.
var (
	descUp = prometheus.NewDesc("fdtop_up",
		"1 while fdtop has a current picture of the manager; 0 while the manager is away or a rescan failed (the per-unit gauges are then absent, never stale).", nil, nil)
	descScan = prometheus.NewDesc("fdtop_last_scan_timestamp_seconds",
		"When the live model last read the manager and /proc (the whole picture or some of its units).", nil, nil)
	descDisconnects = prometheus.NewDesc("fdtop_manager_disconnects_total",
		"Times the connection to the manager was lost (a daemon-reexec, a manager that stopped).", nil, nil)
	descManager = prometheus.NewDesc("fdtop_manager_info",
		"The manager watched: its scope (system or user) and systemd version.", []string{"scope", "version"}, nil)
	descUnreadable = prometheus.NewDesc("fdtop_processes_unreadable",
		"Processes whose descriptors could not be read: listener holders among them are unknown (those units' holder gauges are absent).", nil, nil)
	descBuild = prometheus.NewDesc("fdtop_build_info",
		"fdtop's version and the Go version it was built with.", []string{"version", "goversion"}, nil)
	descOmitted = prometheus.NewDesc("fdtop_units_omitted",
		"Units left out by --max-units (after --unit-include and --unit-exclude).", nil, nil)

	descEntries = prometheus.NewDesc("fdtop_fdstore_entries",
		"Descriptors in the service's fd store (NFileDescriptorStore).", []string{"name"}, nil)
	descMax = prometheus.NewDesc("fdtop_fdstore_max",
		"The service's FileDescriptorStoreMax= (0: no fd store).", []string{"name"}, nil)
	descHolders = prometheus.NewDesc("fdtop_listener_holder_processes",
		"Processes other than the manager holding one of the unit's listening sockets; absent when some processes could not be read.", []string{"name"}, nil)
	descLeaked = prometheus.NewDesc("fdtop_listener_leaked_holders",
		"Processes holding one of the unit's listeners that are neither in the unit that should hold it nor the manager; absent when some processes could not be read.", []string{"name"}, nil)

	descHandoffs = prometheus.NewDesc("fdtop_handoffs_total",
		"Handoffs (restarts, stop and start) seen, by what became of the listeners (kept, replaced, unknown; none for a unit without any) and of the connections (preserved, dropped, none, unknown).", []string{"name", "listener", "connections"}, nil)
	descDropped = prometheus.NewDesc("fdtop_handoff_dropped_connections_total",
		"Connections the old process held that were closed by a handoff.", []string{"name"}, nil)
	descPreserved = prometheus.NewDesc("fdtop_handoff_preserved_connections_total",
		"Connections the old process held that lived on after a handoff (in the new process or the fd store).", []string{"name"}, nil)
	descClosed = prometheus.NewDesc("fdtop_handoff_client_closed_connections_total",
		"Connections the old process held that their clients closed during a handoff (the client's end closed first): not the handoff's doing, in neither the dropped nor the preserved count.", []string{"name"}, nil)
	descRefused = prometheus.NewDesc("fdtop_handoff_refused_connections_total",
		"Connects the gap meter saw refused during handoffs (only with --probe: without it refusals are not measured and the series is absent).", []string{"name"}, nil)
	descNoMain = prometheus.NewDesc("fdtop_handoff_no_main_pid_seconds",
		"How long a service had no main process during a handoff.", []string{"name"}, nil)
	descNoListen = prometheus.NewDesc("fdtop_handoff_no_listener_seconds",
		"How long nobody listened during a handoff: 0 when the listeners were kept, the gap meter's longest refusal with --probe; not observed when not measured.", []string{"name"}, nil)
	descLast = prometheus.NewDesc("fdtop_last_handoff_timestamp_seconds",
		"When the unit's last handoff was seen (absent until one is).", []string{"name"}, nil)

	descFindings = prometheus.NewDesc("fdtop_doctor_findings",
		"fdtop doctor's findings on the units, by code (every code of the catalogue, 0 when not found); absent until the doctor has run on a current picture.", []string{"code"}, nil)
)

var allDescs = []*prometheus.Desc{descUp, descScan, descDisconnects, descManager, descUnreadable, descBuild, descOmitted,
	descEntries, descMax, descHolders, descLeaked, descHandoffs, descDropped, descPreserved, descClosed, descRefused,
	descNoMain, descNoListen, descLast, descFindings}

// Describe implements prometheus.Collector.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// label makes a label value of a string from outside: valid UTF-8 (a
// scrape with an invalid one would fail as a whole).
func label(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// Collect implements prometheus.Collector: it answers from the picture and
// the counters as they are, reading nothing.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	snap, up := e.current()
	if up {
		gauge(descUp, 1)
	} else {
		gauge(descUp, 0)
	}
	if !e.seen.IsZero() {
		gauge(descScan, unixSeconds(e.seen))
	}
	counter(descDisconnects, e.disconnects)
	gauge(descBuild, 1, label(e.opts.Version), runtime.Version())

	names := make([]string, 0, len(e.units)+64)
	for u := range e.units {
		names = append(names, u)
	}
	if snap != nil {
		for _, su := range snap.Sockets {
			names = append(names, su.Unit)
		}
		for _, svc := range snap.Services {
			names = append(names, svc.Unit)
		}
	}
	keep, omitted := e.selectUnits(names)
	gauge(descOmitted, float64(omitted))

	if snap != nil {
		gauge(descManager, 1, label(snap.Manager.Scope), label(snap.Manager.Version))
		gauge(descUnreadable, float64(snap.Host.Unreadable))
		for _, svc := range snap.Services {
			if !keep[svc.Unit] {
				continue
			}
			name := label(svc.Unit)
			gauge(descMax, float64(svc.FDStoreMax), name)
			gauge(descEntries, float64(svc.FDStoreCount), name)
			if len(svc.OwnListeners) > 0 {
				holders(gauge, name, svc.OwnListeners)
			}
		}
		for _, su := range snap.Sockets {
			if keep[su.Unit] {
				holders(gauge, label(su.Unit), su.Listeners)
			}
		}
		if e.findings != nil {
			for code, n := range e.countFindings(e.findings) {
				gauge(descFindings, float64(n), label(code))
			}
		}
	}

	for u, c := range e.units {
		if !keep[u] {
			continue
		}
		name := label(u)
		for i, l := range listenerValues {
			for j, cv := range connectionValues {
				if c.shown(i, j) {
					counter(descHandoffs, c.handoffs[i][j], name, l, cv)
				}
			}
		}
		counter(descDropped, c.dropped, name)
		counter(descPreserved, c.preserved, name)
		counter(descClosed, c.closed, name)
		if e.opts.Probe {
			counter(descRefused, c.refused, name)
		}
		ch <- prometheus.MustNewConstHistogram(descNoMain, c.noMainPID.count, c.noMainPID.sum, c.noMainPID.cumulative(), name)
		ch <- prometheus.MustNewConstHistogram(descNoListen, c.noListen.count, c.noListen.sum, c.noListen.cumulative(), name)
		if !c.last.IsZero() {
			gauge(descLast, unixSeconds(c.last), name)
		}
	}
}

// holders sends the holder gauges of one unit's listeners, unless some
// holders could not be seen (then they are unknown: no series).
func holders(gauge func(*prometheus.Desc, float64, ...string), name string, ls []inspect.Listener) {
	all, outside := map[int]bool{}, map[int]bool{}
	for _, l := range ls {
		if l.InodeUnknown || l.HoldersPartial {
			return
		}
		for _, h := range l.Holders {
			if h.Manager {
				continue
			}
			all[h.PID] = true
			if h.Outside {
				outside[h.PID] = true
			}
		}
	}
	gauge(descHolders, float64(len(all)), name)
	gauge(descLeaked, float64(len(outside)), name)
}
