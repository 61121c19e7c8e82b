package inspect

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
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
	// sessions in session-N.scope), or the other ends of the units' unix
	// connections (the services whose stdout streams journald stores): a
	// targeted scan reads them too, so those connections stay in view, and
	// their peers named, between full scans and across a restart of the
	// service.
	outsideMu sync.Mutex
	outside   []int

	cacheMu sync.Mutex
	cache   *unitsRead // the units as last read in full, patched by the limited reads since

	// storeDenied is set once the manager refused to list an fd store
	// (DumpUnitFileDescriptorStore, polkit): the stores' entries are then
	// unknown to this user, said once in Manager.
	storeDenied atomic.Bool
}

// Names reports whether a socket unit or service the last picture does not
// hold would be in a snapshot by its name alone: it matches a pattern (or
// is one of ExtraServices), or, without patterns, it is a socket unit. A
// service without patterns is in by its socket unit or its fd store, which
// only a read of it tells: one the picture does not hold is not named.
func (b *Builder) Names(unit string) bool {
	if slices.Contains(b.ExtraServices, unit) {
		return true
	}
	if len(b.Patterns) == 0 {
		return strings.HasSuffix(unit, ".socket")
	}
	return unitpattern.MatchAny(b.Patterns, unit)
}

// unitsRead is what one snapshot read from the manager: the units, their
// fd stores and the manager's processes.
type unitsRead struct {
	st          *dbusclient.State
	stores      map[string]dbusclient.FDStore
	managerPIDs []int
	unmatched   []string
}

// outsidePIDs returns the holders the last full scan found outside the units.
func (b *Builder) outsidePIDs() []int {
	b.outsideMu.Lock()
	defer b.outsideMu.Unlock()
	return b.outside
}

// noteOutside remembers the holders of a full scan's connections that are
// outside their services, those of the other ends of their unix
// connections (Snapshot.PeerPIDs), and the processes outside the units
// that hold a listener (a leak): a scan of the units alone reads them
// too, or the leak would vanish from the picture between host-wide passes
// (and the listener be "held only by the manager").
func (b *Builder) noteOutside(snap *Snapshot) {
	pids := slices.Clone(snap.PeerPIDs)
	for _, svc := range snap.Services {
		for _, c := range svc.Connections {
			if c.Outside {
				pids = append(pids, c.PID)
			}
		}
		pids = append(pids, outsideHolders(svc.OwnListeners)...)
	}
	for _, su := range snap.Sockets {
		pids = append(pids, outsideHolders(su.Listeners)...)
	}
	b.outsideMu.Lock()
	b.outside = dedupe(pids)
	b.outsideMu.Unlock()
}

// outsideHolders lists the holders of ls outside the units.
func outsideHolders(ls []Listener) []int {
	var out []int
	for _, l := range ls {
		for _, h := range l.Holders {
			if h.Outside {
				out = append(out, h.PID)
			}
		}
	}
	return out
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
	// Cached takes the units from what the Builder last read of every unit,
	// with the units read by the limited snapshots since put in, and asks
	// the manager nothing: only /proc is read again. For a caller that
	// follows the manager's signals and reads every unit they name (a
	// Watcher): the units are then as fresh as the signals. Without a full
	// read yet (or with Units set), the manager is read as usual. With
	// FullScan, processes outside the units whose start time and
	// descriptor count are unchanged keep the descriptors an earlier full
	// scan read (procfs.ScanOptions.ReuseFDs).
	Cached bool
}

