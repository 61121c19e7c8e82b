package live

import (
	"context"
	"time"

	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/procfs"
)

// FullEvery is how many rescans pass between the host-wide passes (holders
// outside the units) of every live model: the dashboard's, watch's and the
// agent's.
const FullEvery = 30

// WatcherOptions are what differs between the live models' Watchers.
type WatcherOptions struct {
	// Interval is the rescan of every unit when nothing happens.
	Interval time.Duration
	// Targeted limits every scan to the units' and the manager's
	// processes: no host-wide passes (the demo).
	Targeted bool
	// UnitsFirst puts a picture of the units read from their own and the
	// manager's processes out first, marked still filling, before the
	// first host-wide pass (inspect.Watcher.UnitsFirst; not when
	// Targeted: every scan is then one of the units).
	UnitsFirst bool
	// Probe, Rescan, Fresh, OnSnapshot, OnView and Trace are the Watcher's own
	// (nil: none).
	Probe      func(service string) bool
	Rescan     <-chan struct{}
	Fresh      <-chan inspect.FreshRequest
	OnSnapshot func(*inspect.Snapshot)
	OnView     func(units []string, snap *inspect.Snapshot)
	Trace      func(inspect.Step)
}

// NewWatcher is the one Watcher of a live model on b's manager, fed by
// events: the dashboard's, watch's and the agent's are all made here.
func NewWatcher(b *inspect.Builder, events inspect.EventSource, o WatcherOptions) *inspect.Watcher {
	full := FullEvery
	if o.Targeted {
		full = -1
	}
	w := &inspect.Watcher{Snapshots: b, Events: events, Interval: o.Interval, FullEvery: full, Shows: b.Names,
		Probe: o.Probe, Rescan: o.Rescan, Fresh: o.Fresh, OnSnapshot: o.OnSnapshot, OnView: o.OnView, Trace: o.Trace,
		UnitsFirst: o.UnitsFirst && !o.Targeted}
	if k, ok := b.Kernel.(procfs.FS); ok {
		w.Alive = inspect.SocketsAlive(k.SocketsByInode)
		w.ConnEnds = k.TCPConnEnds
		w.FDCount, w.SocketInode, w.SocketInodes = k.FDCount, k.SocketInode, k.SocketInodes
		w.TCPAt, w.TCPAborts = k.TCPAt, k.TCPAborts
		w.NotConnections = func(ctx context.Context, inodes []uint64) (map[uint64]bool, error) {
			found, err := k.SocketsByInode(ctx, inodes)
			if err != nil {
				return nil, err
			}
			not := map[uint64]bool{}
			for _, ino := range inodes {
				// Gone already: closed while its process lived on (it was
				// just read), as sd_notify's sockets are, not a
				// connection the job's end could drop.
				if s, ok := found[ino]; !ok || s.Type == procfs.TypeDgram || s.IsListener() {
					not[ino] = true
				}
			}
			return not, nil
		}
	}
	return w
}
