package inspect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/internal/unitpattern"
	"github.com/fdtop/fdtop/procfs"
)

// Builder takes snapshots: it asks the manager, scans the kernel and joins.
type Builder struct {
	// Systemd is the manager.
	Systemd Systemd
	// Kernel is /proc.
	Kernel Kernel
	// Scope is "system" or "user".
	Scope string
	// Patterns limit the socket units (shell globs); empty means all.
	Patterns []string
	// All includes inactive units.
	All bool
	// ExtraServices are services to show although no socket triggers them
	// and they have no fd store (e.g. the plain demo service, or a service
	// named on the command line).
	ExtraServices []string

	host hostOnce

	// outside are the processes outside the units that held connections
	// accepted from the units' listeners at the last full scan (login
	// sessions in session-N.scope): a targeted scan reads them too, so
	// those connections stay in view between full scans and across a
	// restart of the service.
	outsideMu sync.Mutex
	outside   []int
}

// outsidePIDs returns the holders the last full scan found outside the units.
func (b *Builder) outsidePIDs() []int {
	b.outsideMu.Lock()
	defer b.outsideMu.Unlock()
	return b.outside
}

// noteOutside remembers the holders of a full scan's connections that are
// outside their services.
func (b *Builder) noteOutside(snap *Snapshot) {
	var pids []int
	for _, svc := range snap.Services {
		for _, c := range svc.Connections {
			if c.Outside {
				pids = append(pids, c.PID)
			}
		}
	}
	b.outsideMu.Lock()
	b.outside = dedupe(pids)
	b.outsideMu.Unlock()
}

// SnapshotOptions tune one snapshot.
type SnapshotOptions struct {
	// Units, when set, limits the snapshot to these units (socket or
	// service names) and the kernel scan to their processes and the
	// manager's: the fast refresh of what is on screen.
	Units []string
	// FullScan scans every process of the host (finds holders outside the
	// units); otherwise only the manager's and the units' processes.
	FullScan bool
}

