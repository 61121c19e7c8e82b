package dbusclient

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/fdtop/fdtop/internal/unitpattern"
	"github.com/godbus/dbus/v5"
)

// prop is one property to read into dest.
type prop struct {
	iface, name string
	dest        any
	optional    bool // missing on older managers: leave dest as it is
	// found, if set, is called once dest holds the property's value: an
	// optional property's pointer is set only then, so a property the
	// manager lacks stays nil (unknown), never zero.
	found func()
}

// optionalProp reads an optional property into a new T and points *dst at
// it when the manager has the property; *dst stays nil otherwise.
func optionalProp[T any](iface, name string, dst **T) prop {
	v := new(T)
	return prop{iface: iface, name: name, dest: v, optional: true, found: func() { *dst = v }}
}

func (p prop) call(path dbus.ObjectPath) *call { return getProp(path, p.iface, p.name) }

// isGone reports whether err says the unit left the manager meanwhile.
func isGone(err error) bool {
	switch dbusErrorName(err) {
	case errNameUnknownObj, errNameNoSuchUnit:
		return true
	}
	return false
}

func isMissingProp(err error) bool {
	switch dbusErrorName(err) {
	case errNameUnknownProp, errNameInvalidArgs, errNameUnknownMeth:
		return true
	}
	return false
}

// unitRead is the pending read of one unit.
type unitRead struct {
	name  string
	props []prop
	calls []*call
	procs *call  // GetUnitProcesses (or another manager call), or nil
	after func() // conversions once the replies are decoded
}

func newUnitRead(name string, path dbus.ObjectPath, props []prop) *unitRead {
	r := &unitRead{name: name, props: props, calls: make([]*call, len(props))}
	for i, p := range props {
		r.calls[i] = p.call(path)
	}
	return r
}

func (r *unitRead) all() []*call {
	if r.procs != nil {
		return append(r.calls[:len(r.calls):len(r.calls)], r.procs)
	}
	return r.calls
}

// decode stores the replies; gone is true if the unit vanished meanwhile.
func (r *unitRead) decode(c *Client) (gone bool, err error) {
	for i, p := range r.props {
		cl := r.calls[i]
		if cl.err != nil {
			switch {
			case isGone(cl.err):
				return true, nil
			case p.optional && isMissingProp(cl.err):
				if p.name == "FileDescriptorStorePreserve" {
					c.mu.Lock()
					c.features.FDStorePreserve = false
					c.mu.Unlock()
				}
				continue
			}
			return false, fmt.Errorf("read %s.%s of %s: %w", p.iface[strings.LastIndexByte(p.iface, '.')+1:], p.name, r.name, cl.err)
		}
		if err := cl.storeProp(p.dest); err != nil {
			return false, fmt.Errorf("decode %s of %s: %w", p.name, r.name, err)
		}
		if p.found != nil {
			p.found()
		}
	}
	return false, nil
}

// decodeProcs stores GetUnitProcesses' reply.
func (r *unitRead) decodeProcs() ([]Process, error) {
	if r.procs == nil {
		return nil, nil
	}
	if r.procs.err != nil {
		if isGone(r.procs.err) {
			return nil, nil
		}
		return nil, fmt.Errorf("processes of %s: %w", r.name, r.procs.err)
	}
	return decodeProcesses(r.procs.body)
}

func decodeProcesses(body []any) ([]Process, error) {
	var raw []struct {
		CGroup  string
		PID     uint32
		Cmdline string
	}
	if err := dbus.Store(body, &raw); err != nil {
		return nil, fmt.Errorf("decode processes: %w", err)
	}
	ps := make([]Process, len(raw))
	for i, p := range raw {
		ps[i] = Process{PID: p.PID, Cmdline: p.Cmdline, CGroup: p.CGroup}
	}
	return ps, nil
}

func listCall(states, patterns []string) *call {
	if states == nil {
		states = []string{}
	}
	return &call{path: managerPath, method: ifaceManager + ".ListUnitsByPatterns", args: []any{states, patterns}}
}

func (c *call) units() ([]unitStatus, error) {
	var us []unitStatus
	if err := c.store(&us); err != nil {
		return nil, fmt.Errorf("list units %v: %w", c.args[1], err)
	}
	return us, nil
}

// shown mirrors systemctl without --all: inactive units and units that
// follow another are hidden unless a job is queued.
func shown(u unitStatus, all bool) bool {
	return all || u.JobID != 0 || (u.ActiveState != "inactive" && u.Following == "")
}

