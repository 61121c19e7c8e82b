package inspect

import (
	"fmt"
	"sort"
	"strings"
)

// unheldPassed is a listener a running service was passed by a socket unit
// that the manager no longer holds.
type unheldPassed struct {
	socket string
	fd     PassedFD
}

// passedUnheld lists, for a running service, the listeners it was passed
// by its socket units (LISTEN_FDNAMES naming a socket unit) that it still
// holds and the manager does not: the socket unit is stopped (or was
// refused its start because the service was already running: "Socket
// service X already active, refusing") and only the service keeps them.
// Nothing when the manager's descriptors were not read (it always holds
// some: none seen is none read).
func passedUnheld(s *Snapshot, svc *Service) []unheldPassed {
	if svc.MainPID == 0 || len(s.ManagerInodes) == 0 {
		return nil
	}
	var out []unheldPassed
	for _, p := range svc.Passed {
		if p.Inode == 0 || !strings.HasSuffix(p.Kind, "-listen") || s.ManagerInodes[p.Inode] {
			continue
		}
		socket := ""
		switch {
		case strings.HasSuffix(p.Name, ".socket"):
			socket = p.Name
		default:
			for _, su := range s.Sockets {
				if su.FileDescriptorName == p.Name && su.Service == svc.Unit {
					socket = su.Unit
				}
			}
		}
		if socket == "" {
			continue // a store entry, or a name no socket unit is known by
		}
		out = append(out, unheldPassed{socket, p})
	}
	return out
}

// PassedUnheldSockets lists the socket units whose listeners a running
// service holds and the manager does not (their logs say why: fdtop doctor
// reads them).
func PassedUnheldSockets(s *Snapshot) []string {
	var out []string
	for i := range s.Services {
		for _, u := range passedUnheld(s, &s.Services[i]) {
			out = append(out, u.socket)
		}
	}
	sort.Strings(out)
	return out
}

// unheldListeners finds the services running on listeners their socket
// unit no longer holds (socket-not-listening).
func (d *diagnosis) unheldListeners() {
	s := d.in.Snapshot
	for i := range s.Services {
		svc := &s.Services[i]
		unheld := passedUnheld(s, svc)
		if len(unheld) == 0 {
			continue
		}
		bySocket := map[string][]PassedFD{}
		var sockets []string
		for _, u := range unheld {
			if _, ok := bySocket[u.socket]; !ok {
				sockets = append(sockets, u.socket)
			}
			bySocket[u.socket] = append(bySocket[u.socket], u.fd)
		}
		sort.Strings(sockets)
		for _, socket := range sockets {
			var ev []string
			if f, ok := d.in.Facts[socket]; ok {
				ev = append(ev, fmt.Sprintf("%s: ActiveState=%s SubState=%s Result=%s", socket, f.ActiveState, f.SubState, f.Result))
			} else {
				ev = append(ev, socket+": not loaded (inactive)")
			}
			for _, p := range bySocket[socket] {
				ev = append(ev, fmt.Sprintf("%s pid %d fd %d = %q (%s %s, inode %d): the manager does not hold it", svc.Unit, svc.MainPID, p.FD, p.Name, p.Kind, p.Detail, p.Inode))
			}
			ev = append(ev, d.logMatching(socket, 3, "already active, refusing")...)
			d.add(Finding{Unit: socket, Code: "socket-not-listening",
				Problem:  fmt.Sprintf("%s is not listening: %s runs on the listeners it was passed, and the manager holds none of them; the next stop or restart of the service closes them and nobody listens (or the socket's start binds anew)", socket, svc.Unit),
				Evidence: ev,
				Fix:      fmt.Sprintf("%s stop %s && %s start %s %s (a socket is refused its start while its service runs)", d.systemctl, svc.Unit, d.systemctl, socket, svc.Unit)})
		}
	}
}

// passedBySocket is the socket unit a passed descriptor's LISTEN_FDNAMES
// name names ("" for a store entry's name or another FileDescriptorName=).
func passedBySocket(name string) string {
	if strings.HasSuffix(name, ".socket") {
		return name
	}
	return ""
}
