package inspect

import "time"

// jobFailed reports that a job's result says it did not do its work
// (anything but done; "" is a result not known).
func jobFailed(result string) bool {
	return result != "" && result != "done" && result != "skipped"
}

// closedListeners is the set of listen addresses (as listenerInodes keys
// them) of socket units that are down (failed or inactive): the manager
// holds no listener for them.
func closedListeners(socks []SocketUnit) map[string]bool {
	out := map[string]bool{}
	for _, su := range socks {
		if su.ActiveState != "failed" && su.ActiveState != "inactive" {
			continue
		}
		for _, l := range su.Listeners {
			if l.Inode == 0 {
				out[l.Type+" "+l.Address] = true
			}
		}
	}
	return out
}

// concludeFailed summarises a job that failed and left the service
// without a main process: not a handoff but what it cost (the service's
// state, the socket units failed with it, the listeners closed, the
// connections and the store lost).
func (tr *Tracker) concludeFailed(name string, t *tracked, result string, at time.Time, alive map[uint64]bool, aliveUnknown bool) {
	h := tr.summarise(t, at, alive, aliveUnknown)
	h.Failed = true
	h.ServiceState = t.activeState
	a, socks, _ := t.current()
	if a.MainPID == 0 && a.ActiveState == t.activeState {
		h.ServiceResult = a.Result
	}
	for _, su := range socks {
		if su.ActiveState == "failed" {
			h.SocketsFailed = append(h.SocketsFailed, su.Unit)
		}
	}
	// Not a store handed to a next process: whatever it held before is
	// what the failure cost, said by FDStoreBefore and FDStoreAfter.
	h.StoreDiscarded = false
	t.before, t.beforeSocks, t.stopDone, t.awaitStart = nil, nil, false, false
	tr.emit(Event{Time: at, Unit: name, Type: EventHandoff, Job: t.jobType, Result: result, Handoff: &h})
}

// startingView reports that a view of a service was taken while its
// process started (activating) and the manager has said since that the
// unit is active (state, the signalled state): what the view shows is not
// what the running process held (a notify service binds its own listener
// before it says READY=1).
func startingView(svc *Service, state string) bool {
	return svc != nil && svc.ActiveState == "activating" && state == "active"
}

// knownListenAddrs lists the listen addresses (as listenerInodes keys them)
// any remembered view of the service's main processes showed.
func (t *tracked) knownListenAddrs() map[string]bool {
	out := map[string]bool{}
	for _, v := range t.byPID {
		for addr := range listenerInodes(v.svc, v.socks) {
			out[addr] = true
		}
	}
	return out
}
