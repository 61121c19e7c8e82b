//go:build oracle

package oracle

// Accept=yes bursts: a socket unit of the oracle's own that spawns a cat
// per connection, a few connections held across operations, bursts of
// short ones, and restarts of the socket during a burst.

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/inspect"
)

const (
	acceptSocket   = "oracle-accept.socket"
	acceptTemplate = "oracle-accept@"
	// acceptHeld is how many connections to the Accept=yes socket the
	// oracle keeps open across operations (a running instance each).
	acceptHeld = 2
)

// acceptUnits are the Accept=yes socket unit and its template on port.
func acceptUnits(port int) map[string]string {
	return map[string]string{
		acceptSocket: fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\nAccept=yes\n", port),
		// cat echoes each line and ends when its client closes.
		acceptTemplate + ".service": "[Service]\nExecStart=/bin/cat\nStandardInput=socket\nStandardOutput=socket\n",
	}
}

// acceptConn is one held connection to the Accept=yes socket.
type acceptConn struct {
	c net.Conn
	r *bufio.Reader
}

// echo sends a line and reads it back.
func (a *acceptConn) echo() bool {
	_ = a.c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := a.c.Write([]byte("oracle\n")); err != nil {
		return false
	}
	line, err := a.r.ReadString('\n')
	return err == nil && line == "oracle\n"
}

func (r *run) acceptAddr() string { return fmt.Sprintf("127.0.0.1:%d", r.acceptPort) }

// dialAccept opens a connection to the Accept=yes socket and has it echoed
// once (its instance runs then).
func (r *run) dialAccept() (*acceptConn, error) {
	c, err := net.DialTimeout("tcp", r.acceptAddr(), time.Second)
	if err != nil {
		return nil, err
	}
	a := &acceptConn{c: c, r: bufio.NewReader(c)}
	if !a.echo() {
		c.Close()
		return nil, fmt.Errorf("no echo from %s", r.acceptAddr())
	}
	return a, nil
}

// setupAccept installs the Accept=yes units (before the demo's
// daemon-reload) on a free port.
func (r *run) setupAccept() {
	ports, err := demo.FreePorts(1)
	if err != nil {
		r.t.Fatal(err)
	}
	r.acceptPort = ports[0]
	for name, content := range acceptUnits(r.acceptPort) {
		if err := r.sb.WriteUnit(name, content); err != nil {
			r.t.Fatal(err)
		}
	}
}

// startAccept starts the socket and opens the held connections.
func (r *run) startAccept() {
	r.sysctl("start", acceptSocket)
	r.refillAccept()
	r.t.Cleanup(func() {
		for _, a := range r.acceptConns {
			a.c.Close()
		}
	})
}

// refillAccept opens held connections until there are acceptHeld, and
// waits until the manager runs just their instances.
func (r *run) refillAccept() {
	for len(r.acceptConns) < acceptHeld {
		a, err := r.dialAccept()
		if err != nil {
			r.t.Fatalf("connect to %s: %v", acceptSocket, err)
		}
		r.acceptConns = append(r.acceptConns, a)
	}
	var in map[string]instance
	if !r.waitFor("only the held instances of "+acceptSocket, func() bool {
		var err error
		in, err = r.mgr.instances(r.ctx, acceptTemplate+"*")
		return err == nil && len(in) == len(r.acceptConns) && !slices.ContainsFunc(mapsValues(in), func(i instance) bool { return i.active != "active" })
	}) {
		r.t.Logf("%d held connections, the manager's instances: %v", len(r.acceptConns), in)
	}
}

func mapsValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// burstResult is what a burst's clients saw.
type burstResult struct{ ok, refused, failed int }

// acceptBurst connects n clients at once; each has a line echoed. With
// hold, they stay open until release is closed.
func (r *run) acceptBurst(n int, hold bool, release <-chan struct{}, opened *sync.WaitGroup) burstResult {
	var (
		mu  sync.Mutex
		res burstResult
		wg  sync.WaitGroup
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := r.dialAccept()
			mu.Lock()
			switch {
			case err == nil:
				res.ok++
			case errors.Is(err, syscall.ECONNREFUSED):
				res.refused++
			default:
				res.failed++
			}
			mu.Unlock()
			if opened != nil {
				opened.Done()
			}
			if err != nil {
				return
			}
			defer a.c.Close()
			if hold {
				<-release
			}
		}()
	}
	wg.Wait()
	return res
}