// socketRead prepares the reads of one socket unit: the properties every
// manager has, then those of newer managers that this one has (all of them
// where that is not known: each is optional).
func (c *Client) socketRead(u unitStatus) (*unitRead, *Socket) {
	s := &Socket{UnitState: u.state()}
	props := []prop{
		{iface: ifaceSocket, name: "Listen", dest: &s.Listen},
		{iface: ifaceUnit, name: "Triggers", dest: &s.Triggers},
		{iface: ifaceSocket, name: "Accept", dest: &s.Accept},
		{iface: ifaceSocket, name: "FileDescriptorName", dest: &s.FileDescriptorName},
		{iface: ifaceSocket, name: "FlushPending", dest: &s.FlushPending},
		{iface: ifaceUnit, name: "ActiveEnterTimestampMonotonic", dest: &s.ActiveEnterMonotonic},
		{iface: ifaceSocket, name: "NConnections", dest: &s.Counters.NConnections},
		{iface: ifaceSocket, name: "NAccepted", dest: &s.Counters.NAccepted},
		{iface: ifaceSocket, name: "NRefused", dest: &s.Counters.NRefused},
		{iface: ifaceUnit, name: "WantedBy", dest: &s.WantedBy},
	}
	f := c.Features()
	for _, p := range socketSettingProps(&s.Settings) {
		if !f.SocketSettingsKnown || slices.Contains(f.SocketSettings, p.name) {
			props = append(props, p)
		}
	}
	return newUnitRead(u.Name, u.Path, props), s
}

// socketSettingProps are the reads of the socket settings that came after
// systemd 254, each optional.
func socketSettingProps(st *SocketSettings) []prop {
	return []prop{
		optionalProp(ifaceSocket, "PollLimitIntervalUSec", &st.PollLimitIntervalUSec),
		optionalProp(ifaceSocket, "PollLimitBurst", &st.PollLimitBurst),
		optionalProp(ifaceSocket, "PassFileDescriptorsToExec", &st.PassFDsToExec),
		optionalProp(ifaceSocket, "DeferTrigger", &st.DeferTrigger),
		optionalProp(ifaceSocket, "DeferTriggerMaxUSec", &st.DeferTriggerMaxUSec),
		optionalProp(ifaceSocket, "PassPIDFD", &st.PassPIDFD),
		optionalProp(ifaceSocket, "AcceptFileDescriptors", &st.AcceptFDs),
	}
}

// SocketSettingNames are the D-Bus names of the socket settings in
// SocketSettings, in its order.
func SocketSettingNames() []string {
	var names []string
	for _, p := range socketSettingProps(&SocketSettings{}) {
		names = append(names, p.name)
	}
	return names
}

// finishSocket fills in what follows from the properties.
func finishSocket(s *Socket) {
	if !s.Accept {
		return
	}
	s.Template = strings.TrimSuffix(s.Name, ".socket") + "@.service"
	for _, t := range s.Triggers {
		if templateOf(t) == s.Template {
			s.Instances = append(s.Instances, t)
		}
	}
}

// addInstances adds to an Accept=yes socket the loaded instances of its
// template that Triggers does not name: after a daemon-reload, systemd 252
// leaves a socket's Triggers empty although its instances live on.
func addInstances(s *Socket, services []unitStatus, all bool) {
	have := map[string]bool{}
	for _, in := range s.Instances {
		have[in] = true
	}
	for _, u := range services {
		if u.LoadState == "loaded" && shown(u, all) && templateOf(u.Name) == s.Template && !have[u.Name] {
			have[u.Name] = true
			s.Instances = append(s.Instances, u.Name)
		}
	}
	sort.Strings(s.Instances)
}

