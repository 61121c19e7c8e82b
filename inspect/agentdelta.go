package inspect

import (
	"reflect"
	"slices"
	"sort"
	"time"
)

// SnapshotUpdate is what changed between two pictures of one manager: the
// agent sends these instead of a whole snapshot every time. Units are
// replaced whole; nil fields did not change.
type SnapshotUpdate struct {
	// Time is when the newer picture was taken.
	Time time.Time `json:"time"`
	// Manager and Host, when they changed (Host's scan duration alone is
	// not a change).
	Manager *Manager  `json:"manager,omitempty"`
	Host    *HostInfo `json:"host,omitempty"`
	// Sockets and Services are the units that are new or changed.
	Sockets  []SocketUnit `json:"sockets,omitempty"`
	Services []Service    `json:"services,omitempty"`
	// RemovedSockets and RemovedServices are units no longer in the picture.
	RemovedSockets  []string `json:"removed_sockets,omitempty"`
	RemovedServices []string `json:"removed_services,omitempty"`
	// Warnings is the whole new list when it changed.
	Warnings *[]Warning `json:"warnings,omitempty"`
}

// Diff returns the update that turns old into cur (old nil: all of cur),
// and whether anything changed.
func Diff(old, cur *Snapshot) (SnapshotUpdate, bool) {
	u := SnapshotUpdate{Time: cur.Time}
	if old == nil {
		old = &Snapshot{}
		m, h, w := cur.Manager, cur.Host, cur.Warnings
		u.Manager, u.Host, u.Warnings = &m, &h, &w
	} else {
		if !reflect.DeepEqual(old.Manager, cur.Manager) {
			m := cur.Manager
			u.Manager = &m
		}
		oh, ch := old.Host, cur.Host
		oh.ScanDuration, ch.ScanDuration = 0, 0
		if !reflect.DeepEqual(oh, ch) {
			h := cur.Host
			u.Host = &h
		}
		if !reflect.DeepEqual(old.Warnings, cur.Warnings) {
			w := cur.Warnings
			u.Warnings = &w
		}
	}
	oldSock := map[string]SocketUnit{}
	for _, s := range old.Sockets {
		oldSock[s.Unit] = s
	}
	curSock := map[string]bool{}
	for _, s := range cur.Sockets {
		curSock[s.Unit] = true
		if o, ok := oldSock[s.Unit]; !ok || !reflect.DeepEqual(o, s) {
			u.Sockets = append(u.Sockets, s)
		}
	}
	for _, s := range old.Sockets {
		if !curSock[s.Unit] {
			u.RemovedSockets = append(u.RemovedSockets, s.Unit)
		}
	}
	oldSvc := map[string]Service{}
	for _, s := range old.Services {
		oldSvc[s.Unit] = s
	}
	curSvc := map[string]bool{}
	for _, s := range cur.Services {
		curSvc[s.Unit] = true
		if o, ok := oldSvc[s.Unit]; !ok || !reflect.DeepEqual(o, s) {
			u.Services = append(u.Services, s)
		}
	}
	for _, s := range old.Services {
		if !curSvc[s.Unit] {
			u.RemovedServices = append(u.RemovedServices, s.Unit)
		}
	}
	changed := u.Manager != nil || u.Host != nil || u.Warnings != nil || len(u.Sockets) > 0 ||
		len(u.Services) > 0 || len(u.RemovedSockets) > 0 || len(u.RemovedServices) > 0
	return u, changed
}

// Apply returns the picture old becomes with u (old is not changed; nil
// starts from nothing).
func (u SnapshotUpdate) Apply(old *Snapshot) *Snapshot {
	s := &Snapshot{}
	if old != nil {
		*s = *old
	}
	s.Time = u.Time
	if u.Manager != nil {
		s.Manager = *u.Manager
	}
	if u.Host != nil {
		s.Host = *u.Host
	}
	if u.Warnings != nil {
		s.Warnings = *u.Warnings
	}
	socks := map[string]SocketUnit{}
	for _, x := range s.Sockets {
		socks[x.Unit] = x
	}
	for _, x := range u.Sockets {
		socks[x.Unit] = x
	}
	for _, n := range u.RemovedSockets {
		delete(socks, n)
	}
	s.Sockets = make([]SocketUnit, 0, len(socks))
	for _, x := range socks {
		s.Sockets = append(s.Sockets, x)
	}
	sort.Slice(s.Sockets, func(i, j int) bool { return s.Sockets[i].Unit < s.Sockets[j].Unit })
	svcs := map[string]Service{}
	for _, x := range s.Services {
		svcs[x.Unit] = x
	}
	for _, x := range u.Services {
		svcs[x.Unit] = x
	}
	for _, n := range u.RemovedServices {
		delete(svcs, n)
	}
	s.Services = make([]Service, 0, len(svcs))
	for _, x := range svcs {
		s.Services = append(s.Services, x)
	}
	slices.SortFunc(s.Services, func(a, b Service) int {
		switch {
		case a.Unit < b.Unit:
			return -1
		case a.Unit > b.Unit:
			return 1
		}
		return 0
	})
	return s
}