// acceptOp plays an Accept=yes operation: a burst of n short clients, held
// open while a snapshot is checked, or a restart of the socket unit with
// a burst right behind it.
func (r *run) acceptOp(restart bool) string {
	n := 1 + r.rng.IntN(8)
	op := fmt.Sprintf("%d clients held to %s, snapshot", n, acceptSocket)
	if restart {
		op = fmt.Sprintf("restart --no-block %s; %d short clients to it", acceptSocket, n)
	}
	r.note(op)
	from := r.nEvents()
	instBefore, err := r.mgr.instances(r.ctx, acceptTemplate+"*")
	if err != nil {
		r.t.Fatal(err)
	}
	propsBefore, err := r.mgr.socketCounters(r.ctx, acceptSocket)
	if err != nil {
		r.t.Fatal(err)
	}
	socks, err := ssTCP(false, r.acceptPort)
	if err != nil {
		r.t.Fatal(err)
	}
	lBefore := listenerInode(socks, r.acceptPort)
	var res burstResult
	if restart {
		r.sysctl("restart", "--no-block", acceptSocket)
		res = r.acceptBurst(n, false, nil, nil)
	} else {
		release := make(chan struct{})
		var opened sync.WaitGroup
		opened.Add(n)
		done := make(chan burstResult)
		go func() { done <- r.acceptBurst(n, true, release, &opened) }()
		opened.Wait()
		r.checkAcceptSnapshot(nil)
		close(release)
		res = <-done
	}
	r.settleOwn(from)
	// The held connections: echoed still (preserved) or not (dropped).
	dropped := 0
	var alive []*acceptConn
	for _, a := range r.acceptConns {
		if a.echo() {
			alive = append(alive, a)
		} else {
			dropped++
			a.c.Close()
		}
	}
	r.acceptConns = alive
	r.refillAccept()
	instAfter, err := r.mgr.instances(r.ctx, acceptTemplate+"*")
	if err != nil {
		r.t.Fatal(err)
	}
	propsAfter, err := r.mgr.socketCounters(r.ctx, acceptSocket)
	if err != nil {
		r.t.Fatal(err)
	}
	if socks, err = ssTCP(false, r.acceptPort); err != nil {
		r.t.Fatal(err)
	}
	lAfter := listenerInode(socks, r.acceptPort)
	evs := r.eventsSince(from)
	hs := handoffsOf(evs, acceptSocket)
	want := 0
	if restart {
		want = 1
	}
	r.judge("accept.handoff_count", len(hs) == want, "%d handoffs of %s, want %d", len(hs), acceptSocket, want)
	for _, e := range hs {
		r.checkAcceptHandoff(e, instBefore, instAfter, lBefore, lAfter, dropped, propsBefore, propsAfter, res)
	}
	for _, e := range evs {
		if e.Unit != acceptSocket {
			continue
		}
		switch e.Type {
		case inspect.EventListenerKept:
			r.judge("accept.listener_kept", e.Inode == lBefore && e.Inode == lAfter, "listener %d kept, ss says %d before and %d after", e.Inode, lBefore, lAfter)
		case inspect.EventListenerReplaced:
			r.judge("accept.listener_replaced", e.PrevInode == lBefore && e.Inode == lAfter && lBefore != lAfter, "listener %d replaced by %d, ss says %d before and %d after", e.PrevInode, e.Inode, lBefore, lAfter)
		case inspect.EventConnectionPreserved:
			_, open := socks[e.Inode]
			r.judge("accept.connection_preserved", open, "connection %d (%s) preserved, but it is gone (ss)", e.Inode, e.Detail)
		case inspect.EventConnectionDropped:
			_, open := socks[e.Inode]
			r.judge("accept.connection_dropped", !open, "connection %d (%s) dropped, but it is open (ss)", e.Inode, e.Detail)
		}
	}
	return op
}