// serviceRead prepares the reads of one service unit. Inactive services
// have no main or control process, no control group and no processes, so
// those are not read for them.
func (c *Client) serviceRead(u unitStatus, withMax, withTriggeredBy bool) (*unitRead, *Service) {
	s := &Service{UnitState: u.state(), Template: templateOf(u.Name)}
	var startUsec uint64
	props := []prop{
		{iface: ifaceService, name: "Type", dest: &s.Type},
		{iface: ifaceService, name: "NotifyAccess", dest: &s.NotifyAccess},
		{iface: ifaceService, name: "Result", dest: &s.Result},
		{iface: ifaceService, name: "StatusText", dest: &s.StatusText},
		{iface: ifaceService, name: "ExecMainPID", dest: &s.ExecMainPID},
		{iface: ifaceService, name: "ExecMainStartTimestamp", dest: &startUsec},
		{iface: ifaceService, name: "NRestarts", dest: &s.NRestarts},
		{iface: ifaceService, name: "NFileDescriptorStore", dest: &s.NFDStore},
	}
	if withMax {
		props = append(props, prop{iface: ifaceService, name: "FileDescriptorStoreMax", dest: &s.FDStoreMax})
	}
	if c.Features().FDStorePreserve {
		props = append(props, prop{iface: ifaceService, name: "FileDescriptorStorePreserve", dest: &s.FDStorePreserve, optional: true})
	}
	if withTriggeredBy {
		props = append(props, prop{iface: ifaceUnit, name: "TriggeredBy", dest: &s.TriggeredBy})
	}
	active := u.ActiveState != "inactive"
	if active {
		props = append(props,
			prop{iface: ifaceService, name: "MainPID", dest: &s.MainPID},
			prop{iface: ifaceService, name: "ControlPID", dest: &s.ControlPID},
			prop{iface: ifaceService, name: "ControlGroup", dest: &s.ControlGroup})
	}
	r := newUnitRead(u.Name, u.Path, props)
	if active {
		r.procs = &call{path: managerPath, method: ifaceManager + ".GetUnitProcesses", args: []any{u.Name}}
	}
	// The timestamp is converted once the replies are in.
	r.after = func() { s.ExecMainStart = usecTime(startUsec) }
	return r, s
}

// finishService decodes a service read; ok is false if the unit is gone.
func finishService(c *Client, r *unitRead, s *Service) (ok bool, err error) {
	gone, err := r.decode(c)
	if err != nil || gone {
		return false, err
	}
	if r.after != nil {
		r.after()
	}
	if s.Processes, err = r.decodeProcs(); err != nil {
		return false, err
	}
	if s.TriggeredBy != nil {
		s.TriggeredBy = slices.DeleteFunc(s.TriggeredBy, func(n string) bool { return !strings.HasSuffix(n, ".socket") })
	}
	return true, nil
}

func collect(reads []*unitRead) []*call {
	var calls []*call
	for _, r := range reads {
		calls = append(calls, r.all()...)
	}
	return calls
}

// ListSockets returns the socket units matching patterns (all socket units
// if none), with their listeners, triggers and counters. Without all, only
// the units systemctl list-sockets shows without --all.
func (c *Client) ListSockets(ctx context.Context, patterns []string, all bool) ([]Socket, error) {
	ls := listCall(nil, socketPatterns(patterns))
	if err := c.run(ctx, []*call{ls}); err != nil {
		return nil, err
	}
	units, err := ls.units()
	if err != nil {
		return nil, err
	}
	reads, socks := c.socketReads(units, all)
	if err := c.run(ctx, collect(reads)); err != nil {
		return nil, err
	}
	return decodeSockets(c, reads, socks)
}

// ListListeners is the quick ListSockets: what systemctl list-sockets
// shows (states, Listen and Triggers) in two reads per unit, about a
// quarter of ListSockets' work. The other Socket fields are left zero.
func (c *Client) ListListeners(ctx context.Context, patterns []string, all bool) ([]Socket, error) {
	ls := listCall(nil, socketPatterns(patterns))
	if err := c.run(ctx, []*call{ls}); err != nil {
		return nil, err
	}
	units, err := ls.units()
	if err != nil {
		return nil, err
	}
	reads, socks := c.socketReads(units, all)
	for _, r := range reads {
		r.props, r.calls = r.props[:2], r.calls[:2] // Listen, Triggers
	}
	if err := c.run(ctx, collect(reads)); err != nil {
		return nil, err
	}
	return decodeSockets(c, reads, socks)
}

func socketPatterns(patterns []string) []string {
	if len(patterns) == 0 {
		return []string{"*.socket"}
	}
	return patterns
}

func (c *Client) socketReads(units []unitStatus, all bool) ([]*unitRead, []*Socket) {
	var reads []*unitRead
	var socks []*Socket
	for _, u := range units {
		if !strings.HasSuffix(u.Name, ".socket") || u.LoadState != "loaded" || !shown(u, all) {
			continue
		}
		r, s := c.socketRead(u)
		reads = append(reads, r)
		socks = append(socks, s)
	}
	return reads, socks
}

