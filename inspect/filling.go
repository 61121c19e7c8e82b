package inspect

import "slices"

// MarkFilling returns snap, a view of every unit that read only the
// manager's and the units' processes (SnapshotOptions without FullScan),
// marked as a picture still filling (HostInfo.Filling): what only the
// host-wide pass can tell is said to be not read yet, never absent.
//
//   - every listener found in the kernel has its holders marked partial
//     (Listener.HoldersPartial): a process outside the units may hold it;
//   - no fd store entry is said to be held only by the manager
//     (StoreEntry.ManagerOnly): another process may hold it;
//   - the warnings concluded from a holder not seen are left out
//     (orphan-listener: "held only by the manager"; fdstore-pinned).
//
// What was seen stays: the holders read, a leaked-listener warning about
// a holder seen. snap is not changed.
func MarkFilling(snap *Snapshot) *Snapshot {
	if snap == nil {
		return nil
	}
	out := *snap
	out.Host.Filling = true
	out.Sockets = slices.Clone(snap.Sockets)
	for i := range out.Sockets {
		out.Sockets[i].Listeners = partialHolders(out.Sockets[i].Listeners)
	}
	out.Services = slices.Clone(snap.Services)
	for i := range out.Services {
		svc := &out.Services[i]
		svc.OwnListeners = partialHolders(svc.OwnListeners)
		if slices.ContainsFunc(svc.FDStore, func(e StoreEntry) bool { return e.ManagerOnly }) {
			svc.FDStore = slices.Clone(svc.FDStore)
			for j := range svc.FDStore {
				svc.FDStore[j].ManagerOnly = false
			}
		}
	}
	out.Warnings = slices.DeleteFunc(slices.Clone(snap.Warnings), func(w Warning) bool {
		return fillingHides[w.Code]
	})
	return &out
}

// fillingHides are the warnings concluded from a holder not seen: a
// picture still filling has not read the processes outside the units.
var fillingHides = map[string]bool{
	"orphan-listener": true,
	"fdstore-pinned":  true,
}

// partialHolders marks the holders of the listeners found in the kernel
// as partial (a copy; nil stays nil).
func partialHolders(ls []Listener) []Listener {
	if ls == nil {
		return nil
	}
	out := slices.Clone(ls)
	for i := range out {
		if out[i].Inode != 0 {
			out[i].HoldersPartial = true
		}
	}
	return out
}

// hostWideFindings are the doctor's findings that depend on the holders
// outside the units: while the picture is still filling they are not
// checked yet (Unchecked says so), never reported from what was not read.
var hostWideFindings = map[string]bool{
	"leaked-listener":   true,
	"listener-not-held": true,
	"fdstore-pinned":    true,
}

// FillingNote is what a picture still filling has not read, in words.
const FillingNote = "holders outside the units (leaked listeners, listeners not held, store entries held only by the manager, connections held outside): not checked yet, the host-wide pass is under way"