// checkAcceptHandoff compares a restart of the Accept=yes socket with the
// manager's instances before and after, the held clients and ss.
func (r *run) checkAcceptHandoff(e inspect.Event, before, after map[string]instance, lBefore, lAfter uint64, dropped int, cb, ca socketCounters, res burstResult) {
	h := e.Handoff
	a := h.Accept
	if a == nil {
		r.falseClaim("accept.handoff", "a handoff of %s without its accept summary: %+v", acceptSocket, h)
		return
	}
	r.judge("accept.handoff_job", h.HandoffJob == "restart" && e.Job == "restart", "handoff_job %q job %q for a restart", h.HandoffJob, e.Job)
	switch {
	case h.ListenersUnknown > 0:
		r.tally.add("accept.listeners", claimUnknown)
	case lBefore != 0 && lBefore == lAfter:
		r.judge("accept.listeners", h.ListenersKept == 1 && h.ListenersReplaced == 0, "kept %d replaced %d, ss says the listener %d was kept", h.ListenersKept, h.ListenersReplaced, lAfter)
	default:
		r.judge("accept.listeners", h.ListenersKept == 0 && h.ListenersReplaced == 1, "kept %d replaced %d, ss says %d then %d", h.ListenersKept, h.ListenersReplaced, lBefore, lAfter)
	}
	kept, stopped, restarted := 0, 0, 0
	for unit, in := range before {
		ai, ok := after[unit]
		switch {
		case !ok || ai.active != "active":
			stopped++
		case ai.mainPID == in.mainPID:
			kept++
		default:
			restarted++
		}
	}
	r.judge("accept.instances", a.Instances == len(before), "%d instances before, the manager ran %d", a.Instances, len(before))
	if a.InstancesUnknown > 0 {
		r.tally.add("accept.instances_kept", claimUnknown)
	} else {
		r.judge("accept.instances_kept", a.InstancesKept == kept && a.InstancesStopped == stopped && a.InstancesRestarted == restarted,
			"kept %d stopped %d restarted %d, the manager's instances say %d, %d, %d", a.InstancesKept, a.InstancesStopped, a.InstancesRestarted, kept, stopped, restarted)
	}
	held := len(before)
	switch {
	case h.ConnectionsUnknown:
		r.tally.add("accept.connections", claimUnknown)
	default:
		r.judge("accept.connections", h.ConnectionsDropped == dropped && h.ConnectionsPreserved == held-dropped,
			"%d preserved %d dropped, the %d held clients saw %d dropped", h.ConnectionsPreserved, h.ConnectionsDropped, held, dropped)
	}
	r.judge("accept.refused_delta", h.RefusedDelta <= int(ca.nRefused-cb.nRefused), "refused_delta %d, the manager's NRefused went from %d to %d", h.RefusedDelta, cb.nRefused, ca.nRefused)
	if h.Probe != nil && h.Probe.Refused > 0 {
		// A refusal needs a moment with nobody listening: the listener
		// closed and bound anew.
		r.judge("accept.probe_refused", lBefore != lAfter && h.Probe.RefusedForMs >= 0, "the gap meter saw %d refused (for %.1f ms), but ss says the listener %d was kept (the burst's clients saw %d refused)", h.Probe.Refused, h.Probe.RefusedForMs, lAfter, res.refused)
	}
}