func decodeSockets(c *Client, reads []*unitRead, socks []*Socket) ([]Socket, error) {
	out := make([]Socket, 0, len(socks))
	for i, r := range reads {
		gone, err := r.decode(c)
		if err != nil {
			return nil, err
		}
		if gone {
			continue
		}
		c.learnSocketSettings(r, &socks[i].Settings)
		finishSocket(socks[i])
		out = append(out, *socks[i])
	}
	return out, nil
}

// learnSocketSettings notes which socket settings the manager has from a
// read that asked for all of them (where no socket unit could be
// introspected at connect), so later reads ask only for those.
func (c *Client) learnSocketSettings(r *unitRead, st *SocketSettings) {
	asked := 0
	for _, p := range r.props {
		if p.found != nil {
			asked++
		}
	}
	names := SocketSettingNames()
	if asked != len(names) {
		return
	}
	var have []string
	for _, n := range names {
		if settingSet(st, n) {
			have = append(have, n)
		}
	}
	c.mu.Lock()
	if !c.features.SocketSettingsKnown {
		c.features.SocketSettings, c.features.SocketSettingsKnown = have, true
	}
	c.mu.Unlock()
}

// settingSet reports whether the setting of that D-Bus name was read.
func settingSet(st *SocketSettings, name string) bool {
	switch name {
	case "PollLimitIntervalUSec":
		return st.PollLimitIntervalUSec != nil
	case "PollLimitBurst":
		return st.PollLimitBurst != nil
	case "PassFileDescriptorsToExec":
		return st.PassFDsToExec != nil
	case "DeferTrigger":
		return st.DeferTrigger != nil
	case "DeferTriggerMaxUSec":
		return st.DeferTriggerMaxUSec != nil
	case "PassPIDFD":
		return st.PassPIDFD != nil
	case "AcceptFileDescriptors":
		return st.AcceptFDs != nil
	}
	return false
}

// ListServices returns the loaded services named in names plus every loaded
// service with FileDescriptorStoreMax > 0. Services that are not loaded are
// left out, not loaded.
func (c *Client) ListServices(ctx context.Context, names []string) ([]Service, error) {
	st, err := c.load(ctx, nil, false, names, false)
	if err != nil {
		return nil, err
	}
	return st.Services, nil
}

// Load reads the socket units matching patterns (all if none; inactive
// ones too with all), the services they trigger (Accept=yes instances
// included), the services the patterns name themselves (a service that
// binds its own listener has no socket unit) and every loaded service with
// FileDescriptorStoreMax > 0, in three pipelined rounds whatever the number
// of units. With patterns, a service shown is read with every socket unit
// that triggers it (a fourth round when a pattern named the service, or
// one of its sockets, but not all of them).
func (c *Client) Load(ctx context.Context, patterns []string, all bool) (*State, error) {
	return c.load(ctx, patterns, all, nil, true)
}

