package inspect

import (
	"context"
	"net/netip"

	"github.com/fdtop/fdtop/procfs"
)

// Which end of a gone connection closed first (View.Closed, Event.Via of
// connection_closed).
const (
	// ClosedByClient: the client's end closed first; the service only
	// answered its hang-up.
	ClosedByClient = "client"
	// ClosedByService: the service's end closed first: its client was
	// dropped.
	ClosedByService = "service"
)

// closerOf tells from what the kernel still holds of a closed TCP
// connection which end closed first: the end that did is left in FIN-WAIT
// or TIME-WAIT, the other in CLOSE-WAIT or LAST-ACK. "" when nothing is
// left (a remote client's end, an exchange over, or a reset) or the ends
// disagree (both closed at once).
func closerOf(e procfs.ConnEnds) string {
	first := func(s procfs.SockState) bool {
		return s == procfs.StateFinWait1 || s == procfs.StateFinWait2 || s == procfs.StateTimeWait
	}
	second := func(s procfs.SockState) bool {
		return s == procfs.StateCloseWait || s == procfs.StateLastAck
	}
	service := first(e.Local) || second(e.Peer)
	client := first(e.Peer) || second(e.Local)
	switch {
	case service && !client:
		return ClosedByService
	case client && !service:
		return ClosedByClient
	}
	return ""
}

// closers asks the kernel (ends: procfs.FS.TCPConnEnds) which end of each
// gone connection closed first. A connection it does not name was not
// learned (not TCP, nothing left of it, or the kernel could not be asked).
func closers(ctx context.Context, ends func(context.Context, []procfs.TCPConn) ([]procfs.ConnEnds, error), gone []Connection) map[uint64]string {
	var conns []procfs.TCPConn
	var inodes []uint64
	for _, c := range gone {
		local, err1 := netip.ParseAddrPort(c.Local)
		remote, err2 := netip.ParseAddrPort(c.Remote)
		if err1 != nil || err2 != nil {
			continue // not TCP (a unix connection): nothing is left to tell
		}
		conns = append(conns, procfs.TCPConn{Local: local, Remote: remote})
		inodes = append(inodes, c.Inode)
	}
	out := map[uint64]string{}
	if len(conns) == 0 {
		return out
	}
	got, err := ends(ctx, conns)
	if err != nil || len(got) != len(conns) {
		return out // nothing learned
	}
	for i, e := range got {
		if who := closerOf(e); who != "" {
			out[inodes[i]] = who
		}
	}
	return out
}