// Snapshot takes one joined snapshot.
func (b *Builder) Snapshot(ctx context.Context, opts SnapshotOptions) (*Snapshot, error) {
	var r *unitsRead
	if opts.Cached && len(opts.Units) == 0 {
		r = b.cached()
	}
	if r == nil {
		if w, ok := b.Kernel.(holdersWarmer); ok && opts.FullScan {
			// The host-wide pass's BPF program loads while the
			// manager is read.
			w.WarmHolders()
		}
		var err error
		if r, err = b.read(ctx, opts.Units); err != nil {
			return nil, err
		}
		b.remember(r, opts.Units)
	}
	st := r.st

	start := time.Now()
	var scan *procfs.Scan
	var err error
	pids := append(append([]int(nil), r.managerPIDs...), b.outsidePIDs()...)
	for _, s := range st.Services {
		if s.MainPID != 0 {
			pids = append(pids, int(s.MainPID))
		}
		for _, p := range s.Processes {
			pids = append(pids, int(p.PID))
		}
	}
	pids = dedupe(pids)
	if opts.FullScan {
		// A host-wide pass of a follower (Cached) reads again only the
		// processes that changed, and the units' and the manager's. It
		// keeps of the host what relates to those: the holders of what
		// they hold, the connections accepted from their listeners, the
		// peers of their unix sockets (what Join shows).
		scan, err = b.Kernel.Scan(ctx, procfs.ScanOptions{ReuseFDs: opts.Cached, FreshPIDs: pids, Related: true})
	} else {
		scan, err = b.Kernel.ScanPIDs(ctx, pids, procfs.ScanOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("scan /proc: %w", err)
	}
	if scan.Hierarchy == procfs.HierarchyUnknown {
		if h := hierarchyFromUnits(st.Services, scan); h != procfs.HierarchyUnknown {
			scan.UseHierarchy(h)
		}
	}
	hostname, root := b.host.get()
	snap := Join(JoinInput{
		Time:         time.Now(),
		Manager:      b.manager(),
		ManagerPIDs:  r.managerPIDs,
		State:        st,
		Stores:       r.stores,
		Scan:         scan,
		ScanDuration: time.Since(start),
		Hostname:     hostname,
	})
	snap.Host.Root = root
	if opts.FullScan {
		b.noteOutside(snap)
	}
	if len(opts.Units) == 0 {
		snap.Unmatched = r.unmatched
	}
	return snap, nil
}

// holdersWarmer is a Kernel that can start loading what its host-wide
// pass needs ahead of it (procfs.FS.WarmHolders).
type holdersWarmer interface{ WarmHolders() }

// hierarchyFromUnits decides which cgroup hierarchy the manager tracks
// units in when /sys/fs/cgroup did not tell: the line of a service's main
// process that is its ControlGroup (procfs.HierarchyOf), never line order.
func hierarchyFromUnits(svcs []dbusclient.Service, scan *procfs.Scan) procfs.Hierarchy {
	for _, s := range svcs {
		if s.MainPID == 0 || s.ControlGroup == "" {
			continue
		}
		p, ok := scan.Process(int(s.MainPID))
		if !ok {
			continue
		}
		if h := procfs.HierarchyOf(s.ControlGroup, p.Cgroups); h != procfs.HierarchyUnknown {
			return h
		}
	}
	return procfs.HierarchyUnknown
}

// read asks the manager for the units (all, or those named), their fd
// stores and its own processes.
func (b *Builder) read(ctx context.Context, units []string) (*unitsRead, error) {
	patterns := b.Patterns
	if len(units) > 0 {
		patterns = socketPatterns(units)
	}
	st, err := b.Systemd.Load(ctx, patterns, b.All || len(units) > 0)
	if err != nil {
		return nil, fmt.Errorf("load units: %w", err)
	}
	if extra := b.extraServices(st, units); len(extra) > 0 {
		// Named, and not read by their sockets (their socket units are
		// named otherwise, or they are inactive): read by name, each with
		// the socket units that trigger it, or their listeners would look
		// like their own.
		more, err := b.Systemd.Load(ctx, extra, true)
		if err != nil {
			return nil, fmt.Errorf("load services: %w", err)
		}
		have := map[string]bool{}
		for _, s := range st.Sockets {
			have[s.Name] = true
		}
		for _, s := range st.Services {
			have[s.Name] = true
		}
		for _, s := range more.Sockets {
			if !have[s.Name] {
				have[s.Name] = true
				st.Sockets = append(st.Sockets, s)
			}
		}
		for _, s := range more.Services {
			if !have[s.Name] {
				st.Services = append(st.Services, s)
			}
		}
	}
	filterServices(st, append(append([]string(nil), b.Patterns...), b.ExtraServices...), units)

	mgr, err := b.Systemd.Processes(ctx, "init.scope")
	if err != nil && b.Scope == "system" {
		mgr = []dbusclient.Process{{PID: 1}}
	} else if err != nil {
		return nil, fmt.Errorf("find the manager's process: %w", err)
	}
	r := &unitsRead{st: st, stores: map[string]dbusclient.FDStore{}}
	for _, p := range mgr {
		r.managerPIDs = append(r.managerPIDs, int(p.PID))
	}

	feats := b.Systemd.Features()
	for _, s := range st.Services {
		if s.FDStoreMax == 0 {
			continue
		}
		if s.NFDStore == 0 || !feats.FDStoreDump {
			r.stores[s.Name] = dbusclient.FDStore{Service: s.Name, Max: s.FDStoreMax, Count: s.NFDStore, Preserve: s.FDStorePreserve, Listed: feats.FDStoreDump}
			continue
		}
		if b.storeDenied.Load() {
			// Refused once: the manager is not asked (and polkit not
			// bothered) again; the entries stay unknown.
			r.stores[s.Name] = dbusclient.FDStore{Service: s.Name, Max: s.FDStoreMax, Count: s.NFDStore, Preserve: s.FDStorePreserve, Denied: true}
			continue
		}
		fs, err := b.Systemd.FDStore(ctx, s.Name)
		if err != nil {
			return nil, fmt.Errorf("fd store of %s: %w", s.Name, err)
		}
		if fs.Denied {
			b.storeDenied.Store(true)
		}
		r.stores[s.Name] = fs
	}
	if len(units) == 0 {
		r.unmatched = unmatched(b.Patterns, st)
	}
	return r, nil
}

// cached is a copy of the units as last read (nil before a read of every
// unit), safe to hand to Join.
func (b *Builder) cached() *unitsRead {
	b.cacheMu.Lock()
	defer b.cacheMu.Unlock()
	if b.cache == nil {
		return nil
	}
	c := b.cache
	return &unitsRead{
		st:          &dbusclient.State{Sockets: slices.Clone(c.st.Sockets), Services: slices.Clone(c.st.Services)},
		stores:      maps.Clone(c.stores),
		managerPIDs: slices.Clone(c.managerPIDs),
		unmatched:   slices.Clone(c.unmatched),
	}
}

// remember keeps a read of every unit for Cached snapshots, or puts the
// units a limited read saw (units) into the one kept: those read replace
// theirs, those asked for and not returned are gone from it.
func (b *Builder) remember(r *unitsRead, units []string) {
	b.cacheMu.Lock()
	defer b.cacheMu.Unlock()
	if len(units) == 0 {
		c := *r
		c.st = &dbusclient.State{Sockets: slices.Clone(r.st.Sockets), Services: slices.Clone(r.st.Services)}
		c.stores = maps.Clone(r.stores)
		b.cache = &c
		return
	}
	if b.cache == nil {
		return
	}
	old := b.cache
	drop := map[string]bool{}
	for _, u := range units {
		drop[u] = true
	}
	for _, s := range r.st.Sockets {
		drop[s.Name] = true
	}
	for _, s := range r.st.Services {
		drop[s.Name] = true
	}
	c := &unitsRead{st: &dbusclient.State{}, stores: map[string]dbusclient.FDStore{}, managerPIDs: slices.Clone(r.managerPIDs), unmatched: old.unmatched}
	for _, s := range old.st.Sockets {
		if !drop[s.Name] {
			c.st.Sockets = append(c.st.Sockets, s)
		}
	}
	for _, s := range r.st.Sockets {
		// A limited read includes inactive sockets; a read of every unit
		// shows them only with All (or while a job is queued).
		if b.All || s.ActiveState != "inactive" || s.JobID != 0 {
			c.st.Sockets = append(c.st.Sockets, s)
		}
	}
	for _, s := range old.st.Services {
		if !drop[s.Name] {
			c.st.Services = append(c.st.Services, s)
			if fs, ok := old.stores[s.Name]; ok {
				c.stores[s.Name] = fs
			}
		}
	}
	for _, s := range r.st.Services {
		c.st.Services = append(c.st.Services, s)
		if fs, ok := r.stores[s.Name]; ok {
			c.stores[s.Name] = fs
		}
	}
	sort.Slice(c.st.Sockets, func(i, j int) bool { return c.st.Sockets[i].Name < c.st.Sockets[j].Name })
	sort.Slice(c.st.Services, func(i, j int) bool { return c.st.Services[i].Name < c.st.Services[j].Name })
	b.cache = c
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
	if b.storeDenied.Load() {
		m.FDStoreDenied = true
		m.Limits = append(m.Limits, "fd store contents unknown: the manager refused DumpUnitFileDescriptorStore to this user (polkit org.freedesktop.systemd1.manage-units); counts are still known")
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