func (c *Client) load(ctx context.Context, patterns []string, all bool, extra []string, withSockets bool) (*State, error) {
	// Round 1: the unit lists.
	lsvc := listCall(nil, []string{"*.service"})
	round := []*call{lsvc}
	var lsock *call
	if withSockets {
		lsock = listCall(nil, socketPatterns(patterns))
		round = append(round, lsock)
	}
	if err := c.run(ctx, round); err != nil {
		return nil, err
	}
	services, err := lsvc.units()
	if err != nil {
		return nil, err
	}
	var sockUnits []unitStatus
	if withSockets {
		if sockUnits, err = lsock.units(); err != nil {
			return nil, err
		}
	}
	// Round 2: socket properties and every loaded service's store size.
	sreads, socks := c.socketReads(sockUnits, all)
	var loaded []unitStatus
	maxes := map[string]*uint32{}
	var mcalls []*call
	for _, u := range services {
		if u.LoadState != "loaded" {
			continue
		}
		loaded = append(loaded, u)
		m := new(uint32)
		maxes[u.Name] = m
		mcalls = append(mcalls, getProp(u.Path, ifaceService, "FileDescriptorStoreMax"))
	}
	if err := c.run(ctx, append(collect(sreads), mcalls...)); err != nil {
		return nil, err
	}
	st := &State{}
	if st.Sockets, err = decodeSockets(c, sreads, socks); err != nil {
		return nil, err
	}
	// Round 3: the services worth showing.
	want := map[string][]string{} // service -> sockets triggering it
	for _, n := range extra {
		want[n] = nil
	}
	for i := range st.Sockets {
		s := &st.Sockets[i]
		if s.Accept {
			addInstances(s, services, all)
		}
		seen := map[string]bool{}
		for _, t := range append(append([]string(nil), s.Triggers...), s.Instances...) {
			if strings.HasSuffix(t, ".service") && !seen[t] {
				seen[t] = true
				want[t] = append(want[t], s.Name)
			}
		}
	}
	named := map[string]bool{} // named by a pattern or in extra
	for _, n := range extra {
		named[n] = true
	}
	for i, u := range loaded {
		if mcalls[i].err == nil {
			_ = mcalls[i].storeProp(maxes[u.Name])
		}
		if len(patterns) > 0 && shown(u, all) && unitpattern.MatchAny(patterns, u.Name) {
			named[u.Name] = true
		}
		if *maxes[u.Name] > 0 || named[u.Name] {
			if _, ok := want[u.Name]; !ok {
				want[u.Name] = nil
			}
		}
	}
	// A service shown although not every socket unit was read (patterns
	// name it, or one of its sockets) is read with all its socket units:
	// their listeners would otherwise look like its own, and its
	// connections and fd store would be judged without them.
	limited := len(patterns) > 0 || len(extra) > 0
	var vreads []*unitRead
	var svcs []*Service
	for _, u := range loaded {
		by, ok := want[u.Name]
		if !ok {
			continue
		}
		whole := limited && (by != nil || named[u.Name])
		r, s := c.serviceRead(u, false, whole)
		s.FDStoreMax = *maxes[u.Name]
		if !whole {
			s.TriggeredBy = by
		}
		vreads = append(vreads, r)
		svcs = append(svcs, s)
	}
	if err := c.run(ctx, collect(vreads)); err != nil {
		return nil, err
	}
	for i, r := range vreads {
		ok, err := finishService(c, r, svcs[i])
		if err != nil {
			return nil, err
		}
		if ok {
			st.Services = append(st.Services, *svcs[i])
		}
	}
	// Round 4, only when some are missing: those socket units.
	if limited {
		if err := c.addTriggering(ctx, st, services, all); err != nil {
			return nil, err
		}
		// TriggeredBy names the sockets read with the service (not those
		// hidden: inactive ones without all).
		read := map[string]bool{}
		for _, so := range st.Sockets {
			read[so.Name] = true
		}
		for i := range st.Services {
			st.Services[i].TriggeredBy = slices.DeleteFunc(st.Services[i].TriggeredBy, func(n string) bool { return !read[n] })
		}
	}
	sort.Slice(st.Sockets, func(i, j int) bool { return st.Sockets[i].Name < st.Sockets[j].Name })
	sort.Slice(st.Services, func(i, j int) bool { return st.Services[i].Name < st.Services[j].Name })
	return st, nil
}