// checkAcceptSnapshot takes a snapshot of the Accept=yes socket and checks
// its instances and counters against the manager and /proc.
func (r *run) checkAcceptSnapshot(snap *inspect.Snapshot) {
	instBefore, err := r.mgr.instances(r.ctx, acceptTemplate+"*")
	if err != nil {
		r.t.Fatal(err)
	}
	cb, err := r.mgr.socketCounters(r.ctx, acceptSocket)
	if err != nil {
		r.t.Fatal(err)
	}
	if snap == nil {
		if snap, err = r.b.Snapshot(r.ctx, inspect.SnapshotOptions{Units: []string{acceptSocket}}); err != nil {
			r.t.Fatal(err)
		}
	}
	instAfter, err := r.mgr.instances(r.ctx, acceptTemplate+"*")
	if err != nil {
		r.t.Fatal(err)
	}
	ca, err := r.mgr.socketCounters(r.ctx, acceptSocket)
	if err != nil {
		r.t.Fatal(err)
	}
	var su *inspect.SocketUnit
	for i := range snap.Sockets {
		if snap.Sockets[i].Unit == acceptSocket {
			su = &snap.Sockets[i]
		}
	}
	if su == nil {
		r.falseClaim("snapshot.accept", "%s not in the snapshot, the manager runs it with %d instances", acceptSocket, len(instAfter))
		return
	}
	r.judge("snapshot.accept", su.Accept, "%s not said Accept=yes", acceptSocket)
	if cb == ca {
		r.judge("snapshot.accept_counters", su.NAccepted == ca.nAccepted && su.NConnections == ca.nConnections && su.NRefused == ca.nRefused,
			"NAccepted %d NConnections %d NRefused %d, the manager says %d %d %d", su.NAccepted, su.NConnections, su.NRefused, ca.nAccepted, ca.nConnections, ca.nRefused)
	} else {
		r.tally.add("snapshot.accept_counters", claimUnknown)
	}
	stable := len(instBefore) == len(instAfter)
	for u, in := range instBefore {
		if instAfter[u] != in {
			stable = false
		}
	}
	claimed := map[string]bool{}
	for _, in := range su.Instances {
		claimed[in.Unit] = true
		truth, ok := instAfter[in.Unit]
		if !ok || instBefore[in.Unit] != truth {
			r.tally.add("snapshot.accept_instance", claimUnknown) // came or went meanwhile
			continue
		}
		r.judge("snapshot.accept_instance", in.ActiveState == truth.active && in.MainPID == truth.mainPID,
			"instance %s %s main PID %d, the manager says %s %d", in.Unit, in.ActiveState, in.MainPID, truth.active, truth.mainPID)
		if in.Inode == 0 || in.MainPID == 0 {
			r.tally.add("snapshot.accept_instance_conn", claimUnknown)
			continue
		}
		ino, ok := fdInode(in.MainPID, 0)
		if !ok {
			r.tally.add("snapshot.accept_instance_conn", claimUnknown)
			continue
		}
		held := slices.ContainsFunc(in.Holders, func(h inspect.Holder) bool { return h.PID == in.MainPID })
		r.judge("snapshot.accept_instance_conn", in.Inode == ino && held, "instance %s connection inode %d held by %v, pid %d's fd 0 is inode %d", in.Unit, in.Inode, in.Holders, in.MainPID, ino)
	}
	if stable {
		for u, in := range instAfter {
			if in.active == "active" {
				r.judge("snapshot.accept_instances_complete", claimed[u], "instance %s (pid %d) running, not in the snapshot", u, in.mainPID)
			}
		}
	}
}

// fdInode is the inode of a process's descriptor.
func fdInode(pid, fd int) (uint64, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join("/proc", itoa(pid), "fd", itoa(fd)), &st); err != nil {
		return 0, false
	}
	return st.Ino, true
}

// settleOwn waits until the manager is quiet and the watch has seen a
// barrier job after the operation.
func (r *run) settleOwn(from int) {
	r.waitFor("quiet manager", func() bool {
		n, err := r.mgr.jobs(r.ctx)
		if err != nil {
			r.redial()
			return false
		}
		return n == 0
	})
	for try := 0; try < 10; try++ {
		i := r.nEvents()
		if err := r.mgr.start(r.ctx, barrier); err != nil {
			r.redial()
			continue
		}
		if r.waitForQuiet(3*time.Second, func() bool {
			return slices.ContainsFunc(r.eventsSince(i), func(e inspect.Event) bool {
				return e.Unit == barrier && e.Type == inspect.EventJobFinished
			})
		}) {
			break
		}
	}
	r.waitFor("watch idle", func() bool { return r.jobsDone(from) })
	r.waitConcluded()
}

// waitForQuiet is waitFor with a deadline and no log line.
func (r *run) waitForQuiet(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}