// Snapshot takes one joined snapshot.
func (b *Builder) Snapshot(ctx context.Context, opts SnapshotOptions) (*Snapshot, error) {
	patterns := b.Patterns
	if len(opts.Units) > 0 {
		patterns = socketPatterns(opts.Units)
	}
	st, err := b.Systemd.Load(ctx, patterns, b.All || len(opts.Units) > 0)
	if err != nil {
		return nil, fmt.Errorf("load units: %w", err)
	}
	if extra := b.extraServices(st, opts.Units); len(extra) > 0 {
		more, err := b.Systemd.ListServices(ctx, extra)
		if err != nil {
			return nil, fmt.Errorf("load services: %w", err)
		}
		have := map[string]bool{}
		for _, s := range st.Services {
			have[s.Name] = true
		}
		for _, s := range more {
			if !have[s.Name] {
				st.Services = append(st.Services, s)
			}
		}
	}
	filterServices(st, append(append([]string(nil), b.Patterns...), b.ExtraServices...), opts.Units)

	mgr, err := b.Systemd.Processes(ctx, "init.scope")
	if err != nil && b.Scope == "system" {
		mgr = []dbusclient.Process{{PID: 1}}
	} else if err != nil {
		return nil, fmt.Errorf("find the manager's process: %w", err)
	}
	var managerPIDs []int
	for _, p := range mgr {
		managerPIDs = append(managerPIDs, int(p.PID))
	}

	stores := map[string]dbusclient.FDStore{}
	feats := b.Systemd.Features()
	for _, s := range st.Services {
		if s.FDStoreMax == 0 {
			continue
		}
		if s.NFDStore == 0 || !feats.FDStoreDump {
			stores[s.Name] = dbusclient.FDStore{Service: s.Name, Max: s.FDStoreMax, Count: s.NFDStore, Preserve: s.FDStorePreserve, Listed: feats.FDStoreDump}
			continue
		}
		fs, err := b.Systemd.FDStore(ctx, s.Name)
		if err != nil {
			return nil, fmt.Errorf("fd store of %s: %w", s.Name, err)
		}
		stores[s.Name] = fs
	}

	start := time.Now()
	var scan *procfs.Scan
	if opts.FullScan {
		scan, err = b.Kernel.Scan(ctx, procfs.ScanOptions{})
	} else {
		pids := append(append([]int(nil), managerPIDs...), b.outsidePIDs()...)
		for _, s := range st.Services {
			if s.MainPID != 0 {
				pids = append(pids, int(s.MainPID))
			}
			for _, p := range s.Processes {
				pids = append(pids, int(p.PID))
			}
		}
		scan, err = b.Kernel.ScanPIDs(ctx, dedupe(pids), procfs.ScanOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("scan /proc: %w", err)
	}
	hostname, root := b.host.get()
	snap := Join(JoinInput{
		Time:         time.Now(),
		Manager:      b.manager(),
		ManagerPIDs:  managerPIDs,
		State:        st,
		Stores:       stores,
		Scan:         scan,
		ScanDuration: time.Since(start),
		Hostname:     hostname,
	})
	snap.Host.Root = root
	if opts.FullScan {
		b.noteOutside(snap)
	}
	if len(opts.Units) == 0 {
		snap.Unmatched = unmatched(b.Patterns, st)
	}
	return snap, nil
}

// unmatched lists the patterns no socket unit, service or Accept=yes
// instance name matches.
func unmatched(patterns []string, st *dbusclient.State) []string {
	var names []string
	for _, s := range st.Sockets {
		names = append(names, s.Name)
		names = append(names, s.Instances...)
	}
	for _, s := range st.Services {
		names = append(names, s.Name)
	}
	var out []string
	for _, p := range patterns {
		if !slices.ContainsFunc(names, func(n string) bool { return unitpattern.Match(p, n) }) {
			out = append(out, p)
		}
	}
	return out
}

// NoMatchNote says that patterns matched no unit and what patterns are,
// e.g. "no unit matches 'journald': patterns are shell globs on whole unit
// names (try '*journald*'); inactive units need --all"; "" for none.
func NoMatchNote(patterns []string) string {
	if len(patterns) == 0 {
		return ""
	}
	quoted := make([]string, len(patterns))
	for i, p := range patterns {
		quoted[i] = "'" + p + "'"
	}
	note := "no unit matches " + strings.Join(quoted, ", ") + ": patterns are shell globs on whole unit names"
	if p := patterns[0]; !strings.ContainsAny(p, "*?[") {
		note += " (try '*" + p + "*')"
	}
	return note + "; inactive units need --all"
}

// extraServices lists the services to read that Load did not return: the
// ExtraServices, or, when the snapshot is limited to units, the services
// among them (one that binds its own listener has no socket to be found by).
func (b *Builder) extraServices(st *dbusclient.State, units []string) []string {
	have := map[string]bool{}
	for _, s := range st.Services {
		have[s.Name] = true
	}
	candidates := b.ExtraServices
	if len(units) > 0 {
		candidates = nil
		for _, u := range units {
			if strings.HasSuffix(u, ".service") {
				candidates = append(candidates, u)
			}
		}
	}
	var out []string
	for _, name := range candidates {
		if !have[name] {
			out = append(out, name)
		}
	}
	return out
}

// manager describes the manager and what it cannot tell.
func (b *Builder) manager() Manager {
	f := b.Systemd.Features()
	m := Manager{
		Scope:           b.Scope,
		Version:         b.Systemd.Version(),
		Address:         b.Systemd.Endpoint().Address,
		FDStoreListing:  f.FDStoreDump,
		FDStorePreserve: f.FDStorePreserve,
	}
	if !f.FDStoreDump {
		m.Limits = append(m.Limits, "fd store names unavailable before systemd 254: entries are inferred from the manager's descriptors")
	}
	if !f.FDStorePreserve {
		m.Limits = append(m.Limits, "no FileDescriptorStorePreserve= before systemd 254: stopping a service discards its fd store")
	}
	if _, root := b.host.get(); !root {
		m.Limits = append(m.Limits, "not root: other users' processes (and the system manager's descriptors) are not readable")
	}
	return m
}

// hostOnce reads the host name and whether fdtop runs as root once: a
// Builder takes snapshots every few milliseconds while a job runs.
type hostOnce struct {
	once     sync.Once
	hostname string
	root     bool
}

func (h *hostOnce) get() (hostname string, root bool) {
	h.once.Do(func() {
		h.hostname, _ = os.Hostname()
		h.root = os.Geteuid() == 0
	})
	return h.hostname, h.root
}

// socketPatterns turns unit names into socket unit patterns for Load: a
// service "x.service" is asked for as its socket "x.socket".
func socketPatterns(units []string) []string {
	var out []string
	for _, u := range units {
		switch {
		case strings.HasSuffix(u, ".socket"):
			out = append(out, u)
		case strings.HasSuffix(u, ".service"):
			base := strings.TrimSuffix(u, ".service")
			if i := strings.IndexByte(base, '@'); i >= 0 {
				base = base[:i]
			}
			out = append(out, base+".socket", base+"@*.socket")
		}
	}
	if len(out) == 0 {
		out = []string{"\x00none"} // a pattern nothing matches
	}
	return out
}

// filterServices drops fd-store services that neither a pattern nor a
// listed unit names, when the snapshot is limited. A snapshot of named
// units (units set) keeps only those and the services their sockets
// trigger: another service read along with them (every fd-store service
// is) would come without its socket units, so without its listeners and
// connections, and a consumer would take that for the service's state.
func filterServices(st *dbusclient.State, patterns, units []string) {
	if len(patterns) == 0 && len(units) == 0 {
		return
	}
	named := map[string]bool{}
	for _, u := range units {
		named[u] = true
	}
	keep := map[string]bool{}
	for _, s := range st.Sockets {
		if len(units) > 0 && !named[s.Name] && !triggersAny(s, named) {
			continue
		}
		for _, t := range s.Triggers {
			keep[t] = true
		}
		for _, t := range s.Instances {
			keep[t] = true
		}
	}
	match := func(name string) bool {
		if len(units) > 0 {
			return named[name]
		}
		return unitpattern.MatchAny(patterns, name)
	}
	out := st.Services[:0]
	for _, s := range st.Services {
		if keep[s.Name] || match(s.Name) {
			out = append(out, s)
		}
	}
	st.Services = out
}

// triggersAny reports whether a socket unit triggers one of the named units.
func triggersAny(s dbusclient.Socket, named map[string]bool) bool {
	for _, t := range s.Triggers {
		if named[t] {
			return true
		}
	}
	return false
}

func dedupe(pids []int) []int {
	sort.Ints(pids)
	out := pids[:0]
	for i, p := range pids {
		if p > 0 && (i == 0 || pids[i-1] != p) {
			out = append(out, p)
		}
	}
	return out
}

// ErrNoManager is returned (wrapped) when no manager answers.
var ErrNoManager = errors.New("no systemd manager answers")