// addTriggering reads the socket units that trigger the services of st
// and are not among its sockets, and adds them.
func (c *Client) addTriggering(ctx context.Context, st *State, services []unitStatus, all bool) error {
	have := map[string]bool{}
	for _, s := range st.Sockets {
		have[s.Name] = true
	}
	var missing []string
	for _, svc := range st.Services {
		for _, so := range svc.TriggeredBy {
			if !have[so] {
				have[so] = true
				missing = append(missing, exactPattern(so))
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	ls := listCall(nil, missing)
	if err := c.run(ctx, []*call{ls}); err != nil {
		return err
	}
	units, err := ls.units()
	if err != nil {
		return err
	}
	reads, socks := c.socketReads(units, all)
	if err := c.run(ctx, collect(reads)); err != nil {
		return err
	}
	more, err := decodeSockets(c, reads, socks)
	if err != nil {
		return err
	}
	for i := range more {
		if more[i].Accept {
			addInstances(&more[i], services, all)
		}
	}
	st.Sockets = append(st.Sockets, more...)
	return nil
}

// unitState looks a loaded unit up without loading it.
func (c *Client) unitState(ctx context.Context, name string) (unitStatus, error) {
	ls := listCall(nil, []string{exactPattern(name)})
	if err := c.call1(ctx, ls); err != nil {
		return unitStatus{}, &UnitError{Op: "read", Unit: name, Err: err}
	}
	units, err := ls.units()
	if err != nil {
		return unitStatus{}, &UnitError{Op: "read", Unit: name, Err: err}
	}
	for _, u := range units {
		if u.Name == name {
			return u, nil
		}
	}
	return unitStatus{}, &UnitError{Op: "read", Unit: name, Err: fmt.Errorf("%w: not loaded", ErrNoSuchUnit)}
}

// Socket re-reads one socket unit: two round trips, that unit only.
func (c *Client) Socket(ctx context.Context, name string) (Socket, error) {
	u, err := c.unitState(ctx, name)
	if err != nil {
		return Socket{}, err
	}
	r, s := c.socketRead(u)
	if err := c.run(ctx, r.all()); err != nil {
		return Socket{}, err
	}
	gone, err := r.decode(c)
	if err != nil {
		return Socket{}, err
	}
	if gone {
		return Socket{}, &UnitError{Op: "read", Unit: name, Err: fmt.Errorf("%w: unloaded meanwhile", ErrNoSuchUnit)}
	}
	c.learnSocketSettings(r, &s.Settings)
	finishSocket(s)
	return *s, nil
}

// Service re-reads one service unit, TriggeredBy included: two round
// trips, that unit only.
func (c *Client) Service(ctx context.Context, name string) (Service, error) {
	u, err := c.unitState(ctx, name)
	if err != nil {
		return Service{}, err
	}
	r, s := c.serviceRead(u, true, true)
	if err := c.run(ctx, r.all()); err != nil {
		return Service{}, err
	}
	ok, err := finishService(c, r, s)
	if err != nil {
		return Service{}, err
	}
	if !ok {
		return Service{}, &UnitError{Op: "read", Unit: name, Err: fmt.Errorf("%w: unloaded meanwhile", ErrNoSuchUnit)}
	}
	return *s, nil
}

// Processes returns the processes of a loaded unit's control group.
func (c *Client) Processes(ctx context.Context, unit string) ([]Process, error) {
	cl := &call{path: managerPath, method: ifaceManager + ".GetUnitProcesses", args: []any{unit}}
	if err := c.call1(ctx, cl); err != nil {
		return nil, unitErr("read processes of", unit, err)
	}
	ps, err := decodeProcesses(cl.body)
	if err != nil {
		return nil, &UnitError{Op: "read processes of", Unit: unit, Err: err}
	}
	return ps, nil
}

// rawStoreEntry is one entry of DumpUnitFileDescriptorStore: (suuutuusu).
type rawStoreEntry struct {
	Name                 string
	Mode                 uint32
	DevMajor, DevMinor   uint32
	Inode                uint64
	RdevMajor, RdevMinor uint32
	Path                 string
	Flags                uint32
}

func decodeStoreEntries(body []any) ([]StoreEntry, error) {
	var raw []rawStoreEntry
	if err := dbus.Store(body, &raw); err != nil {
		return nil, fmt.Errorf("decode fd store: %w", err)
	}
	out := make([]StoreEntry, len(raw))
	for i, e := range raw {
		out[i] = StoreEntry{
			Name: e.Name, Mode: e.Mode, Inode: e.Inode, Path: e.Path, Flags: e.Flags,
			Dev:  DevNum{e.DevMajor, e.DevMinor},
			Rdev: DevNum{e.RdevMajor, e.RdevMinor},
		}
	}
	return out, nil
}

// FDStore returns a loaded service's file descriptor store. Where the
// manager cannot list entries (before v254) it returns the count alone with
// Listed false.
func (c *Client) FDStore(ctx context.Context, service string) (FDStore, error) {
	u, err := c.unitState(ctx, service)
	if err != nil {
		return FDStore{}, err
	}
	st := FDStore{Service: service}
	props := []prop{
		{iface: ifaceService, name: "FileDescriptorStoreMax", dest: &st.Max},
		{iface: ifaceService, name: "NFileDescriptorStore", dest: &st.Count},
	}
	f := c.Features()
	if f.FDStorePreserve {
		props = append(props, prop{iface: ifaceService, name: "FileDescriptorStorePreserve", dest: &st.Preserve, optional: true})
	}
	r := newUnitRead(service, u.Path, props)
	var dump *call
	if f.FDStoreDump {
		dump = &call{path: managerPath, method: ifaceManager + ".DumpUnitFileDescriptorStore", args: []any{service}}
		r.procs = dump // rides along in the same batch
	}
	if err := c.run(ctx, r.all()); err != nil {
		return FDStore{}, err
	}
	gone, err := r.decode(c)
	if err != nil {
		return FDStore{}, err
	}
	if gone {
		return FDStore{}, &UnitError{Op: "read fd store of", Unit: service, Err: fmt.Errorf("%w: unloaded meanwhile", ErrNoSuchUnit)}
	}
	if dump == nil {
		return st, nil
	}
	switch {
	case dump.err == nil:
		if st.Entries, err = decodeStoreEntries(dump.body); err != nil {
			return FDStore{}, &UnitError{Op: "read fd store of", Unit: service, Err: err}
		}
		st.Listed = true
	case dbusErrorName(dump.err) == errNameUnknownMeth:
		c.mu.Lock()
		c.features.FDStoreDump = false
		c.mu.Unlock()
	case st.Max == 0:
		st.Listed = true // no store, nothing to list
	default:
		err := unitErr("read fd store of", service, dump.err)
		var denied *AccessDeniedError
		if errors.As(err, &denied) {
			st.Denied = true // the entries are unknown to this caller, the rest is read
			return st, nil
		}
		return FDStore{}, err
	}
	return st, nil
}

// Counters reads the never-signalling counters of the given units that are
// loaded (others are skipped, not loaded): NConnections, NAccepted and
// NRefused of sockets, NFileDescriptorStore of services.
func (c *Client) Counters(ctx context.Context, units []string) (map[string]Counters, error) {
	// Exact patterns, at most 64 a call: only these units are listed
	// (listing every unit on each poll costs the manager more than the
	// reads), and a unit that is not loaded is not loaded by asking.
	var lists []*call
	for chunk := range slices.Chunk(units, 64) {
		patterns := make([]string, len(chunk))
		for i, u := range chunk {
			patterns[i] = exactPattern(u)
		}
		lists = append(lists, listCall(nil, patterns))
	}
	if err := c.run(ctx, lists); err != nil {
		return nil, err
	}
	var loaded []unitStatus
	for _, ls := range lists {
		us, err := ls.units()
		if err != nil {
			return nil, err
		}
		loaded = append(loaded, us...)
	}
	want := map[string]bool{}
	for _, u := range units {
		want[u] = true
	}
	out := map[string]Counters{}
	vals := map[string]*Counters{}
	var reads []*unitRead
	for _, u := range loaded {
		if !want[u.Name] || u.LoadState != "loaded" {
			continue
		}
		n := new(Counters)
		var props []prop
		switch {
		case strings.HasSuffix(u.Name, ".socket"):
			props = []prop{
				{iface: ifaceSocket, name: "NConnections", dest: &n.NConnections},
				{iface: ifaceSocket, name: "NAccepted", dest: &n.NAccepted},
				{iface: ifaceSocket, name: "NRefused", dest: &n.NRefused},
			}
		case strings.HasSuffix(u.Name, ".service"):
			props = []prop{{iface: ifaceService, name: "NFileDescriptorStore", dest: &n.NFileDescriptorStore}}
		default:
			continue
		}
		vals[u.Name] = n
		reads = append(reads, newUnitRead(u.Name, u.Path, props))
	}
	if err := c.run(ctx, collect(reads)); err != nil {
		return nil, err
	}
	for _, r := range reads {
		gone, err := r.decode(c)
		if err != nil {
			return nil, err
		}
		if !gone {
			out[r.name] = *vals[r.name]
		}
	}
	return out, nil
}

// JobType returns the type of a queued or running job (start, stop,
// restart, reload, ...). A job that already finished has no object left,
// and reading it fails.
func (c *Client) JobType(ctx context.Context, job dbus.ObjectPath) (string, error) {
	cl := getProp(job, ifaceJob, "JobType")
	if err := c.run(ctx, []*call{cl}); err != nil {
		return "", fmt.Errorf("read job type of %s: %w", job, err)
	}
	var t string
	if err := cl.storeProp(&t); err != nil {
		return "", fmt.Errorf("read job type of %s: %w", job, err)
	}
	return t, nil
}

// UnitNames lists the names of the units the manager has loaded that match
// patterns (ListUnitsByPatterns: shell globs on whole names), sorted; shell
// completion offers them.
func (c *Client) UnitNames(ctx context.Context, patterns []string) ([]string, error) {
	l := listCall(nil, patterns)
	if err := c.run(ctx, []*call{l}); err != nil {
		return nil, err
	}
	us, err := l.units()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(us))
	for _, u := range us {
		names = append(names, u.Name)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}
